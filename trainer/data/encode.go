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
// response cut at its end, without EOS. A model without BOS (tokenizer BOS() -1, Qwen3) or with add_bos_token false gets none
// (tokenizer.AddsBOS). ctxLen must be
// at least 2.
func Encode(tok tokenizer.Tokenizer, prompt, response string, ctxLen int) Sequence {
	if ctxLen < 2 {
		panic(fmt.Sprintf("data.Encode: context length %d, need at least 2", ctxLen))
	}
	p, r := tok.Encode(prompt), tok.Encode(response)
	bos := 0
	if tokenizer.AddsBOS(tok) {
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

// EncodeRows encodes rows with the built-in chat template (conversational rows) or as their text, truncated once
// per pair (Encoder); rejected responses only when preference is true. Pairs identical after truncation are left
// out. Runs use an Encoder built for their model (NewEncoder with ChatTemplateOf) to get the counts too.
func EncodeRows(tok tokenizer.Tokenizer, rows []Row, ctxLen int, preference bool) []Example {
	e, err := NewEncoder(tok, "", TemplateBuiltin, ctxLen)
	if err != nil {
		panic(fmt.Sprintf("data.EncodeRows: %v", err))
	}
	res, err := e.Encode(rows, preference)
	if err != nil {
		panic(fmt.Sprintf("data.EncodeRows: %v", err))
	}
	return res.Examples
}

// Buckets are the padded lengths a batch may have: the model's graph lengths (model.Buckets: 32, 64, 128, ...
// below ctxLen, and ctxLen itself).
func Buckets(ctxLen int) []int { return model.Buckets(ctxLen) }

// BucketFor is the smallest bucket that holds n tokens (n <= ctxLen); see model.BucketFor.
func BucketFor(n, ctxLen int) int { return model.BucketFor(n, ctxLen) }
