package nn

import (
	"fmt"
	"math"
	"math/rand/v2"

	G "gorgonia.org/gorgonia"
)

// The ops a LoRA adapter (Hu et al. 2021, arXiv:2106.09685; PEFT's lora.Linear) needs besides LinearT: a
// target's output is base(x) + scale·B·A·dropout(x), built in trainer/model as
//
//	u := LinearT(Dropout(x, p, …), A, nil)   // [N, r], A [r, in]
//	d := LinearT(Scale(u, alpha/r), B, nil)  // [N, out], B [out, r]
//	y := Add(base, d)
//
// so the gradients of A and B are LinearT's, and the scale sits on the small [N, r] product.

// Scale computes s·x for a tensor of any shape; its gradient is s·g.
func Scale(x *G.Node, s float64) (*G.Node, error) {
	if math.IsNaN(s) || math.IsInf(s, 0) {
		return nil, fmt.Errorf("nn.Scale: factor %v is not finite", s)
	}
	return apply(spec{
		name:  "Scale",
		sig:   []int{dimsAny, dimsAny},
		shape: sameShape(0),
		f32:   scaleKernel[float32](s),
		f64:   scaleKernel[float64](s),
		grad: func(_ G.Nodes, _, grad *G.Node) (G.Nodes, error) {
			g, err := Scale(grad, s)
			return G.Nodes{g}, err
		},
	}, x)
}

func scaleKernel[T float](s float64) func(*call[T]) error {
	return func(c *call[T]) error {
		x, y, f := c.in[0], c.out, T(s)
		for i, v := range x {
			y[i] = f * v
		}
		return nil
	}
}

// DropoutSeed is the randomness of a graph's Dropout ops: its owner sets Seed before each run, and each op
// draws its mask from PCG(Seed, stream) with its own stream, so a run is reproducible from (Seed, stream)
// alone (a resumed run redraws the masks it would have drawn).
type DropoutSeed struct{ Seed uint64 }

// Dropout is inverted dropout (torch.nn.Dropout in training mode): y = x ∘ m / (1 − p) with m_i ~
// Bernoulli(1 − p), a fresh mask at every run drawn element by element (row-major) from PCG(seed.Seed, stream):
// element i is dropped when the i-th Float64 draw is below p. The same draws in float32 and float64. The
// gradient applies the same mask to g. p must be in [0, 1).
func Dropout(x *G.Node, p float64, seed *DropoutSeed, stream uint64) (*G.Node, error) {
	if !(p >= 0 && p < 1) {
		return nil, fmt.Errorf("nn.Dropout: probability %v, want 0 <= p < 1", p)
	}
	if seed == nil {
		return nil, fmt.Errorf("nn.Dropout: no seed")
	}
	st := &dropoutState{p: p, seed: seed, stream: stream}
	return apply(spec{
		name:  "Dropout",
		sig:   []int{dimsAny, dimsAny},
		shape: sameShape(0),
		f32:   dropoutKernel[float32](st),
		f64:   dropoutKernel[float64](st),
		grad: func(_ G.Nodes, output, grad *G.Node) (G.Nodes, error) {
			// output is an input only to run after the forward op, whose mask this one reads.
			g, err := apply(spec{
				name:  "DropoutGrad",
				sig:   []int{dimsAny, dimsAny, dimsAny},
				shape: sameShape(0),
				reads: []int{0},
				f32:   dropoutGradKernel[float32](st),
				f64:   dropoutGradKernel[float64](st),
			}, grad, output)
			return G.Nodes{g}, err
		},
	}, x)
}

// dropoutState is the mask of the last forward run, which the backward op reuses.
type dropoutState struct {
	p      float64
	seed   *DropoutSeed
	stream uint64
	keep   []bool
}

func (st *dropoutState) draw(n int) {
	if len(st.keep) != n {
		st.keep = make([]bool, n)
	}
	rng := rand.New(rand.NewPCG(st.seed.Seed, st.stream))
	for i := range st.keep {
		st.keep[i] = rng.Float64() >= st.p
	}
}

func dropoutKernel[T float](st *dropoutState) func(*call[T]) error {
	return func(c *call[T]) error {
		x, y := c.in[0], c.out
		st.draw(len(x))
		inv := T(1 / (1 - st.p))
		for i, v := range x {
			if st.keep[i] {
				y[i] = v * inv
			} else {
				y[i] = 0
			}
		}
		return nil
	}
}

func dropoutGradKernel[T float](st *dropoutState) func(*call[T]) error {
	return func(c *call[T]) error {
		g, dx := c.in[0], c.out
		if len(st.keep) != len(g) {
			return fmt.Errorf("forward pass has not run")
		}
		inv := T(1 / (1 - st.p))
		for i, v := range g {
			if st.keep[i] {
				dx[i] = v * inv
			} else {
				dx[i] = 0
			}
		}
		return nil
	}
}

// LoRADelta adds a LoRA adapter's update to a target's output: base + scale·B·A·dropout(x), with x [N, in],
// A [r, in], B [out, r] (PEFT's lora_A.weight and lora_B.weight, torch.nn.Linear layouts for GPT-2's Conv1D
// targets too) and base [N, out]. dropout (p > 0 and seed non-nil) is applied to the adapter's input only, as
// PEFT's lora_dropout is; pass p = 0 or a nil seed in forward-only graphs (PEFT's eval mode). The gradients of
// x, A and B are those of the composing ops.
func LoRADelta(base, x, a, b *G.Node, scale, p float64, seed *DropoutSeed, stream uint64) (*G.Node, error) {
	in := x
	var err error
	if p > 0 && seed != nil {
		if in, err = Dropout(x, p, seed, stream); err != nil {
			return nil, err
		}
	}
	u, err := LinearT(in, a, nil)
	if err != nil {
		return nil, fmt.Errorf("nn.LoRADelta: lora_A: %w", err)
	}
	if u, err = Scale(u, scale); err != nil {
		return nil, err
	}
	d, err := LinearT(u, b, nil)
	if err != nil {
		return nil, fmt.Errorf("nn.LoRADelta: lora_B: %w", err)
	}
	return Add(base, d)
}
