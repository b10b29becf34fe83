package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
)

// runUntil runs rc and cancels it (as SIGTERM does) once step is done: the run must checkpoint and fail with
// reason Interrupted.
func runUntil(t *testing.T, rc contract.RunConfig, step int) {
	t.Helper()
	cfg, err := NewConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err = Run(ctx, cfg, Options{Progress: &stopAt{step: step, cancel: cancel}})
	var e *Error
	if !errors.As(err, &e) || e.Reason != ReasonInterrupted || ExitCode(err) != contract.ExitFailed {
		t.Fatalf("interrupted run: want reason %s and exit %d, got %v (exit %d)", ReasonInterrupted, contract.ExitFailed, err, ExitCode(err))
	}
}

// checkSameRun compares two finished runs: loss trajectories (bit for bit) and the final weights' digest.
func checkSameRun(t *testing.T, what string, a, b *contract.Result, outA, outB string) {
	t.Helper()
	la, lb := trainLosses(t, outA), trainLosses(t, outB)
	if len(la) != a.TotalSteps || !slices.Equal(la, lb) {
		t.Errorf("%s: loss trajectories differ:\n%v\n%v", what, la, lb)
	}
	if a.ModelDigest == "" || a.ModelDigest != b.ModelDigest {
		t.Errorf("%s: final weights differ: %s vs %s", what, a.ModelDigest, b.ModelDigest)
	}
	if a.Metrics["eval_loss"] != b.Metrics["eval_loss"] {
		t.Errorf("%s: eval_loss %v vs %v", what, a.Metrics["eval_loss"], b.Metrics["eval_loss"])
	}
}

func TestSFTDeterministicAndResumesBitExact(t *testing.T) {
	dir := t.TempDir()
	dataPath := writeDemo(t, dir, 200, 3)
	const k = 5
	rc := func(out string) contract.RunConfig {
		c := tinySFT(dataPath, filepath.Join(dir, out), 2*k+2)
		// Accumulation and evaluation in between must not disturb the trajectory either; the resumed half
		// crosses an epoch boundary (180 training rows, 16 a batch, 2 batches a step).
		c.Training.GradientAccumulationSteps = 2
		c.Training.EvalEvery = 4
		c.Training.CheckpointEvery = 100
		return c
	}
	a := mustRun(t, rc("a"))
	b := mustRun(t, rc("b"))
	checkSameRun(t, "same seed", a, b, filepath.Join(dir, "a"), filepath.Join(dir, "b"))

	other := rc("other")
	other.Training.Seed++
	o := mustRun(t, other)
	if o.ModelDigest == a.ModelDigest || slices.Equal(trainLosses(t, filepath.Join(dir, "other")), trainLosses(t, filepath.Join(dir, "a"))) {
		t.Errorf("another seed gave the same run: the comparison above proves nothing")
	}

	runUntil(t, rc("c"), k)
	c := mustRun(t, rc("c"))
	if c.ResumedFromStep != k {
		t.Errorf("resumed from step %d, want %d", c.ResumedFromStep, k)
	}
	checkSameRun(t, "stopped and resumed", a, c, filepath.Join(dir, "a"), filepath.Join(dir, "c"))

	// A run resumed at its end (it died before reporting) reports the same result.
	again := mustRun(t, rc("c"))
	if again.ModelDigest != a.ModelDigest || again.Metrics["loss"] != a.Metrics["loss"] || again.Metrics["eval_loss"] != a.Metrics["eval_loss"] {
		t.Errorf("rerun of a finished run: %+v, want the metrics and digest of %+v", again, a)
	}
}

func TestDPOFirstStepIsLn2AndResumesBitExact(t *testing.T) {
	dir := t.TempDir()
	dataPath := writeDemo(t, dir, 200, 4)
	sft := mustRun(t, tinySFT(dataPath, filepath.Join(dir, "sft"), 6))
	ref := sft.ModelURI

	const k = 4
	rc := func(out string) contract.RunConfig {
		c := tinyDPO(dataPath, ref, filepath.Join(dir, out), 2*k+1)
		c.DPO.RPOAlpha = 0.5
		c.Training.EvalEvery = 3
		return c
	}
	a := mustRun(t, rc("a"))
	first := readMetrics(t, filepath.Join(dir, "a"))[0]
	// The policy starts as the reference: every log-ratio is 0, so σ-loss is ln 2 plus the RPO term.
	dpoLoss := first["loss"] - 0.5*first["nll_loss"]
	if math.Abs(dpoLoss-math.Ln2) > 1e-6 || math.Abs(first["rewards/chosen"]) > 1e-6 || math.Abs(first["rewards/margins"]) > 1e-6 {
		t.Errorf("first DPO step: loss %v (nll %v), rewards/chosen %v, margins %v; want ln 2 = %v and zero rewards",
			first["loss"], first["nll_loss"], first["rewards/chosen"], first["rewards/margins"], math.Ln2)
	}
	if l := trainLosses(t, filepath.Join(dir, "a")); !(l[len(l)-1] < l[0]) {
		t.Errorf("DPO loss did not decrease: %v", l)
	}

	runUntil(t, rc("b"), k)
	b := mustRun(t, rc("b"))
	if b.ResumedFromStep != k {
		t.Errorf("resumed from step %d, want %d", b.ResumedFromStep, k)
	}
	checkSameRun(t, "DPO stopped and resumed", a, b, filepath.Join(dir, "a"), filepath.Join(dir, "b"))
	if a.Metrics["eval_rewards/accuracies"] != b.Metrics["eval_rewards/accuracies"] {
		t.Errorf("eval reward accuracy %v vs %v", a.Metrics["eval_rewards/accuracies"], b.Metrics["eval_rewards/accuracies"])
	}
}

// TestSFTFromModelDir continues SFT from a finished run's model directory and from one of its checkpoints.
func TestSFTFromModelDir(t *testing.T) {
	dir := t.TempDir()
	dataPath := writeDemo(t, dir, 200, 8)
	base := mustRun(t, tinySFT(dataPath, filepath.Join(dir, "base"), 10))
	fresh := trainLosses(t, filepath.Join(dir, "base"))[0]
	for i, from := range []string{base.ModelURI, base.Checkpoints[len(base.Checkpoints)-1].URI} {
		rc := tinySFT(dataPath, filepath.Join(dir, fmt.Sprint("more", i)), 2)
		rc.Model = contract.ModelConfig{From: from}
		mustRun(t, rc)
		// The continued run starts where the base ended, far below a new model's first loss.
		if first := trainLosses(t, rc.Output.URI)[0]; !(first < fresh-0.5) || math.Abs(first-base.Metrics["loss"]) > 0.5 {
			t.Errorf("from %s: first loss %v; a new model starts at %v, the base ended at %v", from, first, fresh, base.Metrics["loss"])
		}
	}
}
