package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ColSum sums x [N, D] over its rows into [D]: the gradient of a bias broadcast over rows.
func ColSum(x *G.Node) (*G.Node, error) {
	return apply(spec{
		name: "ColSum",
		sig:  []int{2, 1},
		shape: func(in []tensor.Shape) (tensor.Shape, error) {
			if in[0].Dims() != 2 {
				return nil, fmt.Errorf("x must be [N, D], got %v", in[0])
			}
			return tensor.Shape{in[0][1]}, nil
		},
		f32: colSumKernel[float32],
		f64: colSumKernel[float64],
	}, x)
}

func colSumKernel[T float](c *call[T]) error {
	colSum(c.in[0], c.out)
	return nil
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
