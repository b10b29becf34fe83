package nn

import (
	"fmt"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ColSum sums x [N, D] over its rows into [D]: the gradient of a bias broadcast over rows.
func ColSum(x *G.Node) (*G.Node, error) {
	return G.ApplyOp(&colSumOp{base: newBase("ColSum")}, x)
}

type colSumOp struct {
	base
	out buffer
}

func (op *colSumOp) Arity() int    { return 1 }
func (op *colSumOp) Type() hm.Type { return hm.NewFnType(tensorOf(2), tensorOf(1)) }
func (op *colSumOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	x, err := shapeOf(op, in, 0)
	if err != nil {
		return nil, err
	}
	if x.Dims() != 2 {
		return nil, fmt.Errorf("%v: x must be [N, D], got %v", op, x)
	}
	return tensor.Shape{x[1]}, nil
}

func (op *colSumOp) Do(inputs ...G.Value) (G.Value, error) {
	x, err := dense(op, inputs, 0)
	if err != nil {
		return nil, err
	}
	d := x.Shape()[1]
	s := op.out.get(x.Dtype(), d)
	switch x.Dtype() {
	case tensor.Float32:
		colSum(f32s(x), f32s(s))
	case tensor.Float64:
		colSum(f64s(x), f64s(s))
	}
	return s, nil
}

func colSum[T float](x, s []T) {
	clear(s)
	d := len(s)
	for r := 0; r < len(x); r += d {
		for i, v := range x[r : r+d] {
			s[i] += v
		}
	}
}
