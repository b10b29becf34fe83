package train

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/data"
	"github.com/preftune/preftune/trainer/tokenizer"
)

// events records progress events by name.
type events struct {
	NoProgress
	mu  sync.Mutex
	got map[string]map[string]any
}

func (e *events) Event(name string, fields map[string]any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.got == nil {
		e.got = map[string]map[string]any{}
	}
	e.got[name] = fields
}

func hasWarning(ws []string, want string) bool {
	for _, w := range ws {
		if strings.Contains(w, want) {
			return true
		}
	}
	return false
}

// TestCaseIdenticalAfterTruncationRun is case 06: at context 64 every pair is token-identical after truncation;
// the DPO run fails with NoTrainingSignal (exit code 3) instead of training on ln 2 with no gradient. The same
// data with room for the responses trains; training.maxLength 64 on that model brings the failure back.
func TestCaseIdenticalAfterTruncationRun(t *testing.T) {
	path := caseFile(t, "06-identical-after-truncation.jsonl")
	ref := referenceFor(t, path, 64)
	rc := tinyDPO(path, ref, filepath.Join(t.TempDir(), "dpo"), 3)
	rc.Training.BatchSize = 4
	rc.Dataset.EvalFraction = 0
	res, e := runCase(t, rc, nil)
	if e == nil || e.Reason != ReasonNoTrainingSignal || !strings.Contains(e.Message, "no pair carries a preference signal: all 8 pairs") {
		t.Fatalf("context 64: result %+v error %+v", res, e)
	}
	cfg, _ := NewConfig(rc)
	if _, err := Run(t.Context(), cfg, Options{}); ExitCode(err) != contract.ExitInvalidInput {
		t.Fatalf("exit code %d, want %d", ExitCode(err), contract.ExitInvalidInput)
	}
	// With an eval split the message counts train and eval together, as the truncation event and inspect-dataset
	// do (it said "all 7 pairs", the training split's, next to identicalPairs 8).
	rc.Dataset.EvalFraction = 0.1
	rc.Output.URI = filepath.Join(t.TempDir(), "dpo")
	ev := &events{}
	if res, e = runCase(t, rc, ev); e == nil || e.Reason != ReasonNoTrainingSignal || !strings.Contains(e.Message, "all 8 pairs") {
		t.Fatalf("with an eval split: result %+v error %+v", res, e)
	}
	if f := ev.got["truncation"]; f == nil || f["identicalPairs"] != 8 {
		t.Errorf("truncation event %v", f)
	}
	if f := ev.got["dataset"]; f == nil || f["train"] != 7 || f["eval"] != 1 {
		t.Errorf("dataset event %v: want the 8 pairs split 7 and 1", f)
	}
	rc.Dataset.EvalFraction = 0

	ref256 := referenceFor(t, path, 256)
	rc = tinyDPO(path, ref256, filepath.Join(t.TempDir(), "dpo"), 1)
	rc.Training.BatchSize = 4
	rc.Dataset.EvalFraction = 0
	res, e = runCase(t, rc, nil)
	if e != nil || res.Truncation == nil || res.Truncation.ContextLength != 256 || res.Truncation.RowsTruncated != 0 {
		t.Fatalf("context 256: %+v %+v", res, e)
	}
	rc.Training.MaxLength = 64
	rc.Output.URI = filepath.Join(t.TempDir(), "dpo")
	if _, e = runCase(t, rc, nil); e == nil || e.Reason != ReasonNoTrainingSignal {
		t.Fatalf("maxLength 64: %+v", e)
	}
	rc.Training.MaxLength = 1
	if _, e = runCase(t, rc, nil); e == nil || !strings.Contains(e.Message, "training.maxLength") {
		t.Fatalf("maxLength 1: %+v", e)
	}
	// Above the model's positions: the model's context, said in a warning rather than silently.
	rc.Training.MaxLength = 4096
	rc.Output.URI = filepath.Join(t.TempDir(), "dpo")
	res, e = runCase(t, rc, nil)
	if e != nil || res.Truncation.ContextLength != 256 ||
		!hasWarning(res.Warnings, "training.maxLength 4096 is above the model's 256 positions") {
		t.Fatalf("maxLength 4096: %+v %+v", res, e)
	}
}

// TestCaseAsymmetricPromptTruncationRun is case 07 as a DPO run at context 64: the prompt is cut once per pair
// and the counts are in the result, the warnings and the truncation event.
func TestCaseAsymmetricPromptTruncationRun(t *testing.T) {
	path := caseFile(t, "07-asymmetric-prompt-truncation.jsonl")
	ref := referenceFor(t, path, 64)
	rc := tinyDPO(path, ref, filepath.Join(t.TempDir(), "dpo"), 1)
	rc.Training.BatchSize = 4
	rc.Dataset.EvalFraction = 0
	ev := &events{}
	res, e := runCase(t, rc, ev)
	if e != nil {
		t.Fatal(e)
	}
	want := contract.Truncation{ContextLength: 64, RowsTruncated: 8}
	if res.Truncation == nil || *res.Truncation != want {
		t.Fatalf("truncation %+v, want %+v", res.Truncation, want)
	}
	if !hasWarning(res.Warnings, "8 of 8 pairs were truncated to the context of 64 tokens") {
		t.Errorf("warnings %q", res.Warnings)
	}
	if f := ev.got["truncation"]; f == nil || f["rowsTruncated"] != 8 || f["contextLength"] != 64 {
		t.Errorf("truncation event %v", f)
	}
	// Both sides of every pair were given the same prompt tokens (the reference's table holds each sequence).
	p, tok, _, err := LoadModelDir(strings.TrimPrefix(ref, "file://"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := data.ReadFile(path, data.Options{})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := data.NewEncoder(tok, "", "", contextFor(p.ContextLength, 0))
	if err != nil {
		t.Fatal(err)
	}
	er, err := enc.Encode(d.Rows, true)
	if err != nil {
		t.Fatal(err)
	}
	for i, ex := range er.Examples {
		c, r := ex.Chosen, ex.Rejected
		if tok.Decode(c.Tokens[:c.ResponseStart]) != tok.Decode(r.Tokens[:r.ResponseStart]) {
			t.Errorf("pair %d: prompts differ", i)
		}
	}
}

// TestCaseLongPromptSFTRun is case 17: `sft --context 32`; the rows truncated, the prompt emptied and the
// completion cut without EOS are counted in the result and named in the warnings.
func TestCaseLongPromptSFTRun(t *testing.T) {
	path := caseFile(t, "17-long-prompt-sft.jsonl")
	rc := tinySFT(path, filepath.Join(t.TempDir(), "sft"), 1)
	rc.Dataset.EvalFraction = 0
	res, e := runCase(t, rc, nil)
	if e != nil {
		t.Fatal(e)
	}
	want := contract.Truncation{ContextLength: 32, RowsTruncated: 7, PromptsEmptied: 1, ResponsesCut: 1}
	if res.Truncation == nil || *res.Truncation != want {
		t.Fatalf("truncation %+v, want %+v", res.Truncation, want)
	}
	for _, w := range []string{"7 of 7 rows were truncated to the context of 32 tokens", "1 row lost its whole prompt to truncation: line 7",
		"1 response was cut before its end token"} {
		if !hasWarning(res.Warnings, w) {
			t.Errorf("warnings %q lack %q", res.Warnings, w)
		}
	}
}

// TestCaseTemplateMarkersRun is case 12 as a run: the rows whose messages hold the template's control tokens are
// named in the warnings; the chat template the run used is written into the model's tokenizer_config.json, and
// an override (model.chatTemplate) is what the DPO run on that model renders with.
func TestCaseTemplateMarkersRun(t *testing.T) {
	path := caseFile(t, "12-template-markers.jsonl")
	rc := tinySFT(path, filepath.Join(t.TempDir(), "sft"), 1)
	rc.Model.Architecture.ContextLength = 128
	rc.Dataset.EvalFraction = 0
	res, e := runCase(t, rc, nil)
	if e != nil {
		t.Fatal(e)
	}
	if !hasWarning(res.Warnings, "1 row has content holding the chat template's own control tokens (<|assistant|> <|user|>") ||
		!hasWarning(res.Warnings, ": line 1") {
		t.Errorf("warnings %q", res.Warnings)
	}
	dir := strings.TrimPrefix(res.ModelURI, "file://")
	c, err := tokenizer.ReadConfig(dir)
	if err != nil || c.ChatTemplate != data.BuiltinChatTemplate {
		t.Fatalf("built-in template not recorded: %v %q", err, c.ChatTemplate)
	}
	// An override: a template whose markers are [INST] and [/INST]; row 1 holds none of them, so no warning, and
	// the DPO run from this model reads the same template from its tokenizer_config.json.
	override := `{% for m in messages %}{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] + ' [/INST]' }}{% else %}{{ ' ' + m['content'] }}{% endif %}{% endfor %}`
	rc = tinySFT(path, filepath.Join(t.TempDir(), "sft"), 1)
	rc.Model.Architecture.ContextLength = 128
	rc.Model.ChatTemplate = override
	rc.Dataset.EvalFraction = 0
	if res, e = runCase(t, rc, nil); e != nil {
		t.Fatal(e)
	}
	if hasWarning(res.Warnings, "control tokens") {
		t.Errorf("warnings %q", res.Warnings)
	}
	ref := strings.TrimPrefix(res.ModelURI, "file://")
	if c, err := tokenizer.ReadConfig(ref); err != nil || c.ChatTemplate != override {
		t.Fatalf("override not recorded: %v %q", err, c.ChatTemplate)
	}
	if _, err := os.Stat(filepath.Join(ref, tokenizer.FileName)); err != nil {
		t.Fatal(err)
	}
	// The checkpoint records it too: a DPO run (or a resume) from a checkpoint renders as the run did.
	if len(res.Checkpoints) == 0 {
		t.Fatal("no checkpoint")
	}
	ckpt := strings.TrimPrefix(res.Checkpoints[len(res.Checkpoints)-1].URI, "file://")
	if c, err := tokenizer.ReadConfig(ckpt); err != nil || c.ChatTemplate != override {
		t.Fatalf("override not recorded in the checkpoint %s: %v %q", ckpt, err, c.ChatTemplate)
	}
	for _, from := range []string{ref, ckpt} {
		drc := tinyDPO(path, from, filepath.Join(t.TempDir(), "dpo"), 1)
		drc.Dataset.EvalFraction = 0
		ev := &events{}
		if _, e := runCase(t, drc, ev); e != nil {
			t.Fatal(e)
		}
		if f := ev.got["truncation"]; f == nil || f["chatTemplate"] != data.TemplateModel {
			t.Errorf("dpo from %s: truncation event %v: want the reference's own template", from, f)
		}
	}
}

// TestTemplateRaiseNamesRowOrSkips: a row the chat template refuses (raise_exception) fails the run naming its
// line, or under invalidRows: Skip is left out and counted in the warnings.
func TestTemplateRaiseNamesRowOrSkips(t *testing.T) {
	var rows strings.Builder
	for i := 0; i < 6; i++ {
		if i == 2 {
			rows.WriteString(`{"messages":[{"role":"system","content":"s"},{"role":"user","content":"q"},{"role":"assistant","content":"a"}]}` + "\n")
			continue
		}
		rows.WriteString(`{"messages":[{"role":"user","content":"1+1?"},{"role":"assistant","content":"2"}]}` + "\n")
	}
	path := filepath.Join(t.TempDir(), "chat.jsonl")
	if err := os.WriteFile(path, []byte(rows.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	rc := tinySFT(path, filepath.Join(t.TempDir(), "sft"), 1)
	rc.Dataset.EvalFraction = 0
	rc.Model.ChatTemplate = `{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{{ m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}`
	_, e := runCase(t, rc, nil)
	if e == nil || e.Reason != ReasonInvalidDataset || !strings.Contains(e.Message, "cannot render 1 of 6 rows; line 3 (chosen): ") ||
		!strings.Contains(e.Message, "System role not supported") {
		t.Fatalf("reject: %+v", e)
	}
	// With an eval split the message still counts every row (train and eval together).
	rc.Dataset.EvalFraction = 0.5
	if _, e := runCase(t, rc, nil); e == nil || !strings.Contains(e.Message, "cannot render 1 of 6 rows; line 3 (chosen): ") {
		t.Fatalf("reject with an eval split: %+v", e)
	}
	rc.Dataset.EvalFraction = 0
	rc.Dataset.InvalidRows = contract.InvalidRowsSkip
	ev := &events{}
	res, e := runCase(t, rc, ev)
	if e != nil || !hasWarning(res.Warnings, "1 row the chat template cannot render was skipped (invalidRows: Skip): line 3") {
		t.Fatalf("skip: %+v %+v", res, e)
	}
	// The dataset event counts the skipped row (it said skipped 0 while the warning said one was skipped).
	if f := ev.got["dataset"]; f == nil || f["skipped"] != 1 || f["valid"] != 5 || f["train"] != 5 || f["eval"] != 0 || f["rows"] != 6 {
		t.Errorf("dataset event %v", f)
	}
}
