package loss

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestBatchMeans(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const n = 7
	pc, pr, rc, rr := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range n {
		pc[i], pr[i], rc[i], rr[i] = -20*rng.Float64(), -20*rng.Float64(), -20*rng.Float64(), -20*rng.Float64()
	}
	for _, cfg := range allConfigs {
		res, dc, dr := DPOBatch(cfg, pc, pr, rc, rr)
		var want BatchResult
		want.Pairs = n
		for i := range n {
			p := DPOPair(cfg, pc[i], pr[i], rc[i], rr[i])
			want.Loss += p.Loss / n
			want.RewardsChosen += p.ChosenReward / n
			want.RewardsRejected += p.RejectedReward / n
			want.RewardsAccuracy += p.Accuracy / n
			want.RewardsMargin += p.Margin / n
			want.LogpsChosen += pc[i] / n
			want.LogpsRejected += pr[i] / n
			if math.Abs(dc[i]-p.DPolicyChosen/n) > 1e-15 || math.Abs(dr[i]-p.DPolicyRejected/n) > 1e-15 {
				t.Errorf("%+v pair %d: gradient (%g,%g), want per-pair/n (%g,%g)", cfg, i, dc[i], dr[i],
					p.DPolicyChosen/n, p.DPolicyRejected/n)
			}
		}
		got := []float64{res.Loss, res.RewardsChosen, res.RewardsRejected, res.RewardsAccuracy, res.RewardsMargin,
			res.LogpsChosen, res.LogpsRejected}
		exp := []float64{want.Loss, want.RewardsChosen, want.RewardsRejected, want.RewardsAccuracy, want.RewardsMargin,
			want.LogpsChosen, want.LogpsRejected}
		for k := range got {
			if math.Abs(got[k]-exp[k]) > 1e-12*math.Max(1, math.Abs(exp[k])) {
				t.Errorf("%+v field %d: got %g want %g", cfg, k, got[k], exp[k])
			}
		}
		if res.Pairs != n {
			t.Errorf("pairs %d", res.Pairs)
		}
	}
}

// TestBatchGradientFiniteDifference checks the gradients are those of the MEAN loss.
func TestBatchGradientFiniteDifference(t *testing.T) {
	pc := []float64{-3, -10, -7.5}
	pr := []float64{-4, -9, -12}
	rc := []float64{-3.5, -9.5, -8}
	rr := []float64{-3.9, -9.2, -11}
	const h = 1e-6
	for _, cfg := range allConfigs {
		_, dc, dr := DPOBatch(cfg, pc, pr, rc, rr)
		for i := range pc {
			for side, xs := range [][]float64{pc, pr} {
				orig := xs[i]
				xs[i] = orig + h
				up, _, _ := DPOBatch(cfg, pc, pr, rc, rr)
				xs[i] = orig - h
				down, _, _ := DPOBatch(cfg, pc, pr, rc, rr)
				xs[i] = orig
				num := (up.Loss - down.Loss) / (2 * h)
				an := dc[i]
				if side == 1 {
					an = dr[i]
				}
				if math.Abs(num-an) > 1e-6*math.Max(1, math.Abs(num)) {
					t.Errorf("%+v pair %d side %d: analytic %g numeric %g", cfg, i, side, an, num)
				}
			}
		}
	}
}

func TestBatchMetricsNames(t *testing.T) {
	res, _, _ := DPOBatch(DPOConfig{Beta: 0.1}, []float64{-1}, []float64{-2}, []float64{-1.5}, []float64{-1.5})
	m := res.Metrics("eval_")
	want := map[string]float64{
		"eval_loss": res.Loss, "eval_rewards/chosen": 0.05, "eval_rewards/rejected": -0.05,
		"eval_rewards/accuracies": 1, "eval_rewards/margins": 0.1, "eval_logps/chosen": -1, "eval_logps/rejected": -2,
	}
	if len(m) != len(want) {
		t.Fatalf("metrics %v", m)
	}
	for k, v := range want {
		if got, ok := m[k]; !ok || math.Abs(got-v) > 1e-15 {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
}

func TestBatchLengthMismatchPanics(t *testing.T) {
	for _, args := range [][4][]float64{{{1}, {1, 2}, {1}, {1}}, {{}, {}, {}, {}}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("lengths %d,%d,%d,%d: no panic", len(args[0]), len(args[1]), len(args[2]), len(args[3]))
				}
			}()
			DPOBatch(DPOConfig{Beta: 0.1}, args[0], args[1], args[2], args[3])
		}()
	}
}
