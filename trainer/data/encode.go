package data

import (
	"fmt"

	"github.com/preftune/preftune/trainer/model"
	"github.com/preftune/preftune/trainer/tokenizer"
)

// Sequence is one encoded text: BOS (when the model has one), prompt, response, and EOS unless the response had to
// be cut.
type Sequence struct {
	Tokens []int
	// ResponseStart is the index in Tokens of the first response token. The loss covers the positions whose
	// target (the next token) sits at ResponseStart or later.
	ResponseStart int
}

// ResponseTokens counts the tokens the loss covers (response and EOS).
func (s Sequence) ResponseTokens() int { return len(s.Tokens) - s.ResponseStart }

// Encode lays out BOS prompt response EOS in at most ctxLen tokens, truncating as DESIGN.md says: the prompt loses
// tokens from its start first; only when the response with BOS and EOS does not fit is the prompt dropped and the
// response cut at its end, without EOS. A model without BOS (tokenizer BOS() -1, Qwen3) gets none. ctxLen must be
// at least 2.
func Encode(tok tokenizer.Tokenizer, prompt, response string, ctxLen int) Sequence {
	if ctxLen < 2 {
		panic(fmt.Sprintf("data.Encode: context length %d, need at least 2", ctxLen))
	}
	p, r := tok.Encode(prompt), tok.Encode(response)
	bos := 0
	if tok.BOS() >= 0 {
		bos = 1
	}
	eos := true
	if len(r)+bos+1 > ctxLen {
		p, r, eos = nil, r[:ctxLen-bos], false
	} else if room := ctxLen - bos - 1 - len(r); len(p) > room {
		p = p[len(p)-room:]
	}
	toks := make([]int, 0, 2+len(p)+len(r))
	if bos == 1 {
		toks = append(toks, tok.BOS())
	}
	toks = append(toks, p...)
	toks = append(toks, r...)
	if eos {
		toks = append(toks, tok.EOS())
	}
	return Sequence{Tokens: toks, ResponseStart: bos + len(p)}
}

// Example is one encoded row: Chosen is the SFT completion or the chosen response; Rejected is set for
// preference rows only.
type Example struct {
	Chosen, Rejected Sequence
}

// EncodeRows encodes rows; rejected responses only when preference is true.
func EncodeRows(tok tokenizer.Tokenizer, rows []Row, ctxLen int, preference bool) []Example {
	out := make([]Example, len(rows))
	for i, r := range rows {
		out[i].Chosen = Encode(tok, r.Prompt, r.Chosen, ctxLen)
		if preference {
			out[i].Rejected = Encode(tok, r.Prompt, r.Rejected, ctxLen)
		}
	}
	return out
}

// Buckets are the padded lengths a batch may have: the model's graph lengths (model.Buckets: 32, 64, 128, ...
// below ctxLen, and ctxLen itself).
func Buckets(ctxLen int) []int { return model.Buckets(ctxLen) }

// BucketFor is the smallest bucket that holds n tokens (n <= ctxLen); see model.BucketFor.
func BucketFor(n, ctxLen int) int { return model.BucketFor(n, ctxLen) }
