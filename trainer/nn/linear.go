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

// LinearT computes y = x·Wᵀ + b for x [N, in], W [out, in] and b [out] or nil (no bias): torch.nn.Linear's
// layout, which Hugging Face's Llama, Mistral and Qwen checkpoints use for every projection (q/k/v/o_proj,
// gate/up/down_proj, and an untied lm_head). Qwen2's q/k/v projections and Llama's attention_bias/mlp_bias
// have a bias; the others pass nil. The result is [N, out]; shapes that do not fit fail at graph building,
// naming them. Source: torch.nn.functional.linear (y = x·Aᵀ + b).
func LinearT(x, w, b *G.Node) (*G.Node, error) {
	s := spec{
		name: "LinearT",
		shape: func(in []tensor.Shape) (tensor.Shape, error) {
			x, w := in[0], in[1]
			if x.Dims() != 2 || w.Dims() != 2 || x[1] != w[1] || (len(in) == 3 && in[2].TotalSize() != w[0]) {
				return nil, fmt.Errorf("shapes x %v, W %v (and bias) do not fit x·Wᵀ + b with W [out, in]", x, w)
			}
			return tensor.Shape{x[0], w[0]}, nil
		},
		f32:  linearTKernel[float32],
		f64:  linearTKernel[float64],
		grad: linearTGrad,
	}
	if b == nil {
		s.sig = []int{2, 2, 2}
		return apply(s, x, w)
	}
	s.sig = []int{2, 2, 1, 2}
	return apply(s, x, w, b)
}

func linearTKernel[T float](c *call[T]) error {
	n, in, out := c.shapes[0][0], c.shapes[0][1], c.shapes[1][0]
	x, w, y := c.in[0], c.in[1], c.out
	if len(c.in) == 2 {
		gemm(false, true, n, out, in, 1, x, in, w, in, 0, y, out)
		return nil
	}
	b := c.in[2]
	// As in Linear: each goroutine writes the bias into its rows, then accumulates its share of the product.
	forRange(n, out*in/8, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			copy(y[r*out:(r+1)*out], b)
		}
		gemmSerial(false, true, hi-lo, out, in, 1, x[lo*in:], in, w, in, 1, y[lo*out:], out)
	})
	return nil
}

// linearTGrad: dx = g·W, dW = gᵀ·x, db = Σ_rows g.
func linearTGrad(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	x, w := inputs[0], inputs[1]
	dx, err := MatMul(grad, w, false, false)
	if err != nil {
		return nil, err
	}
	dw, err := MatMul(grad, x, true, false)
	if err != nil {
		return nil, err
	}
	if len(inputs) == 2 {
		return G.Nodes{dx, dw}, nil
	}
	db, err := ColSum(grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx, dw, db}, nil
}
