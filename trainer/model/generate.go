package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"gorgonia.org/tensor"
)

// Generate continues prompt by up to maxNew tokens and returns the new tokens, ending before the first stop id
// the model emits (pass the model's EOS ids, Config.Tokens.EOS, and any other stop tokens; ids outside the
// vocabulary never match). The prompt usually starts with the model's BOS (Config.Tokens.BOS) when it has one.
// Temperature 0 is greedy (rng unused; ties go to the lowest id); otherwise tokens are sampled from
// softmax(logits/T). Each step runs the forward graph of the smallest bucket holding the sequence (no key/value
// cache); when the sequence outgrows the context length the model sees its last ContextLength tokens. A
// non-finite logit is an error (the model overflows), not a token.
func (p *Params) Generate(prompt []int, maxNew int, temperature float64, rng *rand.Rand, stop ...int) ([]int, error) {
	if len(prompt) == 0 {
		return nil, fmt.Errorf("model: generate needs a non-empty prompt")
	}
	for i, id := range prompt {
		if id < 0 || id >= p.VocabSize {
			return nil, fmt.Errorf("model: prompt token %d is %d, outside the vocabulary [0, %d)", i, id, p.VocabSize)
		}
	}
	if temperature < 0 || math.IsNaN(temperature) || math.IsInf(temperature, 0) {
		return nil, fmt.Errorf("model: temperature %v, want a finite number >= 0", temperature)
	}
	if temperature > 0 && rng == nil {
		return nil, fmt.Errorf("model: sampling at temperature %v needs an rng", temperature)
	}
	seq := append([]int(nil), prompt...)
	var out []int
	probs := make([]float64, p.VocabSize)
	for len(out) < maxNew {
		window := seq[max(0, len(seq)-p.ContextLength):]
		t := BucketFor(len(window), p.ContextLength)
		gr, err := p.graphFor(kindLogits, 1, t)
		if err != nil {
			return out, err
		}
		// Positions after the window only pad the bucket; causal attention keeps them from the last position.
		clear(gr.tk.Inputs)
		copy(gr.tk.Inputs, window)
		if err := gr.run(); err != nil {
			return out, err
		}
		row := len(window) - 1
		logits := gr.logits.Value().(*tensor.Dense)
		for j := range probs {
			probs[j] = at(logits, row*p.VocabSize+j)
			if math.IsNaN(probs[j]) || math.IsInf(probs[j], 0) {
				// Finite weights can still overflow; a NaN logit would make pick return an arbitrary token.
				return out, fmt.Errorf("model: logit of token %d is %v after %d generated tokens: the model computes "+
					"non-finite values", j, probs[j], len(out))
			}
		}
		next := pick(probs, temperature, rng)
		if slices.Contains(stop, next) {
			break
		}
		out = append(out, next)
		seq = append(seq, next)
	}
	return out, nil
}

// pick returns the argmax of logits (temperature 0) or a sample of softmax(logits/temperature).
func pick(logits []float64, temperature float64, rng *rand.Rand) int {
	best := 0
	for j, v := range logits {
		if v > logits[best] {
			best = j
		}
	}
	if temperature == 0 {
		return best
	}
	var z float64
	mx := logits[best]
	for j, v := range logits {
		logits[j] = math.Exp((v - mx) / temperature)
		z += logits[j]
	}
	u := rng.Float64() * z
	for j, v := range logits {
		if u -= v; u < 0 {
			return j
		}
	}
	return best
}
