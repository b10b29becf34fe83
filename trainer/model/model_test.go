package model

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/preftune/preftune/trainer/loss"
)

var tiny = Config{VocabSize: 37, ContextLength: 8, Layers: 2, DModel: 16, Heads: 2}

// randomBatch makes b rows of length t with random ids; row r's mask covers positions from r%3 to a random end,
// and what follows the end is padding (id 0, masked out).
func randomBatch(seed uint64, b, t, vocab int) Batch {
	rng := rand.New(rand.NewPCG(seed, 5))
	bt := Batch{B: b, T: t, N: b, Inputs: make([]int, b*t), Targets: make([]int, b*t), Mask: make([]float32, b*t)}
	for r := 0; r < b; r++ {
		end := t - rng.IntN(3)
		seq := make([]int, t+1)
		for i := range seq {
			seq[i] = rng.IntN(vocab)
		}
		for i := 0; i < t; i++ {
			if i < end {
				bt.Inputs[r*t+i], bt.Targets[r*t+i] = seq[i], seq[i+1]
				if i >= r%3 {
					bt.Mask[r*t+i] = 1
				}
			}
		}
	}
	return bt
}

func flat(p *Params, grads bool) []float64 {
	var out []float64
	src := p.Values
	if grads {
		src = p.Gradients()
	}
	for _, n := range p.Names {
		v := src[n]
		for i := 0; i < v.Shape().TotalSize(); i++ {
			out = append(out, at(v, i))
		}
	}
	return out
}

// checkModelGradients compares the accumulated gradients of p with central differences of f over every weight.
func checkModelGradients(t *testing.T, p *Params, f func() float64) {
	t.Helper()
	analytic := flat(p, true)
	const eps = 1e-5
	k, worst := 0, 0.0
	for _, n := range p.Names {
		d := p.Values[n].Data().([]float64)
		for i := range d {
			orig := d[i]
			d[i] = orig + eps
			up := f()
			d[i] = orig - eps
			down := f()
			d[i] = orig
			num := (up - down) / (2 * eps)
			a := analytic[k]
			k++
			// relative error, with a floor that makes it absolute (1e-8) for near-zero gradients
			rel := math.Abs(a-num) / math.Max(math.Abs(a)+math.Abs(num), 1e-4)
			worst = max(worst, rel)
			if rel > 1e-4 {
				t.Errorf("%s[%d]: analytic %.10g, numeric %.10g (relative error %.3g)", n, i, a, num, rel)
			}
		}
	}
	t.Logf("%d weights, worst relative error %.3g", k, worst)
}

func TestSFTGradientsMatchFiniteDifferences(t *testing.T) {
	p := Init(tiny, tensor.Float64, 1)
	perturb(p, 2)
	b := randomBatch(3, 2, 8, tiny.VocabSize)
	if _, _, err := p.SFTStep(b); err != nil {
		t.Fatal(err)
	}
	checkModelGradients(t, p, func() float64 {
		s, n, err := p.EvalSFT(b)
		if err != nil {
			t.Fatal(err)
		}
		return s / float64(n)
	})
}

func dpoBatch(seed uint64) Batch {
	b := randomBatch(seed, 4, 8, tiny.VocabSize)
	b.N = 2
	return b
}

func TestDPOGradientsMatchFiniteDifferences(t *testing.T) {
	p := Init(tiny, tensor.Float64, 4)
	perturb(p, 5)
	b := dpoBatch(6)
	ref, _, err := p.LogProbs(b)
	if err != nil {
		t.Fatal(err)
	}
	// A reference that differs from the policy, so that the sigmoid is away from its midpoint.
	for i := range ref {
		ref[i] += 0.3 * float64(i%3-1)
	}
	cfg := loss.DPOConfig{Beta: 0.5, LossType: loss.LossSigmoid, LabelSmoothing: 0.1}
	const alpha = 0.4
	if _, err := p.DPOStep(b, ref, cfg, alpha); err != nil {
		t.Fatal(err)
	}
	checkModelGradients(t, p, func() float64 {
		pol, counts, err := p.LogProbs(b)
		if err != nil {
			t.Fatal(err)
		}
		res, _, _ := loss.DPOBatch(cfg, pol[:2], pol[2:4], ref[:2], ref[2:4])
		nll, _ := loss.NLL(pol[:2], counts[:2])
		return res.Loss + alpha*nll
	})
}

// perturb moves every weight (LayerNorm and biases included) off its initial value, so that the gradient
// check exercises non-trivial LayerNorm weights and biases.
func perturb(p *Params, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	for _, n := range p.Names {
		d := p.Values[n].Data().([]float64)
		for i := range d {
			d[i] += 0.1 * rng.NormFloat64()
		}
	}
}

func TestDPOLossIsLn2WhenPolicyIsReference(t *testing.T) {
	p := Init(tiny, tensor.Float32, 7)
	b := dpoBatch(8)
	ref, _, err := p.LogProbs(b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.DPOStep(b, ref, loss.DPOConfig{Beta: 0.1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(out.Loss-math.Ln2) > 1e-6 || math.Abs(out.DPO.RewardsMargin) > 1e-6 {
		t.Fatalf("loss %v, margin %v; want ln 2 = %v and 0", out.Loss, out.DPO.RewardsMargin, math.Ln2)
	}
	for i, v := range out.Policy {
		if math.Abs(v-ref[i]) > 1e-5 {
			t.Fatalf("row %d: policy log-prob %v in the DPO graph, %v in the LogProbs graph", i, v, ref[i])
		}
	}
}

func TestFloat32AndFloat64Agree(t *testing.T) {
	p64 := Init(tiny, tensor.Float64, 9)
	p32 := p64.Convert(tensor.Float32)
	b := randomBatch(10, 3, 8, tiny.VocabSize)
	l64, n64, err := p64.SFTStep(b)
	if err != nil {
		t.Fatal(err)
	}
	l32, n32, err := p32.SFTStep(b)
	if err != nil {
		t.Fatal(err)
	}
	if n64 != n32 || math.Abs(l64-l32) > 1e-5*l64 {
		t.Fatalf("float64 loss %v over %d tokens, float32 %v over %d", l64, n64, l32, n32)
	}
	g64, g32 := flat(p64, true), flat(p32, true)
	scale := 0.0
	for _, v := range g64 {
		scale = max(scale, math.Abs(v))
	}
	for i := range g64 {
		if math.Abs(g64[i]-g32[i]) > 1e-4*scale {
			t.Fatalf("gradient %d: float64 %v, float32 %v (largest gradient %v)", i, g64[i], g32[i], scale)
		}
	}
}

func TestSameSeedSameLosses(t *testing.T) {
	b := randomBatch(11, 2, 8, tiny.VocabSize)
	losses := func(seed uint64) []float64 {
		p := Init(tiny, tensor.Float32, seed)
		var out []float64
		for i := 0; i < 3; i++ {
			l, _, err := p.SFTStep(b)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, l)
			sgd(p, 0.5)
		}
		return out
	}
	a, c, other := losses(12), losses(12), losses(13)
	for i := range a {
		if a[i] != c[i] {
			t.Fatalf("step %d: same seed gave losses %v and %v", i, a[i], c[i])
		}
	}
	if a[0] == other[0] {
		t.Fatalf("seeds 12 and 13 gave the same loss %v", a[0])
	}
	if !(a[2] < a[0]) {
		t.Fatalf("SGD did not lower the loss: %v", a)
	}
}

// sgd takes one plain gradient step on float32 params through the raw slices and zeroes the gradients.
func sgd(p *Params, lr float32) {
	for _, n := range p.Names {
		v, g := p.Float32s(n)
		for i := range v {
			v[i] -= lr * g[i]
		}
	}
	p.ZeroGrads()
}

func TestGradientsAccumulateUntilZeroed(t *testing.T) {
	p := Init(tiny, tensor.Float64, 14)
	b := randomBatch(15, 2, 8, tiny.VocabSize)
	before := flat(p, false)
	if _, _, err := p.SFTStep(b); err != nil {
		t.Fatal(err)
	}
	once := flat(p, true)
	if _, _, err := p.SFTStep(b); err != nil {
		t.Fatal(err)
	}
	twice := flat(p, true)
	nonzero := 0
	for i := range once {
		if math.Abs(twice[i]-2*once[i]) > 1e-12*(1+math.Abs(once[i])) {
			t.Fatalf("gradient %d: %v after two steps, %v after one", i, twice[i], once[i])
		}
		if once[i] != 0 {
			nonzero++
		}
	}
	if nonzero < len(once)/2 {
		t.Fatalf("only %d of %d gradients are non-zero", nonzero, len(once))
	}
	for i, v := range flat(p, false) {
		if v != before[i] {
			t.Fatalf("weight %d changed from %v to %v during a step", i, before[i], v)
		}
	}
	p.ZeroGrads()
	for i, v := range flat(p, true) {
		if v != 0 {
			t.Fatalf("gradient %d is %v after ZeroGrads", i, v)
		}
	}
	if _, _, err := p.SFTStep(b); err != nil {
		t.Fatal(err)
	}
	for i, v := range flat(p, true) {
		if v != once[i] {
			t.Fatalf("gradient %d: %v after zeroing and one step, %v before", i, v, once[i])
		}
	}
}

func TestInPlaceUpdatesReachCachedGraphs(t *testing.T) {
	p := Init(tiny, tensor.Float32, 16)
	b := randomBatch(17, 2, 8, tiny.VocabSize)
	s0, _, err := p.EvalSFT(b)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := p.Float32s("transformer.h.1.mlp.c_fc.weight")
	// Not a constant shift: LayerNorm's output rows sum to zero, so shifting a whole weight changes nothing.
	for i := range v {
		v[i] += 0.05 * float32(i%3-1)
	}
	s1, _, err := p.EvalSFT(b)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := FromTensors(tiny, tensor.Float32, p.Tensors())
	if err != nil {
		t.Fatal(err)
	}
	s2, _, err := fresh.EvalSFT(b)
	if err != nil {
		t.Fatal(err)
	}
	if s1 == s0 || s1 != s2 {
		t.Fatalf("NLL before the update %v, after %v, from a fresh copy %v", s0, s1, s2)
	}
}

func TestCausality(t *testing.T) {
	p := Init(tiny, tensor.Float64, 18)
	b := randomBatch(19, 2, 8, tiny.VocabSize)
	for i := range b.Mask {
		b.Mask[i] = 0
	}
	b.Mask[4], b.Mask[8+2] = 1, 1 // row 0 position 4, row 1 position 2
	s0, _, err := p.LogProbs(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{5, 6, 7, 8 + 3, 8 + 7} {
		b.Inputs[i] = (b.Inputs[i] + 1) % tiny.VocabSize
	}
	s1, counts, err := p.LogProbs(b)
	if err != nil {
		t.Fatal(err)
	}
	if s0[0] != s1[0] || s0[1] != s1[1] || counts[0] != 1 || counts[1] != 1 {
		t.Fatalf("later inputs changed earlier log-probs: %v then %v (counts %v)", s0, s1, counts)
	}
}

func TestShorterBucketAndPaddingRows(t *testing.T) {
	p := Init(tiny, tensor.Float32, 20)
	full := randomBatch(21, 2, 8, tiny.VocabSize)
	short := Batch{B: 3, T: 4, N: 2, Inputs: make([]int, 12), Targets: make([]int, 12), Mask: make([]float32, 12)}
	for r := 0; r < 2; r++ {
		copy(short.Inputs[r*4:], full.Inputs[r*8:r*8+4])
		copy(short.Targets[r*4:], full.Targets[r*8:r*8+4])
		copy(short.Mask[r*4:], full.Mask[r*8:r*8+4])
	}
	for i := range full.Mask {
		if i%8 >= 4 {
			full.Mask[i] = 0
		}
	}
	a, _, err := p.LogProbs(full)
	if err != nil {
		t.Fatal(err)
	}
	c, counts, err := p.LogProbs(short)
	if err != nil {
		t.Fatal(err)
	}
	for r := 0; r < 2; r++ {
		if math.Abs(a[r]-c[r]) > 1e-5 {
			t.Fatalf("row %d: %v in an 8-long graph, %v in a 4-long one", r, a[r], c[r])
		}
	}
	if c[2] != 0 || counts[2] != 0 {
		t.Fatalf("fully masked padding row has sum %v and %d tokens", c[2], counts[2])
	}
}

func TestBadInput(t *testing.T) {
	p := Init(tiny, tensor.Float32, 22)
	good := randomBatch(23, 2, 8, tiny.VocabSize)
	cases := map[string]func(b *Batch){
		"row 1 position 3: input id 37":  func(b *Batch) { b.Inputs[11] = 37 },
		"row 0 position 5: target id -1": func(b *Batch) { b.Targets[5], b.Mask[5] = -1, 1 },
		"mask 0.5":                       func(b *Batch) { b.Mask[2] = 0.5 },
		"needs 16 inputs":                func(b *Batch) { b.Inputs = b.Inputs[:15] },
		"context length 8":               func(b *Batch) { b.T = 9 },
	}
	for want, mutate := range cases {
		b := good
		b.Inputs = append([]int(nil), good.Inputs...)
		b.Targets = append([]int(nil), good.Targets...)
		b.Mask = append([]float32(nil), good.Mask...)
		mutate(&b)
		if _, _, err := p.SFTStep(b); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got error %v", want, err)
		}
	}
	if _, err := p.DPOStep(good, make([]float64, 2), loss.DPOConfig{Beta: 0.1}, 0); err == nil {
		t.Error("DPO step with N = B accepted")
	}
	if _, err := FromTensors(tiny, tensor.Float32, p.Tensors()[1:]); err == nil || !strings.Contains(err.Error(), "wte.weight") {
		t.Errorf("missing wte: %v", err)
	}
	ts := p.Tensors()
	ts[3].Shape = []int{4, 4}
	if _, err := FromTensors(tiny, tensor.Float32, ts); err == nil || !strings.Contains(err.Error(), ts[3].Name) {
		t.Errorf("bad shape: %v", err)
	}
	ts = append(p.Tensors(), Tensor{Name: "lm_head.weight"})
	if _, err := FromTensors(tiny, tensor.Float32, ts); err == nil || !strings.Contains(err.Error(), "lm_head") {
		t.Errorf("extra tensor: %v", err)
	}
}

// TestLearnsAndGenerates trains the tiny model on one repeating sequence and expects greedy generation to
// continue it.
func TestLearnsAndGenerates(t *testing.T) {
	cfg := Config{VocabSize: 12, ContextLength: 32, Layers: 2, DModel: 32, Heads: 4}
	p := Init(cfg, tensor.Float32, 24)
	pattern := []int{1, 2, 3, 4, 5, 6, 7}
	seq := make([]int, 33)
	for i := range seq {
		seq[i] = pattern[i%len(pattern)]
	}
	b := Batch{B: 1, T: 32, N: 1, Inputs: seq[:32], Targets: seq[1:], Mask: make([]float32, 32)}
	for i := range b.Mask {
		b.Mask[i] = 1
	}
	var l float64
	for step := 0; step < 150; step++ {
		var err error
		if l, _, err = p.SFTStep(b); err != nil {
			t.Fatal(err)
		}
		adamLike(p, step)
	}
	if l > 0.1 {
		t.Fatalf("loss after training %v, want < 0.1", l)
	}
	out, err := p.Generate([]int{3, 4, 5}, 40, 0, nil, 7)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{6}; len(out) != 1 || out[0] != want[0] {
		t.Fatalf("greedy continuation %v, want %v then the stop token 7", out, want)
	}
	out, err = p.Generate([]int{3, 4, 5}, 40, 0, nil, -1)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 40 {
		t.Fatalf("generated %d tokens, want 40", len(out))
	}
	for i, v := range out {
		if want := pattern[(5+i)%len(pattern)]; v != want {
			t.Fatalf("token %d of %v is %d, want %d", i, out, v, want)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	if s, err := p.Generate([]int{1}, 5, 1.0, rng, -1); err != nil || len(s) != 5 {
		t.Fatalf("sampling: %v, %v", s, err)
	}
	if _, err := p.Generate([]int{12}, 5, 0, nil, -1); err == nil {
		t.Fatal("prompt id outside the vocabulary accepted")
	}
}

// adamLike is a sign-based update: enough to fit one sequence quickly without an optimiser package.
func adamLike(p *Params, step int) {
	lr := float32(0.01)
	for _, n := range p.Names {
		v, g := p.Float32s(n)
		for i := range v {
			switch {
			case g[i] > 0:
				v[i] -= lr
			case g[i] < 0:
				v[i] += lr
			}
		}
	}
	p.ZeroGrads()
}

func TestReleaseGraphs(t *testing.T) {
	p := Init(tiny, tensor.Float32, 25)
	b := randomBatch(26, 2, 8, tiny.VocabSize)
	s0, _, err := p.EvalSFT(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.graphs) != 1 {
		t.Fatalf("%d graphs cached, want 1", len(p.graphs))
	}
	p.ReleaseGraphs()
	if len(p.graphs) != 0 {
		t.Fatalf("%d graphs left after ReleaseGraphs", len(p.graphs))
	}
	s1, _, err := p.EvalSFT(b)
	if err != nil || s1 != s0 {
		t.Fatalf("after ReleaseGraphs: %v, %v; want %v", s1, err, s0)
	}
}
