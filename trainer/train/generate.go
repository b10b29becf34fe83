package train

import (
	"math/rand/v2"

	"github.com/preftune/preftune/trainer/model"
	"github.com/preftune/preftune/trainer/tokenizer"
)

// Complete continues a prompt laid out as in training (BOS when the model has one, then the prompt's tokens)
// until a stop token (the tokenizer's StopTokens when it has them, else EOS) or maxNew tokens, greedily at
// temperature 0, and returns the new text.
func Complete(p *model.Params, tok tokenizer.Tokenizer, prompt string, maxNew int, temperature float64, rng *rand.Rand) (string, error) {
	out, err := p.Generate(PromptIDs(tok, prompt), maxNew, temperature, rng, stopTokens(tok)...)
	if err != nil {
		return "", err
	}
	return tok.Decode(out), nil
}

// PromptIDs lays out a prompt as training does: BOS (only when the model has one: BOS() >= 0), then its tokens.
func PromptIDs(tok tokenizer.Tokenizer, prompt string) []int {
	var in []int
	if tok.BOS() >= 0 {
		in = append(in, tok.BOS())
	}
	return append(in, tok.Encode(prompt)...)
}

// stopTokens are the ids that end a completion: the tokenizer's StopTokens (EOS and generation_config.json's
// eos_token_id) when it has them, else its EOS.
func stopTokens(tok tokenizer.Tokenizer) []int {
	if s, ok := tok.(interface{ StopTokens() []int }); ok && len(s.StopTokens()) > 0 {
		return s.StopTokens()
	}
	return []int{tok.EOS()}
}
