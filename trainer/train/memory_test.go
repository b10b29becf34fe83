package train

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/hf"
)

// A pretrained model whose estimated peak exceeds the container's memory limit fails before loading, with
// InsufficientMemory and exit code 3; without a limit the same run trains.
func TestPretrainedMemoryLimit(t *testing.T) {
	src := "../../../shared/models/stories260K"
	if _, err := os.Stat(filepath.Join(src, "model.safetensors")); err != nil {
		t.Skipf("%s is absent (../shared is the project's read-only test data beside the repository): %v", src, err)
	}
	tmp := t.TempDir()
	cg := filepath.Join(tmp, "cgroup")
	if err := os.MkdirAll(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	old := cgroupRoot
	cgroupRoot = cg
	defer func() { cgroupRoot = old }()
	rc := tinySFT(writeDemo(t, tmp, 40, 1), filepath.Join(tmp, "out"), 1)
	rc.Model = contract.ModelConfig{From: src}
	rc.Training.BatchSize = 4

	if err := os.WriteFile(filepath.Join(cg, "memory.max"), []byte("104857600\n"), 0o644); err != nil { // 100 MiB
		t.Fatal(err)
	}
	cfg, err := NewConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), cfg, Options{})
	var me *hf.MemoryError
	if !errors.As(err, &me) || ExitCode(err) != contract.ExitInvalidInput || reasonOf(err, "") != ReasonInsufficientMemory ||
		!strings.Contains(err.Error(), "model.from") || me.Limit != 100<<20 || me.Estimate.Total <= me.Limit {
		t.Fatalf("Run under 100 MiB: %v (exit %d), want an InsufficientMemory MemoryError naming model.from", err, ExitCode(err))
	}
	// The demo's rows are short: the step pads to the smallest bucket, not to the model's 512 positions.
	if me.Plan.ContextLength != 32 || me.Plan.BatchSize != 4 {
		t.Errorf("memory plan %+v, want batch 4 x 32 tokens (the demo rows' bucket)", me.Plan)
	}
	t.Logf("stories260K, batch %d x %d tokens: estimate %d bytes", me.Plan.BatchSize, me.Plan.ContextLength, me.Estimate.Total)

	if err := os.WriteFile(filepath.Join(cg, "memory.max"), []byte("max\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, rc)
}

// A run from a pretrained model resumes from its checkpoint (which carries the model's tokenizer files) to the
// same weights as an uninterrupted run.
func TestPretrainedResume(t *testing.T) {
	src := "../../../shared/models/stories260K"
	if _, err := os.Stat(filepath.Join(src, "model.safetensors")); err != nil {
		t.Skipf("%s is absent (../shared is the project's read-only test data beside the repository): %v", src, err)
	}
	tmp := t.TempDir()
	demo := writeDemo(t, tmp, 40, 2)
	runTo := func(out string, steps int) *contract.Result {
		rc := tinySFT(demo, out, 2)
		rc.Model = contract.ModelConfig{From: src}
		rc.Training.BatchSize = 4
		rc.Training.CheckpointEvery = 1
		if steps < 2 { // stop after step 1, as an interruption would
			rc.Training.MaxSteps = 2
			cfg, err := NewConfig(rc)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			_, _ = Run(ctx, cfg, Options{Progress: &stopAt{step: 1, cancel: cancel}})
			return nil
		}
		return mustRun(t, rc)
	}
	whole, parted := filepath.Join(tmp, "whole"), filepath.Join(tmp, "parted")
	runTo(whole, 2)
	runTo(parted, 1)
	if _, err := os.Stat(filepath.Join(parted, "checkpoints", "step-00000001", "tokenizer_config.json")); err != nil {
		t.Fatalf("interrupted run's checkpoint: %v", err)
	}
	if _, err := os.Stat(filepath.Join(parted, "checkpoints", "step-00000002")); err == nil {
		t.Fatal("the interrupted run got to step 2")
	}
	if res := runTo(parted, 2); res.ResumedFromStep != 1 {
		t.Fatalf("resumed from step %d, want 1", res.ResumedFromStep)
	}
	a, _, _, err := LoadModelDir(filepath.Join(whole, "model"))
	if err != nil {
		t.Fatal(err)
	}
	b, _, _, err := LoadModelDir(filepath.Join(parted, "model"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range a.Names {
		x, _ := a.Float32s(name)
		y, _ := b.Float32s(name)
		for i := range x {
			if x[i] != y[i] {
				t.Fatalf("%s[%d]: resumed %g, uninterrupted %g", name, i, y[i], x[i])
			}
		}
	}
}
