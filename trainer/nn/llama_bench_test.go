package nn

import (
	"fmt"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Benchmarks of the Llama-family ops, forward and backward, in float32 at one SmolLM2-135M layer's shapes
// (hidden 576, 9 heads, 3 KV heads of head_dim 64, intermediate 1536) for 2 rows of 256 tokens.
// Run: go test -run '^$' -bench Llama ./trainer/nn/ (add -tags openblas for OpenBLAS).

const benchB, benchT, benchD, benchH, benchKV, benchHD, benchI = 2, 256, 576, 9, 3, 64, 1536

func benchOp(b *testing.B, build builder, shapes ...[]int) {
	rng := rand.New(rand.NewPCG(1, 2))
	in := make([]*tensor.Dense, len(shapes))
	for i, s := range shapes {
		in[i] = toF32(randDense(rng, 0.5, s...))
	}
	g := G.NewGraph()
	nodes := make([]*G.Node, len(in))
	for i, v := range in {
		nodes[i] = G.NodeFromAny(g, v, G.WithName(string(rune('a'+i))))
	}
	out, err := build(g, nodes)
	if err != nil {
		b.Fatal(err)
	}
	cost := out
	if !out.IsScalar() {
		if cost, err = benchSum(out); err != nil {
			b.Fatal(err)
		}
	}
	grads, err := Grad(cost, nodes...)
	if err != nil {
		b.Fatal(err)
	}
	roots := append(G.Nodes{cost}, grads...)
	sub := g.ExactSubgraphRoots(roots...)
	PlanBuffers(sub.AllNodes(), roots...)
	vm := G.NewTapeMachine(sub)
	defer vm.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		vm.Reset()
		if err := vm.RunAll(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLlamaRMSNorm(b *testing.B) {
	benchOp(b, func(g *G.ExprGraph, n []*G.Node) (*G.Node, error) { return RMSNorm(n[0], n[1], 1e-5) },
		[]int{benchB * benchT, benchD}, []int{benchD})
}

func BenchmarkLlamaLinearT(b *testing.B) {
	benchOp(b, func(g *G.ExprGraph, n []*G.Node) (*G.Node, error) { return LinearT(n[0], n[1], nil) },
		[]int{benchB * benchT, benchD}, []int{benchI, benchD})
}

func BenchmarkLlamaRoPE(b *testing.B) {
	r := Rotary{HeadDim: benchHD, Theta: 10000}
	benchOp(b, func(g *G.ExprGraph, n []*G.Node) (*G.Node, error) { return RoPE(n[0], benchB, benchT, benchH, r) },
		[]int{benchB * benchT, benchH * benchHD})
}

func BenchmarkLlamaSwiGLU(b *testing.B) {
	benchOp(b, func(g *G.ExprGraph, n []*G.Node) (*G.Node, error) { return SwiGLU(n[0], n[1]) },
		[]int{benchB * benchT, benchI}, []int{benchB * benchT, benchI})
}

func benchGQA(b *testing.B, opts ...AttentionOption) {
	benchOp(b, func(g *G.ExprGraph, n []*G.Node) (*G.Node, error) {
		return GQAttention(n[0], n[1], n[2], benchB, benchT, benchH, benchKV, opts...)
	}, []int{benchB * benchT, benchH * benchHD}, []int{benchB * benchT, benchKV * benchHD}, []int{benchB * benchT, benchKV * benchHD})
}

func BenchmarkLlamaGQAttention(b *testing.B)          { benchGQA(b) }
func BenchmarkLlamaGQAttentionRecompute(b *testing.B) { benchGQA(b, RecomputeProbs) }

// benchSum is Σx with a gradient of ones, as an op of this package: gorgonia's Sum and its broadcast gradient
// cost more than the ops measured.
func benchSum(x *G.Node) (*G.Node, error) {
	return apply(spec{
		name:  "BenchSum",
		sig:   []int{2, dimsScalar},
		shape: scalarShape,
		f32: func(c *call[float32]) error {
			var s float64
			for _, v := range c.in[0] {
				s += float64(v)
			}
			c.scalar = s
			return nil
		},
		f64: func(c *call[float64]) error { return fmt.Errorf("float32 only") },
		grad: func(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
			ones, err := apply(spec{
				name:  "BenchSumGrad",
				sig:   []int{2, dimsScalar, 2},
				shape: sameShape(0),
				reads: []int{0},
				f32: func(c *call[float32]) error {
					for i := range c.out {
						c.out[i] = 1
					}
					return nil
				},
				f64: func(c *call[float64]) error { return fmt.Errorf("float32 only") },
			}, inputs[0], grad)
			return G.Nodes{ones}, err
		},
	}, x)
}

// The LM head and its target log-softmax at a reduced vocabulary (8192; SmolLM2 has 49152), 2×256 tokens, all
// masked in: fused (HeadLogProbs) against MatMul + TargetLogProbs.
const benchV = 8192

func benchHead(b *testing.B, fused bool) {
	tk := NewTokens(benchB, benchT)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range tk.Mask {
		tk.Mask[i], tk.Targets[i] = 1, rng.IntN(benchV)
	}
	benchOp(b, func(g *G.ExprGraph, n []*G.Node) (*G.Node, error) {
		if fused {
			lp, err := HeadLogProbs(n[0], n[1], tk)
			if err != nil {
				return nil, err
			}
			return NLLMean(lp, tk)
		}
		logits, err := MatMul(n[0], n[1], false, true)
		if err != nil {
			return nil, err
		}
		lp, err := TargetLogProbs(logits, tk)
		if err != nil {
			return nil, err
		}
		return NLLMean(lp, tk)
	}, []int{benchB * benchT, benchD}, []int{benchV, benchD})
}

func BenchmarkLlamaHeadFused(b *testing.B)   { benchHead(b, true) }
func BenchmarkLlamaHeadUnfused(b *testing.B) { benchHead(b, false) }
