package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/hf"
)

// runErr runs rc and returns its error, which must be an *Error with the given reason and exit code.
func runErr(t *testing.T, rc contract.RunConfig, reason string, code int) error {
	t.Helper()
	cfg, err := NewConfig(rc)
	if err == nil {
		_, err = Run(context.Background(), cfg, Options{})
	}
	if err == nil {
		t.Fatalf("want a %s failure, the run succeeded", reason)
	}
	if got := ErrorMessage(err).Reason; got != reason || ExitCode(err) != code {
		t.Errorf("got reason %s exit %d (%v), want %s exit %d", got, ExitCode(err), err, reason, code)
	}
	return err
}

func TestRunRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	dataPath := writeDemo(t, dir, 60, 9)
	out := func(name string) string { return filepath.Join(dir, name) }

	// A pinned digest that no longer matches.
	rc := tinySFT(dataPath, out("digest"), 1)
	rc.Dataset.Digest = "sha256:" + strings.Repeat("0", 64)
	err := runErr(t, rc, ReasonDatasetChanged, contract.ExitInvalidInput)
	if !strings.Contains(err.Error(), "sha256:0000") {
		t.Errorf("message %q does not give the pinned digest", err)
	}
	// ... and one that matches.
	if rc.Dataset.Digest, err = fileDigest(dataPath); err != nil {
		t.Fatal(err)
	}
	mustRun(t, rc)

	// An invalid row fails the run with its line and field, nothing is silently dropped.
	bad := filepath.Join(dir, "bad.jsonl")
	raw, _ := os.ReadFile(dataPath)
	os.WriteFile(bad, append(raw, []byte(`{"prompt": "1+1=", "chosen": 2, "rejected": "3"}`+"\n")...), 0o644)
	err = runErr(t, tinySFT(bad, out("bad"), 1), ReasonInvalidDataset, contract.ExitInvalidInput)
	if !strings.Contains(err.Error(), "line 61") || !strings.Contains(err.Error(), "chosen") {
		t.Errorf("message %q does not name line 61 and field chosen", err)
	}

	// A missing dataset.
	runErr(t, tinySFT(filepath.Join(dir, "missing.jsonl"), out("missing"), 1), ReasonDatasetUnreadable, contract.ExitInvalidInput)

	// DPO needs preference rows.
	sftRows := filepath.Join(dir, "sft.jsonl")
	os.WriteFile(sftRows, []byte(`{"prompt": "1+1=", "completion": "2"}`+"\n"+`{"prompt": "1+2=", "completion": "3"}`+"\n"), 0o644)
	ref := mustRun(t, tinySFT(dataPath, out("ref"), 2)).ModelURI
	rc = tinyDPO(sftRows, ref, out("dpo-sft-rows"), 1)
	rc.Dataset.EvalFraction = 0
	runErr(t, rc, ReasonInvalidDataset, contract.ExitInvalidInput)

	// An unreadable reference.
	runErr(t, tinyDPO(dataPath, out("nowhere"), out("dpo-noref"), 1), ReasonReferenceUnreadable, contract.ExitInvalidInput)

	// An output directory holding another run's checkpoints is not resumed with other settings.
	rc = tinySFT(dataPath, out("changed"), 4)
	rc.Training.CheckpointEvery = 2
	mustRun(t, rc)
	rc.Training.BatchSize = 8
	err = runErr(t, rc, ReasonInvalidConfig, contract.ExitInvalidInput)
	if !strings.Contains(err.Error(), "batchSize was 16, now 8") {
		t.Errorf("message %q does not name the changed setting", err)
	}
}

func TestDisplacementWarning(t *testing.T) {
	if w := displacementWarning(Metrics{"eval_rewards/chosen": -0.25}); !strings.Contains(w, "likelihood displacement") || !strings.Contains(w, "-0.25") {
		t.Errorf("negative chosen reward: warning %q", w)
	}
	for _, m := range []Metrics{{"eval_rewards/chosen": 0.1}, {"eval_loss": 1}, nil} {
		if w := displacementWarning(m); w != "" {
			t.Errorf("%v: unexpected warning %q", m, w)
		}
	}
}

func TestErrorMessageOfPlainError(t *testing.T) {
	err := errors.New("disk full")
	if ExitCode(err) != contract.ExitFailed || ErrorMessage(err).Reason != ReasonTrainingFailed {
		t.Errorf("plain error: exit %d reason %s", ExitCode(err), ErrorMessage(err).Reason)
	}
	if ExitCode(nil) != contract.ExitOK {
		t.Errorf("nil error: exit %d", ExitCode(nil))
	}
}

// trainer/hf's errors carry their own reasons (ModelUnsupported, InsufficientMemory): wrapped or not, they exit
// with ExitInvalidInput (never retried) and reach the termination message with that reason and their message.
func TestHFErrorsAreInvalidInputWithTheirReason(t *testing.T) {
	unsupported := fmt.Errorf("model.from: %w", &hf.UnsupportedError{Architecture: "GemmaForCausalLM", Field: "architectures"})
	memory := &hf.MemoryError{Estimate: hf.MemoryEstimate{Parameters: 134_515_008, Total: 3 << 30}, Plan: hf.MemoryPlan{BatchSize: 8, ContextLength: 256},
		Limit: 2 << 30, LimitSource: "/sys/fs/cgroup/memory.max", FitsBatchSize: 2, FitsEstimate: 1900 << 20}
	cases := []struct {
		err    error
		reason string
		has    string
	}{
		{unsupported, contract.ReasonModelUnsupported, `"GemmaForCausalLM" is not supported`},
		{memory, contract.ReasonInsufficientMemory, "batch size 2 would fit"},
		{&hf.ConfigError{Field: "hidden_size", Detail: "is 0"}, contract.ReasonModelUnreadable, "hidden_size"},
	}
	for _, tc := range cases {
		if code := ExitCode(tc.err); code != contract.ExitInvalidInput {
			t.Errorf("%v: exit code %d, want %d", tc.err, code, contract.ExitInvalidInput)
		}
		raw, err := EncodeTermination(contract.TerminationMessage{Error: ErrorMessage(tc.err)})
		if err != nil {
			t.Fatal(err)
		}
		var back contract.TerminationMessage
		if err := json.Unmarshal(raw, &back); err != nil || back.Error == nil || back.Error.Reason != tc.reason || !strings.Contains(back.Error.Message, tc.has) {
			t.Errorf("termination message %s (%v), want reason %s and a message with %q", raw, err, tc.reason, tc.has)
		}
	}
	if code := ExitCode(errors.New("disk full")); code != contract.ExitFailed {
		t.Errorf("a plain error exits %d, want %d", code, contract.ExitFailed)
	}
}

// An SFT run from a model directory of an architecture the trainer does not implement fails before training with
// exit code 3 and reason ModelUnsupported naming it (the operator shows that reason in the run's status).
func TestRunFromUnsupportedArchitecture(t *testing.T) {
	dir := t.TempDir()
	dataPath := writeDemo(t, dir, 60, 4)
	base := mustRun(t, tinySFT(dataPath, filepath.Join(dir, "base"), 1))
	src := strings.TrimPrefix(base.ModelURI, "file://")
	gemma := filepath.Join(dir, "gemma")
	if err := os.MkdirAll(gemma, 0o755); err != nil {
		t.Fatal(err)
	}
	des, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		raw, err := os.ReadFile(filepath.Join(src, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if de.Name() == "config.json" {
			var c map[string]any
			if err := json.Unmarshal(raw, &c); err != nil {
				t.Fatal(err)
			}
			c["architectures"], c["model_type"] = []string{"GemmaForCausalLM"}, "gemma"
			raw, _ = json.Marshal(c)
		}
		os.WriteFile(filepath.Join(gemma, de.Name()), raw, 0o644)
	}
	rc := tinySFT(dataPath, filepath.Join(dir, "out"), 1)
	rc.Model = contract.ModelConfig{From: gemma}
	err = runErr(t, rc, contract.ReasonModelUnsupported, contract.ExitInvalidInput)
	if !strings.Contains(err.Error(), "GemmaForCausalLM") || !strings.Contains(err.Error(), "LlamaForCausalLM") {
		t.Errorf("message %q does not name the architecture found and the supported ones", err)
	}
}
