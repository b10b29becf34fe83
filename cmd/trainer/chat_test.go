package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/data"
	"github.com/preftune/preftune/trainer/storage"
	"github.com/preftune/preftune/trainer/storage/s3test"
	"github.com/preftune/preftune/trainer/tokenizer"
	"github.com/preftune/preftune/trainer/train"
)

// recorder keeps the progress events of a run (runProgress is swapped for it).
type recorder struct {
	train.NoProgress
	mu     sync.Mutex
	events map[string]map[string]any
}

func (r *recorder) Event(name string, f map[string]any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.events == nil {
		r.events = map[string]map[string]any{}
	}
	r.events[name] = f
}

func recordRun(t *testing.T, run func([]string) int, args ...string) (int, *recorder) {
	t.Helper()
	rec := &recorder{}
	old := runProgress
	runProgress = rec
	defer func() { runProgress = old }()
	return run(args), rec
}

// llama2Template is a Llama-2 style chat template: the template writes BOS and closes each assistant turn with
// EOS itself.
const llama2Template = `{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] + ' [/INST]' }}{% elif m['role'] == 'system' %}{{ '<<SYS>>\n' + m['content'] + '\n<</SYS>>\n\n' }}{% else %}{{ ' ' + m['content'] + ' ' + eos_token }}{% endif %}{% endfor %}`

const chatRows = `{"messages": [{"role": "user", "content": "Who was in the park?"}, {"role": "assistant", "content": "A little girl named Lily."}]}
{"messages": [{"role": "system", "content": "Tell stories."}, {"role": "user", "content": "What did she see?"}, {"role": "assistant", "content": "She saw a big, red ball."}]}
{"messages": [{"role": "user", "content": "Was it high?"}, {"role": "assistant", "content": "Yes, it was too high."}]}
{"messages": [{"role": "user", "content": "What did she do?"}, {"role": "assistant", "content": "She asked her mom for help."}]}
`

func countOf(ids []int, id int) int {
	n := 0
	for _, x := range ids {
		if x == id {
			n++
		}
	}
	return n
}

func intsOf(t *testing.T, v any) []int {
	t.Helper()
	ids, ok := v.([]int)
	if !ok {
		t.Fatalf("want []int, got %T", v)
	}
	return ids
}

// TestSFTStories260KConversational: stories260K SFT through the CLI on conversational rows. With a template that
// writes BOS and closes the turn with EOS (--chat-template), the trained sequence has BOS exactly once (first)
// and EOS exactly once (last); the template is written into model/tokenizer_config.json. Without it (stories260K
// has no template) the built-in template renders the rows, with a warning, and the tokenizer's BOS and EOS are
// added once each.
func TestSFTStories260KConversational(t *testing.T) {
	dir := storiesDir(t)
	tmp := t.TempDir()
	rows := writeFile(t, "chat.jsonl", chatRows)
	tmplFile := writeFile(t, "llama2.jinja", llama2Template)
	tok, err := tokenizer.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(tmp, "sft")
	code, rec := recordRun(t, runSFT, "--from", dir, "--data", rows, "--out", out, "--steps", "1", "--batch-size", "2",
		"--eval-fraction", "0", "--chat-template", tmplFile, "--max-length", "200")
	if code != contract.ExitOK {
		t.Fatalf("sft exit %d (events %v)", code, rec.events)
	}
	ex := rec.events["example"]
	ids := intsOf(t, ex["chosenTokens"])
	if countOf(ids, tok.BOS()) != 1 || ids[0] != tok.BOS() {
		t.Errorf("BOS %d not exactly once, first: %v", tok.BOS(), ids)
	}
	if countOf(ids, tok.EOS()) != 1 || ids[len(ids)-1] != tok.EOS() {
		t.Errorf("EOS %d not exactly once, last: %v", tok.EOS(), ids)
	}
	start := ex["chosenResponseStart"].(int)
	if got := tok.Decode(ids[start:]); !strings.HasPrefix(strings.TrimSpace(got), "A little girl named Lily.") &&
		!strings.HasPrefix(strings.TrimSpace(got), "She") && !strings.HasPrefix(strings.TrimSpace(got), "Yes") {
		t.Errorf("response decodes to %q", got)
	}
	if tr := rec.events["truncation"]; tr["contextLength"] != 200 || tr["chatTemplate"] != data.TemplateOverride {
		t.Errorf("truncation event %v", tr)
	}
	c, err := tokenizer.ReadConfig(filepath.Join(out, "model"))
	if err != nil || c.ChatTemplate != llama2Template || c.BOSToken != "<s>" {
		t.Fatalf("model/tokenizer_config.json: %v template %q bos %q", err, c.ChatTemplate, c.BOSToken)
	}

	// No template: the built-in one, with a warning in the result.
	out2 := filepath.Join(tmp, "sft2")
	term := filepath.Join(tmp, "term.json")
	code, rec = recordRun(t, runSFT, "--from", dir, "--data", rows, "--out", out2, "--steps", "1", "--batch-size", "2",
		"--eval-fraction", "0", "--termination-log", term)
	if code != contract.ExitOK {
		t.Fatalf("sft without a template: exit %d", code)
	}
	ids = intsOf(t, rec.events["example"]["chosenTokens"])
	if countOf(ids, tok.BOS()) != 1 || ids[0] != tok.BOS() || countOf(ids, tok.EOS()) != 1 || ids[len(ids)-1] != tok.EOS() {
		t.Errorf("built-in template: BOS/EOS not once each: %v", ids)
	}
	var msg contract.TerminationMessage
	if b, err := os.ReadFile(term); err != nil || json.Unmarshal(b, &msg) != nil || msg.Result == nil {
		t.Fatalf("termination message: %v", err)
	}
	if !warningsHave(msg.Result.Warnings, "the model has no chat template: 4 conversational rows were rendered with the trainer's built-in template") {
		t.Errorf("warnings %q", msg.Result.Warnings)
	}
	if msg.Result.Truncation == nil || msg.Result.Truncation.ContextLength != 512 || msg.Result.Truncation.RowsTruncated != 0 {
		t.Errorf("truncation %+v", msg.Result.Truncation)
	}
	if c, _ := tokenizer.ReadConfig(filepath.Join(out2, "model")); c.ChatTemplate != data.BuiltinChatTemplate {
		t.Errorf("built-in template not recorded in model/tokenizer_config.json: %q", c.ChatTemplate)
	}
}

func warningsHave(ws []string, want string) bool {
	for _, w := range ws {
		if strings.Contains(w, want) {
			return true
		}
	}
	return false
}

// TestInspectWithModel: inspect-dataset --model adds token lengths and the truncation counts of the run's
// context, warns about rows holding the template's control tokens (case 12), prints the first rows with the
// prompt/response boundary, fails a dataset with no training signal left (case 06), and reads the same from
// an InspectConfig with model and maxLength (the operator's validation Job).
func TestInspectWithModel(t *testing.T) {
	dir := storiesDir(t)
	tmplFile := writeFile(t, "llama2.jinja", llama2Template)

	code, _, stderr, msg := inspectRun(t, "--data", caseFile(t, "12-template-markers.jsonl"), "--model", dir, "--chat-template", tmplFile)
	r := msg.Dataset
	if code != 0 || r == nil || r.Tokens == nil || r.Truncation == nil || r.Truncation.ContextLength != 512 {
		t.Fatalf("case 12: exit %d report %+v stderr %s", code, r, stderr)
	}
	if !hasWarningWith(r, "1 row has content holding the chat template's own control tokens (</s> <s>)") || !hasWarningWith(r, "markers: line 2") {
		t.Errorf("case 12 warnings %q", r.Warnings)
	}
	if !strings.Contains(stderr, "--- line 1, chosen:\n<s> [INST] Hi\n<|assistant|>") || !strings.Contains(stderr, "[/INST]"+data.BoundaryMark+"I follow the rules. </s>") {
		t.Errorf("preview: %s", stderr)
	}
	if hasWarningWith(r, "which the tokenizer has no token for") {
		t.Errorf("Llama 2's template on stories260K: warnings %q; [INST] is text in its tokenizer", r.Warnings)
	}
	// A ChatML template on stories260K, which has no <|im_start|> or <|im_end|> token: the run and the inspection
	// say the model was most likely not trained with it.
	chatml := writeFile(t, "chatml.jinja", `{% for m in messages %}{{ '<|im_start|>' + m['role'] + '
' + m['content'] + '<|im_end|>
' }}{% endfor %}`+
		`{% if add_generation_prompt %}{{ '<|im_start|>assistant
' }}{% endif %}`)
	_, _, _, msg = inspectRun(t, "--data", caseFile(t, "12-template-markers.jsonl"), "--model", dir, "--chat-template", chatml)
	if !hasWarningWith(msg.Dataset, "the chat template writes <|im_end|>, <|im_start|>, which the tokenizer has no token for") {
		t.Errorf("ChatML on stories260K: warnings %q", msg.Dataset.Warnings)
	}
	// The built-in template (stories260K has none): its markers are its role headers and the tokenizer's special
	// tokens, so both rows are named.
	_, _, _, msg = inspectRun(t, "--data", caseFile(t, "12-template-markers.jsonl"), "--model", dir)
	if !hasWarningWith(msg.Dataset, "control tokens (</s> <s> <|assistant|> <|user|>), which the model cannot tell from real turn markers: lines 1, 2") || !hasWarningWith(msg.Dataset, "the model has no chat template") {
		t.Errorf("built-in: warnings %q", msg.Dataset.Warnings)
	}

	// Case 07 at 32 tokens: every pair is truncated once; the counts are in the report.
	code, _, stderr, msg = inspectRun(t, "--data", caseFile(t, "07-asymmetric-prompt-truncation.jsonl"), "--model", dir, "--max-length", "32")
	if r := msg.Dataset; code != 0 || r.Truncation == nil || r.Truncation.ContextLength != 32 || r.Truncation.RowsTruncated != 8 ||
		r.Tokens.PromptMax <= 0 || r.Tokens.RejectedMax <= 0 {
		t.Fatalf("case 07: exit %d report %+v %+v stderr %s", code, r.Truncation, r.Tokens, stderr)
	}

	// Plain rows with a template given: said to be unused; a maxLength above the model's positions: said too.
	_, _, _, msg = inspectRun(t, "--data", caseFile(t, "07-asymmetric-prompt-truncation.jsonl"), "--model", dir,
		"--chat-template", tmplFile, "--max-length", "2048")
	if !hasWarningWith(msg.Dataset, "but no row is a conversation") || !hasWarningWith(msg.Dataset, "maxLength 2048 is above the model's 512 positions") {
		t.Errorf("plain rows with a template, maxLength 2048: warnings %q", msg.Dataset.Warnings)
	}

	// Case 06 at 16 tokens: every pair identical after truncation.
	code, _, stderr, msg = inspectRun(t, "--data", caseFile(t, "06-identical-after-truncation.jsonl"), "--model", dir, "--max-length", "16")
	if code != contract.ExitInvalidInput || msg.Dataset == nil || msg.Dataset.Truncation.IdenticalPairs != 8 ||
		!strings.Contains(stderr, "NoTrainingSignal: no pair carries a preference signal") {
		t.Fatalf("case 06: exit %d report %+v stderr %s", code, msg.Dataset, stderr)
	}

	// The same through an InspectConfig, as the operator's Job passes it.
	ic := contract.InspectConfig{APIVersion: contract.APIVersion, Kind: contract.KindInspect,
		Dataset:   contract.DatasetConfig{URI: mustAbs(t, caseFile(t, "07-asymmetric-prompt-truncation.jsonl"))},
		Model:     &contract.ModelConfig{From: "file://" + mustAbs(t, dir)},
		MaxLength: 32}
	b, _ := json.Marshal(ic)
	code, _, _, msg = inspectRun(t, "--config", writeFile(t, "inspect.json", string(b)))
	if code != 0 || msg.Dataset == nil || msg.Dataset.Truncation == nil || msg.Dataset.Truncation.RowsTruncated != 8 {
		t.Fatalf("--config: exit %d %+v", code, msg.Dataset)
	}
	// Flags that need --model.
	if code, _, _, _ := inspectRun(t, "--data", caseFile(t, "07-asymmetric-prompt-truncation.jsonl"), "--max-length", "32"); code != contract.ExitUsage {
		t.Errorf("--max-length without --model: exit %d", code)
	}
	// An architecture the trainer does not implement: the reason sft and dpo give, ModelUnsupported.
	falcon := t.TempDir()
	for _, name := range []string{"tokenizer.json", "tokenizer_config.json", "config.json"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if name == "config.json" {
			b = []byte(strings.Replace(string(b), "LlamaForCausalLM", "FalconForCausalLM", 1))
		}
		writeFileIn(t, falcon, name, b)
	}
	code, _, stderr, _ = inspectRun(t, "--data", caseFile(t, "07-asymmetric-prompt-truncation.jsonl"), "--model", falcon)
	if code != contract.ExitInvalidInput || !strings.Contains(stderr, contract.ReasonModelUnsupported) || !strings.Contains(stderr, "FalconForCausalLM") {
		t.Errorf("unsupported architecture: exit %d: %s", code, stderr)
	}
}

func writeFileIn(t *testing.T, dir, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestTokenizeChatTemplateFlag: tokenize --chat --chat-template FILE renders with the file's template (the one a
// run given the same flag uses), not the model's; without either, a pretrained model's missing template falls
// back to the built-in one, as a run does, with a note naming the flag.
func TestTokenizeChatTemplateFlag(t *testing.T) {
	dir := storiesDir(t)
	tmplFile := writeFile(t, "llama2.jinja", llama2Template)
	code, _, stderr := tokenizeRun(t, "Hi", "--model", dir, "--chat", "--chat-template", tmplFile, "--json")
	if code != contract.ExitOK || !strings.Contains(stderr, `rendered by the chat template: "<s>[INST] Hi [/INST]"`) {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if code, _, stderr := tokenizeRun(t, "Hi", "--model", dir, "--chat"); code != contract.ExitOK || !strings.Contains(stderr, "built-in") ||
		!strings.Contains(stderr, "--chat-template") || !strings.Contains(stderr, `rendered by the chat template: "<|user|>\nHi\n<|assistant|>\n"`) {
		t.Fatalf("no template: exit %d: %s", code, stderr)
	}
}

// TestInspectWithModelOnS3: --model s3://… downloads config.json and the tokenizer files only (never the weights)
// and reports as for a local directory.
func TestInspectWithModelOnS3(t *testing.T) {
	dir := storiesDir(t)
	srv := s3test.Start(t, "models")
	l, err := storage.Open(context.Background(), srv.URI("models", "stories"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.UploadDir(context.Background(), dir, "", ""); err != nil {
		t.Fatal(err)
	}
	code, _, stderr, msg := inspectRun(t, "--data", caseFile(t, "07-asymmetric-prompt-truncation.jsonl"), "--model", srv.URI("models", "stories"), "--max-length", "32")
	if code != 0 || msg.Dataset == nil || msg.Dataset.Truncation == nil || msg.Dataset.Truncation.RowsTruncated != 8 {
		t.Fatalf("exit %d %+v: %s", code, msg.Dataset, stderr)
	}
	if strings.Contains(stderr, "SecretKey") || strings.Contains(stderr, s3test.SecretKey) {
		t.Errorf("secret in output")
	}
}

// TestGenerateChat: generate --chat renders each prompt as one user message with the template a run would use
// and continues the ids training gives that prompt: with Llama 2's template on stories260K the completion equals
// the raw completion of the rendered text (the same ids: BOS once, then the rendered prompt), and differs from
// the raw prompt's; without a template it says the built-in one is used; --chat-template without --chat is a
// usage error.
func TestGenerateChat(t *testing.T) {
	dir := storiesDir(t)
	tmplFile := writeFile(t, "llama2.jinja", llama2Template)
	generate := func(args ...string) (int, string, string) {
		var code int
		var stdout string
		stderr := captureStderr(t, func() {
			stdout = captureStdout(t, func() {
				code = runGenerate(append([]string{"--model", dir, "--max-new", "16"}, args...))
			})
		})
		return code, stdout, stderr
	}
	code, chat, stderr := generate("--chat", "--chat-template", tmplFile, "--prompt", "Tell me a story about Lily")
	if code != contract.ExitOK || !strings.Contains(stderr, "--chat-template") {
		t.Fatalf("generate --chat: exit %d, stderr %s", code, stderr)
	}
	// Llama 2's template renders "<s>[INST] {text} [/INST]": its "<s>" is the BOS the raw path adds once too.
	_, rendered, _ := generate("--prompt", "[INST] Tell me a story about Lily [/INST]")
	_, raw, _ := generate("--prompt", "Tell me a story about Lily")
	if chat != rendered || chat == raw {
		t.Errorf("--chat: %q; the rendered text raw: %q (want equal); the prompt raw: %q (want different)", chat, rendered, raw)
	}
	if code, _, stderr := generate("--chat", "--prompt", "Hi"); code != contract.ExitOK || !strings.Contains(stderr, "built-in") {
		t.Errorf("generate --chat without a template: exit %d, stderr %s", code, stderr)
	}
	if code, _, _ := generate("--chat-template", tmplFile, "--prompt", "Hi"); code != contract.ExitUsage {
		t.Errorf("--chat-template without --chat: exit %d, want %d", code, contract.ExitUsage)
	}
}
