package nn

import (
	"math"
	"math/rand/v2"
	"strings"
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
	vm, _, grads := gradRun(t, build, inputs, wrt)
	vm.Close()
	return grads
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

// refInvFreq is transformers' inverse frequencies written out in float64: θ^(−2i/d), then linear or llama3
// scaling as the rope_scaling documentation describes them.
func refInvFreq(d int, theta float64, s *RopeScaling) []float64 {
	out := make([]float64, d/2)
	for i := range out {
		f := math.Pow(theta, -float64(2*i)/float64(d))
		if s != nil && s.Type == "linear" {
			f /= s.Factor
		}
		if s != nil && s.Type == "llama3" {
			wavelen := 2 * math.Pi / f
			lowWavelen := float64(s.OriginalMaxPositionEmbeddings) / s.LowFreqFactor
			highWavelen := float64(s.OriginalMaxPositionEmbeddings) / s.HighFreqFactor
			if wavelen > lowWavelen {
				f /= s.Factor
			} else if wavelen >= highWavelen {
				sm := (float64(s.OriginalMaxPositionEmbeddings)/wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor)
				f = (1-sm)*f/s.Factor + sm*f
			}
		}
		out[i] = f
	}
	return out
}

func TestRotaryInvFreq(t *testing.T) {
	// Llama 3.1's configuration: head_dim 128, rope_theta 500000, rope_scaling llama3 (factor 8, low 1,
	// high 4, original 8192). Its frequencies fall in all three regimes.
	l3 := &RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8192}
	for _, r := range []Rotary{
		{HeadDim: 128, Theta: 500000, Scaling: l3},
		{HeadDim: 64, Theta: 10000, Scaling: &RopeScaling{Type: "linear", Factor: 4}},
		{HeadDim: 48, Theta: 1e6},
		{HeadDim: 8, Theta: 10000, Scaling: &RopeScaling{Type: "default"}},
	} {
		got, err := r.InvFreq()
		if err != nil {
			t.Fatal(err)
		}
		want := refInvFreq(r.HeadDim, r.Theta, r.Scaling)
		got32 := invFreq[float32](r)
		for i := range want {
			if math.Abs(got[i]-want[i]) > 1e-12*want[i] {
				t.Fatalf("%+v: inv_freq[%d] = %.15g, want %.15g", r, i, got[i], want[i])
			}
			if math.Abs(float64(got32[i])-want[i]) > 1e-6*want[i] {
				t.Fatalf("%+v: float32 inv_freq[%d] = %.8g, want %.8g", r, i, got32[i], want[i])
			}
		}
	}
	// The three llama3 regimes, checked on values worked out by hand: i = 0 keeps 1 (wavelength 2π < 2048);
	// i = 63 (wavelength 2π·500000^(126/128) ≈ 2.5e6 > 8192) is divided by 8; i = 32 (wavelength
	// 2π·500000^(1/2) ≈ 4443, between 2048 and 8192) is blended with smooth = (8192/4443 − 1)/3.
	f, _ := Rotary{HeadDim: 128, Theta: 500000, Scaling: l3}.InvFreq()
	mid := 1 / math.Sqrt(500000)
	sm := (8192*mid/(2*math.Pi) - 1) / 3
	for _, c := range []struct {
		i    int
		want float64
	}{{0, 1}, {63, math.Pow(500000, -126.0/128) / 8}, {32, (1-sm)*mid/8 + sm*mid}} {
		if math.Abs(f[c.i]-c.want) > 1e-12*c.want {
			t.Errorf("llama3 inv_freq[%d] = %.15g, want %.15g", c.i, f[c.i], c.want)
		}
	}
	if sm <= 0 || sm >= 1 {
		t.Fatalf("i = 32 is not in the blended regime (smooth %v)", sm)
	}

	for _, bad := range []struct {
		r     Rotary
		field string
	}{
		{Rotary{HeadDim: 7, Theta: 1e4}, "head_dim"},
		{Rotary{HeadDim: 8, Theta: 0}, "rope_theta"},
		{Rotary{HeadDim: 8, Theta: 1e4, Scaling: &RopeScaling{Type: "yarn", Factor: 2}}, "rope_type \"yarn\""},
		{Rotary{HeadDim: 8, Theta: 1e4, Scaling: &RopeScaling{Type: "linear"}}, "rope_scaling.factor"},
		{Rotary{HeadDim: 8, Theta: 1e4, Scaling: &RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 4,
			HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8192}}, "high_freq_factor"},
		{Rotary{HeadDim: 8, Theta: 1e4, Scaling: &RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1,
			HighFreqFactor: 4}}, "original_max_position_embeddings"},
	} {
		if err := bad.r.Validate(); err == nil || !strings.Contains(err.Error(), bad.field) {
			t.Errorf("%+v: error %v, want one naming %s", bad.r, err, bad.field)
		}
	}
}

// refRoPE rotates x [B·T, H·d] as transformers' apply_rotary_pos_emb does: x·cos + rotate_half(x)·sin, with
// cos and sin of (position·inv_freq) repeated over the two halves and rotate_half(x) = (−x2, x1).
func refRoPE(x []float64, t, h, d int, inv []float64) []float64 {
	out := make([]float64, len(x))
	for n := 0; n*h*d < len(x); n++ {
		p := float64(n % t)
		for hi := 0; hi < h; hi++ {
			head := x[(n*h+hi)*d : (n*h+hi+1)*d]
			for j := 0; j < d; j++ {
				a := p * inv[j%(d/2)]
				var rot float64
				if j < d/2 {
					rot = -head[j+d/2]
				} else {
					rot = head[j-d/2]
				}
				out[(n*h+hi)*d+j] = head[j]*math.Cos(a) + rot*math.Sin(a)
			}
		}
	}
	return out
}

func TestRoPE(t *testing.T) {
	rng := rand.New(rand.NewPCG(37, 38))
	l3 := &RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 16}
	for _, c := range []struct {
		b, t, h int
		r       Rotary
	}{
		{2, 5, 3, Rotary{HeadDim: 4, Theta: 10000}},
		{2, 6, 2, Rotary{HeadDim: 8, Theta: 100, Scaling: &RopeScaling{Type: "linear", Factor: 2}}},
		{1, 7, 2, Rotary{HeadDim: 16, Theta: 500, Scaling: l3}},
		{3, 64, 4, Rotary{HeadDim: 32, Theta: 10000}}, // split across goroutines (forward only)
	} {
		x := randDense(rng, 1, c.b*c.t, c.h*c.r.HeadDim)
		build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return RoPE(in[0], c.b, c.t, c.h, c.r) }
		checkForward(t, build, []*tensor.Dense{x}, refRoPE(f64s(x), c.t, c.h, c.r.HeadDim, refInvFreq(c.r.HeadDim, c.r.Theta, c.r.Scaling)))
		if c.t < 10 {
			checkGradients(t, build, []*tensor.Dense{x}, []int{0}, gradTol)
		}
		checkGrad32(t, build, []*tensor.Dense{x}, []int{0}, 1e-5)
	}
	g := G.NewGraph()
	xn := G.NewMatrix(g, tensor.Float64, G.WithShape(10, 12), G.WithName("x"))
	if _, err := RoPE(xn, 2, 5, 2, Rotary{HeadDim: 4, Theta: 1e4}); err == nil {
		t.Error("RoPE accepted 12 columns for 2 heads of 4")
	}
}

// naiveGQA is causal grouped-query attention written out loop by loop, with each key/value head repeated
// for its group of query heads as transformers' repeat_kv does.
func naiveGQA(q, k, v []float64, b, t, h, kv, hd int) []float64 {
	out := make([]float64, b*t*h*hd)
	group := h / kv
	for bi := 0; bi < b; bi++ {
		for hi := 0; hi < h; hi++ {
			kvh := hi / group
			for i := 0; i < t; i++ {
				s := make([]float64, i+1)
				mx := math.Inf(-1)
				for j := 0; j <= i; j++ {
					for c := 0; c < hd; c++ {
						s[j] += q[(bi*t+i)*h*hd+hi*hd+c] * k[(bi*t+j)*kv*hd+kvh*hd+c]
					}
					s[j] /= math.Sqrt(float64(hd))
					mx = math.Max(mx, s[j])
				}
				var z float64
				for j := range s {
					s[j] = math.Exp(s[j] - mx)
					z += s[j]
				}
				for j := range s {
					for c := 0; c < hd; c++ {
						out[(bi*t+i)*h*hd+hi*hd+c] += s[j] / z * v[(bi*t+j)*kv*hd+kvh*hd+c]
					}
				}
			}
		}
	}
	return out
}

func TestGQAttention(t *testing.T) {
	defer func(v int) { attnBlock = v }(attnBlock)
	rng := rand.New(rand.NewPCG(39, 40))
	for _, c := range []struct {
		name             string
		b, t, h, kv, hd  int
		blocks           []int
		gradientsChecked bool
	}{
		{"grouped (4 heads, 2 kv heads)", 2, 5, 4, 2, 3, []int{32, 2}, true},
		{"multi-query (3 heads, 1 kv head)", 1, 6, 3, 1, 4, []int{32, 4}, true},
		{"multi-head (2 heads, 2 kv heads)", 2, 4, 2, 2, 5, []int{32}, true},
		{"SmolLM2-like 9/3 heads, several blocks", 2, 40, 9, 3, 8, []int{32}, false},
	} {
		for _, block := range c.blocks {
			attnBlock = block
			q := randDense(rng, 1, c.b*c.t, c.h*c.hd)
			k, v := randDense(rng, 1, c.b*c.t, c.kv*c.hd), randDense(rng, 1, c.b*c.t, c.kv*c.hd)
			in := []*tensor.Dense{q, k, v}
			want := naiveGQA(f64s(q), f64s(k), f64s(v), c.b, c.t, c.h, c.kv, c.hd)
			for _, opts := range [][]AttentionOption{nil, {RecomputeProbs}} {
				build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
					return GQAttention(in[0], in[1], in[2], c.b, c.t, c.h, c.kv, opts...)
				}
				checkForward(t, build, in, want)
				if c.gradientsChecked {
					checkGradients(t, build, in, []int{0, 1, 2}, gradTol)
				}
				checkGrad32(t, build, in, []int{0, 1, 2}, 1e-4)
			}
			// Recomputing the probabilities gives the kept ones bit for bit, so outputs and gradients agree exactly.
			in32 := []*tensor.Dense{toF32(q), toF32(k), toF32(v)}
			runs := make([][][]float64, 2)
			for i, opts := range [][]AttentionOption{nil, {RecomputeProbs}} {
				build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
					return GQAttention(in[0], in[1], in[2], c.b, c.t, c.h, c.kv, opts...)
				}
				runs[i] = append(analyticGrads(t, build, in32, []int{0, 1, 2}), forward(t, build, in32))
			}
			for i := range runs[0] {
				for j, x := range runs[0][i] {
					if runs[1][i][j] != x {
						t.Fatalf("%s: RecomputeProbs changed result %d element %d: %v, kept %v", c.name, i, j, runs[1][i][j], x)
					}
				}
			}
		}
	}

	g := G.NewGraph()
	q := G.NewMatrix(g, tensor.Float64, G.WithShape(10, 12), G.WithName("q"))
	k := G.NewMatrix(g, tensor.Float64, G.WithShape(10, 6), G.WithName("k"))
	if _, err := GQAttention(q, k, k, 2, 5, 4, 3); err == nil {
		t.Error("accepted 4 heads over 3 kv heads")
	}
	if _, err := GQAttention(q, k, k, 2, 5, 4, 1); err == nil || !strings.Contains(err.Error(), "k must be") {
		t.Errorf("k of 2 kv heads' width for kvHeads 1: got %v", err)
	}
}

func TestTokenEmbed(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	v, d := 11, 4
	tk := NewTokens(2, 5)
	copy(tk.Inputs, []int{3, 3, 0, 10, 3, 7, 1, 1, 3, 2})
	wte := randDense(rng, 1, v, d)
	build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return TokenEmbed(in[0], tk) }
	want := make([]float64, 10*d)
	for i, id := range tk.Inputs {
		copy(want[i*d:(i+1)*d], f64s(wte)[id*d:(id+1)*d])
	}
	checkForward(t, build, []*tensor.Dense{wte}, want)
	checkGradients(t, build, []*tensor.Dense{wte}, []int{0}, gradTol)
}

// TestDecoderLayerGradients checks the gradient of a whole Llama-family decoder layer built from the new ops,
// with every variant at once: q/k/v biases (Qwen2), per-head q/k RMSNorm (Qwen3), llama3 rope scaling, grouped
// heads whose head_dim (4) differs from hidden/heads (2), and rows of a batch.
func TestDecoderLayerGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(43, 44))
	const b, tl, d, h, kv, hd, inter, eps = 2, 3, 8, 4, 2, 4, 6, 1e-6
	rot := Rotary{HeadDim: hd, Theta: 100, Scaling: &RopeScaling{Type: "llama3", Factor: 4, LowFreqFactor: 1,
		HighFreqFactor: 2, OriginalMaxPositionEmbeddings: 8}}
	shapes := [][]int{
		{b * tl, d},                // 0 x
		{d}, {h * hd, d}, {h * hd}, // 1 input_layernorm, 2 q_proj, 3 q bias
		{kv * hd, d}, {kv * hd}, // 4 k_proj, 5 k bias
		{kv * hd, d}, {kv * hd}, // 6 v_proj, 7 v bias
		{hd}, {hd}, {d, h * hd}, {d}, // 8 q_norm, 9 k_norm, 10 o_proj, 11 post_attention_layernorm
		{inter, d}, {inter, d}, {d, inter}, // 12 gate, 13 up, 14 down
	}
	in := make([]*tensor.Dense, len(shapes))
	wrt := make([]int, len(shapes))
	for i, s := range shapes {
		in[i] = randDense(rng, 0.5, s...)
		wrt[i] = i
	}
	for _, i := range []int{1, 8, 9, 11} { // norm weights around 1
		for j := range f64s(in[i]) {
			f64s(in[i])[j] += 1
		}
	}
	must := func(x *G.Node, err error) *G.Node {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	build := func(g *G.ExprGraph, n []*G.Node) (*G.Node, error) {
		x := must(RMSNorm(n[0], n[1], eps))
		q := must(RMSNorm(must(LinearT(x, n[2], n[3])), n[8], eps))
		k := must(RMSNorm(must(LinearT(x, n[4], n[5])), n[9], eps))
		v := must(LinearT(x, n[6], n[7]))
		q = must(RoPE(q, b, tl, h, rot))
		k = must(RoPE(k, b, tl, kv, rot))
		a := must(GQAttention(q, k, v, b, tl, h, kv))
		r := must(Add(n[0], must(LinearT(a, n[10], nil))))
		x = must(RMSNorm(r, n[11], eps))
		m := must(SwiGLU(must(LinearT(x, n[12], nil)), must(LinearT(x, n[13], nil))))
		return Add(r, must(LinearT(m, n[14], nil)))
	}
	checkGradients(t, build, in, wrt, gradTol)
	checkGrad32(t, build, in, wrt, 1e-4)
}

// refHeadLogProbs is mask·log softmax(h·Wᵀ)[target] written out row by row.
func refHeadLogProbs(h, w []float64, tk *Tokens, d, v int) []float64 {
	want := make([]float64, tk.B*tk.T)
	for r := range want {
		if tk.Mask[r] == 0 {
			continue
		}
		logits := make([]float64, v)
		mx := math.Inf(-1)
		for j := range logits {
			for k := 0; k < d; k++ {
				logits[j] += h[r*d+k] * w[j*d+k]
			}
			mx = max(mx, logits[j])
		}
		var z float64
		for _, l := range logits {
			z += math.Exp(l - mx)
		}
		want[r] = logits[tk.Targets[r]] - mx - math.Log(z)
	}
	return want
}

func TestHeadLogProbs(t *testing.T) {
	rng := rand.New(rand.NewPCG(45, 46))
	tk := testTokens() // 4×3, some positions masked out
	n, d, v := 12, 5, 7
	h, w := randDense(rng, 1, n, d), randDense(rng, 1, v, d)
	build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return HeadLogProbs(in[0], in[1], tk) }
	in := []*tensor.Dense{h, w}
	checkForward(t, build, in, refHeadLogProbs(f64s(h), f64s(w), tk, d, v))
	checkGradients(t, build, in, []int{0, 1}, gradTol)
	checkGrad32(t, build, in, []int{0, 1}, 1e-5)

	// Large enough for the products and the row loops to be split across goroutines.
	big := NewTokens(4, 16)
	for i := range big.Mask {
		if i%5 != 0 {
			big.Mask[i], big.Targets[i] = 1, rng.IntN(3000)
		}
	}
	hb, wb := randDense(rng, 1, 64, 32), randDense(rng, 0.3, 3000, 32)
	bigBuild := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return HeadLogProbs(in[0], in[1], big) }
	checkForward(t, bigBuild, []*tensor.Dense{hb, wb}, refHeadLogProbs(f64s(hb), f64s(wb), big, 32, 3000))
	checkGrad32(t, bigBuild, []*tensor.Dense{hb, wb}, []int{0, 1}, 1e-4)

	// Tied: W is also the embedding table, so its gradient sums both uses; and the SFT loss on top.
	tied := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
		x, err := TokenEmbed(in[1], tk)
		if err != nil {
			return nil, err
		}
		x, err = Add(x, in[0])
		if err != nil {
			return nil, err
		}
		lp, err := HeadLogProbs(x, in[1], tk)
		if err != nil {
			return nil, err
		}
		return NLLMean(lp, tk)
	}
	copy(tk.Inputs, []int{1, 6, 2, 0, 0, 5, 3, 3, 4, 6, 1, 2})
	checkGradients(t, tied, in, []int{0, 1}, gradTol)

	// No masked-in position: zero log-probs and zero gradients.
	none := NewTokens(4, 3)
	zero := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return HeadLogProbs(in[0], in[1], none) }
	checkForward(t, zero, in, make([]float64, n))
	for _, gr := range analyticGrads(t, zero, in, []int{0, 1}) {
		for _, x := range gr {
			if x != 0 {
				t.Fatalf("gradient %v with no target", x)
			}
		}
	}

	bad := NewTokens(4, 3)
	bad.Mask[5], bad.Targets[5] = 1, v
	g := G.NewGraph()
	hn := G.NodeFromAny(g, h, G.WithName("h"))
	wn := G.NodeFromAny(g, w, G.WithName("w"))
	if _, err := HeadLogProbs(hn, wn, bad); err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	if err := vm.RunAll(); err == nil || !strings.Contains(err.Error(), "row 1 position 2: target 7 outside [0, 7)") {
		t.Errorf("target outside the vocabulary: got %v", err)
	}
}

// TestRotaryTablesShared checks that equal configurations share one table and different ones do not.
func TestRotaryTablesShared(t *testing.T) {
	a := Rotary{HeadDim: 8, Theta: 1e4, Scaling: &RopeScaling{Type: "linear", Factor: 2}}
	b := Rotary{HeadDim: 8, Theta: 1e4, Scaling: &RopeScaling{Type: "linear", Factor: 2}}
	c := Rotary{HeadDim: 8, Theta: 1e4, Scaling: &RopeScaling{Type: "linear", Factor: 3}}
	if rotaryTables(a, 16) != rotaryTables(b, 16) {
		t.Error("equal configurations built two tables")
	}
	if rotaryTables(a, 16) == rotaryTables(c, 16) || rotaryTables(a, 16) == rotaryTables(a, 17) {
		t.Error("different configurations share a table")
	}
	if got := rotaryTables(c, 16).f64.cos[1*4+1]; math.Abs(got-math.Cos(1*math.Pow(1e4, -2.0/8)/3)) > 1e-15 {
		t.Errorf("cos at position 1, frequency 1: %v", got)
	}
}
