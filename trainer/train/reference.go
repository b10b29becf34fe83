package train

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/data"
)

// refTable holds the frozen reference model's summed log-probability of every train and eval sequence, computed
// once before training with the forward-only graph. The loader hands out batches, not example indices, so a
// sequence is looked up by its content (tokens and response start): equal sequences have equal log-probs anyway.
type refTable struct {
	logps  map[string]float64
	digest string
}

// seqKey identifies row i of a batch: its tokens (data.Batch.RowLen of them, so PAD == EOS does not cut it),
// and where the loss starts. Ok is false for an all-padding filler row.
func seqKey(b data.Batch, i int) (key string, ok bool) {
	in, _, mask := b.Row(i)
	n := b.RowLen(i)
	start := -1
	for t, m := range mask {
		if m != 0 {
			start = t
			break
		}
	}
	if n == 0 || start < 0 {
		return "", false
	}
	buf := make([]byte, 0, 4*(n+1))
	buf = binary.LittleEndian.AppendUint32(buf, uint32(start))
	for _, id := range in[:n] {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(id))
	}
	return string(buf), true
}

// computeReference fills r.ref from the reference weights (the policy before any update: they start equal). With
// an adapter the reference is the base model with the adapter off (model.Params.BaseLogProbs).
func (r *runner) computeReference(trainEx, evalEx []data.Example) error {
	t := &refTable{logps: map[string]float64{}}
	h := sha256.New()
	for si, examples := range [][]data.Example{trainEx, evalEx} {
		for bi, b := range data.EvalBatches(r.tok, examples, contract.KindDPO, r.cfg.Training.BatchSize, r.policy.ContextLength) {
			sums, _, err := r.policy.BaseLogProbs(b.Model())
			if err != nil {
				return failed(ReasonTrainingFailed, "reference log-probs: %v", err)
			}
			for i, s := range sums {
				key, ok := seqKey(b, i)
				if !ok {
					continue
				}
				if math.IsNaN(s) || math.IsInf(s, 0) {
					side, pair := "chosen", bi*b.B/2+i
					if i >= b.B/2 {
						side, pair = "rejected", bi*b.B/2+i-b.B/2
					}
					return invalid(ReasonReferenceUnreadable, "reference.modelURI: the reference model's log-probability "+
						"of the %s response of %s pair %d is %v: the reference computes non-finite values (its weights "+
						"are finite, so an activation overflows); it cannot anchor DPO", side, [...]string{"train", "eval"}[si], pair, s)
				}
				t.logps[key] = s
				h.Write([]byte(key))
				h.Write(binary.LittleEndian.AppendUint64(nil, math.Float64bits(s)))
			}
		}
	}
	t.digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	r.ref = t
	r.progress.Event("reference", map[string]any{"sequences": len(t.logps), "digest": t.digest})
	return nil
}

// lookup returns the reference log-probs of every row of b (0 for filler rows).
func (t *refTable) lookup(b data.Batch) ([]float64, error) {
	out := make([]float64, b.B)
	for i := range out {
		key, ok := seqKey(b, i)
		if !ok {
			continue
		}
		v, found := t.logps[key]
		if !found {
			return nil, failed(ReasonTrainingFailed, "reference log-prob of batch row %d was not precomputed (a bug)", i)
		}
		out[i] = v
	}
	return out, nil
}

func (t *refTable) digestOrEmpty() string {
	if t == nil {
		return ""
	}
	return t.digest
}
