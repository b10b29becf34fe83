package optim

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// refAdamW is an independent float64 AdamW written from the paper/PyTorch formulas, one parameter at a time.
type refAdamW struct {
	b1, b2, eps, wd float64
	m, v            []float64
	t               int
}

func (r *refAdamW) step(p, g []float64, lr float64, decay bool) {
	r.t++
	for j := range p {
		if decay {
			p[j] -= lr * r.wd * p[j]
		}
		r.m[j] = r.b1*r.m[j] + (1-r.b1)*g[j]
		r.v[j] = r.b2*r.v[j] + (1-r.b2)*g[j]*g[j]
		mHat := r.m[j] / (1 - math.Pow(r.b1, float64(r.t)))
		vHat := r.v[j] / (1 - math.Pow(r.b2, float64(r.t)))
		p[j] -= lr * mHat / (math.Sqrt(vHat) + r.eps)
	}
}

func newParams(rng *rand.Rand) []Param {
	shapes := map[string][]int{"w": {3, 4}, "b": {4}, "ln.weight": {5}}
	var ps []Param
	for _, name := range []string{"w", "b", "ln.weight"} {
		n := 1
		for _, d := range shapes[name] {
			n *= d
		}
		p := Param{Name: name, Shape: shapes[name], Data: make([]float32, n), Grad: make([]float32, n)}
		for j := range p.Data {
			p.Data[j] = float32(rng.NormFloat64())
		}
		ps = append(ps, p)
	}
	return ps
}

func TestAdamWMatchesFloat64Reference(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	params := newParams(rng)
	cfg := AdamWConfig{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1}
	opt, err := NewAdamW(cfg, params, nil)
	if err != nil {
		t.Fatal(err)
	}
	refs := make([]*refAdamW, len(params))
	refP := make([][]float64, len(params))
	for i, p := range params {
		refs[i] = &refAdamW{b1: cfg.Beta1, b2: cfg.Beta2, eps: cfg.Eps, wd: cfg.WeightDecay,
			m: make([]float64, len(p.Data)), v: make([]float64, len(p.Data))}
		for _, x := range p.Data {
			refP[i] = append(refP[i], float64(x))
		}
	}
	lrs := []float64{1e-3, 3e-3, 2e-3, 1e-3, 5e-4, 1e-4}
	for step, lr := range lrs {
		for i, p := range params {
			g := make([]float64, len(p.Grad))
			for j := range p.Grad {
				p.Grad[j] = float32(rng.NormFloat64() * 0.1)
				g[j] = float64(p.Grad[j])
			}
			refs[i].step(refP[i], g, lr, len(p.Shape) >= 2)
		}
		opt.Step(lr)
		for i, p := range params {
			for j := range p.Data {
				if d := math.Abs(float64(p.Data[j]) - refP[i][j]); d > 1e-6*math.Max(1, math.Abs(refP[i][j])) {
					t.Fatalf("step %d %s[%d]: got %v want %v", step+1, p.Name, j, p.Data[j], refP[i][j])
				}
				if p.Grad[j] != 0 {
					t.Fatalf("step %d %s: gradient not zeroed", step+1, p.Name)
				}
			}
		}
	}
	if opt.Steps() != len(lrs) {
		t.Fatalf("steps %d", opt.Steps())
	}
}

// TestAdamWFirstStepByHand: with bias correction the first update is lr·g/(|g|+ε) whatever |g| is.
func TestAdamWFirstStepByHand(t *testing.T) {
	p := Param{Name: "b", Shape: []int{3}, Data: []float32{1, 1, 1}, Grad: []float32{0.5, -2e-3, 40}}
	opt, err := NewAdamW(DefaultAdamW(), []Param{p}, nil)
	if err != nil {
		t.Fatal(err)
	}
	opt.Step(0.01)
	for j, want := range []float64{1 - 0.01*0.5/(0.5+1e-8), 1 + 0.01*2e-3/(2e-3+1e-8), 1 - 0.01*40/(40+1e-8)} {
		if math.Abs(float64(p.Data[j])-want) > 1e-7 {
			t.Errorf("element %d: %v want %v", j, p.Data[j], want)
		}
	}
}

// TestWeightDecayOnlyOnMatrices: with zero gradients the Adam step is 0, leaving only the decay factor.
func TestWeightDecayOnlyOnMatrices(t *testing.T) {
	params := newParams(rand.New(rand.NewPCG(7, 8)))
	before := make([][]float32, len(params))
	for i, p := range params {
		before[i] = slices.Clone(p.Data)
	}
	opt, err := NewAdamW(AdamWConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.5}, params, nil)
	if err != nil {
		t.Fatal(err)
	}
	opt.Step(0.1)
	for i, p := range params {
		for j := range p.Data {
			want := before[i][j]
			if len(p.Shape) >= 2 {
				want = float32(float64(before[i][j]) * (1 - 0.1*0.5))
			}
			if p.Data[j] != want {
				t.Fatalf("%s[%d]: %v want %v (decayed %v)", p.Name, j, p.Data[j], want, opt.Decayed(i))
			}
		}
	}
	// A custom predicate is honoured.
	params = newParams(rand.New(rand.NewPCG(7, 8)))
	opt, _ = NewAdamW(AdamWConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.5}, params,
		func(name string, _ []int) bool { return name == "b" })
	if opt.Decayed(0) || !opt.Decayed(1) || opt.Decayed(2) {
		t.Fatal("custom predicate ignored")
	}
}

func TestSaveRestoreContinuesIdentically(t *testing.T) {
	cfg := AdamWConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01}
	a := newParams(rand.New(rand.NewPCG(9, 9)))
	optA, _ := NewAdamW(cfg, a, nil)
	fill := func(ps []Param, seed uint64) {
		r := rand.New(rand.NewPCG(seed, 0))
		for _, p := range ps {
			for j := range p.Grad {
				p.Grad[j] = float32(r.NormFloat64())
			}
		}
	}
	for s := range 3 {
		fill(a, uint64(s))
		optA.Step(1e-3)
	}
	saved := optA.State()
	// A fresh process: parameters copied from a, a new optimiser, the saved state loaded.
	b := make([]Param, len(a))
	for i, p := range a {
		b[i] = Param{Name: p.Name, Shape: p.Shape, Data: slices.Clone(p.Data), Grad: make([]float32, len(p.Grad))}
	}
	optB, _ := NewAdamW(cfg, b, nil)
	if err := optB.LoadState(saved); err != nil {
		t.Fatal(err)
	}
	for s := 3; s < 6; s++ {
		fill(a, uint64(s))
		fill(b, uint64(s))
		optA.Step(1e-3)
		optB.Step(1e-3)
	}
	for i := range a {
		if !slices.Equal(a[i].Data, b[i].Data) {
			t.Fatalf("%s differs after restore", a[i].Name)
		}
	}
	if optA.Steps() != 6 || optB.Steps() != 6 {
		t.Fatalf("steps %d %d", optA.Steps(), optB.Steps())
	}
	// The exported state is a copy.
	if saved.Step != 3 || slices.Equal(saved.ExpAvg["w"], optA.State().ExpAvg["w"]) {
		t.Fatal("State aliases the live moments")
	}
}

func TestLoadStateRejectsMismatch(t *testing.T) {
	params := newParams(rand.New(rand.NewPCG(1, 2)))
	opt, _ := NewAdamW(DefaultAdamW(), params, nil)
	good := opt.State()
	cases := map[string]func(s *State){
		"missing":  func(s *State) { delete(s.ExpAvg, "b") },
		"short":    func(s *State) { s.ExpAvgSq["w"] = s.ExpAvgSq["w"][:3] },
		"extra":    func(s *State) { s.ExpAvg["other"] = []float32{1} },
		"negative": func(s *State) { s.Step = -1 },
	}
	for name, mutate := range cases {
		s := opt.State()
		mutate(&s)
		if err := opt.LoadState(s); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := opt.LoadState(good); err != nil {
		t.Fatal(err)
	}
}

func TestNewAdamWRejectsBadInput(t *testing.T) {
	ok := Param{Name: "w", Shape: []int{2}, Data: make([]float32, 2), Grad: make([]float32, 2)}
	cases := map[string][]Param{
		"unnamed":   {{Shape: []int{2}, Data: make([]float32, 2), Grad: make([]float32, 2)}},
		"duplicate": {ok, ok},
		"length":    {{Name: "x", Shape: []int{3}, Data: make([]float32, 2), Grad: make([]float32, 2)}},
		"grad":      {{Name: "x", Shape: []int{2}, Data: make([]float32, 2), Grad: make([]float32, 1)}},
		"zero dim":  {{Name: "x", Shape: []int{0}}},
	}
	for name, ps := range cases {
		if _, err := NewAdamW(DefaultAdamW(), ps, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for _, c := range []AdamWConfig{{Beta1: 1, Beta2: 0.9, Eps: 1e-8}, {Beta1: 0.9, Beta2: -0.1, Eps: 1e-8},
		{Beta1: 0.9, Beta2: 0.9}, {Beta1: 0.9, Beta2: 0.9, Eps: 1e-8, WeightDecay: -1}, {Beta1: math.NaN(), Beta2: 0.9, Eps: 1}} {
		if _, err := NewAdamW(c, []Param{ok}, nil); err == nil {
			t.Errorf("%+v: accepted", c)
		}
	}
}

func TestScaleAndZeroGrad(t *testing.T) {
	p := Param{Name: "w", Shape: []int{2}, Data: make([]float32, 2), Grad: []float32{2, -4}}
	opt, _ := NewAdamW(DefaultAdamW(), []Param{p}, nil)
	opt.ScaleGrad(0.5)
	if p.Grad[0] != 1 || p.Grad[1] != -2 {
		t.Fatalf("scaled %v", p.Grad)
	}
	opt.ZeroGrad()
	if p.Grad[0] != 0 || p.Grad[1] != 0 {
		t.Fatalf("zeroed %v", p.Grad)
	}
}
