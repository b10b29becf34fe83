package checkpoint

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// testModel is a tiny GPT-2-named model with awkward values (signed zero, NaN payload, infinities, subnormals)
// so a round trip is checked bit for bit.
func testModel(seed uint64) Model {
	rng := rand.New(rand.NewPCG(seed, 1))
	mk := func(name string, shape ...int) Tensor {
		n := 1
		for _, d := range shape {
			n *= d
		}
		t := Tensor{Name: name, Shape: shape, Data: make([]float32, n)}
		for i := range t.Data {
			t.Data[i] = float32(rng.NormFloat64())
		}
		return t
	}
	ts := []Tensor{
		mk("wte.weight", 7, 4), mk("wpe.weight", 5, 4),
		mk("h.0.ln_1.weight", 4), mk("h.0.ln_1.bias", 4),
		mk("h.0.attn.c_attn.weight", 4, 12), mk("h.0.attn.c_attn.bias", 12),
		mk("ln_f.weight", 4), mk("ln_f.bias", 4),
	}
	special := ts[0].Data
	special[0] = float32(math.Copysign(0, -1))
	special[1] = math.Float32frombits(0x7fc12345) // NaN with a payload
	special[2] = float32(math.Inf(1))
	special[3] = float32(math.Inf(-1))
	special[4] = math.Float32frombits(1) // smallest subnormal
	return Model{
		Tensors:   ts,
		Config:    []byte(`{"model_type": "gpt2", "n_embd": 4}`),
		Tokenizer: []byte(`{"type": "byte", "vocab_size": 259}`),
	}
}

func testOptimizer(m Model, step int) OptimizerState {
	s := OptimizerState{Step: step, ExpAvg: map[string][]float32{}, ExpAvgSq: map[string][]float32{}}
	for _, t := range m.Tensors {
		a, b := make([]float32, len(t.Data)), make([]float32, len(t.Data))
		for i := range a {
			a[i] = float32(i) * 0.001
			b[i] = float32(step) + float32(i)*1e-7
		}
		s.ExpAvg[t.Name], s.ExpAvgSq[t.Name] = a, b
	}
	return s
}

func testCheckpoint(step int) Checkpoint {
	m := testModel(uint64(step))
	return Checkpoint{
		Model:     m,
		Optimizer: testOptimizer(m, step),
		State: State{
			Step: step, Epoch: float64(step) / 7, RNG: []byte{0, 1, 2, 255, byte(step)},
			DataCursor:      json.RawMessage(`{"epoch":1,"offset":42}`),
			Schedule:        json.RawMessage(`{"kind":"cosine","peakLR":0.001}`),
			ReferenceDigest: "sha256:abc",
			Extra:           json.RawMessage(`{"note":"x"}`),
		},
	}
}

func sameBits(t *testing.T, what string, a, b []float32) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%s: %d values, want %d", what, len(a), len(b))
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			t.Fatalf("%s[%d]: bits %08x, want %08x", what, i, math.Float32bits(a[i]), math.Float32bits(b[i]))
		}
	}
}

// rewrite replaces a file of a checkpoint and updates COMPLETE to match, as a consistent writer of another
// kind would.
func rewrite(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	m, err := readManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
	m.Files[name] = sum(data)
	raw, _ := json.Marshal(m)
	if err := os.WriteFile(filepath.Join(dir, CompleteFile), raw, 0o644); err != nil {
		t.Fatal(err)
	}
}
