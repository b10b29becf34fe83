package optim

import (
	"math"
	"testing"
)

func TestScheduleKeySteps(t *testing.T) {
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-15 }
	cos := Schedule{Kind: ScheduleCosine, PeakLR: 1e-3, WarmupSteps: 10, TotalSteps: 110}
	lin := Schedule{Kind: ScheduleLinear, PeakLR: 1e-3, WarmupSteps: 10, TotalSteps: 110}
	cst := Schedule{Kind: ScheduleConstant, PeakLR: 1e-3, WarmupSteps: 10, TotalSteps: 110}
	cos10 := cos
	cos10.MinRatio = 0.1
	def := cos
	def.Kind = ""
	cases := []struct {
		s    Schedule
		step int
		want float64
	}{
		{cos, 0, 1e-4}, {cos, 4, 5e-4}, {cos, 9, 1e-3}, {cos, 10, 1e-3}, {cos, 60, 5e-4}, {cos, 110, 0}, {cos, 500, 0},
		{cos, 35, 1e-3 * 0.5 * (1 + math.Cos(math.Pi/4))},
		{lin, 0, 1e-4}, {lin, 10, 1e-3}, {lin, 60, 5e-4}, {lin, 85, 2.5e-4}, {lin, 110, 0},
		{cst, 0, 1e-4}, {cst, 10, 1e-3}, {cst, 109, 1e-3}, {cst, 1000, 1e-3},
		{cos10, 10, 1e-3}, {cos10, 60, 1e-4 + 0.9e-3*0.5}, {cos10, 110, 1e-4}, {cos10, 200, 1e-4},
		{def, 60, 5e-4},
		{Schedule{PeakLR: 2e-3, TotalSteps: 4}, 0, 2e-3}, // no warmup: the first update at the peak
		{Schedule{PeakLR: 2e-3, TotalSteps: 4}, 2, 1e-3},
		{Schedule{Kind: ScheduleLinear, PeakLR: 1, WarmupSteps: 3, TotalSteps: 3}, 2, 1}, // all warmup
		{Schedule{Kind: ScheduleLinear, PeakLR: 1, WarmupSteps: 3, TotalSteps: 3}, 3, 0},
		{Schedule{Kind: ScheduleCosine, PeakLR: 1, WarmupSteps: 10, TotalSteps: 4}, 3, 0.4}, // warmup longer than the run
	}
	for _, c := range cases {
		if err := c.s.Validate(); err != nil {
			t.Fatal(err)
		}
		if got := c.s.LR(c.step); !near(got, c.want) {
			t.Errorf("%+v step %d: %.17g want %.17g", c.s, c.step, got, c.want)
		}
	}
}

func TestScheduleMonotoneAfterWarmup(t *testing.T) {
	for _, kind := range []string{ScheduleCosine, ScheduleLinear} {
		s := Schedule{Kind: kind, PeakLR: 1, WarmupSteps: 5, TotalSteps: 50, MinRatio: 0.1}
		prev := math.Inf(1)
		for step := 5; step <= 60; step++ {
			lr := s.LR(step)
			if lr > prev || lr < 0.1-1e-15 {
				t.Fatalf("%s step %d: %v after %v", kind, step, lr, prev)
			}
			prev = lr
		}
	}
}

func TestScheduleValidate(t *testing.T) {
	bad := []Schedule{
		{Kind: "step", PeakLR: 1, TotalSteps: 1}, {PeakLR: 0, TotalSteps: 1}, {PeakLR: math.NaN(), TotalSteps: 1},
		{PeakLR: 1, TotalSteps: 0}, {PeakLR: 1, TotalSteps: 5, WarmupSteps: -1},
		{PeakLR: 1, TotalSteps: 5, MinRatio: 1.5}, {PeakLR: 1, TotalSteps: 5, MinRatio: -0.1},
	}
	for _, s := range bad {
		if s.Validate() == nil {
			t.Errorf("%+v accepted", s)
		}
	}
}
