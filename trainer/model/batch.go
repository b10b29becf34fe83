package model

import "fmt"

// Batch is the model's input: B rows of T positions, row-major. Position t of a row reads Inputs[t] and
// predicts Targets[t]; Mask is 1 where that target counts in the losses and log-probs, 0 elsewhere (a
// masked-out target is never read). Padding must sit at the end of a row: attention is causal and positions
// start at 0 on every row, so real tokens never see it. In a DPO batch rows 0..B/2-1 are the chosen sequences
// and rows B/2..B-1 the rejected ones of the same pairs, and N counts the real pairs (the first N of each
// half); SFT steps ignore N. trainer/data builds these (data.Batch.Model).
type Batch struct {
	B, T    int
	Inputs  []int
	Targets []int
	Mask    []float32
	N       int
}

// Buckets are the lengths graphs are built for, and so the padded lengths of batches: 32, 64, 128, ... below
// ctxLen, and ctxLen itself. One graph is compiled per (kind, rows, bucket).
func Buckets(ctxLen int) []int {
	var b []int
	for n := 32; n < ctxLen; n *= 2 {
		b = append(b, n)
	}
	return append(b, ctxLen)
}

// BucketFor is the smallest bucket that holds n tokens; it panics when n > ctxLen.
func BucketFor(n, ctxLen int) int {
	for _, b := range Buckets(ctxLen) {
		if n <= b {
			return b
		}
	}
	panic(fmt.Sprintf("model.BucketFor: %d tokens exceed the context length %d", n, ctxLen))
}
