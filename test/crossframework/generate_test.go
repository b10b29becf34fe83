package crossframework

import (
	"math/rand/v2"

	"github.com/preftune/preftune/trainer/model"
	"github.com/preftune/preftune/trainer/tokenizer"
)

// genPrompt and genTokens make decoding outgrow the 64-token context, so the sliding window is used too.
const (
	genPrompt = "Question: what is 2+2?\nAnswer:"
	genTokens = 50
)

// genRuns decode greedily and by sampling at temperature 1. Greedy decoding of this random model soon repeats
// one token, which would let small logit errors through; sampling follows the whole distribution.
var genRuns = []genRun{{temperature: 0}, {temperature: 1, seed: 5}}

type genRun struct {
	temperature float64
	seed        uint64
}

func (g genRun) rng() *rand.Rand {
	if g.temperature == 0 {
		return nil
	}
	return rand.New(rand.NewPCG(g.seed, 1))
}

// input is gpt2_ref.py's decoding run. Model.Generate draws one rng.Float64 per sampled token and takes the
// first token whose cumulative probability exceeds it; the reference is handed the same draws.
func (g genRun) input() refGenIn {
	tok := tokenizer.NewByte()
	in := refGenIn{Prompt: append([]int{tok.BOS()}, tok.Encode(genPrompt)...), MaxNew: genTokens, Stop: tok.EOS(),
		Temperature: g.temperature}
	if rng := g.rng(); rng != nil {
		for range genTokens {
			in.Uniforms = append(in.Uniforms, rng.Float64())
		}
	}
	return in
}

// checkGenerate compares decoding, which runs the model's logits graph (not the log-prob graphs). At a step that
// PyTorch finds within the tie tolerance (two logits, or the draw and a CDF boundary) either token is right, and
// the sequences may part there, so comparison stops at the first such step where they differ.
func checkGenerate(c *checker, p *model.Params, g genRun, want []int, margins []float64) {
	in := g.input()
	got, err := p.Generate(in.Prompt, in.MaxNew, in.Temperature, g.rng(), in.Stop)
	if err != nil {
		c.t.Fatal(err)
	}
	for i, m := range margins {
		if i < len(want) && i < len(got) && got[i] == want[i] {
			continue
		}
		if i == len(want) && len(got) == len(want) {
			break // both stopped
		}
		if m <= c.tieTol {
			c.t.Logf("decoding at temperature %v: %d steps agree, then a near-tie (margin %.3g) went the other way",
				g.temperature, i, m)
			return
		}
		c.fail("decoding at temperature %v, step %d (margin %.3g): Go %v, PyTorch %v", g.temperature, i, m, got, want)
		return
	}
	if len(got) > len(margins) {
		c.fail("decoding at temperature %v: Go made %d tokens, PyTorch stopped after %d: Go %v, PyTorch %v",
			g.temperature, len(got), len(want), got, want)
		return
	}
	c.t.Logf("decoding at temperature %v: all %d steps agree", g.temperature, len(margins))
}
