package nn

import (
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func TestLinearT(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	n, in, out := 5, 4, 3
	x, w, b := randDense(rng, 1, n, in), randDense(rng, 1, out, in), randDense(rng, 1, out)
	want := func(bias bool) []float64 {
		y := make([]float64, n*out)
		for r := 0; r < n; r++ {
			for o := 0; o < out; o++ {
				for i := 0; i < in; i++ {
					y[r*out+o] += f64s(x)[r*in+i] * f64s(w)[o*in+i]
				}
				if bias {
					y[r*out+o] += f64s(b)[o]
				}
			}
		}
		return y
	}
	withBias := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return LinearT(in[0], in[1], in[2]) }
	checkForward(t, withBias, []*tensor.Dense{x, w, b}, want(true))
	checkGradients(t, withBias, []*tensor.Dense{x, w, b}, []int{0, 1, 2}, gradTol)
	noBias := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return LinearT(in[0], in[1], nil) }
	checkForward(t, noBias, []*tensor.Dense{x, w}, want(false))
	checkGradients(t, noBias, []*tensor.Dense{x, w}, []int{0, 1}, gradTol)

	// A product large enough to be split across goroutines, with and without bias.
	n, in, out = 40, 300, 90
	x, w, b = randDense(rng, 1, n, in), randDense(rng, 1, out, in), randDense(rng, 1, out)
	checkForward(t, withBias, []*tensor.Dense{x, w, b}, want(true))
	checkForward(t, noBias, []*tensor.Dense{x, w}, want(false))

	g := G.NewGraph()
	xn := G.NewMatrix(g, tensor.Float64, G.WithShape(2, 4), G.WithName("x"))
	wn := G.NewMatrix(g, tensor.Float64, G.WithShape(4, 3), G.WithName("w")) // Conv1D layout: wrong here
	if _, err := LinearT(xn, wn, nil); err == nil {
		t.Fatal("LinearT accepted W [in, out]")
	}
}

func TestRMSNorm(t *testing.T) {
	rng := rand.New(rand.NewPCG(33, 34))
	const eps = 1e-6
	// group = 7: the usual norm over the hidden size; group = 3 on rows of 4 heads: Qwen3's per-head q/k norm.
	// The last case is large enough to be split across goroutines (forward only).
	for _, c := range []struct{ n, d, group int }{{5, 7, 7}, {4, 12, 3}, {64, 576, 576}} {
		x, w := randDense(rng, 1, c.n, c.d), randDense(rng, 1, c.group)
		build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return RMSNorm(in[0], in[1], eps) }
		want := make([]float64, c.n*c.d)
		for r := 0; r < c.n; r++ {
			for h := 0; h < c.d/c.group; h++ {
				off := r*c.d + h*c.group
				var ms float64
				for i := 0; i < c.group; i++ {
					ms += f64s(x)[off+i] * f64s(x)[off+i] / float64(c.group)
				}
				for i := 0; i < c.group; i++ {
					want[off+i] = f64s(w)[i] * f64s(x)[off+i] / math.Sqrt(ms+eps)
				}
			}
		}
		checkForward(t, build, []*tensor.Dense{x, w}, want)
		if c.n*c.d < 1000 {
			checkGradients(t, build, []*tensor.Dense{x, w}, []int{0, 1}, gradTol)
		}
		checkGrad32(t, build, []*tensor.Dense{x, w}, []int{0, 1}, 1e-4)
	}

	g := G.NewGraph()
	xn := G.NewMatrix(g, tensor.Float64, G.WithShape(2, 10), G.WithName("x"))
	wn := G.NewVector(g, tensor.Float64, G.WithShape(4), G.WithName("w"))
	if _, err := RMSNorm(xn, wn, eps); err == nil {
		t.Error("RMSNorm accepted a weight whose size does not divide the row")
	}
	if _, err := RMSNorm(xn, wn, 0); err == nil {
		t.Error("RMSNorm accepted eps 0")
	}
}

func TestSwiGLU(t *testing.T) {
	rng := rand.New(rand.NewPCG(35, 36))
	for _, n := range []int{4, 200} { // 200×100 is split across goroutines
		gate, up := randDense(rng, 3, n, 100), randDense(rng, 1, n, 100)
		build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return SwiGLU(in[0], in[1]) }
		want := make([]float64, n*100)
		for i, g := range f64s(gate) {
			want[i] = g / (1 + math.Exp(-g)) * f64s(up)[i]
		}
		checkForward(t, build, []*tensor.Dense{gate, up}, want)
		if n < 10 {
			checkGradients(t, build, []*tensor.Dense{gate, up}, []int{0, 1}, gradTol)
		}
		checkGrad32(t, build, []*tensor.Dense{gate, up}, []int{0, 1}, 1e-5)
	}
}

// analyticGrads returns the symbolic gradients of the cost of graphFor with respect to inputs wrt.
func analyticGrads(t *testing.T, build builder, inputs []*tensor.Dense, wrt []int) [][]float64 {
	t.Helper()
	g, nodes, _, cost := graphFor(t, build, inputs, 7, true)
	wrtNodes := make([]*G.Node, len(wrt))
	for i, w := range wrt {
		wrtNodes[i] = nodes[w]
	}
	grads, err := G.Grad(cost, wrtNodes...)
	if err != nil {
		t.Fatalf("grad: %v", err)
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	runOnce(t, vm)
	out := make([][]float64, len(wrt))
	for i, gn := range grads {
		switch d := gn.Value().Data().(type) {
		case []float32:
			for _, v := range d {
				out[i] = append(out[i], float64(v))
			}
		case []float64:
			out[i] = append(out[i], d...)
		}
	}
	return out
}

// checkGrad32 compares the float32 gradients (the training path, with its own float32 code) with the float64
// ones, relative to the largest gradient of each input.
func checkGrad32(t *testing.T, build builder, inputs []*tensor.Dense, wrt []int, tol float64) {
	t.Helper()
	g64 := analyticGrads(t, build, inputs, wrt)
	in32 := make([]*tensor.Dense, len(inputs))
	for i, v := range inputs {
		in32[i] = toF32(v)
	}
	g32 := analyticGrads(t, build, in32, wrt)
	for i := range wrt {
		scale := 0.0
		for _, v := range g64[i] {
			scale = max(scale, math.Abs(v))
		}
		for j, v := range g64[i] {
			if d := math.Abs(g32[i][j] - v); d > tol*scale {
				t.Fatalf("input %d element %d: float32 gradient %.8g, float64 %.8g (scale %.3g)", wrt[i], j, g32[i][j], v, scale)
			}
		}
	}
}
