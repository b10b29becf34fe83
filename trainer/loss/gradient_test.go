package loss

import (
	"math"
	"math/rand/v2"
	"testing"
)

var allConfigs = []DPOConfig{
	{Beta: 0.1, LossType: LossSigmoid},
	{Beta: 0.5, LossType: LossSigmoid, LabelSmoothing: 0.2},
	{Beta: 0.1, LossType: LossSigmoid, ReferenceFree: true},
	{Beta: 0.3, LossType: LossRobust, LabelSmoothing: 0.1},
	{Beta: 0.1, LossType: LossRobust},
	{Beta: 0.1, LossType: LossIPO},
	{Beta: 1.0, LossType: LossIPO, ReferenceFree: true},
	{Beta: 0.1, LossType: LossHinge},
	{Beta: 2.0, LossType: LossHinge},
}

// TestPairGradientFiniteDifference compares ∂Loss/∂π_c and ∂Loss/∂π_r with central differences.
func TestPairGradientFiniteDifference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const h = 1e-5
	for _, cfg := range allConfigs {
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		checked := 0
		for range 200 {
			pc, pr := -50*rng.Float64(), -50*rng.Float64()
			rc, rr := -50*rng.Float64(), -50*rng.Float64()
			p := DPOPair(cfg, pc, pr, rc, rr)
			if cfg.LossType == LossHinge && math.Abs(1-p.Margin) < 10*h*cfg.Beta {
				continue // the kink has no derivative
			}
			fc := (DPOPair(cfg, pc+h, pr, rc, rr).Loss - DPOPair(cfg, pc-h, pr, rc, rr).Loss) / (2 * h)
			fr := (DPOPair(cfg, pc, pr+h, rc, rr).Loss - DPOPair(cfg, pc, pr-h, rc, rr).Loss) / (2 * h)
			tol := 1e-6 * math.Max(1, math.Abs(fc))
			if math.Abs(fc-p.DPolicyChosen) > tol || math.Abs(fr-p.DPolicyRejected) > tol {
				t.Errorf("%+v at (%g,%g,%g,%g): analytic (%g,%g), numeric (%g,%g)",
					cfg, pc, pr, rc, rr, p.DPolicyChosen, p.DPolicyRejected, fc, fr)
			}
			checked++
		}
		if checked < 150 {
			t.Errorf("%+v: only %d points checked", cfg, checked)
		}
	}
}

// TestHingeFlatRegion: past the margin the hinge loss and its gradient are exactly zero.
func TestHingeFlatRegion(t *testing.T) {
	p := DPOPair(DPOConfig{Beta: 0.1, LossType: LossHinge}, -1, -30, -10, -10)
	if p.Loss != 0 || p.DPolicyChosen != 0 || p.DPolicyRejected != 0 {
		t.Fatalf("beyond the margin: %+v", p)
	}
}

// TestStabilityExtremes: log-probs far apart must give finite losses and gradients.
func TestStabilityExtremes(t *testing.T) {
	for _, cfg := range allConfigs {
		for _, v := range [][4]float64{{-1e6, 0, 0, 0}, {0, -1e6, 0, 0}, {-1e300, -1, 0, 0}, {0, 0, 0, 0}} {
			p := DPOPair(cfg, v[0], v[1], v[2], v[3])
			for _, x := range []float64{p.Loss, p.DPolicyChosen, p.DPolicyRejected} {
				if math.IsNaN(x) || (math.IsInf(x, 0) && cfg.LossType != LossIPO) {
					t.Errorf("%+v at %v: non-finite result %+v", cfg, v, p)
				}
			}
		}
	}
	// The sigmoid loss grows linearly (not to +Inf) when the policy prefers the rejected answer hugely.
	p := DPOPair(DPOConfig{Beta: 1, LossType: LossSigmoid}, -1e4, 0, 0, 0)
	if p.Loss != 1e4 || p.DPolicyChosen != -1 {
		t.Fatalf("saturated sigmoid: %+v", p)
	}
}

func TestReferenceFreeIgnoresReference(t *testing.T) {
	cfg := DPOConfig{Beta: 0.2, LossType: LossSigmoid, ReferenceFree: true}
	a := DPOPair(cfg, -3, -4, -100, 7)
	b := DPOPair(cfg, -3, -4, 0, 0)
	if a != b {
		t.Fatalf("reference changed a reference-free result: %+v vs %+v", a, b)
	}
	beta, pc, pr := 0.2, -3.0, -4.0 // variables: Go folds constant expressions exactly, unlike run time
	if a.ChosenReward != beta*pc || a.RejectedReward != beta*pr {
		t.Fatalf("reference-free rewards: %+v", a)
	}
}

func TestAccuracyTieIsZero(t *testing.T) {
	p := DPOPair(DPOConfig{Beta: 0.1}, -2, -3, -1, -2)
	if p.Margin != 0 || p.Accuracy != 0 {
		t.Fatalf("tie: %+v", p)
	}
	if DPOPair(DPOConfig{Beta: 0.1}, -2, -3.5, -1, -2).Accuracy != 1 {
		t.Fatal("chosen ahead should count 1")
	}
}

func TestValidate(t *testing.T) {
	good := []DPOConfig{
		{Beta: 0.1}, {Beta: 0.1, LossType: LossSigmoid, LabelSmoothing: 0.49},
		{Beta: 3, LossType: LossRobust, LabelSmoothing: 0.1}, {Beta: 0.1, LossType: LossIPO},
		{Beta: 0.1, LossType: LossHinge, ReferenceFree: true},
	}
	for _, c := range good {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	bad := []DPOConfig{
		{Beta: 0}, {Beta: -1}, {Beta: math.NaN()}, {Beta: math.Inf(1)},
		{Beta: 0.1, LabelSmoothing: 0.5}, {Beta: 0.1, LabelSmoothing: -0.1}, {Beta: 0.1, LabelSmoothing: math.NaN()},
		{Beta: 0.1, LossType: "kto"}, {Beta: 0.1, LossType: "Sigmoid"},
		{Beta: 0.1, LossType: LossIPO, LabelSmoothing: 0.1}, {Beta: 0.1, LossType: LossHinge, LabelSmoothing: 0.1},
	}
	for _, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: accepted", c)
		}
	}
}

func TestUnknownTypePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	DPOPair(DPOConfig{Beta: 0.1, LossType: "kto"}, 0, 0, 0, 0)
}
