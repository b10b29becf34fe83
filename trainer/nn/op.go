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

// Every op of this package is one fusedOp: the shell below implements gorgonia's Op (and SDOp for ops with a
// gradient) once, and a spec supplies what differs from op to op: the signature, the shape rule, the math for
// each element type and the symbolic gradient. The shell reads and checks the inputs, keeps the output buffer
// across runs and dispatches on the element type, so an op's file holds only its math.

// spec defines one op.
type spec struct {
	name string
	// sig gives the dimensions of each input and then of the output: n ≥ 1 for a float tensor of n dims,
	// dimsScalar for a float scalar, dimsAny for a float value of any shape. All share one element type.
	sig []int
	// shape returns the output shape for the input shapes, or an error describing the mismatch (the shell
	// prefixes the op's name). A 0-dimensional shape means the op returns a scalar, set in call.scalar.
	shape func(in []tensor.Shape) (tensor.Shape, error)
	// reads lists the inputs the math reads as float tensors (nil: all). The others are scalars, read with
	// call.scalarIn, or are there only so that the scheduler runs this op after another (a backward op after
	// the forward op whose cached state it reads).
	reads []int
	// f32 and f64 are the math for each element type: they read call.in and fill call.out (or set
	// call.scalar). Errors are prefixed with the op's name by the shell.
	f32 func(c *call[float32]) error
	f64 func(c *call[float64]) error
	// grad is SymDiff: the gradient of each input as nodes, given the output's gradient. nil for ops that are
	// never differentiated (the backward ops).
	grad func(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error)
}

// Signature entries besides tensor dimensions.
const (
	dimsScalar = 0
	dimsAny    = -1
)

// call is one run of an op's math on element type T.
type call[T float] struct {
	op fmt.Stringer
	// in holds the data of every input listed in spec.reads, by input position (nil for the others).
	in [][]T
	// shapes holds every input's shape and vals every input as gorgonia handed it.
	shapes []tensor.Shape
	vals   []G.Value
	// out is the output's data, a buffer kept across runs and not cleared: the math writes every element.
	out   []T
	shape tensor.Shape
	// scalar is the result of an op whose shape is a scalar.
	scalar float64
}

// scalarIn reads input i as a scalar (a loss gradient seed), whichever form gorgonia hands it in.
func (c *call[T]) scalarIn(i int) (float64, error) { return scalar(c.op, c.vals[i]) }

// apply builds the op s on the inputs.
func apply(s spec, inputs ...*G.Node) (*G.Node, error) {
	op := &fusedOp{base: newBase(s.name), spec: s, inputs: inputs}
	if len(s.sig) != len(inputs)+1 {
		return nil, fmt.Errorf("%v: signature has %d inputs, got %d", op, len(s.sig)-1, len(inputs))
	}
	if s.grad == nil {
		return G.ApplyOp(op, inputs...)
	}
	return G.ApplyOp(&diffOp{op}, inputs...)
}

// fusedOf returns the op of n when it is one of this package's, else nil.
func fusedOf(n *G.Node) *fusedOp {
	switch o := n.Op().(type) {
	case *fusedOp:
		return o
	case *diffOp:
		return o.fusedOp
	case diffOp:
		return o.fusedOp
	}
	return nil
}

// readsData reports whether the math reads input i's data: a float tensor listed in reads, or a scalar. The
// other inputs order the op after another one (see spec.reads) and their buffers may be reused once every
// reader has run.
func (s *spec) readsData(i int) bool {
	if s.sig[i] == dimsScalar || s.reads == nil {
		return true
	}
	for _, r := range s.reads {
		if r == i {
			return true
		}
	}
	return false
}

// opSerial makes every op instance hash differently: gorgonia merges nodes whose op hash and children are
// equal, and two instances of a stateful op must never be merged.
var opSerial atomic.Uint64

// base holds the identity and hashing of an op.
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

// fusedOp is the shell every op of this package runs in.
type fusedOp struct {
	base
	spec
	// inputs are the op's input nodes, in order (for Grad and PlanBuffers).
	inputs []*G.Node
	out    buffer
	planned
}

func (op *fusedOp) Arity() int           { return len(op.sig) - 1 }
func (op *fusedOp) ReturnsPtr() bool     { return false }
func (op *fusedOp) CallsExtern() bool    { return false }
func (op *fusedOp) OverwritesInput() int { return -1 }

func (op *fusedOp) Type() hm.Type {
	ts := make(hm.Types, len(op.sig))
	a := hm.TypeVariable('a')
	for i, d := range op.sig {
		switch d {
		case dimsScalar, dimsAny:
			ts[i] = a
		default:
			ts[i] = G.TensorType{Dims: d, Of: a}
		}
	}
	return hm.NewFnType(ts...)
}

func (op *fusedOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	shapes := make([]tensor.Shape, len(in))
	for i, d := range in {
		s, ok := d.(tensor.Shape)
		if !ok {
			return nil, fmt.Errorf("%v: input %d has no shape (%T)", op, i, d)
		}
		shapes[i] = s
	}
	return op.outShape(shapes)
}

func (op *fusedOp) outShape(in []tensor.Shape) (tensor.Shape, error) {
	if len(in) != op.Arity() {
		return nil, fmt.Errorf("%v: expected %d inputs, got %d", op, op.Arity(), len(in))
	}
	s, err := op.shape(in)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	return s, nil
}

func (op *fusedOp) Do(inputs ...G.Value) (G.Value, error) {
	shapes := make([]tensor.Shape, len(inputs))
	for i, v := range inputs {
		shapes[i] = v.Shape()
	}
	shape, err := op.outShape(shapes)
	if err != nil {
		return nil, err
	}
	reads := op.reads
	if reads == nil {
		reads = make([]int, len(inputs))
		for i := range reads {
			reads[i] = i
		}
	}
	ds := make([]*tensor.Dense, len(inputs))
	for k, i := range reads {
		if ds[i], err = dense(op, inputs, i); err != nil {
			return nil, err
		}
		if first := ds[reads[0]]; k > 0 && ds[i].Dtype() != first.Dtype() {
			return nil, fmt.Errorf("%v: input %d is %v but input %d is %v", op, i, ds[i].Dtype(), reads[0], first.Dtype())
		}
	}
	dt := ds[reads[0]].Dtype()
	var out *tensor.Dense
	if shape.Dims() > 0 {
		out = op.output(dt, shape)
	}
	var v G.Value
	switch dt {
	case tensor.Float32:
		v, err = run(op, op.f32, ds, inputs, shapes, out, shape)
	case tensor.Float64:
		v, err = run(op, op.f64, ds, inputs, shapes, out, shape)
	default:
		return nil, fmt.Errorf("%v: unsupported dtype %v (want float32 or float64)", op, dt)
	}
	if err != nil {
		return nil, err
	}
	op.consumed()
	return v, nil
}

func run[T float](op *fusedOp, math func(*call[T]) error, ds []*tensor.Dense, vals []G.Value, shapes []tensor.Shape,
	out *tensor.Dense, shape tensor.Shape) (G.Value, error) {
	c := &call[T]{op: op, in: make([][]T, len(ds)), shapes: shapes, vals: vals, shape: shape}
	for i, d := range ds {
		if d != nil {
			c.in[i] = d.Data().([]T)
		}
	}
	if out != nil {
		c.out = out.Data().([]T)
	}
	if err := math(c); err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	if out == nil {
		return makeScalar[T](c.scalar), nil
	}
	return out, nil
}

// diffOp is a fusedOp with a symbolic gradient.
type diffOp struct{ *fusedOp }

func (op diffOp) DiffWRT(n int) []bool {
	w := make([]bool, n)
	for i := range w {
		w[i] = true
	}
	return w
}

func (op diffOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	return op.grad(inputs, output, grad)
}

// buffer is an op's output, kept across runs: graphs have fixed shapes, so each run can reuse it instead of
// allocating (and later collecting) a fresh tensor.
type buffer struct{ t *tensor.Dense }

func (b *buffer) get(dt tensor.Dtype, shape ...int) *tensor.Dense {
	if b.t == nil || b.t.Dtype() != dt || !b.t.Shape().Eq(tensor.Shape(shape)) {
		b.t = tensor.New(tensor.Of(dt), tensor.WithShape(shape...))
	}
	return b.t
}

// cache holds per-element-type slices that outlive a run: state a forward op keeps for its backward op
// (attention's probabilities) and per-worker scratch.
type cache struct {
	f32 [][]float32
	f64 [][]float64
}

func slots[T float](c *cache) *[][]T {
	var z T
	if _, ok := any(z).(float32); ok {
		return any(&c.f32).(*[][]T)
	}
	return any(&c.f64).(*[][]T)
}

// sized returns slot i of c with length n, allocating (zeroed) when its length differs.
func sized[T float](c *cache, i, n int) []T {
	s := slots[T](c)
	for len(*s) <= i {
		*s = append(*s, nil)
	}
	if len((*s)[i]) != n {
		(*s)[i] = make([]T, n)
	}
	return (*s)[i]
}

// kept returns slot i of c when a run has left it with length n: a backward op reads its forward op's state.
func kept[T float](c *cache, i, n int) ([]T, error) {
	s := *slots[T](c)
	if i >= len(s) || len(s[i]) != n {
		return nil, fmt.Errorf("forward pass has not run")
	}
	return s[i], nil
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

// scalar reads a scalar value (a gradient seed) as float64, whichever form gorgonia hands it in.
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

// makeScalar returns v as a gorgonia scalar of T's element type.
func makeScalar[T float](v float64) G.Value {
	var z T
	if _, ok := any(z).(float32); ok {
		return G.NewF32(float32(v))
	}
	return G.NewF64(v)
}

// sameShape is the shape rule of ops whose output has input i's shape.
func sameShape(i int) func([]tensor.Shape) (tensor.Shape, error) {
	return func(in []tensor.Shape) (tensor.Shape, error) { return in[i].Clone(), nil }
}

// scalarShape is the shape rule of ops that return a scalar.
func scalarShape([]tensor.Shape) (tensor.Shape, error) { return tensor.ScalarShape(), nil }

func f32s(t *tensor.Dense) []float32 { return t.Data().([]float32) }
func f64s(t *tensor.Dense) []float64 { return t.Data().([]float64) }
