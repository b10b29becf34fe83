package train

import (
	"context"
	"math"
	"time"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/data"
	"github.com/preftune/preftune/trainer/loss"
)

// loop runs the optimiser steps from r.step to r.total. Each step accumulates the gradients of
// GradientAccumulationSteps micro-batches, averages them, clips them to the global norm, and lets AdamW update the
// weights at the schedule's rate (AdamW zeroes the gradients after its update).
func (r *runner) loop(ctx context.Context) error {
	t := r.cfg.Training
	for r.step < r.total {
		if ctx.Err() != nil {
			return r.interrupted()
		}
		start := time.Now()
		lr := r.sched.LR(r.step)
		m := Metrics{}
		tokens := 0
		for k := range t.GradientAccumulationSteps {
			r.policy.SetDropoutSeed(dropoutSeed(t.Seed, r.step, k))
			b := r.loader.Next()
			tokens += realTokens(b)
			mb, err := r.microStep(b)
			if err != nil {
				return err
			}
			for k, v := range mb {
				m[k] += v / float64(t.GradientAccumulationSteps)
			}
		}
		if t.GradientAccumulationSteps > 1 {
			r.opt.ScaleGrad(float32(1 / float64(t.GradientAccumulationSteps)))
		}
		norm := r.opt.ClipGradNorm(t.GradClipNorm)
		if math.IsNaN(norm) || math.IsInf(norm, 0) || math.IsNaN(m["loss"]) {
			// The same data and weights diverge again on retry: this is not worth a retry.
			return invalid(ReasonDiverged, "step %d: loss %v, gradient norm %v: training diverged (lower training.learningRate?)",
				r.step+1, m["loss"], norm)
		}
		r.opt.Step(lr)
		r.step++
		m["step"] = float64(r.step)
		m["epoch"] = r.loader.Epoch()
		m["learning_rate"] = lr
		m["grad_norm"] = norm
		m["tokens_per_second"] = float64(tokens) / time.Since(start).Seconds()
		r.lastTrain = m
		if err := r.log(m); err != nil {
			return err
		}
		if len(r.eval) > 0 && (r.step == r.total || t.EvalEvery > 0 && r.step%t.EvalEvery == 0) {
			if err := r.evaluate(); err != nil {
				return err
			}
		}
		if r.step == r.total || r.step%t.CheckpointEvery == 0 {
			if err := r.save(); err != nil {
				return err
			}
		}
	}
	return nil
}

// interrupted checkpoints the steps done since the last checkpoint, then reports the interruption (the Job retries
// and the next attempt resumes here).
func (r *runner) interrupted() error {
	if r.step > r.lastSaved {
		if err := r.save(); err != nil {
			return err
		}
	}
	r.progress.Event("interrupted", map[string]any{"step": r.step})
	return failed(ReasonInterrupted, "interrupted at step %d of %d; the newest checkpoint is at step %d", r.step, r.total, r.lastSaved)
}

func (r *runner) log(m Metrics) error {
	if err := r.metrics.Log(m); err != nil {
		return failed(ReasonTrainingFailed, "metrics.jsonl: %v", err)
	}
	r.progress.Step(r.step, r.total, m)
	return nil
}

// microStep runs forward and backward on one micro-batch, adding its gradient, and returns its metrics.
func (r *runner) microStep(b data.Batch) (Metrics, error) {
	if r.cfg.Kind == contract.KindSFT {
		l, _, err := r.policy.SFTStep(b.Model())
		if err != nil {
			return nil, failed(ReasonTrainingFailed, "step %d: %v", r.step+1, err)
		}
		return Metrics{"loss": l}, nil
	}
	ref, err := r.ref.lookup(b)
	if err != nil {
		return nil, err
	}
	out, err := r.policy.DPOStep(b.Model(), ref, r.lossC, r.cfg.DPO.RPOAlpha)
	if err != nil {
		return nil, failed(ReasonTrainingFailed, "step %d: %v", r.step+1, err)
	}
	m := Metrics(out.DPO.Metrics(""))
	m["loss"] = out.Loss
	if r.cfg.DPO.RPOAlpha > 0 {
		m["nll_loss"] = out.NLL
	}
	return m, nil
}

// evaluate computes the eval_ metrics over the whole eval split with the forward-only graph and logs them.
func (r *runner) evaluate() error {
	var m Metrics
	var err error
	if r.cfg.Kind == contract.KindSFT {
		m, err = r.evalSFT()
	} else {
		m, err = r.evalDPO()
	}
	if err != nil {
		return err
	}
	m["step"] = float64(r.step)
	m["epoch"] = r.loader.Epoch()
	r.lastEval = m
	return r.log(m)
}

func (r *runner) evalSFT() (Metrics, error) {
	var sum float64
	var tokens int
	for _, b := range r.eval {
		s, n, err := r.policy.EvalSFT(b.Model())
		if err != nil {
			return nil, failed(ReasonTrainingFailed, "evaluation: %v", err)
		}
		sum += s
		tokens += n
	}
	return Metrics{"eval_loss": sum / float64(max(tokens, 1))}, nil
}

// evalDPO averages TRL's metrics over all eval pairs (weighting each batch by its pairs), and adds the RPO term
// to eval_loss as training does.
func (r *runner) evalDPO() (Metrics, error) {
	sum := Metrics{}
	pairs := 0
	var nllSum float64
	var nllTokens int
	for _, b := range r.eval {
		pol, counts, err := r.policy.LogProbs(b.Model())
		if err != nil {
			return nil, failed(ReasonTrainingFailed, "evaluation: %v", err)
		}
		ref, err := r.ref.lookup(b)
		if err != nil {
			return nil, err
		}
		half, n := b.B/2, b.N
		res, _, _ := loss.DPOBatchTokens(r.lossC, pol[:n], pol[half:half+n], ref[:n], ref[half:half+n], counts[:n], counts[half:half+n])
		for k, v := range res.Metrics("eval_") {
			sum[k] += v * float64(n)
		}
		pairs += n
		for i := range n {
			nllSum -= pol[i]
			nllTokens += counts[i]
		}
	}
	m := Metrics{}
	for k, v := range sum {
		m[k] = v / float64(pairs)
	}
	if a := r.cfg.DPO.RPOAlpha; a > 0 {
		nll := nllSum / float64(max(nllTokens, 1))
		m["eval_nll_loss"] = nll
		m["eval_loss"] += a * nll
	}
	return m, nil
}

// realTokens counts a batch's non-padding input positions (what tokens_per_second measures): the sum of its
// rows' lengths (data.Batch.RowLen), so a PAD id that is also EOS still counts where it ends a sequence.
func realTokens(b data.Batch) int {
	n := 0
	for i := 0; i < b.B; i++ {
		n += b.RowLen(i)
	}
	return n
}
