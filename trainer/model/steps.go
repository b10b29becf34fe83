package model

import (
	"fmt"
	"runtime"

	"gorgonia.org/tensor"

	"github.com/preftune/preftune/trainer/loss"
)

// setBatch picks the graph of kind k for the batch's shape and copies the batch in. Before a training step it
// releases the forward-only graphs (releaseForwardOnly).
func (p *Params) setBatch(k kind, b Batch) (*graph, error) {
	if k == kindSFT || k == kindDPO {
		p.releaseForwardOnly()
	}
	gr, err := p.graphFor(k, b.B, b.T)
	if err != nil {
		return nil, err
	}
	if err := gr.tk.Set(b.B, b.T, b.Inputs, b.Targets, b.Mask, p.VocabSize); err != nil {
		return nil, err
	}
	return gr, nil
}

// releaseForwardOnly drops the compiled forward-only graphs (LogProbs, Logits) and their buffers: each holds a
// forward pass's activations and, with the fused head, an [M, V] buffer of the head's probabilities, which would
// otherwise stay resident next to the training graph's for the rest of the run (DPO's reference log-probs are
// computed with one before the first step: at SmolLM2-135M's shape, 8 rows × 256 tokens, that is gigabytes). An
// evaluation between training steps rebuilds its graph once (tens of milliseconds to a second), then reuses it
// for all its batches. The collection that follows lets the training graph's buffers reuse the released memory:
// without it the heap grows past it until the next collection (Go collects at twice the live heap), and the
// process's peak is the sum of both graphs rather than the larger.
func (p *Params) releaseForwardOnly() {
	released := false
	for k, gr := range p.graphs {
		if k.kind == kindLogProbs || k.kind == kindLogits {
			gr.vm.Close()
			// gorgonia's tape machine has a finalizer (CUDA clean-up; a no-op here, and Close ran it): it would
			// keep the graph's buffers alive through the collection below.
			runtime.SetFinalizer(gr.vm, nil)
			delete(p.graphs, k)
			released = true
		}
	}
	if released {
		runtime.GC()
	}
}

// SFTStep runs forward and backward on the batch and adds the gradient of the mean token NLL into p.Grads.
// It returns that loss and the number of masked-in tokens it averages over (a batch without any has loss 0
// and adds nothing).
func (p *Params) SFTStep(b Batch) (lossValue float64, tokens int, err error) {
	gr, err := p.setBatch(kindSFT, b)
	if err != nil {
		return 0, 0, err
	}
	if err := gr.run(); err != nil {
		return 0, 0, err
	}
	if err := p.accumulate(gr); err != nil {
		return 0, 0, err
	}
	return scalarOf(gr.loss), gr.tk.Count(-1), nil
}

// LogProbs runs the forward pass only and returns, per row, the sum of the masked-in target log-probs and the
// number of masked-in targets. DPO's reference log-probs come from here, once, before training.
func (p *Params) LogProbs(b Batch) (sums []float64, counts []int, err error) {
	return p.logProbs(kindLogProbs, b)
}

// BaseLogProbs is LogProbs of the base model with the adapter off (LogProbs itself without an adapter): the DPO
// reference of a LoRA run, the starting model whatever the adapter has learnt.
func (p *Params) BaseLogProbs(b Batch) (sums []float64, counts []int, err error) {
	if p.lora == nil {
		return p.LogProbs(b)
	}
	return p.logProbs(kindBaseLogProbs, b)
}

func (p *Params) logProbs(k kind, b Batch) (sums []float64, counts []int, err error) {
	gr, err := p.setBatch(k, b)
	if err != nil {
		return nil, nil, err
	}
	if err := gr.run(); err != nil {
		return nil, nil, err
	}
	lp := gr.lpValues()
	sums, counts = make([]float64, b.B), make([]int, b.B)
	for r := range sums {
		for _, v := range lp[r*b.T : (r+1)*b.T] {
			sums[r] += v
		}
		counts[r] = gr.tk.Count(r)
	}
	return sums, counts, nil
}

// EvalSFT runs the forward pass only and returns the summed NLL of the masked-in targets and their count.
func (p *Params) EvalSFT(b Batch) (sumNLL float64, tokens int, err error) {
	sums, counts, err := p.LogProbs(b)
	if err != nil {
		return 0, 0, err
	}
	for i, s := range sums {
		sumNLL -= s
		tokens += counts[i]
	}
	return sumNLL, tokens, nil
}

// DPOOutputs is what a DPO step reports.
type DPOOutputs struct {
	// Loss is the differentiated loss: DPO + rpoAlpha·NLL.
	Loss float64
	// DPO holds the preference loss and TRL's reward metrics over the batch's real pairs.
	DPO loss.BatchResult
	// NLL is the mean per-token NLL of the real chosen rows.
	NLL float64
	// Policy holds the policy's per-row summed target log-probs (all B rows).
	Policy []float64
	// Tokens counts the masked-in targets of the whole batch.
	Tokens int
}

// DPOStep runs forward and backward on a DPO batch (rows 0..B/2-1 chosen, B/2..B-1 the rejected of the same
// pairs; the first b.N of each half are real) and adds the loss's gradient into p.Grads. refLogps holds the
// reference model's LogProbs sums for the same B rows.
func (p *Params) DPOStep(b Batch, refLogps []float64, cfg loss.DPOConfig, rpoAlpha float64) (DPOOutputs, error) {
	if b.B%2 != 0 {
		return DPOOutputs{}, fmt.Errorf("model: a DPO batch needs an even number of rows, got %d", b.B)
	}
	if b.N < 1 || b.N > b.B/2 {
		return DPOOutputs{}, fmt.Errorf("model: DPO batch of %d rows says it holds %d pairs (want 1..%d)", b.B, b.N, b.B/2)
	}
	if len(refLogps) != b.B {
		return DPOOutputs{}, fmt.Errorf("model: %d reference log-probs for a batch of %d rows", len(refLogps), b.B)
	}
	if err := cfg.Validate(); err != nil {
		return DPOOutputs{}, err
	}
	gr, err := p.setBatch(kindDPO, b)
	if err != nil {
		return DPOOutputs{}, err
	}
	gr.dpo.Config, gr.dpo.RPOAlpha, gr.dpo.Pairs, gr.dpo.Ref = cfg, rpoAlpha, b.N, refLogps
	if err := gr.run(); err != nil {
		return DPOOutputs{}, err
	}
	if err := p.accumulate(gr); err != nil {
		return DPOOutputs{}, err
	}
	return DPOOutputs{
		Loss:   gr.dpo.Total,
		DPO:    gr.dpo.Result,
		NLL:    gr.dpo.NLL,
		Policy: append([]float64(nil), gr.dpo.Policy...),
		Tokens: gr.tk.Count(-1),
	}, nil
}

// Logits runs the forward pass only and returns the logits of every position, row-major [B, T, V]. Training
// never needs them whole (the fused log-prob ops read them in place); they are for checks against other
// implementations and for evaluations that score the whole distribution.
func (p *Params) Logits(b Batch) ([]float64, error) {
	gr, err := p.graphFor(kindLogits, b.B, b.T)
	if err != nil {
		return nil, err
	}
	if len(b.Inputs) != b.B*b.T {
		return nil, fmt.Errorf("model: batch has %d inputs, want B*T = %d", len(b.Inputs), b.B*b.T)
	}
	for i, id := range b.Inputs {
		if id < 0 || id >= p.VocabSize {
			return nil, fmt.Errorf("model: input %d (row %d, position %d) is %d, outside the vocabulary [0, %d)", i, i/b.T, i%b.T, id, p.VocabSize)
		}
	}
	copy(gr.tk.Inputs, b.Inputs)
	if err := gr.run(); err != nil {
		return nil, err
	}
	t := gr.logits.Value().(*tensor.Dense)
	out := make([]float64, b.B*b.T*p.VocabSize)
	for i := range out {
		out[i] = at(t, i)
	}
	return out, nil
}
