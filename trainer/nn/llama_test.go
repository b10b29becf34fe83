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

var _ = math.Abs
