package nn

import (
	"fmt"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Linear computes x·W + b for x [N, in], W [in, out] (GPT-2's Conv1D layout) and b [out], with the bias
// written first and the product accumulated onto it by one gemm.
func Linear(x, w, b *G.Node) (*G.Node, error) {
	return G.ApplyOp(&linearOp{base: newBase("Linear")}, x, w, b)
}

type linearOp struct {
	base
	out buffer
}

func (op *linearOp) Arity() int { return 3 }
func (op *linearOp) Type() hm.Type {
	return hm.NewFnType(tensorOf(2), tensorOf(2), tensorOf(1), tensorOf(2))
}

func (op *linearOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	x, err := shapeOf(op, in, 0)
	if err != nil {
		return nil, err
	}
	w, err := shapeOf(op, in, 1)
	if err != nil {
		return nil, err
	}
	b, err := shapeOf(op, in, 2)
	if err != nil {
		return nil, err
	}
	if x.Dims() != 2 || w.Dims() != 2 || x[1] != w[0] || b.TotalSize() != w[1] {
		return nil, fmt.Errorf("%v: shapes x %v, W %v, b %v do not fit x·W + b", op, x, w, b)
	}
	return tensor.Shape{x[0], w[1]}, nil
}

func (op *linearOp) Do(inputs ...G.Value) (G.Value, error) {
	x, err := dense(op, inputs, 0)
	if err != nil {
		return nil, err
	}
	w, err := dense(op, inputs, 1)
	if err != nil {
		return nil, err
	}
	b, err := dense(op, inputs, 2)
	if err != nil {
		return nil, err
	}
	if err := sameDtype(op, x, w, b); err != nil {
		return nil, err
	}
	n, in, out := x.Shape()[0], x.Shape()[1], w.Shape()[1]
	y := op.out.get(x.Dtype(), n, out)
	switch x.Dtype() {
	case tensor.Float32:
		linearForward(f32s(x), f32s(w), f32s(b), f32s(y), n, in, out)
	case tensor.Float64:
		linearForward(f64s(x), f64s(w), f64s(b), f64s(y), n, in, out)
	}
	return y, nil
}

// linearForward splits rows across goroutines itself so that each writes the bias into its own rows (memory it
// is about to accumulate into) before its share of the product.
func linearForward[T float](x, w, b, y []T, n, in, out int) {
	forRange(n, out*in/8, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			copy(y[r*out:(r+1)*out], b)
		}
		gemmSerial(false, false, hi-lo, out, in, 1, x[lo*in:], in, w, out, 1, y[lo*out:], out)
	})
}

func (op *linearOp) DiffWRT(int) []bool { return []bool{true, true, true} }

func (op *linearOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	x, w := inputs[0], inputs[1]
	dx, err := MatMul(grad, w, false, true)
	if err != nil {
		return nil, err
	}
	dw, err := MatMul(x, grad, true, false)
	if err != nil {
		return nil, err
	}
	db, err := ColSum(grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx, dw, db}, nil
}
