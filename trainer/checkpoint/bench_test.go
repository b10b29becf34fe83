package checkpoint

import (
	"testing"
)

// BenchmarkSaveLoad1M saves (with fsync) and loads (with sha256 verification) a checkpoint of about 1M parameters
// and their two moments: the pause a run takes at each checkpoint.
func BenchmarkSaveLoad1M(b *testing.B) {
	m := Model{Config: []byte(`{}`), Tokenizer: []byte(`{}`)}
	add := func(name string, shape ...int) {
		n := 1
		for _, d := range shape {
			n *= d
		}
		m.Tensors = append(m.Tensors, Tensor{Name: name, Shape: shape, Data: make([]float32, n)})
	}
	add("wte.weight", 259, 128)
	for i := range 5 {
		add("h."+string(rune('0'+i))+".attn.c_attn.weight", 128, 384)
		add("h."+string(rune('0'+i))+".mlp.c_fc.weight", 128, 512)
		add("h."+string(rune('0'+i))+".mlp.c_proj.weight", 512, 128)
	}
	opt := OptimizerState{Step: 1, ExpAvg: map[string][]float32{}, ExpAvgSq: map[string][]float32{}}
	for _, t := range m.Tensors {
		opt.ExpAvg[t.Name], opt.ExpAvgSq[t.Name] = t.Data, t.Data
	}
	root := b.TempDir()
	step := 0
	for b.Loop() {
		step++
		dir, err := Save(root, Checkpoint{Model: m, Optimizer: opt, State: State{Step: step}}, 1)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Load(dir); err != nil {
			b.Fatal(err)
		}
	}
}
