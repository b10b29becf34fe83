package train

import (
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/preftune/preftune/trainer/model"
	"github.com/preftune/preftune/trainer/tokenizer"
)

// Complete continues a prompt laid out as in training (PromptIDs: BOS once by the model's rule, then the prompt's
// tokens) until a stop token (the tokenizer's StopTokens when it has them, else EOS) or maxNew tokens, greedily at
// temperature 0, and returns the new text.
func Complete(p *model.Params, tok tokenizer.Tokenizer, prompt string, maxNew int, temperature float64, rng *rand.Rand) (string, error) {
	return CompleteIDs(p, tok, PromptIDs(tok, prompt), maxNew, temperature, rng)
}

// CompleteIDs is Complete on prompt ids already laid out (a chat prompt from data.Encoder.PromptIDs), stopping
// also at the extra ids (the chat template's turn end, data.Encoder.TurnEnd), which the text leaves out.
func CompleteIDs(p *model.Params, tok tokenizer.Tokenizer, ids []int, maxNew int, temperature float64, rng *rand.Rand, extraStop ...int) (string, error) {
	stop := slices.Concat(stopTokens(tok), extraStop)
	out, err := p.Generate(ids, maxNew, temperature, rng, stop...)
	if err != nil {
		return "", err
	}
	return continuation(tok, ids, out), nil
}

// continuation is the text out adds after the prompt ids: the decoding of prompt and completion together less
// the prompt's, so that a first token's leading space (SentencePiece's "▁", which Decode drops at the start of a
// text) is kept. When the prompt's decoding is not a prefix (a merge across the boundary), the completion alone.
func continuation(tok tokenizer.Tokenizer, prompt, out []int) string {
	if len(out) == 0 {
		return ""
	}
	full, head := tok.Decode(slices.Concat(prompt, out)), tok.Decode(prompt)
	if rest, ok := strings.CutPrefix(full, head); ok {
		return rest
	}
	return tok.Decode(out)
}

// PromptIDs lays out a prompt as training does (data.Encoder): its tokens after one BOS, which is the prompt's own
// when its text starts with the BOS token, else the tokenizer's when tokenizer.AddsBOS says so (the model has a
// BOS and tokenizer_config.json does not say "add_bos_token": false), else none.
func PromptIDs(tok tokenizer.Tokenizer, prompt string) []int {
	ids := tok.Encode(prompt)
	if b := tok.BOS(); b >= 0 && tokenizer.AddsBOS(tok) && (len(ids) == 0 || ids[0] != b) {
		ids = append([]int{b}, ids...)
	}
	return ids
}

// stopTokens are the ids that end a completion: the tokenizer's StopTokens (EOS and generation_config.json's
// eos_token_id) when it has them, else its EOS.
func stopTokens(tok tokenizer.Tokenizer) []int {
	if s, ok := tok.(interface{ StopTokens() []int }); ok && len(s.StopTokens()) > 0 {
		return s.StopTokens()
	}
	return []int{tok.EOS()}
}
