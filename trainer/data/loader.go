package data

import (
	"fmt"
	"math/rand/v2"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/tokenizer"
)

// Cursor is where a Loader stands: the epoch and how many examples of that epoch's order were handed out. It is
// all a checkpoint needs to resume the exact sequence of batches.
type Cursor struct {
	Epoch    int `json:"epoch"`
	Position int `json:"position"`
}

// Loader hands out training batches forever, epoch after epoch. Each epoch visits every example exactly once in an
// order shuffled by a PCG seeded with (seed, epoch), so the order depends on nothing but those two numbers; the
// epoch's last batch may be short (see Batch.N).
type Loader struct {
	tok      tokenizer.Tokenizer
	examples []Example
	kind     contract.Kind
	size     int
	ctxLen   int
	seed     uint64

	cur   Cursor
	order []int // the current epoch's order
}

// NewLoader makes a loader over examples for SFT or DPO batches of size examples (pairs for DPO).
func NewLoader(tok tokenizer.Tokenizer, examples []Example, kind contract.Kind, size, ctxLen int, seed uint64) (*Loader, error) {
	if len(examples) == 0 {
		return nil, fmt.Errorf("no training examples")
	}
	if size <= 0 {
		return nil, fmt.Errorf("batch size %d: must be positive", size)
	}
	if kind != contract.KindSFT && kind != contract.KindDPO {
		return nil, fmt.Errorf("batch kind %q: want %s or %s", kind, contract.KindSFT, contract.KindDPO)
	}
	l := &Loader{tok: tok, examples: examples, kind: kind, size: size, ctxLen: ctxLen, seed: seed}
	l.order = l.epochOrder(0)
	return l, nil
}

// epochOrder is a Fisher-Yates shuffle driven by PCG's raw outputs. It avoids rand's Shuffle and IntN so that
// the order is defined here, not by a library that may change its algorithm between Go releases.
func (l *Loader) epochOrder(epoch int) []int {
	n := len(l.examples)
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	pcg := rand.NewPCG(l.seed, uint64(epoch))
	for i := n - 1; i > 0; i-- {
		j := int(pcg.Uint64() % uint64(i+1)) // bias below n/2^64: irrelevant here
		order[i], order[j] = order[j], order[i]
	}
	return order
}

// Next returns the next batch and advances the cursor.
func (l *Loader) Next() Batch {
	end := min(l.cur.Position+l.size, len(l.order))
	batch := make([]Example, 0, end-l.cur.Position)
	for _, i := range l.order[l.cur.Position:end] {
		batch = append(batch, l.examples[i])
	}
	l.cur.Position = end
	if end == len(l.order) {
		l.cur = Cursor{Epoch: l.cur.Epoch + 1}
		l.order = l.epochOrder(l.cur.Epoch)
	}
	return MakeBatch(l.tok, batch, l.kind, l.size, l.ctxLen)
}

// Cursor returns the position of the next batch.
func (l *Loader) Cursor() Cursor { return l.cur }

// Seek moves to a cursor taken from a loader over the same examples, batch size and seed.
func (l *Loader) Seek(c Cursor) error {
	if c.Epoch < 0 || c.Position < 0 || c.Position >= len(l.examples) {
		return fmt.Errorf("cursor epoch %d position %d: outside a dataset of %d examples", c.Epoch, c.Position, len(l.examples))
	}
	l.cur = c
	l.order = l.epochOrder(c.Epoch)
	return nil
}

// Epoch is the number of epochs done, with the fraction of the current one.
func (l *Loader) Epoch() float64 {
	return float64(l.cur.Epoch) + float64(l.cur.Position)/float64(len(l.examples))
}

// BatchesPerEpoch is how many batches cover every example once.
func (l *Loader) BatchesPerEpoch() int { return (len(l.examples) + l.size - 1) / l.size }

// EvalBatches cuts examples into batches in their given order (a fixed order, so evaluations compare across
// steps); the last batch may be short (see Batch.N).
func EvalBatches(tok tokenizer.Tokenizer, examples []Example, kind contract.Kind, size, ctxLen int) []Batch {
	var out []Batch
	for lo := 0; lo < len(examples); lo += size {
		out = append(out, MakeBatch(tok, examples[lo:min(lo+size, len(examples))], kind, size, ctxLen))
	}
	return out
}
