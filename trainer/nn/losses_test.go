package nn

import (
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/preftune/preftune/trainer/loss"
)

func TestDPOLoss(t *testing.T) {
	tk := NewTokens(6, 4) // 3 pairs: rows 0-2 chosen, 3-5 rejected
	for i := range tk.Mask {
		if i%4 != 0 {
			tk.Mask[i] = 1
		}
	}
	cases := []struct {
		name  string
		cfg   loss.DPOConfig
		alpha float64
		pairs int
	}{
		{"sigmoid", loss.DPOConfig{Beta: 0.1, LossType: loss.LossSigmoid}, 0, 3},
		{"cDPO+RPO, one padding pair", loss.DPOConfig{Beta: 0.5, LossType: loss.LossSigmoid, LabelSmoothing: 0.1}, 0.7, 2},
		{"ipo", loss.DPOConfig{Beta: 0.3, LossType: loss.LossIPO}, 0, 3},
		{"robust", loss.DPOConfig{Beta: 0.2, LossType: loss.LossRobust, LabelSmoothing: 0.2}, 0.5, 3},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 21))
			lp := randDense(rng, 1, 24)
			for j, m := range tk.Mask {
				f64s(lp)[j] = -math.Abs(f64s(lp)[j]) * float64(m)
			}
			ref := make([]float64, 6)
			for j := range ref {
				ref[j] = -3 * rng.Float64()
			}
			spec := &DPOSpec{Config: c.cfg, RPOAlpha: c.alpha, Pairs: c.pairs, Ref: ref}
			build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return DPOLoss(in[0], tk, spec) }
			pol := make([]float64, 6)
			for j, v := range f64s(lp) {
				pol[j/4] += v
			}
			n := c.pairs
			three := []int{3, 3, 3}[:n] // masked-in targets per row (IPO averages over them)
			res, _, _ := loss.DPOBatchTokens(c.cfg, pol[:n], pol[3:3+n], ref[:n], ref[3:3+n], three, three)
			var nll float64
			for j := 0; j < n; j++ {
				nll -= pol[j]
			}
			nll /= float64(3 * n)
			checkForward(t, build, []*tensor.Dense{lp}, []float64{res.Loss + c.alpha*nll})
			if math.Abs(spec.Result.Loss-res.Loss) > 1e-6 || spec.Result.Pairs != n {
				t.Fatalf("spec result %+v, want %+v", spec.Result, res)
			}
			checkGradients(t, build, []*tensor.Dense{lp}, []int{0}, gradTol)
		})
	}
}

func TestDPOLossRejectsBadSpec(t *testing.T) {
	tk := NewTokens(4, 2)
	lp := tensor.New(tensor.Of(tensor.Float64), tensor.WithShape(8))
	for _, spec := range []*DPOSpec{
		{Config: loss.DPOConfig{Beta: 0.1}, Pairs: 3, Ref: make([]float64, 4)},
		{Config: loss.DPOConfig{Beta: 0.1}, Pairs: 2, Ref: make([]float64, 3)},
		{Config: loss.DPOConfig{Beta: 0}, Pairs: 2, Ref: make([]float64, 4)},
	} {
		g := G.NewGraph()
		x := G.NodeFromAny(g, lp, G.WithName("lp"))
		if _, err := DPOLoss(x, tk, spec); err != nil {
			t.Fatal(err)
		}
		vm := G.NewTapeMachine(g)
		if err := vm.RunAll(); err == nil {
			t.Errorf("spec %+v: no error", spec)
		}
		vm.Close()
	}
}
