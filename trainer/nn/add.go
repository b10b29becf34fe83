package nn

import (
	"fmt"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Add is the residual connection a + b for same-shaped tensors, into a buffer reused across runs.
func Add(a, b *G.Node) (*G.Node, error) {
	return G.ApplyOp(&addOp{base: newBase("Add")}, a, b)
}

type addOp struct {
	base
	out buffer
}

func (op *addOp) Arity() int    { return 2 }
func (op *addOp) Type() hm.Type { a := hm.TypeVariable('a'); return hm.NewFnType(a, a, a) }
func (op *addOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	a, err := shapeOf(op, in, 0)
	if err != nil {
		return nil, err
	}
	b, err := shapeOf(op, in, 1)
	if err != nil {
		return nil, err
	}
	if !a.Eq(b) {
		return nil, fmt.Errorf("%v: shapes differ: %v and %v", op, a, b)
	}
	return a.Clone(), nil
}

func (op *addOp) Do(inputs ...G.Value) (G.Value, error) {
	a, err := dense(op, inputs, 0)
	if err != nil {
		return nil, err
	}
	b, err := dense(op, inputs, 1)
	if err != nil {
		return nil, err
	}
	if err := sameDtype(op, a, b); err != nil {
		return nil, err
	}
	c := op.out.get(a.Dtype(), a.Shape()...)
	switch a.Dtype() {
	case tensor.Float32:
		addInto(f32s(a), f32s(b), f32s(c))
	case tensor.Float64:
		addInto(f64s(a), f64s(b), f64s(c))
	}
	return c, nil
}

func addInto[T float](a, b, c []T) {
	forRange(len(c), 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			c[i] = a[i] + b[i]
		}
	})
}

func (op *addOp) DiffWRT(int) []bool { return []bool{true, true} }

// SymDiff passes the gradient through unchanged to both operands.
func (op *addOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	return G.Nodes{grad, grad}, nil
}
