package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Add is the residual connection a + b for same-shaped tensors, into a buffer reused across runs.
func Add(a, b *G.Node) (*G.Node, error) {
	return apply(spec{
		name: "Add",
		sig:  []int{dimsAny, dimsAny, dimsAny},
		shape: func(in []tensor.Shape) (tensor.Shape, error) {
			if !in[0].Eq(in[1]) {
				return nil, fmt.Errorf("shapes differ: %v and %v", in[0], in[1])
			}
			return in[0].Clone(), nil
		},
		f32: addKernel[float32],
		f64: addKernel[float64],
		// The gradient passes through unchanged to both operands.
		grad: func(_ G.Nodes, _, grad *G.Node) (G.Nodes, error) { return G.Nodes{grad, grad}, nil },
	}, a, b)
}

func addKernel[T float](c *call[T]) error {
	addInto(c.in[0], c.in[1], c.out)
	return nil
}

func addInto[T float](a, b, c []T) {
	forRange(len(c), 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			c[i] = a[i] + b[i]
		}
	})
}
