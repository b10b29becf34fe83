package data

import (
	"fmt"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/model"
	"github.com/preftune/preftune/trainer/tokenizer"
)

// Batch is what one forward pass consumes: B rows of T positions, row-major. Position t of a row reads
// Inputs[t] and predicts Targets[t] (the sequence's next token); Mask is 1 where that target is a response token
// (response bytes and EOS) and 0 on prompt and padding targets. Rows are padded with PAD to T, the batch's bucket.
//
// In a DPO batch rows 0..B/2-1 are the chosen sequences and rows B/2..B-1 the rejected sequences of the same pairs,
// in the same order. N counts the real examples (SFT rows, or DPO pairs); a short batch (the last of an epoch or of
// the eval set) is filled up to B with rows that are all PAD and fully masked, placed after the N real rows of
// each half. Losses averaged per token need no care (padding rows have no masked-in tokens); anything averaged
// per example or per pair must average over the first N only.
type Batch struct {
	B, T    int
	Inputs  []int
	Targets []int
	Mask    []float32
	N       int
}

// Model is the batch as the model's input (the same slices, not a copy).
func (b Batch) Model() model.Batch {
	return model.Batch{B: b.B, T: b.T, Inputs: b.Inputs, Targets: b.Targets, Mask: b.Mask, N: b.N}
}

// Row returns the slices of row i.
func (b Batch) Row(i int) (inputs, targets []int, mask []float32) {
	lo, hi := i*b.T, (i+1)*b.T
	return b.Inputs[lo:hi], b.Targets[lo:hi], b.Mask[lo:hi]
}

// RowLen is the length of row i's sequence, found from its loss mask (the response, and so the loss, runs to the
// sequence's last token): the last masked position + 2, or 0 for a filler row with no loss. Unlike scanning for
// PAD it holds when PAD is a token the sequence contains (PAD == EOS).
func (b Batch) RowLen(i int) int {
	_, _, m := b.Row(i)
	for t := len(m) - 1; t >= 0; t-- {
		if m[t] != 0 {
			return t + 2
		}
	}
	return 0
}

// MaskedTokens counts the positions the loss covers.
func (b Batch) MaskedTokens() int {
	n := 0
	for _, m := range b.Mask {
		if m != 0 {
			n++
		}
	}
	return n
}

// MakeBatch packs examples into a batch of size rows (SFT) or size pairs (DPO, then B = 2*size), padded to the
// smallest bucket of ctxLen that holds the longest sequence.
func MakeBatch(tok tokenizer.Tokenizer, examples []Example, kind contract.Kind, size, ctxLen int) Batch {
	if len(examples) > size || size <= 0 {
		panic(fmt.Sprintf("data.MakeBatch: %d examples for a batch of %d", len(examples), size))
	}
	var seqs []Sequence
	for _, e := range examples {
		seqs = append(seqs, e.Chosen)
	}
	rows := size
	if kind == contract.KindDPO {
		rows = 2 * size
		for i := len(examples); i < size; i++ {
			seqs = append(seqs, Sequence{})
		}
		for _, e := range examples {
			seqs = append(seqs, e.Rejected)
		}
	}
	longest := 1
	for _, s := range seqs {
		longest = max(longest, len(s.Tokens))
	}
	b := Batch{B: rows, T: BucketFor(longest, ctxLen), N: len(examples)}
	b.Inputs = make([]int, b.B*b.T)
	b.Targets = make([]int, b.B*b.T)
	b.Mask = make([]float32, b.B*b.T)
	pad := tok.PAD()
	for i := range b.Inputs {
		b.Inputs[i], b.Targets[i] = pad, pad
	}
	for i, s := range seqs {
		in, tg, m := b.Row(i)
		copy(in, s.Tokens)
		for t := 0; t+1 < len(s.Tokens); t++ {
			tg[t] = s.Tokens[t+1]
			if t+1 >= s.ResponseStart {
				m[t] = 1
			}
		}
	}
	return b
}
