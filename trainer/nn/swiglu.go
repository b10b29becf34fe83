package nn

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// SwiGLU is the gated activation of Llama's MLP (Shazeer 2020, "GLU Variants Improve Transformer",
// arXiv:2002.05202; Hugging Face's LlamaMLP with hidden_act "silu"): silu(gate) ∘ up, where silu(g) = g·σ(g).
// gate and up are the outputs of gate_proj and up_proj, both [N, intermediate_size]; the result has their
// shape and feeds down_proj, so that the MLP is LinearT(SwiGLU(LinearT(x, gate), LinearT(x, up)), down).
// Different shapes fail at graph building. float32 runs on exp32; the gradient recomputes σ(gate) rather
// than keeping it.
func SwiGLU(gate, up *G.Node) (*G.Node, error) {
	return apply(spec{
		name: "SwiGLU",
		sig:  []int{2, 2, 2},
		shape: func(in []tensor.Shape) (tensor.Shape, error) {
			if in[0].Dims() != 2 || !in[0].Eq(in[1]) {
				return nil, fmt.Errorf("gate %v and up %v must be the same [N, I] shape", in[0], in[1])
			}
			return in[0].Clone(), nil
		},
		f32: func(c *call[float32]) error {
			swigluForward32(c.in[0], c.in[1], c.out)
			return nil
		},
		f64: func(c *call[float64]) error {
			swigluForward(c.in[0], c.in[1], c.out)
			return nil
		},
		grad: swigluGrad,
	}, gate, up)
}

// swigluGrad: d gate = g∘up∘σ(gate)·(1 + gate·(1 − σ(gate))), d up = g∘silu(gate).
func swigluGrad(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	gate, up := inputs[0], inputs[1]
	dGate, err := apply(spec{
		name:  "SwiGLUGradGate",
		sig:   []int{2, 2, 2, 2},
		shape: sameShape(0),
		f32: func(c *call[float32]) error {
			swigluBackwardGate32(c.in[0], c.in[1], c.in[2], c.out)
			return nil
		},
		f64: func(c *call[float64]) error {
			swigluBackwardGate(c.in[0], c.in[1], c.in[2], c.out)
			return nil
		},
	}, gate, up, grad)
	if err != nil {
		return nil, err
	}
	dUp, err := apply(spec{
		name:  "SwiGLUGradUp",
		sig:   []int{2, 2, 2},
		shape: sameShape(0),
		// silu(gate)∘g is the forward op's math with g in place of up.
		f32: func(c *call[float32]) error {
			swigluForward32(c.in[0], c.in[1], c.out)
			return nil
		},
		f64: func(c *call[float64]) error {
			swigluForward(c.in[0], c.in[1], c.out)
			return nil
		},
	}, gate, grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dGate, dUp}, nil
}

func swigluForward(gate, up, y []float64) {
	forRange(len(y), 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			g := gate[i]
			y[i] = g / (1 + math.Exp(-g)) * up[i]
		}
	})
}

func swigluForward32(gate, up, y []float32) {
	forRange(len(y), 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			g := gate[i]
			y[i] = g / (1 + exp32(-g)) * up[i]
		}
	})
}

func swigluBackwardGate(gate, up, grad, d []float64) {
	forRange(len(d), 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			g := gate[i]
			s := 1 / (1 + math.Exp(-g))
			d[i] = grad[i] * up[i] * s * (1 + g*(1-s))
		}
	})
}

func swigluBackwardGate32(gate, up, grad, d []float32) {
	forRange(len(d), 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			g := gate[i]
			e := exp32(-g)
			s := 1 / (1 + e)
			// 1 − σ(g) = e·σ(g), which keeps its precision where σ is close to 1.
			d[i] = grad[i] * up[i] * s * (1 + g*e*s)
		}
	})
}
