package main

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/preftune/preftune/trainer/checkpoint"
	"github.com/preftune/preftune/trainer/contract"
)

// casesDir holds small inputs on which the trainer once did the wrong thing (../shared/testdata/cases/README.md
// says what each shows and what the trainer should do).
const casesDir = "../../../shared/testdata/cases"

func caseFile(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(casesDir, name)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("case file %s is absent (%v): skipping", p, err)
	}
	return p
}

// TestInspectCases runs inspect-dataset on the case files of issue 13 and checks the outcome the README's table
// expects for each.
func TestInspectCases(t *testing.T) {
	cases := []struct {
		file  string
		args  []string
		code  int
		check func(t *testing.T, r *contract.DatasetReport, stderr string)
	}{
		{"02-implicit-conversational.jsonl", nil, 0, func(t *testing.T, r *contract.DatasetReport, _ string) {
			if r.Format != "implicitPrompt" || r.Counts.Pairs != 2 || r.Counts.Invalid != 0 {
				t.Errorf("format %s counts %+v", r.Format, r.Counts)
			}
		}},
		{"03-tool-role.jsonl", nil, contract.ExitInvalidInput, func(t *testing.T, r *contract.DatasetReport, stderr string) {
			if r.Counts.Invalid != 2 || len(r.InvalidRows) != 2 || r.InvalidRows[0].Line != 1 || r.InvalidRows[1].Line != 3 ||
				r.InvalidRows[0].Field != "prompt[1].tool_calls" || !strings.Contains(r.InvalidRows[0].Reason, "tool calls are not supported") {
				t.Errorf("counts %+v invalid %+v", r.Counts, r.InvalidRows)
			}
			if !strings.Contains(stderr, "line 1, field prompt[1].tool_calls") {
				t.Errorf("stderr %q", stderr)
			}
		}},
		{"08a-split-text-sft.jsonl", []string{"--eval-fraction", "0.1"}, 0, func(t *testing.T, r *contract.DatasetReport, _ string) {
			if r.SplitBy != "row" || r.Counts.Train != 18 || r.Counts.Eval != 2 {
				t.Errorf("split by %q counts %+v", r.SplitBy, r.Counts)
			}
		}},
		{"08b-split-same-prompt.jsonl", []string{"--eval-fraction", "0.1"}, 0, func(t *testing.T, r *contract.DatasetReport, _ string) {
			if r.SplitBy != "row" || r.Counts.Train != 18 || r.Counts.Eval != 2 || !hasWarningWith(r, "split by row, not by prompt") {
				t.Errorf("split by %q counts %+v warnings %q", r.SplitBy, r.Counts, r.Warnings)
			}
		}},
		{"09-empty-null-whitespace.jsonl", nil, contract.ExitInvalidInput, func(t *testing.T, r *contract.DatasetReport, _ string) {
			if r.Counts.Invalid != 2 || r.Counts.Skipped != 0 || !hasWarningWith(r, "2 rows have a response that is only whitespace: lines 4, 5") {
				t.Errorf("counts %+v warnings %q", r.Counts, r.Warnings)
			}
		}},
		{"09-empty-null-whitespace.jsonl", []string{"--invalid-rows", "Skip"}, 0, func(t *testing.T, r *contract.DatasetReport, _ string) {
			if r.Counts.Invalid != 2 || r.Counts.Skipped != 2 || r.Counts.Pairs != 3 || !hasWarningWith(r, "were skipped (invalidRows: Skip): lines 2, 3") {
				t.Errorf("counts %+v warnings %q", r.Counts, r.Warnings)
			}
		}},
		{"10-nan-reference.jsonl", nil, 0, func(t *testing.T, r *contract.DatasetReport, _ string) {
			if r.Counts.Pairs != 16 || len(r.Warnings) != 0 {
				t.Errorf("counts %+v warnings %q", r.Counts, r.Warnings)
			}
		}},
		{"11-ipo-length.jsonl", nil, 0, func(t *testing.T, r *contract.DatasetReport, _ string) {
			if r.Counts.Pairs != 12 || r.Lengths.RejectedMax != 92 {
				t.Errorf("counts %+v lengths %+v", r.Counts, r.Lengths)
			}
		}},
		{"13-empty-chosen-implicit.jsonl", nil, 0, func(t *testing.T, r *contract.DatasetReport, _ string) {
			if r.Counts.Pairs != 3 || r.Counts.Invalid != 0 || !hasWarningWith(r, "2 rows have an empty chosen response") {
				t.Errorf("counts %+v warnings %q", r.Counts, r.Warnings)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.file+strings.Join(c.args, ""), func(t *testing.T) {
			code, _, stderr, msg := inspectRun(t, append([]string{"--data", caseFile(t, c.file)}, c.args...)...)
			if code != c.code || msg.Dataset == nil {
				t.Fatalf("exit %d (want %d), message %+v, stderr %s", code, c.code, msg, stderr)
			}
			c.check(t, msg.Dataset, stderr)
		})
	}
}

func hasWarningWith(r *contract.DatasetReport, want string) bool {
	return warningsHave(r.Warnings, want)
}

// TestGenerateRefusesNonFiniteWeights is case 10's generate: a model with a NaN weight is refused (exit 3, the
// tensor named) instead of printing what NaN logits pick.
func TestGenerateRefusesNonFiniteWeights(t *testing.T) {
	data := caseFile(t, "10-nan-reference.jsonl")
	out := t.TempDir()
	rc := contract.RunConfig{APIVersion: contract.APIVersion, Kind: contract.KindSFT,
		Dataset:  contract.DatasetConfig{URI: data},
		Model:    contract.ModelConfig{Architecture: &contract.Architecture{Layers: 1, DModel: 16, Heads: 2, ContextLength: 32}},
		Training: contract.TrainingConfig{MaxSteps: 1, BatchSize: 4, LearningRate: 1e-3},
		Output:   contract.OutputConfig{URI: out}}
	if code := runTraining(rc, "", false); code != 0 {
		t.Fatalf("sft exit %d", code)
	}
	dir := filepath.Join(out, "model")
	m, _, err := checkpoint.LoadModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range m.Tensors {
		if m.Tensors[i].Name == "transformer.ln_f.weight" {
			m.Tensors[i].Data[3] = float32(math.NaN())
		}
	}
	bad := filepath.Join(t.TempDir(), "model")
	if _, err := checkpoint.SaveModel(bad, m); err != nil {
		t.Fatal(err)
	}
	stderr := captureStderr(t, func() {
		if code := runGenerate([]string{"--model", bad, "--prompt", "76+9="}); code != contract.ExitInvalidInput {
			t.Errorf("generate exit %d, want %d", code, contract.ExitInvalidInput)
		}
	})
	if !strings.Contains(stderr, `tensor "transformer.ln_f.weight"`) || !strings.Contains(stderr, "non-finite") {
		t.Errorf("stderr %q does not name the tensor", stderr)
	}
	// Finite weights that overflow: refused at the first token, not printed.
	for i := range m.Tensors {
		if m.Tensors[i].Name == "transformer.ln_f.weight" {
			for j := range m.Tensors[i].Data {
				m.Tensors[i].Data[j] = 3e38
			}
		}
	}
	huge := filepath.Join(t.TempDir(), "model")
	if _, err := checkpoint.SaveModel(huge, m); err != nil {
		t.Fatal(err)
	}
	stderr = captureStderr(t, func() {
		if code := runGenerate([]string{"--model", huge, "--prompt", "76+9="}); code == 0 {
			t.Error("generate on an overflowing model exited 0")
		}
	})
	if !strings.Contains(stderr, "non-finite") {
		t.Errorf("stderr %q", stderr)
	}
	// The untouched model still generates.
	if code := runGenerate([]string{"--model", dir, "--prompt", "76+9=", "--max-new", "2"}); code != 0 {
		t.Errorf("generate on the good model: exit %d", code)
	}
}

// captureStderr runs f with os.Stderr sent to a pipe and returns what it wrote.
func captureStderr(t *testing.T, f func()) string {
	t.Helper()
	return capture(t, &os.Stderr, f)
}

// captureStdout runs f with os.Stdout sent to a pipe and returns what it wrote.
func captureStdout(t *testing.T, f func()) string {
	t.Helper()
	return capture(t, &os.Stdout, f)
}

// capture runs f with *file (os.Stdout or os.Stderr) sent to a pipe and returns what it wrote.
func capture(t *testing.T, file **os.File, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := *file
	*file = w
	defer func() { *file = old }()
	done := make(chan string)
	go func() {
		var b bytes.Buffer
		b.ReadFrom(r)
		done <- b.String()
	}()
	f()
	w.Close()
	*file = old
	return <-done
}
