package nn

import (
	"fmt"
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
	// exps holds e^(−2u) of the last float32 run, so that the backward pass needs no exponential.
	exps []float32
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
		if len(op.exps) != len(f32s(x)) {
			op.exps = make([]float32, len(f32s(x)))
		}
		geluForward32(f32s(x), f32s(y), op.exps)
	case tensor.Float64:
		geluForward(f64s(x), f64s(y))
	}
	return y, nil
}

func (op *geluOp) DiffWRT(int) []bool { return []bool{true} }

func (op *geluOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dx, err := G.ApplyOp(&geluGradOp{base: newBase("GELUGrad"), fwd: op}, inputs[0], output, grad)
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

// geluGradOp computes g·gelu'(x). In float32 it reads the exponentials its forward op kept; its second input
// (the forward output) orders it after that run.
type geluGradOp struct {
	base
	fwd *geluOp
	out buffer
}

func (op *geluGradOp) Arity() int    { return 3 }
func (op *geluGradOp) Type() hm.Type { a := hm.TypeVariable('a'); return hm.NewFnType(a, a, a, a) }
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
	g, err := dense(op, inputs, 2)
	if err != nil {
		return nil, err
	}
	if err := sameDtype(op, x, g); err != nil {
		return nil, err
	}
	dx := op.out.get(x.Dtype(), x.Shape()...)
	switch x.Dtype() {
	case tensor.Float32:
		if len(op.fwd.exps) != len(f32s(x)) {
			return nil, fmt.Errorf("%v: forward pass has not run", op)
		}
		geluBackward32(f32s(x), f32s(g), op.fwd.exps, f32s(dx))
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
// that one exponential e = e^(−2u) per element does: gelu = x·σ(2u), gelu' = σ(2u) + 2x·σ(2u)(1−σ(2u))·u',
// with σ(2u) = 1/(1+e) and 1−σ(2u) = e·σ(2u) (which keeps its precision where σ is close to 1).
func geluForward32(x, y, exps []float32) {
	const c, a = float32(0.7978845608028654), float32(geluA)
	forRange(len(x), 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			f := x[i]
			e := exp32(-2 * c * (f + a*f*f*f))
			exps[i] = e
			y[i] = f / (1 + e)
		}
	})
}

func geluBackward32(x, g, exps, dx []float32) {
	const c, a = float32(0.7978845608028654), float32(geluA)
	forRange(len(x), 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			f, e := x[i], exps[i]
			s := 1 / (1 + e)
			dx[i] = g[i] * (s + 2*f*s*(e*s)*c*(1+3*a*f*f))
		}
	})
}
