package crossframework

import (
	"testing"

	"github.com/preftune/preftune/trainer/data"
	"github.com/preftune/preftune/trainer/model"
)

// probe reads single-position log-probs out of a model that reports only per-row masked sums: each probe row
// copies a batch row's inputs, puts the token of interest as the target at one position and masks in that
// position alone, so the row's sum is log p(token | the row's prefix up to that position).
type probe struct {
	src   data.Batch
	vocab int
	rows  data.Batch
}

func newProbe(src data.Batch, vocab int) *probe {
	return &probe{src: src, vocab: vocab, rows: data.Batch{T: src.T}}
}

func (p *probe) add(r, t, token int) {
	in, tg, _ := p.src.Row(r)
	p.rows.Inputs = append(p.rows.Inputs, in...)
	targets := make([]int, len(tg))
	copy(targets, tg)
	targets[t] = token
	mask := make([]float32, len(tg))
	mask[t] = 1
	p.rows.Targets = append(p.rows.Targets, targets...)
	p.rows.Mask = append(p.rows.Mask, mask...)
	p.rows.B++
	p.rows.N++
}

func (p *probe) logProbs(t *testing.T, m *model.Params) []float64 {
	t.Helper()
	sums, counts, err := m.LogProbs(p.rows.Model())
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range counts {
		if n != 1 {
			t.Fatalf("probe row %d counts %d masked tokens, want 1", i, n)
		}
	}
	return sums
}
