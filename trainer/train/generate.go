package train

import (
	"math/rand/v2"

	"github.com/preftune/preftune/trainer/model"
	"github.com/preftune/preftune/trainer/tokenizer"
)

// Complete continues a prompt laid out as in training (BOS, prompt bytes) until EOS or maxNew tokens, greedily at
// temperature 0, and returns the new text.
func Complete(p *model.Params, tok tokenizer.Tokenizer, prompt string, maxNew int, temperature float64, rng *rand.Rand) (string, error) {
	in := append([]int{tok.BOS()}, tok.Encode(prompt)...)
	out, err := p.Generate(in, maxNew, temperature, rng, tok.EOS())
	if err != nil {
		return "", err
	}
	return tok.Decode(out), nil
}
