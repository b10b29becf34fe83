package train

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"github.com/preftune/preftune/trainer/checkpoint"
	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/storage/s3test"
)

func TestPrunePlan(t *testing.T) {
	c := func(step int) ckptDir { return ckptDir{name: stepName(step), step: step, complete: true} }
	inc := func(step int) ckptDir { return ckptDir{name: stepName(step), step: step} }
	tmp := ckptDir{name: ".tmp-123", step: -1, leftover: true}
	other := ckptDir{name: "notes", step: -1}
	cases := []struct {
		name   string
		dirs   []ckptDir
		keep   int
		delete []string
		oldest int
	}{
		{"fewer than keep", []ckptDir{c(10), c(20)}, 2, nil, 10},
		{"keep the newest two", []ckptDir{c(30), c(10), c(20), c(40)}, 2, []string{stepName(10), stepName(20)}, 30},
		{"keep one", []ckptDir{c(10), c(20), c(30)}, 1, []string{stepName(10), stepName(20)}, 30},
		{"keep 0 is keep 1: the newest complete never goes", []ckptDir{c(10), c(20)}, 0, []string{stepName(10)}, 20},
		{"incomplete older than the newest complete go, newer stay", []ckptDir{inc(5), c(10), inc(15), c(20), inc(25)}, 5,
			[]string{stepName(5), stepName(15)}, 10},
		{"leftovers of interrupted saves go, other directories stay", []ckptDir{c(10), tmp, other}, 2, []string{".tmp-123"}, 10},
		{"nothing complete: nothing goes", []ckptDir{inc(5), inc(10), tmp}, 1, nil, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			del, oldest := prunePlan(tc.dirs, tc.keep)
			var names []string
			for _, d := range del {
				names = append(names, d.name)
			}
			sort.Strings(names)
			if !slices.Equal(names, tc.delete) || oldest != tc.oldest {
				t.Errorf("delete %q oldest kept %d, want %q and %d", names, oldest, tc.delete, tc.oldest)
			}
		})
	}
}

func stepName(step int) string { return filepath.Base(checkpoint.Dir("", step)) }

// listDir returns the names under dir, sorted.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		out = append(out, de.Name())
	}
	return out
}

func resultSteps(res *contract.Result) []int {
	var steps []int
	for _, c := range res.Checkpoints {
		steps = append(steps, c.Step)
	}
	return steps
}

// TestCheckpointsToKeepLocal: with a checkpoint every step and checkpointsToKeep 1, a stopped run keeps only its
// newest checkpoint, resumes from it to the same weights as an uninterrupted run, and pruning removes the
// incomplete checkpoint and the save leftover older than the newest complete one, but neither the incomplete one
// newer than it nor a directory that is not a checkpoint's. The result lists only what is kept.
func TestCheckpointsToKeepLocal(t *testing.T) {
	dir := t.TempDir()
	dataPath := writeDemo(t, dir, 120, 9)
	rc := func(out string, keep int) contract.RunConfig {
		c := tinySFT(dataPath, filepath.Join(dir, out), 6)
		c.Training.CheckpointEvery, c.Training.CheckpointsToKeep = 1, keep
		return c
	}
	whole := mustRun(t, rc("whole", 0))
	if got := resultSteps(whole); !slices.Equal(got, []int{5, 6}) {
		t.Errorf("default checkpointsToKeep: result lists steps %v, want [5 6]", got)
	}
	if got := listDir(t, filepath.Join(dir, "whole", "checkpoints")); !slices.Equal(got, []string{stepName(5), stepName(6)}) {
		t.Errorf("default checkpointsToKeep: %v left, want steps 5 and 6", got)
	}

	runUntil(t, rc("cut", 1), 3)
	ckpts := filepath.Join(dir, "cut", "checkpoints")
	if got := listDir(t, ckpts); !slices.Equal(got, []string{stepName(3)}) {
		t.Fatalf("after the interrupt: %v, want only step 3", got)
	}
	for _, d := range []string{stepName(2), stepName(9), ".tmp-4242", "notes"} {
		if err := os.MkdirAll(filepath.Join(ckpts, d), 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(ckpts, d, "model.safetensors"), []byte("partial"), 0o644)
	}
	var events recorder
	cfg, err := NewConfig(rc("cut", 1))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), cfg, Options{Progress: &events})
	if err != nil {
		t.Fatal(err)
	}
	if res.ResumedFromStep != 3 || res.ModelDigest != whole.ModelDigest {
		t.Errorf("resumed from %d to weights %s, want step 3 and the uninterrupted run's %s", res.ResumedFromStep, res.ModelDigest, whole.ModelDigest)
	}
	if got := listDir(t, ckpts); !slices.Equal(got, []string{"notes", stepName(6), stepName(9)}) {
		t.Errorf("left %v, want step 6, the newer incomplete step 9 and notes", got)
	}
	if got := resultSteps(res); !slices.Equal(got, []int{6}) {
		t.Errorf("result lists steps %v, want [6]", got)
	}
	if !events.hasPruned(6) {
		t.Errorf("no checkpoints-pruned event with oldestKept 6: %v", events.events)
	}
	if _, err := NewConfig(rc("bad", -1)); err == nil {
		t.Error("checkpointsToKeep -1 accepted")
	}
}

// TestCheckpointsToKeepS3 prunes an S3 output (and the local scratch copies): with checkpointsToKeep 2 a stopped
// and resumed run leaves the two newest complete checkpoints in the bucket, deletes a half-uploaded older one,
// and ends with the uninterrupted run's weights.
func TestCheckpointsToKeepS3(t *testing.T) {
	srv := s3test.Start(t, s3Bucket)
	ctx := context.Background()
	local := writeDemo(t, t.TempDir(), 120, 5)
	data := openS3(t, srv, "data")
	if err := data.UploadFile(ctx, local, "demo.jsonl"); err != nil {
		t.Fatal(err)
	}
	rc := func(out string) contract.RunConfig {
		c := tinySFT(data.URI("demo.jsonl"), srv.URI(s3Bucket, out), 5)
		c.Training.CheckpointEvery, c.Training.CheckpointsToKeep = 1, 2
		return c
	}
	whole := mustRun(t, rc("runs/whole"))

	runUntil(t, rc("runs/cut"), 3)
	out := openS3(t, srv, "runs/cut")
	steps, err := remoteSteps(ctx, out)
	if err != nil || !slices.Equal(steps, []string{stepName(3), stepName(2)}) {
		t.Fatalf("after the interrupt: %v %v, want steps 3 and 2", steps, err)
	}
	// An older checkpoint whose upload was cut short (a previous attempt's) must go once a newer one completes.
	half := t.TempDir()
	os.WriteFile(filepath.Join(half, "model.safetensors"), []byte("partial"), 0o644)
	if err := out.UploadDir(ctx, half, "checkpoints/"+stepName(1), checkpoint.CompleteFile); err != nil {
		t.Fatal(err)
	}
	var events recorder
	cfg, err := NewConfig(rc("runs/cut"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(ctx, cfg, Options{Progress: &events})
	if err != nil {
		t.Fatal(err)
	}
	if res.ResumedFromStep != 3 || res.ModelDigest != whole.ModelDigest {
		t.Errorf("resumed from %d to weights %s, want step 3 and the uninterrupted run's %s", res.ResumedFromStep, res.ModelDigest, whole.ModelDigest)
	}
	steps, err = remoteSteps(ctx, out)
	if err != nil || !slices.Equal(steps, []string{stepName(5), stepName(4)}) {
		t.Errorf("left in the bucket: %v %v, want steps 5 and 4", steps, err)
	}
	mustExist(t, out, "checkpoints/"+stepName(5)+"/COMPLETE", "checkpoints/"+stepName(4)+"/optimizer.safetensors", "model/model.safetensors")
	if got := resultSteps(res); !slices.Equal(got, []int{4, 5}) {
		t.Errorf("result lists steps %v, want [4 5]", got)
	}
	if !events.hasPruned(4) {
		t.Errorf("no checkpoints-pruned event with oldestKept 4: %v", events.events)
	}
}

func (r *recorder) hasPruned(oldest int) bool {
	for _, e := range r.events {
		if e["event"] == "checkpoints-pruned" && e["oldestKept"] == oldest {
			return true
		}
	}
	return false
}
