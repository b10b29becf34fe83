package model

import (
	"testing"

	"gorgonia.org/tensor"

	"github.com/preftune/preftune/trainer/loss"
)

// A training step drops the forward-only graphs (their activations and the head's [M, V] buffer would stay
// resident next to the training graph's), and a later forward pass rebuilds its graph with the same results.
func TestTrainingStepReleasesForwardOnlyGraphs(t *testing.T) {
	for _, cfg := range []Config{tiny, tinyLlama} {
		p := Init(cfg, tensor.Float32, 27)
		b := randomBatch(28, 4, 8, cfg.VocabSize)
		b.N = 2
		ref, _, err := p.LogProbs(b)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Logits(b); err != nil {
			t.Fatal(err)
		}
		forwardOnly := func() int {
			n := 0
			for k := range p.graphs {
				if k.kind == kindLogProbs || k.kind == kindLogits {
					n++
				}
			}
			return n
		}
		if n := forwardOnly(); n != 2 {
			t.Fatalf("%s: %d forward-only graphs cached, want 2", cfg.Family, n)
		}
		for _, step := range []func() error{
			func() error { _, _, err := p.SFTStep(b); return err },
			func() error { _, err := p.DPOStep(b, ref, loss.DPOConfig{Beta: 0.1}, 0); return err },
		} {
			if _, _, err := p.LogProbs(b); err != nil {
				t.Fatal(err)
			}
			if err := step(); err != nil {
				t.Fatal(err)
			}
			if n := forwardOnly(); n != 0 {
				t.Fatalf("%s: %d forward-only graphs left after a training step", cfg.Family, n)
			}
		}
		// The steps only accumulated gradients: the weights, and so the log-probs, are unchanged.
		again, _, err := p.LogProbs(b)
		if err != nil {
			t.Fatal(err)
		}
		for i := range ref {
			if again[i] != ref[i] {
				t.Fatalf("%s: row %d: log-prob %v after the rebuild, %v before", cfg.Family, i, again[i], ref[i])
			}
		}
	}
}
