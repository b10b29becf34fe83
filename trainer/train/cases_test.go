package train

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/data"
)

// The tests in this file run the small inputs of ../shared/testdata/cases (its README.md lists what the trainer
// did with each and what it should do) through short runs.

const casesDir = "../../../shared/testdata/cases"

func caseFile(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(casesDir, name)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("case file %s is absent (%v): skipping", p, err)
	}
	return p
}

// runErr runs rc and returns its error as the termination message would carry it (nil on success).
func runCase(t *testing.T, rc contract.RunConfig, p Progress) (*contract.Result, *contract.Error) {
	t.Helper()
	cfg, err := NewConfig(rc)
	if err != nil {
		return nil, ErrorMessage(err)
	}
	res, err := Run(context.Background(), cfg, Options{Progress: p})
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("error without a reason: %v", err)
		}
		return nil, ErrorMessage(err)
	}
	return res, nil
}

// referenceFor trains a 1-step SFT model on path at the given context and returns its model directory.
func referenceFor(t *testing.T, path string, ctx int) string {
	t.Helper()
	rc := tinySFT(path, filepath.Join(t.TempDir(), "sft"), 1)
	rc.Model.Architecture.ContextLength = ctx
	rc.Dataset.EvalFraction = 0
	rc.Dataset.InvalidRows = contract.InvalidRowsSkip
	return mustRun(t, rc).ModelURI
}

// corruptCopy loads the model in dir, lets edit change one tensor's values, and saves it in a new directory.
func corruptCopy(t *testing.T, dir, tensor string, edit func([]float32)) string {
	t.Helper()
	p, tok, _, err := LoadModelDir(strings.TrimPrefix(dir, "file://"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Values[tensor]; !ok {
		t.Fatalf("the model has no tensor %q to corrupt", tensor)
	}
	v, _ := p.Float32s(tensor)
	edit(v)
	out := filepath.Join(t.TempDir(), "model")
	if _, err := saveModel(out, p, tok, strings.TrimPrefix(dir, "file://")); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCaseNonFiniteWeights is case 10: a NaN or an infinity in any weight of a starting model or a DPO reference
// is found when the model is loaded, before training, and the error names the tensor.
func TestCaseNonFiniteWeights(t *testing.T) {
	path := caseFile(t, "10-nan-reference.jsonl")
	ref := referenceFor(t, path, 32)
	for _, c := range []struct {
		tensor string
		value  float32
	}{{"transformer.ln_f.weight", float32(math.NaN())}, {"transformer.h.1.mlp.c_fc.bias", float32(math.Inf(1))}, {"transformer.wte.weight", float32(math.Inf(-1))}} {
		t.Run(c.tensor, func(t *testing.T) {
			bad := corruptCopy(t, ref, c.tensor, func(v []float32) { v[len(v)/2] = c.value })
			if _, _, _, err := LoadModelDir(bad); err == nil || !strings.Contains(err.Error(), `tensor "`+c.tensor+`"`) {
				t.Fatalf("LoadModelDir: %v; want an error naming %s", err, c.tensor)
			}
			_, e := runCase(t, tinyDPO(path, bad, filepath.Join(t.TempDir(), "dpo"), 1), nil)
			if e == nil || e.Reason != ReasonReferenceUnreadable || !strings.Contains(e.Message, c.tensor) || !strings.Contains(e.Message, "non-finite") {
				t.Fatalf("dpo with that reference: %+v", e)
			}
			sft := tinySFT(path, filepath.Join(t.TempDir(), "sft"), 1)
			sft.Model = contract.ModelConfig{From: bad}
			if _, e := runCase(t, sft, nil); e == nil || e.Reason != ReasonModelUnreadable || !strings.Contains(e.Message, c.tensor) {
				t.Fatalf("sft from that model: %+v", e)
			}
		})
	}
	// Finite weights that overflow: the reference's log-probs are non-finite, found before the first step.
	huge := corruptCopy(t, ref, "transformer.ln_f.weight", func(v []float32) {
		for i := range v {
			v[i] = 3e38
		}
	})
	_, e := runCase(t, tinyDPO(path, huge, filepath.Join(t.TempDir(), "dpo"), 1), nil)
	if e == nil || e.Reason != ReasonReferenceUnreadable || !strings.Contains(e.Message, "log-probability") {
		t.Fatalf("dpo with an overflowing reference: %+v", e)
	}
}

// TestCaseIPOPerToken is case 11: IPO is fed per-token averaged log-probs, as TRL does, so logps/chosen and
// logps/rejected are means per token (a 3-byte and a 92-byte answer score alike under an untrained model), where
// sums made the long answer's about 20 times the short one's.
func TestCaseIPOPerToken(t *testing.T) {
	path := caseFile(t, "11-ipo-length.jsonl")
	ref := referenceFor(t, path, 128)
	rc := tinyDPO(path, ref, filepath.Join(t.TempDir(), "dpo"), 1)
	rc.DPO.LossType = "ipo"
	rc.Dataset.EvalFraction = 0
	res := mustRun(t, rc)
	c, r := res.Metrics["logps/chosen"], res.Metrics["logps/rejected"]
	if !(c < 0 && r < 0) || r/c > 2 || c/r > 2 || r < -10 {
		t.Fatalf("ipo logps/chosen %v, logps/rejected %v: want per-token means of similar size (about -ln 259 = -5.6)", c, r)
	}
	// The first IPO loss is (0 − 1/(2β))² whatever the lengths: policy and reference start equal.
	if l := readMetrics(t, filepath.Join(filepath.Dir(strings.TrimPrefix(res.ModelURI, "file://"))))[0]["loss"]; math.Abs(l-25) > 1e-3 {
		t.Fatalf("first ipo loss %v, want 25", l)
	}
	// Sigmoid keeps sums.
	rc = tinyDPO(path, ref, filepath.Join(t.TempDir(), "dpo"), 1)
	rc.Dataset.EvalFraction = 0
	res = mustRun(t, rc)
	if c, r := res.Metrics["logps/chosen"], res.Metrics["logps/rejected"]; r/c < 10 {
		t.Fatalf("sigmoid logps/chosen %v, logps/rejected %v: want sums (the rejected answers are 23 times longer)", c, r)
	}
}

// TestCaseInvalidRowsSkip: with invalidRows Skip a run trains on the valid rows of 09-empty-null-whitespace.jsonl
// (2 of 5 invalid), its warnings count the skipped rows and name their lines, and the digest it is pinned to is the
// whole file's; with Reject (the default) it fails naming the rows.
func TestCaseInvalidRowsSkip(t *testing.T) {
	path := caseFile(t, "09-empty-null-whitespace.jsonl")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	rc := tinySFT(path, filepath.Join(t.TempDir(), "sft"), 1)
	rc.Dataset.EvalFraction = 0
	rc.Dataset.Digest = "sha256:" + hex.EncodeToString(sum[:])
	if _, e := runCase(t, rc, nil); e == nil || e.Reason != ReasonInvalidDataset || !strings.Contains(e.Message, "2 of 5 rows are invalid") {
		t.Fatalf("reject: %+v", e)
	}
	rc.Dataset.InvalidRows = contract.InvalidRowsSkip
	res, e := runCase(t, rc, nil)
	if e != nil {
		t.Fatalf("skip: %+v", e)
	}
	joined := strings.Join(res.Warnings, "\n")
	for _, want := range []string{"2 of 5 rows are invalid and were skipped (invalidRows: Skip): lines 2, 3",
		// SFT trains on the chosen responses only: line 5's blank rejected one does not matter to it.
		"1 row has a response that is only whitespace: line 4"} {
		if !strings.Contains(joined, want) {
			t.Errorf("warnings %q lack %q", res.Warnings, want)
		}
	}
	rc.Dataset.InvalidRows = "Drop"
	if _, err := NewConfig(rc); err == nil || !strings.Contains(err.Error(), "dataset.invalidRows") {
		t.Fatalf("unknown policy: %v", err)
	}
}

// TestCaseEmptyChosenDPO is case 13: a DPO run trains on implicit-prompt rows whose chosen reply is empty (the
// chosen sequence is the prompt and the end-of-sequence token) and counts them in its warnings.
func TestCaseEmptyChosenDPO(t *testing.T) {
	path := caseFile(t, "13-empty-chosen-implicit.jsonl")
	ref := referenceFor(t, path, 64)
	rc := tinyDPO(path, ref, filepath.Join(t.TempDir(), "dpo"), 2)
	rc.Dataset.EvalFraction = 0
	rc.Training.BatchSize = 3
	res, e := runCase(t, rc, nil)
	if e != nil {
		t.Fatalf("dpo: %+v", e)
	}
	if !strings.Contains(strings.Join(res.Warnings, "\n"), "2 rows have an empty chosen response") {
		t.Fatalf("warnings %q", res.Warnings)
	}
	if l := res.Metrics["loss"]; !(l > 0) || math.IsInf(l, 0) {
		t.Fatalf("loss %v", l)
	}
}

// TestCaseSplitRepeatedPrompts is case 08: --eval-fraction 0.1 on {"text"} rows and on rows that share one prompt
// holds out 2 of 20 rows (it held out none, or all of them and failed), and the run says it split by row.
func TestCaseSplitRepeatedPrompts(t *testing.T) {
	for _, file := range []string{"08a-split-text-sft.jsonl", "08b-split-same-prompt.jsonl"} {
		t.Run(file, func(t *testing.T) {
			rc := tinySFT(caseFile(t, file), filepath.Join(t.TempDir(), "sft"), 1)
			rc.Model.Architecture.ContextLength = 64
			rec := &recorder{}
			res, e := runCase(t, rc, rec)
			if e != nil {
				t.Fatalf("sft: %+v", e)
			}
			if _, ok := res.Metrics["eval_loss"]; !ok {
				t.Fatalf("no eval_loss: %v", res.Metrics)
			}
			var ev map[string]any
			for _, e := range rec.events {
				if e["event"] == "dataset" {
					ev = e
				}
			}
			if ev == nil || ev["splitBy"] != data.SplitByRow || ev["train"] != 18 || ev["eval"] != 2 {
				t.Fatalf("dataset event %v", ev)
			}
		})
	}
}

// TestMinLearningRateRatio: cosine decays to training.minLearningRateRatio of the peak (10% unless set), as the
// API documents; 0 decays to 0 as Hugging Face's does. The rate of the last step is read from metrics.jsonl.
func TestMinLearningRateRatio(t *testing.T) {
	path := writeDemo(t, t.TempDir(), 40, 3)
	const peak, steps = 1e-3, 10
	lastRate := func(ratio *float64) float64 {
		rc := tinySFT(path, filepath.Join(t.TempDir(), "sft"), steps)
		rc.Training.LearningRate, rc.Training.WarmupSteps = peak, 0
		rc.Training.MinLearningRateRatio = ratio
		rc.Dataset.EvalFraction = 0
		mustRun(t, rc)
		var last float64
		for _, m := range readMetrics(t, rc.Output.URI) {
			if lr, ok := m["learning_rate"]; ok {
				last = lr
			}
		}
		return last
	}
	// The last update (step 9 of 10) runs at progress 9/10 of the cosine.
	cos := 0.5 * (1 + math.Cos(math.Pi*9/10))
	for _, c := range []struct {
		ratio *float64
		want  float64
	}{{nil, peak * (0.1 + 0.9*cos)}, {ptrTo(0.0), peak * cos}, {ptrTo(0.5), peak * (0.5 + 0.5*cos)}} {
		got := lastRate(c.ratio)
		if math.Abs(got-c.want) > 1e-12 {
			t.Errorf("minLearningRateRatio %v: last learning_rate %v, want %v", c.ratio, got, c.want)
		}
	}
	if got := lastRate(nil); got < 0.1*peak {
		t.Errorf("default: last learning_rate %v is below 10%% of the peak %v", got, peak)
	}
	rc := tinySFT(path, t.TempDir(), 1)
	rc.Training.MinLearningRateRatio = ptrTo(1.5)
	if _, err := NewConfig(rc); err == nil || !strings.Contains(err.Error(), "training.minLearningRateRatio") {
		t.Fatalf("ratio 1.5: %v", err)
	}
}

// TestCaseChatShapes: case 02 (conversational implicit prompt) trains with DPO; case 03 (tool calls) fails before
// training, naming the row and the field, instead of training on turns with their calls dropped.
func TestCaseChatShapes(t *testing.T) {
	path := caseFile(t, "02-implicit-conversational.jsonl")
	ref := referenceFor(t, path, 64)
	rc := tinyDPO(path, ref, filepath.Join(t.TempDir(), "dpo"), 1)
	rc.Dataset.EvalFraction = 0
	if _, e := runCase(t, rc, nil); e != nil {
		t.Fatalf("dpo on 02: %+v", e)
	}
	rc = tinyDPO(caseFile(t, "03-tool-role.jsonl"), ref, filepath.Join(t.TempDir(), "dpo"), 1)
	_, e := runCase(t, rc, nil)
	if e == nil || e.Reason != ReasonInvalidDataset || !strings.Contains(e.Message, "line 1, field prompt[1].tool_calls: tool calls are not supported") {
		t.Fatalf("dpo on 03: %+v", e)
	}
}
