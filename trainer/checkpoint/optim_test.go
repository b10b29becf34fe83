package checkpoint

import (
	"slices"
	"testing"

	"github.com/preftune/preftune/trainer/optim"
)

// TestOptimizerStateFromAdamW saves a real AdamW state and resumes it: the continuation must be identical.
func TestOptimizerStateFromAdamW(t *testing.T) {
	m := testModel(4)
	for i := range m.Tensors[0].Data[:5] {
		m.Tensors[0].Data[i] = 0.1 // replace the special values: they are not trainable weights
	}
	params := func(ts []Tensor) []optim.Param {
		var ps []optim.Param
		for _, t := range ts {
			ps = append(ps, optim.Param{Name: t.Name, Shape: t.Shape, Data: t.Data, Grad: make([]float32, len(t.Data))})
		}
		return ps
	}
	fill := func(ps []optim.Param, k int) {
		for _, p := range ps {
			for j := range p.Grad {
				p.Grad[j] = float32((j*7+k)%11) - 5
			}
		}
	}
	pa := params(m.Tensors)
	a, err := optim.NewAdamW(optim.DefaultAdamW(), pa, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k := range 3 {
		fill(pa, k)
		a.Step(1e-2)
	}
	root := t.TempDir()
	dir, err := Save(root, Checkpoint{Model: m, Optimizer: OptimizerState(a.State()), State: State{Step: 3}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	pb := params(c.Tensors)
	b, err := optim.NewAdamW(optim.DefaultAdamW(), pb, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.LoadState(optim.State(c.Optimizer)); err != nil {
		t.Fatal(err)
	}
	for k := 3; k < 6; k++ {
		fill(pa, k)
		fill(pb, k)
		a.Step(1e-2)
		b.Step(1e-2)
	}
	byName := map[string][]float32{}
	for _, p := range pb {
		byName[p.Name] = p.Data
	}
	for _, p := range pa {
		if !slices.Equal(p.Data, byName[p.Name]) {
			t.Fatalf("%s differs after resuming from the checkpoint", p.Name)
		}
	}
}
