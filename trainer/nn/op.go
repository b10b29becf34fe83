package nn

import (
	"fmt"
	"hash"
	"hash/fnv"
	"sync/atomic"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

type float interface{ ~float32 | ~float64 }

// opSerial makes every op instance hash differently: gorgonia merges nodes whose op hash and children are
// equal, and two instances of a stateful op must never be merged.
var opSerial atomic.Uint64

// base holds what every op of this package shares: identity, hashing and the gorgonia flags.
type base struct {
	name string
	id   uint64
}

func newBase(name string) base { return base{name: name, id: opSerial.Add(1)} }

func (b *base) String() string        { return fmt.Sprintf("%s#%d", b.name, b.id) }
func (b *base) WriteHash(h hash.Hash) { fmt.Fprintf(h, "nn.%s#%d", b.name, b.id) }
func (b *base) Hashcode() uint32 {
	h := fnv.New32a()
	b.WriteHash(h)
	return h.Sum32()
}
func (b *base) ReturnsPtr() bool     { return false }
func (b *base) CallsExtern() bool    { return false }
func (b *base) OverwritesInput() int { return -1 }

// tensorOf is the type of a float tensor with dims dimensions; all of an op's inputs share the element type.
func tensorOf(dims int) hm.Type { return G.TensorType{Dims: dims, Of: hm.TypeVariable('a')} }

// scalarOf is the element type of the op's tensors, used for a scalar (loss) output.
func scalarOf() hm.Type { return hm.TypeVariable('a') }

// buffer is an op's output, kept across runs: graphs have fixed shapes, so each run can reuse it instead of
// allocating (and later collecting) a fresh tensor.
type buffer struct{ t *tensor.Dense }

func (b *buffer) get(dt tensor.Dtype, shape ...int) *tensor.Dense {
	if b.t == nil || b.t.Dtype() != dt || !b.t.Shape().Eq(tensor.Shape(shape)) {
		b.t = tensor.New(tensor.Of(dt), tensor.WithShape(shape...))
	}
	return b.t
}

// dense returns the i-th input as a float tensor, with a clear error otherwise.
func dense(op fmt.Stringer, inputs []G.Value, i int) (*tensor.Dense, error) {
	if i >= len(inputs) {
		return nil, fmt.Errorf("%v: expected at least %d inputs, got %d", op, i+1, len(inputs))
	}
	d, ok := inputs[i].(*tensor.Dense)
	if !ok {
		return nil, fmt.Errorf("%v: input %d is %T, want *tensor.Dense", op, i, inputs[i])
	}
	if d.Dtype() != tensor.Float32 && d.Dtype() != tensor.Float64 {
		return nil, fmt.Errorf("%v: input %d has dtype %v, want float32 or float64", op, i, d.Dtype())
	}
	return d, nil
}

// scalar reads a scalar input (a gradient seed) as float64, whichever form gorgonia hands it in.
func scalar(op fmt.Stringer, v G.Value) (float64, error) {
	switch s := v.(type) {
	case *G.F32:
		return float64(*s), nil
	case *G.F64:
		return float64(*s), nil
	case *tensor.Dense:
		if s.Shape().TotalSize() == 1 {
			switch d := s.Data().(type) {
			case float32:
				return float64(d), nil
			case float64:
				return d, nil
			case []float32:
				return float64(d[0]), nil
			case []float64:
				return d[0], nil
			}
		}
	}
	return 0, fmt.Errorf("%v: expected a scalar gradient, got %T", op, v)
}

func makeScalar(dt tensor.Dtype, v float64) G.Value {
	if dt == tensor.Float32 {
		return G.NewF32(float32(v))
	}
	return G.NewF64(v)
}

func shapeOf(op fmt.Stringer, inputs []G.DimSizer, i int) (tensor.Shape, error) {
	if i >= len(inputs) {
		return nil, fmt.Errorf("%v: expected at least %d inputs, got %d", op, i+1, len(inputs))
	}
	s, ok := inputs[i].(tensor.Shape)
	if !ok {
		return nil, fmt.Errorf("%v: input %d has no shape (%T)", op, i, inputs[i])
	}
	return s, nil
}

func errDtype(op fmt.Stringer, dt tensor.Dtype) error {
	return fmt.Errorf("%v: unsupported dtype %v (want float32 or float64)", op, dt)
}

func f32s(t *tensor.Dense) []float32 { return t.Data().([]float32) }
func f64s(t *tensor.Dense) []float64 { return t.Data().([]float64) }

// sameDtype checks that all tensors have the first one's dtype.
func sameDtype(op fmt.Stringer, ts ...*tensor.Dense) error {
	for i, t := range ts[1:] {
		if t.Dtype() != ts[0].Dtype() {
			return fmt.Errorf("%v: input %d is %v but input 0 is %v", op, i+1, t.Dtype(), ts[0].Dtype())
		}
	}
	return nil
}
