package nn

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// RMSNorm is Llama's root-mean-square norm (Hugging Face's LlamaRMSNorm, Zhang & Sennrich 2019,
// arXiv:1910.07467): y = w ∘ (x · 1/√(mean(x²) + eps)), without centring or bias.
//
// x is [N, D] and w [G] with D a multiple of G: each run of G consecutive elements of a row is normalised on
// its own with the same weight. G = D is the usual norm over the hidden size (input_layernorm,
// post_attention_layernorm, norm); G = head_dim with x = q [N, H·head_dim] or k [N, KV·head_dim] is Qwen3's
// per-head q_norm/k_norm, which Hugging Face applies to the heads before the rotary embedding. eps is
// config.json's rms_norm_eps and must be positive.
//
// Precision: Hugging Face computes the norm in float32 whatever the weights' dtype. Here float32 tensors give
// a float32 result, with the mean of squares and its inverse square root taken in float64 and rounded once;
// float64 tensors (gradient checks) stay in float64. The gradient recomputes the row statistics.
func RMSNorm(x, w *G.Node, eps float64) (*G.Node, error) {
	if !(eps > 0) || math.IsInf(eps, 0) {
		return nil, fmt.Errorf("nn.RMSNorm: rms_norm_eps %v must be positive and finite", eps)
	}
	return apply(spec{
		name: "RMSNorm",
		sig:  []int{2, 1, 2},
		shape: func(in []tensor.Shape) (tensor.Shape, error) {
			x, w := in[0], in[1]
			if x.Dims() != 2 || w.Dims() != 1 || w[0] == 0 || x[1]%w[0] != 0 {
				return nil, fmt.Errorf("x %v and weight %v must be [N, D] and [G] with D a multiple of G", x, w)
			}
			return x.Clone(), nil
		},
		f32: rmsNormKernel[float32](eps),
		f64: rmsNormKernel[float64](eps),
		grad: func(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
			x, w := inputs[0], inputs[1]
			dx, err := apply(spec{
				name:  "RMSNormGradX",
				sig:   []int{2, 1, 2, 2},
				shape: sameShape(0),
				f32:   rmsNormGradXKernel[float32](eps),
				f64:   rmsNormGradXKernel[float64](eps),
			}, x, w, grad)
			if err != nil {
				return nil, err
			}
			dw, err := apply(spec{
				name:  "RMSNormGradW",
				sig:   []int{2, 1, 2, 1},
				shape: sameShape(1),
				f32:   rmsNormGradWKernel[float32](eps),
				f64:   rmsNormGradWKernel[float64](eps),
			}, x, w, grad)
			if err != nil {
				return nil, err
			}
			return G.Nodes{dx, dw}, nil
		},
	}, x, w)
}

// rmsInv returns 1/√(mean(g²) + eps) of one group, accumulated in float64.
func rmsInv[T float](g []T, eps float64) float64 {
	var s float64
	for _, v := range g {
		s += float64(v) * float64(v)
	}
	return 1 / math.Sqrt(s/float64(len(g))+eps)
}

func rmsNormKernel[T float](eps float64) func(*call[T]) error {
	return func(c *call[T]) error {
		x, w, y := c.in[0], c.in[1], c.out
		k := len(w)
		forRange(len(x)/k, k, func(lo, hi int) {
			for r := lo; r < hi; r++ {
				xr, yr := x[r*k:(r+1)*k], y[r*k:(r+1)*k]
				s := T(rmsInv(xr, eps))
				for i, v := range xr {
					yr[i] = w[i] * (v * s)
				}
			}
		})
		return nil
	}
}

// rmsNormGradXKernel: with r = 1/√(mean(x²)+eps) and h = g∘w, dx = r·h − x·r³·mean(h∘x), per group.
func rmsNormGradXKernel[T float](eps float64) func(*call[T]) error {
	return func(c *call[T]) error {
		x, w, g, dx := c.in[0], c.in[1], c.in[2], c.out
		k := len(w)
		forRange(len(x)/k, k, func(lo, hi int) {
			for r := lo; r < hi; r++ {
				xr, gr, out := x[r*k:(r+1)*k], g[r*k:(r+1)*k], dx[r*k:(r+1)*k]
				s := rmsInv(xr, eps)
				var dot float64
				for i, v := range xr {
					dot += float64(gr[i]) * float64(w[i]) * float64(v)
				}
				coef := dot / float64(k) * s * s * s
				for i, v := range xr {
					out[i] = T(s*float64(gr[i])*float64(w[i]) - float64(v)*coef)
				}
			}
		})
		return nil
	}
}

// rmsNormGradWKernel: dw = Σ_groups g∘x·r.
func rmsNormGradWKernel[T float](eps float64) func(*call[T]) error {
	return func(c *call[T]) error {
		x, g, dw := c.in[0], c.in[2], c.out
		k := len(dw)
		clear(dw)
		for r := 0; r < len(x)/k; r++ {
			xr, gr := x[r*k:(r+1)*k], g[r*k:(r+1)*k]
			s := T(rmsInv(xr, eps))
			for i, v := range xr {
				dw[i] += gr[i] * (v * s)
			}
		}
		return nil
	}
}
