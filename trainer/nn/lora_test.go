package nn

import (
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// loraWant is base + scale·B·A·(x∘m/(1−p)) in plain Go, with the mask Dropout draws.
func loraWant(base, x, a, b *tensor.Dense, scale, p float64, seed, stream uint64) []float64 {
	n, in := x.Shape()[0], x.Shape()[1]
	r, out := a.Shape()[0], b.Shape()[0]
	xd := append([]float64(nil), f64s(x)...)
	if p > 0 {
		rng := rand.New(rand.NewPCG(seed, stream))
		for i := range xd {
			if rng.Float64() < p {
				xd[i] = 0
			} else {
				xd[i] /= 1 - p
			}
		}
	}
	y := append([]float64(nil), f64s(base)...)
	for row := 0; row < n; row++ {
		u := make([]float64, r)
		for k := 0; k < r; k++ {
			for i := 0; i < in; i++ {
				u[k] += xd[row*in+i] * f64s(a)[k*in+i]
			}
		}
		for o := 0; o < out; o++ {
			for k := 0; k < r; k++ {
				y[row*out+o] += scale * f64s(b)[o*r+k] * u[k]
			}
		}
	}
	return y
}

// loraDelta is the composition LoRALinear fuses: base + LinearT(Scale(LinearT(Dropout(x), A), scale), B).
func loraDelta(base, x, a, b *G.Node, scale, p float64, seed *DropoutSeed, stream uint64) (*G.Node, error) {
	in := x
	var err error
	if p > 0 && seed != nil {
		if in, err = Dropout(x, p, seed, stream); err != nil {
			return nil, err
		}
	}
	u, err := LinearT(in, a, nil)
	if err != nil {
		return nil, err
	}
	if u, err = Scale(u, scale); err != nil {
		return nil, err
	}
	d, err := LinearT(u, b, nil)
	if err != nil {
		return nil, err
	}
	return Add(base, d)
}

// TestLoRADelta checks base + scale·B·A·dropout(x) against plain Go and its gradients with respect to the
// adapter's A and B (and x and base) against float64 finite differences, with and without dropout.
func TestLoRADelta(t *testing.T) {
	rng := rand.New(rand.NewPCG(61, 62))
	n, in, out, r := 6, 5, 4, 3
	for _, p := range []float64{0, 0.3} {
		seed := &DropoutSeed{Seed: 77}
		base, x := randDense(rng, 1, n, out), randDense(rng, 1, n, in)
		a, b := randDense(rng, 1, r, in), randDense(rng, 1, out, r)
		build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
			return loraDelta(in[0], in[1], in[2], in[3], 2.5, p, seed, 9)
		}
		inputs := []*tensor.Dense{base, x, a, b}
		checkForward(t, build, inputs, loraWant(base, x, a, b, 2.5, p, 77, 9))
		checkGradients(t, build, inputs, []int{0, 1, 2, 3}, gradTol)
	}
}

// TestDropoutMask: the mask depends on (seed, stream) only, drops about p of the elements, and changes with
// the seed.
func TestDropoutMask(t *testing.T) {
	draw := func(seed, stream uint64) []bool {
		st := &dropoutState{p: 0.25, seed: &DropoutSeed{Seed: seed}, stream: stream}
		st.draw(4000)
		return append([]bool(nil), st.keep...)
	}
	a, b, c, d := draw(1, 2), draw(1, 2), draw(2, 2), draw(1, 3)
	dropped, sameC, sameD := 0, 0, 0
	for i := range a {
		if a[i] != b[i] {
			t.Fatal("same seed and stream gave another mask")
		}
		if !a[i] {
			dropped++
		}
		if a[i] == c[i] {
			sameC++
		}
		if a[i] == d[i] {
			sameD++
		}
	}
	if dropped < 900 || dropped > 1100 {
		t.Errorf("dropped %d of 4000 at p = 0.25", dropped)
	}
	if sameC == len(a) || sameD == len(a) {
		t.Error("another seed or stream gave the same mask")
	}
	if _, err := Dropout(nil, 1, &DropoutSeed{}, 0); err == nil {
		t.Error("p = 1 accepted")
	}
}

// TestLoRALinear holds the fused op to the plain-Go reference (base linear + scale·B·A·dropout(x)) for the
// torch.nn.Linear and Conv1D layouts, with and without bias and dropout, and checks the gradients of x, W, A, B
// and b against float64 finite differences.
func TestLoRALinear(t *testing.T) {
	rng := rand.New(rand.NewPCG(63, 64))
	n, in, out, r := 7, 5, 6, 3
	for _, conv := range []bool{false, true} {
		for _, bias := range []bool{false, true} {
			for _, p := range []float64{0, 0.4} {
				seed := &DropoutSeed{Seed: 5}
				x, a, bm := randDense(rng, 1, n, in), randDense(rng, 1, r, in), randDense(rng, 1, out, r)
				w := randDense(rng, 1, out, in)
				if conv {
					w = randDense(rng, 1, in, out)
				}
				bv := randDense(rng, 1, out)
				base := make([]float64, n*out)
				for row := 0; row < n; row++ {
					for o := 0; o < out; o++ {
						for i := 0; i < in; i++ {
							wv := f64s(w)[o*in+i]
							if conv {
								wv = f64s(w)[i*out+o]
							}
							base[row*out+o] += f64s(x)[row*in+i] * wv
						}
						if bias {
							base[row*out+o] += f64s(bv)[o]
						}
					}
				}
				baseT := tensor.New(tensor.WithShape(n, out), tensor.WithBacking(base))
				want := loraWant(baseT, x, a, bm, 1.5, p, 5, 3)
				inputs := []*tensor.Dense{x, w, a, bm}
				build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
					var b *G.Node
					if bias {
						b = in[4]
					}
					return LoRALinear(in[0], in[1], b, in[2], in[3], conv, 1.5, p, seed, 3)
				}
				wrt := []int{0, 1, 2, 3}
				if bias {
					inputs = append(inputs, bv)
					wrt = append(wrt, 4)
				}
				checkForward(t, build, inputs, want)
				checkGradients(t, build, inputs, wrt, gradTol)
			}
		}
	}
	g := G.NewGraph()
	xn := G.NewMatrix(g, tensor.Float64, G.WithShape(2, 4), G.WithName("x"))
	wn := G.NewMatrix(g, tensor.Float64, G.WithShape(3, 4), G.WithName("w"))
	an := G.NewMatrix(g, tensor.Float64, G.WithShape(2, 5), G.WithName("a"))
	bn := G.NewMatrix(g, tensor.Float64, G.WithShape(3, 2), G.WithName("b"))
	if _, err := LoRALinear(xn, wn, nil, an, bn, false, 1, 0, nil, 0); err == nil {
		t.Fatal("LoRALinear accepted lora_A [2, 5] for a layer of 4 inputs")
	}
}
