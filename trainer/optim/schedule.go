package optim

import (
	"fmt"
	"math"
)

// Schedule kinds after warmup.
const (
	ScheduleCosine   = "cosine"
	ScheduleLinear   = "linear"
	ScheduleConstant = "constant"
)

// Schedule is linear warmup to PeakLR, then cosine or linear decay to MinRatio·PeakLR at TotalSteps, or constant.
//
// Step numbering: LR(s) is the rate of update s, counted from 0 (s = the optimiser's Steps() before the update).
// Warmup gives PeakLR·(s+1)/WarmupSteps, so the first update is not wasted at rate 0 (Hugging Face's s/warmup
// is) and update WarmupSteps−1 reaches the peak. Decay follows Hugging Face: progress = (s − warmup)/(total −
// warmup), so update `warmup` runs at the peak; updates from TotalSteps on get the floor MinRatio·PeakLR.
// MinRatio 0 is Hugging Face's cosine and linear (decay to 0); 0.1 is the common "decay to 10%". WarmupSteps may
// exceed TotalSteps (a short run): the rate then only rises, as in Hugging Face.
type Schedule struct {
	Kind        string  `json:"kind"`
	PeakLR      float64 `json:"peakLR"`
	WarmupSteps int     `json:"warmupSteps"`
	TotalSteps  int     `json:"totalSteps"`
	MinRatio    float64 `json:"minRatio"`
}

// Validate reports the first unusable field.
func (s Schedule) Validate() error {
	switch s.kind() {
	case ScheduleCosine, ScheduleLinear, ScheduleConstant:
	default:
		return fmt.Errorf("schedule: lrSchedule %q is not one of cosine, linear, constant", s.Kind)
	}
	switch {
	case math.IsNaN(s.PeakLR) || math.IsInf(s.PeakLR, 0) || s.PeakLR <= 0:
		return fmt.Errorf("schedule: learningRate must be a finite number > 0, got %v", s.PeakLR)
	case s.TotalSteps <= 0:
		return fmt.Errorf("schedule: total steps must be > 0, got %d", s.TotalSteps)
	case s.WarmupSteps < 0:
		return fmt.Errorf("schedule: warmupSteps must be >= 0, got %d", s.WarmupSteps)
	case math.IsNaN(s.MinRatio) || s.MinRatio < 0 || s.MinRatio > 1:
		return fmt.Errorf("schedule: minRatio must be in [0, 1], got %v", s.MinRatio)
	}
	return nil
}

// kind defaults to cosine, as the run configuration does.
func (s Schedule) kind() string {
	if s.Kind == "" {
		return ScheduleCosine
	}
	return s.Kind
}

// LR is the learning rate of update step (0-based). The schedule must have passed Validate.
func (s Schedule) LR(step int) float64 {
	if step < 0 {
		step = 0
	}
	if step < s.WarmupSteps {
		return s.PeakLR * float64(step+1) / float64(s.WarmupSteps)
	}
	if s.kind() != ScheduleConstant && step >= s.TotalSteps {
		return s.PeakLR * s.MinRatio
	}
	progress := float64(step-s.WarmupSteps) / float64(max(1, s.TotalSteps-s.WarmupSteps))
	progress = min(1, progress)
	var frac float64
	switch s.kind() {
	case ScheduleConstant:
		return s.PeakLR
	case ScheduleLinear:
		frac = 1 - progress
	default:
		frac = 0.5 * (1 + math.Cos(math.Pi*progress))
	}
	return s.PeakLR * (s.MinRatio + (1-s.MinRatio)*frac)
}
