package model

import (
	"testing"

	"gorgonia.org/tensor"
)

// TestPlannedActivations: a training graph's planned buffers (nn.PlanBuffers) hold, per layer, exactly the
// values its backward pass reads: each added layer adds 4·tokens·(4D + 2q + 2kv + 3I) bytes to the arena's peak
// (q + kv more with Qwen3's q/k norm), for full fine-tuning and LoRA alike, the count trainer/hf's
// EstimateMemory uses. Without the plan the same graph held about three times that.
func TestPlannedActivations(t *testing.T) {
	const rows, length = 2, 32
	for _, c := range []struct {
		name   string
		qkNorm bool
		lora   *LoRA
	}{{"full", false, nil}, {"lora", false, &LoRA{Rank: 4, Alpha: 8}}, {"qwen3 lora", true, &LoRA{Rank: 4, Alpha: 8, Dropout: 0.1}}} {
		t.Run(c.name, func(t *testing.T) {
			var peaks []int64
			var cfg Config
			for _, layers := range []int{2, 3, 4} {
				cfg = Config{Family: Llama, VocabSize: 300, ContextLength: 64, Layers: layers, DModel: 64, Heads: 4,
					KVHeads: 2, HeadDim: 16, Intermediate: 160, NormEps: 1e-5, RopeTheta: 10000, QKNorm: c.qkNorm}
				p := Init(cfg, tensor.Float32, 1)
				if c.lora != nil {
					if err := p.AddLoRA(*c.lora, 2); err != nil {
						t.Fatal(err)
					}
				}
				if _, _, err := p.SFTStep(benchBatch(rows, length, cfg.VocabSize, false)); err != nil {
					t.Fatal(err)
				}
				gr := p.graphs[graphKey{kindSFT, rows, length}]
				if gr == nil || gr.arena == nil {
					t.Fatal("no planned SFT graph")
				}
				t.Logf("%d layers: %v", layers, gr.arena)
				if gr.arena.Unplanned < 2*gr.arena.Allocated {
					t.Errorf("%d layers: %v: want the plan to hold under half", layers, gr.arena)
				}
				peaks = append(peaks, gr.arena.Peak)
			}
			q, kv := int64(cfg.Heads*cfg.HeadDim), int64(cfg.KVHeads*cfg.HeadDim)
			perToken := 4*int64(cfg.DModel) + 2*q + 2*kv + 3*int64(cfg.Intermediate)
			if c.qkNorm {
				perToken += q + kv
			}
			want := 4 * rows * length * perToken
			for i := 1; i < len(peaks); i++ {
				if got := peaks[i] - peaks[i-1]; got != want {
					t.Errorf("layer %d adds %d bytes to the peak, want %d", i+2, got, want)
				}
			}
		})
	}
}
