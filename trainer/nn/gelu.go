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
		geluForward(f32s(x), f32s(y))
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
		geluBackward(f32s(x), f32s(g), f32s(dx))
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
