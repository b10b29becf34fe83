package optim

import (
	"fmt"
	"slices"
)

// State is the optimiser's resumable state: the update count and both moments per parameter name, in PyTorch's
// names (exp_avg, exp_avg_sq). checkpoint.OptimizerState has the same fields, so one converts to the other.
type State struct {
	Step     int
	ExpAvg   map[string][]float32
	ExpAvgSq map[string][]float32
}

// State returns a copy of the state (later steps do not change it).
func (o *AdamW) State() State {
	s := State{Step: o.step, ExpAvg: make(map[string][]float32, len(o.params)),
		ExpAvgSq: make(map[string][]float32, len(o.params))}
	for i, p := range o.params {
		s.ExpAvg[p.Name] = slices.Clone(o.m[i])
		s.ExpAvgSq[p.Name] = slices.Clone(o.v[i])
	}
	return s
}

// LoadState replaces the state with a copy of s. s must hold exactly this optimiser's parameters with their
// lengths; on error nothing changes.
func (o *AdamW) LoadState(s State) error {
	if s.Step < 0 {
		return fmt.Errorf("adamw state: step %d is negative", s.Step)
	}
	for _, moments := range []struct {
		name string
		m    map[string][]float32
	}{{"exp_avg", s.ExpAvg}, {"exp_avg_sq", s.ExpAvgSq}} {
		if len(moments.m) != len(o.params) {
			return fmt.Errorf("adamw state: %s has %d tensors, the optimiser %d parameters",
				moments.name, len(moments.m), len(o.params))
		}
		for _, p := range o.params {
			x, ok := moments.m[p.Name]
			if !ok {
				return fmt.Errorf("adamw state: %s.%s is missing", moments.name, p.Name)
			}
			if len(x) != len(p.Data) {
				return fmt.Errorf("adamw state: %s.%s has %d values, the parameter %d",
					moments.name, p.Name, len(x), len(p.Data))
			}
		}
	}
	for i, p := range o.params {
		copy(o.m[i], s.ExpAvg[p.Name])
		copy(o.v[i], s.ExpAvgSq[p.Name])
	}
	o.step = s.Step
	return nil
}
