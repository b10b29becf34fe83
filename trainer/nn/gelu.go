package nn

import (
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// GELU is GPT-2's tanh approximation (gelu_new): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
func GELU(x *G.Node) (*G.Node, error) {
	return G.ApplyOp(&geluOp{base: newBase("GELU")}, x)
}

var geluC = math.Sqrt(2 / math.Pi)

const geluA = 0.044715

type geluOp struct {
	base
	out buffer
}

func (op *geluOp) Arity() int    { return 1 }
func (op *geluOp) Type() hm.Type { a := hm.TypeVariable('a'); return hm.NewFnType(a, a) }
func (op *geluOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	x, err := shapeOf(op, in, 0)
	if err != nil {
		return nil, err
	}
	return x.Clone(), nil
}

func (op *geluOp) Do(inputs ...G.Value) (G.Value, error) {
	x, err := dense(op, inputs, 0)
	if err != nil {
		return nil, err
	}
	y := op.out.get(x.Dtype(), x.Shape()...)
	switch x.Dtype() {
	case tensor.Float32:
		geluForward32(f32s(x), f32s(y))
	case tensor.Float64:
		geluForward(f64s(x), f64s(y))
	}
	return y, nil
}

func (op *geluOp) DiffWRT(int) []bool { return []bool{true} }

func (op *geluOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dx, err := G.ApplyOp(&geluGradOp{base: newBase("GELUGrad")}, inputs[0], grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx}, nil
}

func geluForward[T float](x, y []T) {
	forRange(len(x), 1, func(lo, hi int) {
		for i, v := range x[lo:hi] {
			f := float64(v)
			y[lo+i] = T(0.5 * f * (1 + math.Tanh(geluC*(f+geluA*f*f*f))))
		}
	})
}

// geluGradOp computes g·gelu'(x).
type geluGradOp struct {
	base
	out buffer
}

func (op *geluGradOp) Arity() int    { return 2 }
func (op *geluGradOp) Type() hm.Type { a := hm.TypeVariable('a'); return hm.NewFnType(a, a, a) }
func (op *geluGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	x, err := shapeOf(op, in, 0)
	if err != nil {
		return nil, err
	}
	return x.Clone(), nil
}

func (op *geluGradOp) Do(inputs ...G.Value) (G.Value, error) {
	x, err := dense(op, inputs, 0)
	if err != nil {
		return nil, err
	}
	g, err := dense(op, inputs, 1)
	if err != nil {
		return nil, err
	}
	if err := sameDtype(op, x, g); err != nil {
		return nil, err
	}
	dx := op.out.get(x.Dtype(), x.Shape()...)
	switch x.Dtype() {
	case tensor.Float32:
		geluBackward32(f32s(x), f32s(g), f32s(dx))
	case tensor.Float64:
		geluBackward(f64s(x), f64s(g), f64s(dx))
	}
	return dx, nil
}

func geluBackward[T float](x, g, dx []T) {
	forRange(len(x), 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			f := float64(x[i])
			t := math.Tanh(geluC * (f + geluA*f*f*f))
			d := 0.5*(1+t) + 0.5*f*(1-t*t)*geluC*(1+3*geluA*f*f)
			dx[i] = T(float64(g[i]) * d)
		}
	})
}

// geluForward32 and geluBackward32 are the float32 (training) versions. They use 0.5·(1 + tanh u) = σ(2u), so
// that one exp32 per element does: gelu = x·σ(2u), gelu' = σ(2u) + 2x·σ(2u)(1−σ(2u))·u'.
func geluForward32(x, y []float32) {
	const c, a = float32(0.7978845608028654), float32(geluA)
	forRange(len(x), 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			f := x[i]
			y[i] = f / (1 + exp32(-2*c*(f+a*f*f*f)))
		}
	})
}

func geluBackward32(x, g, dx []float32) {
	const c, a = float32(0.7978845608028654), float32(geluA)
	forRange(len(x), 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			f := x[i]
			e := exp32(-2 * c * (f + a*f*f*f))
			s := 1 / (1 + e)
			// 1−σ as e·σ keeps its relative precision where σ is close to 1.
			dx[i] = g[i] * (s + 2*f*s*(e*s)*c*(1+3*a*f*f))
		}
	})
}
