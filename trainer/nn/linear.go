package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Linear computes x·W + b for x [N, in], W [in, out] (GPT-2's Conv1D layout) and b [out], with the bias
// written first and the product accumulated onto it by one gemm.
func Linear(x, w, b *G.Node) (*G.Node, error) {
	return apply(spec{
		name: "Linear",
		sig:  []int{2, 2, 1, 2},
		shape: func(in []tensor.Shape) (tensor.Shape, error) {
			x, w, b := in[0], in[1], in[2]
			if x.Dims() != 2 || w.Dims() != 2 || x[1] != w[0] || b.TotalSize() != w[1] {
				return nil, fmt.Errorf("shapes x %v, W %v, b %v do not fit x·W + b", x, w, b)
			}
			return tensor.Shape{x[0], w[1]}, nil
		},
		f32:  linearKernel[float32],
		f64:  linearKernel[float64],
		grad: linearGrad,
	}, x, w, b)
}

func linearKernel[T float](c *call[T]) error {
	n, in, out := c.shapes[0][0], c.shapes[0][1], c.shapes[1][1]
	linearForward(c.in[0], c.in[1], c.in[2], c.out, n, in, out)
	return nil
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

func linearGrad(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
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
