package nn

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

const gradTol = 1e-5

func TestLayerNorm(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	n, d := 5, 7
	x, w, b := randDense(rng, 1, n, d), randDense(rng, 1, d), randDense(rng, 1, d)
	build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return LayerNorm(in[0], in[1], in[2]) }
	want := make([]float64, n*d)
	for r := 0; r < n; r++ {
		row := f64s(x)[r*d : (r+1)*d]
		var mean, v float64
		for _, e := range row {
			mean += e / float64(d)
		}
		for _, e := range row {
			v += (e - mean) * (e - mean) / float64(d)
		}
		for i, e := range row {
			want[r*d+i] = (e-mean)/math.Sqrt(v+1e-5)*f64s(w)[i] + f64s(b)[i]
		}
	}
	checkForward(t, build, []*tensor.Dense{x, w, b}, want)
	checkGradients(t, build, []*tensor.Dense{x, w, b}, []int{0, 1, 2}, gradTol)
}

func TestGELU(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	x := randDense(rng, 2, 4, 6)
	build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return GELU(in[0]) }
	want := make([]float64, 24)
	for i, v := range f64s(x) {
		want[i] = 0.5 * v * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(v+0.044715*v*v*v)))
	}
	checkForward(t, build, []*tensor.Dense{x}, want)
	checkGradients(t, build, []*tensor.Dense{x}, []int{0}, gradTol)
}

func naiveMatMul(a, b []float64, m, n, k int, at, bt func(i, j int) (int, int)) []float64 {
	c := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			for p := 0; p < k; p++ {
				ai, aj := at(i, p)
				bi, bj := bt(p, j)
				_ = aj
				_ = bj
				c[i*n+j] += a[ai] * b[bi]
			}
		}
	}
	return c
}

// checkMatMul checks MatMul's forward for every pair of transpose flags on m×k by k×n products, and its
// gradients when grads is set.
func checkMatMul(t *testing.T, rng *rand.Rand, m, n, k int, grads bool) {
	t.Helper()
	for _, tA := range []bool{false, true} {
		for _, tB := range []bool{false, true} {
			ash, bsh := []int{m, k}, []int{k, n}
			at := func(i, p int) (int, int) { return i*k + p, 0 }
			bt := func(p, j int) (int, int) { return p*n + j, 0 }
			if tA {
				ash = []int{k, m}
				at = func(i, p int) (int, int) { return p*m + i, 0 }
			}
			if tB {
				bsh = []int{n, k}
				bt = func(p, j int) (int, int) { return j*k + p, 0 }
			}
			a, b := randDense(rng, 1, ash...), randDense(rng, 1, bsh...)
			build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return MatMul(in[0], in[1], tA, tB) }
			checkForward(t, build, []*tensor.Dense{a, b}, naiveMatMul(f64s(a), f64s(b), m, n, k, at, bt))
			if grads {
				checkGradients(t, build, []*tensor.Dense{a, b}, []int{0, 1}, gradTol)
			}
		}
	}
}

func TestMatMul(t *testing.T) {
	checkMatMul(t, rand.New(rand.NewPCG(5, 6)), 3, 4, 5, true)
}

func TestLinear(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	x, w, b := randDense(rng, 1, 5, 4), randDense(rng, 1, 4, 3), randDense(rng, 1, 3)
	build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return Linear(in[0], in[1], in[2]) }
	want := naiveMatMul(f64s(x), f64s(w), 5, 3, 4,
		func(i, p int) (int, int) { return i*4 + p, 0 }, func(p, j int) (int, int) { return p*3 + j, 0 })
	for i := range want {
		want[i] += f64s(b)[i%3]
	}
	checkForward(t, build, []*tensor.Dense{x, w, b}, want)
	checkGradients(t, build, []*tensor.Dense{x, w, b}, []int{0, 1, 2}, gradTol)
}

func TestAddAndColSum(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	a, b := randDense(rng, 1, 3, 4), randDense(rng, 1, 3, 4)
	// a is used twice so that gorgonia has to sum two gradient contributions.
	build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
		s, err := Add(in[0], in[1])
		if err != nil {
			return nil, err
		}
		return Add(s, in[0])
	}
	want := make([]float64, 12)
	for i := range want {
		want[i] = 2*f64s(a)[i] + f64s(b)[i]
	}
	checkForward(t, build, []*tensor.Dense{a, b}, want)
	checkGradients(t, build, []*tensor.Dense{a, b}, []int{0, 1}, gradTol)

	colWant := make([]float64, 4)
	for i, v := range f64s(a) {
		colWant[i%4] += v
	}
	checkForward(t, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return ColSum(in[0]) },
		[]*tensor.Dense{a}, colWant)
}

// naiveAttention is causal multi-head attention on GPT-2's qkv layout: naiveGQA on its three column blocks.
func naiveAttention(qkv []float64, b, t, h, d int) []float64 {
	n := b * t
	q, k, v := make([]float64, n*d), make([]float64, n*d), make([]float64, n*d)
	for r := 0; r < n; r++ {
		copy(q[r*d:(r+1)*d], qkv[r*3*d:])
		copy(k[r*d:(r+1)*d], qkv[r*3*d+d:])
		copy(v[r*d:(r+1)*d], qkv[r*3*d+2*d:])
	}
	return naiveGQA(q, k, v, b, t, h, h, d/h)
}

func TestAttention(t *testing.T) {
	defer func(v int) { attnBlock = v }(attnBlock)
	// one block, several blocks with a short last one, one row per block
	for _, block := range []int{32, 2, 1} {
		attnBlock = block
		rng := rand.New(rand.NewPCG(11, 12))
		b, tl, h, d := 2, 5, 2, 6
		qkv := randDense(rng, 1, b*tl, 3*d)
		build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return Attention(in[0], b, tl, h) }
		checkForward(t, build, []*tensor.Dense{qkv}, naiveAttention(f64s(qkv), b, tl, h, d))
		checkGradients(t, build, []*tensor.Dense{qkv}, []int{0}, gradTol)
	}
}

func TestEmbed(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	v, ctx, d := 11, 6, 4
	tk := NewTokens(2, 5)
	copy(tk.Inputs, []int{3, 3, 0, 10, 3, 7, 1, 1, 3, 2})
	wte, wpe := randDense(rng, 1, v, d), randDense(rng, 1, ctx, d)
	build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return Embed(in[0], in[1], tk) }
	want := make([]float64, 10*d)
	for i, id := range tk.Inputs {
		for j := 0; j < d; j++ {
			want[i*d+j] = f64s(wte)[id*d+j] + f64s(wpe)[(i%5)*d+j]
		}
	}
	checkForward(t, build, []*tensor.Dense{wte, wpe}, want)
	checkGradients(t, build, []*tensor.Dense{wte, wpe}, []int{0, 1}, gradTol)
}

func testTokens() *Tokens {
	tk := NewTokens(4, 3)
	copy(tk.Targets, []int{1, 6, 2, 0, 0, 5, 3, 3, 4, 6, 1, 2})
	copy(tk.Mask, []float32{0, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 0})
	return tk
}

func TestTargetLogProbs(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	tk := testTokens()
	v := 7
	logits := randDense(rng, 2, 12, v)
	build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return TargetLogProbs(in[0], tk) }
	want := make([]float64, 12)
	for r := range want {
		if tk.Mask[r] == 0 {
			continue
		}
		row := f64s(logits)[r*v : (r+1)*v]
		var z float64
		for _, x := range row {
			z += math.Exp(x)
		}
		want[r] = row[tk.Targets[r]] - math.Log(z)
	}
	checkForward(t, build, []*tensor.Dense{logits}, want)
	checkGradients(t, build, []*tensor.Dense{logits}, []int{0}, gradTol)
}

func TestNLLMean(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	tk := testTokens()
	logits := randDense(rng, 2, 12, 7)
	build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
		lp, err := TargetLogProbs(in[0], tk)
		if err != nil {
			return nil, err
		}
		return NLLMean(lp, tk)
	}
	lp := forward(t, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return TargetLogProbs(in[0], tk) },
		[]*tensor.Dense{logits})
	var want float64
	for _, v := range lp {
		want -= v
	}
	want /= float64(tk.Count(-1))
	checkForward(t, build, []*tensor.Dense{logits}, []float64{want})
	checkGradients(t, build, []*tensor.Dense{logits}, []int{0}, gradTol)
}

// TestMatMulSplitAcrossGoroutines covers products large enough for gemm to split them by rows.
func TestMatMulSplitAcrossGoroutines(t *testing.T) {
	m, n, k := 37, 64, 500
	if 2*m*n*k < parallelGemmFLOPs {
		t.Fatal("product too small to be split")
	}
	checkMatMul(t, rand.New(rand.NewPCG(19, 20)), m, n, k, false)
}

// TestOpShellErrors checks that the shared op shell names the op and the input on bad values.
func TestOpShellErrors(t *testing.T) {
	g := G.NewGraph()
	a := G.NewMatrix(g, tensor.Float64, G.WithShape(2, 3), G.WithName("a"))
	b := G.NewMatrix(g, tensor.Float64, G.WithShape(2, 3), G.WithName("b"))
	sum, err := Add(a, b)
	if err != nil {
		t.Fatal(err)
	}
	op := sum.Op()
	x64 := tensor.New(tensor.Of(tensor.Float64), tensor.WithShape(2, 3))
	x32 := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(2, 3))
	if _, err := op.Do(x64, x32); err == nil || !strings.Contains(err.Error(), "Add#") ||
		!strings.Contains(err.Error(), "input 1 is float32 but input 0 is float64") {
		t.Errorf("mixed dtypes: got %v", err)
	}
	wrong := tensor.New(tensor.Of(tensor.Float64), tensor.WithShape(3, 2))
	if _, err := op.Do(x64, wrong); err == nil || !strings.Contains(err.Error(), "shapes differ") {
		t.Errorf("shape mismatch: got %v", err)
	}
	ints := tensor.New(tensor.Of(tensor.Int), tensor.WithShape(2, 3))
	if _, err := op.Do(x64, ints); err == nil || !strings.Contains(err.Error(), "want float32 or float64") {
		t.Errorf("int input: got %v", err)
	}
	if _, err := Linear(a, b, a); err == nil || !strings.Contains(err.Error(), "do not fit x·W + b") {
		t.Errorf("Linear shapes: got %v", err)
	}
}
