package train

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/plot"
	"github.com/preftune/preftune/trainer/storage"
	"github.com/preftune/preftune/trainer/storage/s3test"
)

// s3Bucket is the bucket the S3 round-trip tests use.
const s3Bucket = "ml"

// openS3 opens a Location under the test bucket.
func openS3(t *testing.T, srv *s3test.Server, prefix string) *storage.Location {
	t.Helper()
	l, err := storage.Open(context.Background(), srv.URI(s3Bucket, prefix))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func mustExist(t *testing.T, l *storage.Location, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if ok, err := l.Exists(context.Background(), k); err != nil || !ok {
			t.Errorf("%s: %s missing (%v)", l, k, err)
		}
	}
}

// TestS3RoundTrip runs everything through an S3-compatible server on loopback: the dataset is read from s3://,
// an SFT run writes its checkpoints, model, metrics and plots to s3://, a DPO run uses that s3:// model as its
// reference, and a stopped run resumes from its newest complete s3:// checkpoint (passing over a half-uploaded
// one) to the same weights as an uninterrupted run.
func TestS3RoundTrip(t *testing.T) {
	srv := s3test.Start(t, s3Bucket)
	ctx := context.Background()
	local := writeDemo(t, t.TempDir(), 120, 5)
	data := openS3(t, srv, "data")
	if err := data.UploadFile(ctx, local, "demo.jsonl"); err != nil {
		t.Fatal(err)
	}
	dataURI := data.URI("demo.jsonl")

	sftRC := func(out string) contract.RunConfig {
		rc := tinySFT(dataURI, srv.URI(s3Bucket, out), 4)
		rc.Training.CheckpointEvery, rc.Training.EvalEvery = 2, 2
		return rc
	}
	sft := mustRun(t, sftRC("runs/sft"))
	sftOut := openS3(t, srv, "runs/sft")
	if want := sftOut.URI("model"); sft.ModelURI != want {
		t.Errorf("ModelURI = %q, want %q", sft.ModelURI, want)
	}
	var steps []int
	for _, c := range sft.Checkpoints {
		steps = append(steps, c.Step)
		if want := sftOut.URI(fmt.Sprintf("checkpoints/step-%08d", c.Step)); c.URI != want {
			t.Errorf("checkpoint URI %q, want %q", c.URI, want)
		}
		if c.Time == "" {
			t.Errorf("checkpoint %d has no time", c.Step)
		}
	}
	if !slices.Equal(steps, []int{2, 4}) {
		t.Errorf("checkpoints %v, want [2 4]", steps)
	}
	if !slices.Equal(sft.Plots, []string{sftOut.URI(plot.LossFile)}) {
		t.Errorf("plots %q", sft.Plots)
	}
	mustExist(t, sftOut, "checkpoints/step-00000002/COMPLETE", "checkpoints/step-00000004/model.safetensors",
		"checkpoints/step-00000004/optimizer.safetensors", "model/model.safetensors", "model/config.json",
		"model/tokenizer.json", "metrics.jsonl", plot.LossFile)
	// What was uploaded is what the result says: the model's digest matches the stored weights.
	dl := t.TempDir()
	if err := sftOut.DownloadFile(ctx, "model/model.safetensors", filepath.Join(dl, "w")); err != nil {
		t.Fatal(err)
	}
	if d, _ := fileDigest(filepath.Join(dl, "w")); d != sft.ModelDigest {
		t.Errorf("stored weights digest %s, result says %s", d, sft.ModelDigest)
	}
	if err := sftOut.DownloadFile(ctx, "metrics.jsonl", filepath.Join(dl, "metrics.jsonl")); err != nil {
		t.Fatal(err)
	}
	if ls := trainLosses(t, dl); len(ls) != 4 {
		t.Errorf("stored metrics.jsonl has %d train lines, want 4", len(ls))
	}

	t.Run("DPOFromS3Reference", func(t *testing.T) {
		rc := tinyDPO(dataURI, sft.ModelURI, srv.URI(s3Bucket, "runs/dpo"), 2)
		res := mustRun(t, rc)
		out := openS3(t, srv, "runs/dpo")
		if res.ModelURI != out.URI("model") || res.ModelDigest == "" {
			t.Errorf("dpo model %q %q", res.ModelURI, res.ModelDigest)
		}
		if want := []string{out.URI(plot.LossFile), out.URI(plot.RewardsFile)}; !slices.Equal(res.Plots, want) {
			t.Errorf("dpo plots %q, want %q", res.Plots, want)
		}
		if _, ok := res.Metrics["eval_rewards/accuracies"]; !ok {
			t.Errorf("dpo metrics %v", res.Metrics)
		}
		mustExist(t, out, "model/model.safetensors", "checkpoints/step-00000002/COMPLETE", plot.RewardsFile)
	})

	t.Run("ResumeFromS3Checkpoint", func(t *testing.T) {
		rc := sftRC("runs/resume")
		runUntil(t, rc, 1) // stops after step 1: the interrupt checkpoint is step 1
		out := openS3(t, srv, "runs/resume")
		mustExist(t, out, "checkpoints/step-00000001/COMPLETE")
		// A checkpoint whose upload was cut short (no COMPLETE) is newer but must be passed over.
		half := t.TempDir()
		os.WriteFile(filepath.Join(half, "model.safetensors"), []byte("partial"), 0o644)
		if err := out.UploadDir(ctx, half, "checkpoints/step-00000003", "COMPLETE"); err != nil {
			t.Fatal(err)
		}
		var events recorder
		cfg, err := NewConfig(rc)
		if err != nil {
			t.Fatal(err)
		}
		res, err := Run(ctx, cfg, Options{Progress: &events})
		if err != nil {
			t.Fatal(err)
		}
		if res.ResumedFromStep != 1 {
			t.Errorf("resumed from %d, want 1", res.ResumedFromStep)
		}
		if !events.has("checkpoint-skipped", out.URI("checkpoints/step-00000003")) {
			t.Errorf("half-uploaded checkpoint not reported as skipped: %v", events.events)
		}
		if res.ModelDigest != sft.ModelDigest {
			t.Errorf("resumed run's weights %s differ from the uninterrupted run's %s", res.ModelDigest, sft.ModelDigest)
		}
		if err := out.DownloadFile(ctx, "metrics.jsonl", filepath.Join(t.TempDir(), "m", "metrics.jsonl")); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("DatasetChanged", func(t *testing.T) {
		raw, err := os.ReadFile(local)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(raw)
		if err := data.UploadFile(ctx, local, "pinned.jsonl"); err != nil {
			t.Fatal(err)
		}
		rc := tinySFT(data.URI("pinned.jsonl"), srv.URI(s3Bucket, "runs/changed"), 2)
		rc.Dataset.Digest = "sha256:" + hex.EncodeToString(sum[:])
		mustRun(t, rc) // the pinned data is still there: fine
		changed := filepath.Join(t.TempDir(), "changed.jsonl")
		os.WriteFile(changed, append(raw, raw[:len(raw)/2]...), 0o644)
		if err := data.UploadFile(ctx, changed, "pinned.jsonl"); err != nil {
			t.Fatal(err)
		}
		rc.Output.URI = srv.URI(s3Bucket, "runs/changed-2")
		cfg, err := NewConfig(rc)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Run(ctx, cfg, Options{})
		var e *Error
		if !errors.As(err, &e) || e.Reason != ReasonDatasetChanged || ExitCode(err) != contract.ExitInvalidInput {
			t.Fatalf("changed dataset: got %v (exit %d), want reason %s", err, ExitCode(err), ReasonDatasetChanged)
		}
	})

	t.Run("MissingInputs", func(t *testing.T) {
		rc := tinySFT(data.URI("nope.jsonl"), srv.URI(s3Bucket, "runs/missing"), 2)
		cfg, err := NewConfig(rc)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Run(ctx, cfg, Options{})
		if ErrorMessage(err).Reason != ReasonDatasetUnreadable || ExitCode(err) != contract.ExitInvalidInput {
			t.Errorf("missing dataset: %v", err)
		}
		if strings.Contains(err.Error(), s3test.SecretKey) {
			t.Errorf("error quotes the secret: %v", err)
		}
		rc = tinyDPO(dataURI, srv.URI(s3Bucket, "runs/no-model/model"), srv.URI(s3Bucket, "runs/missing-2"), 2)
		cfg, _ = NewConfig(rc)
		_, err = Run(ctx, cfg, Options{})
		if ErrorMessage(err).Reason != ReasonReferenceUnreadable {
			t.Errorf("missing reference: %v", err)
		}
	})
}

// TestLocalRunWritesPlots: a file:// run writes the plots in place and lists their URIs.
func TestLocalRunWritesPlots(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	res := mustRun(t, tinySFT(writeDemo(t, dir, 60, 2), "file://"+out, 2))
	if want := []string{"file://" + filepath.Join(out, plot.LossFile)}; !slices.Equal(res.Plots, want) {
		t.Errorf("plots %q, want %q", res.Plots, want)
	}
	if _, err := os.Stat(filepath.Join(out, plot.LossFile)); err != nil {
		t.Error(err)
	}
}

// recorder keeps the progress events.
type recorder struct{ events []map[string]any }

func (r *recorder) Step(int, int, Metrics) {}
func (r *recorder) Event(kind string, f map[string]any) {
	e := map[string]any{"event": kind}
	for k, v := range f {
		e[k] = v
	}
	r.events = append(r.events, e)
}

func (r *recorder) has(kind, dir string) bool {
	for _, e := range r.events {
		if e["event"] == kind && e["dir"] == dir {
			return true
		}
	}
	return false
}
