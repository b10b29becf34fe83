package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/data"
	"github.com/preftune/preftune/trainer/tokenizer"
)

func tokenizeRun(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := tokenizeCmd(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestTokenizeStories260K(t *testing.T) {
	dir := "../../../shared/models/stories260K"
	if _, err := os.Stat(filepath.Join(dir, "tokenizer.json")); err != nil {
		t.Skipf("%s is absent (../shared is the project's read-only test data beside the repository): %v", dir, err)
	}
	code, stdout, stderr := tokenizeRun(t, "Once upon a time", "--model", dir, "--special", "--json")
	if code != contract.ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var out tokenizeOutput
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("%s: %v", stdout, err)
	}
	// tokenizer_cases.json's first case (llama2.c's encoder).
	if !reflect.DeepEqual(out.IDs, []int{1, 403, 407, 261, 378}) ||
		!reflect.DeepEqual(out.Pieces, []string{"<s>", "▁Once", "▁upon", "▁a", "▁time"}) || out.Decoded != "<s> Once upon a time" {
		t.Fatalf("got %+v", out)
	}
	code, stdout, _ = tokenizeRun(t, "Once upon", "--model", dir)
	if code != contract.ExitOK || !strings.Contains(stdout, `"▁Once"`) || strings.Contains(stdout, `"<s>"`) ||
		!regexp.MustCompile(`"▁upon"\s+" upon"\n`).MatchString(stdout) ||
		!strings.Contains(stdout, "2 tokens for 9 bytes (huggingface, vocabulary 512); decodes back to the input") {
		t.Fatalf("table output:\n%s", stdout)
	}
}

func TestTokenizeByteModels(t *testing.T) {
	hf := t.TempDir()
	if err := tokenizer.WriteByteHF(hf, 64); err != nil {
		t.Fatal(err)
	}
	legacy := t.TempDir()
	if err := tokenizer.Save(legacy, tokenizer.NewByte()); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{hf, legacy} {
		code, stdout, stderr := tokenizeRun(t, "hé\n", "--model", dir, "--json", "--special")
		if code != contract.ExitOK {
			t.Fatalf("%s: exit %d: %s", dir, code, stderr)
		}
		var out tokenizeOutput
		if err := json.Unmarshal([]byte(stdout), &out); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(out.IDs, []int{256, 'h', 0xC3, 0xA9, '\n'}) ||
			!reflect.DeepEqual(out.Pieces, []string{"<|bos|>", "<0x68>", "<0xC3>", "<0xA9>", "<0x0A>"}) {
			t.Fatalf("%s: %+v", dir, out)
		}
	}
}

func TestTokenizeErrors(t *testing.T) {
	if code, _, stderr := tokenizeRun(t, "x"); code != contract.ExitUsage || !strings.Contains(stderr, "--model is required") {
		t.Fatalf("no --model: exit %d, %s", code, stderr)
	}
	dir := t.TempDir()
	bad := `{"model": {"type": "Unigram", "vocab": []}, "added_tokens": []}`
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := tokenizeRun(t, "x", "--model", dir)
	if code != contract.ExitInvalidInput || !strings.Contains(stderr, `model type "Unigram" is not supported`) {
		t.Fatalf("unsupported model: exit %d, %s", code, stderr)
	}
	if _, ok := commands["tokenize"]; !ok {
		t.Fatal("tokenize is not registered")
	}
}

func TestTokenizeSpecialTokenText(t *testing.T) {
	dir := t.TempDir()
	if err := tokenizer.WriteByteHF(dir, 64); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := tokenizeRun(t, "a<|eos|>", "--model", dir)
	if code != contract.ExitOK || !strings.Contains(stdout, "2 tokens for 8 bytes") ||
		!strings.Contains(stdout, "decodes back to the input (special tokens kept)") {
		t.Fatalf("exit %d, stdout:\n%s\nstderr: %s", code, stdout, stderr)
	}
}

// TestTokenizeChat: --chat renders stdin as a user message through the model's chat template and tokenizes the
// rendering as a training prompt is: the template's BOS and EOS text become their ids once each, nothing is added on
// top; a message holding the template's own markers is warned about; a model without a template is refused.
func TestTokenizeChat(t *testing.T) {
	const src = "../../../shared/models/stories260K"
	dir := storiesTokenizerCopy(t, []string{"special_tokens_map.json", "generation_config.json"}, func(cfg map[string]any) {
		cfg["chat_template"] = "{{ bos_token }}{% for m in messages %}{{ m['role'] + ': ' + m['content'] + eos_token }}{% endfor %}" +
			"{% if add_generation_prompt %}{{ 'assistant:' }}{% endif %}"
	})

	code, stdout, stderr := tokenizeRun(t, "Once upon a time", "--model", dir, "--chat", "--json")
	if code != contract.ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, `rendered by the chat template: "<s>user: Once upon a time</s>assistant:"`) {
		t.Errorf("stderr %q does not show the rendering", stderr)
	}
	var out tokenizeOutput
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("%s: %v", stdout, err)
	}
	count := func(id int) (n int) {
		for _, x := range out.IDs {
			if x == id {
				n++
			}
		}
		return n
	}
	if len(out.IDs) == 0 || out.IDs[0] != 1 || count(1) != 1 || count(2) != 1 {
		t.Errorf("ids %v: want BOS (1) first and once, EOS (2) once", out.IDs)
	}

	if _, _, stderr = tokenizeRun(t, "a </s> b", "--model", dir, "--chat"); !strings.Contains(stderr, "control markers") {
		t.Errorf("a message holding </s> is not warned about: %q", stderr)
	}
	// A model without a template falls back to the built-in one, as a run does, and says so.
	if code, _, stderr = tokenizeRun(t, "hi", "--model", src, "--chat"); code != contract.ExitOK || !strings.Contains(stderr, "built-in") {
		t.Errorf("a model without a template: exit %d, %q", code, stderr)
	}
	if code, _, stderr = tokenizeRun(t, "hi", "--model", src, "--chat-template", "x.jinja"); code != contract.ExitUsage || !strings.Contains(stderr, "--chat-template needs --chat") {
		t.Errorf("--chat-template without --chat: exit %d, %q", code, stderr)
	}
}

// TestTokenizeChatMatchesTraining: tokenize --chat's ids are the prompt ids training gives a row holding the same
// user message (data.Encoder on that model, Tokens[:ResponseStart]), with and without --special, for stories260K
// with no template (the built-in fallback), Qwen2.5's (no BOS of its own: the tokenizer's is put first) and
// Llama-2's (writes BOS: exactly one), and for a copy with add_bos_token false (BOS only where the template writes
// it). stderr names the template used.
func TestTokenizeChatMatchesTraining(t *testing.T) {
	src := "../../../shared/models/stories260K"
	noBOS := storiesTokenizerCopy(t, []string{"generation_config.json"}, func(cfg map[string]any) { cfg["add_bos_token"] = false })
	const templates = "../../../shared/testdata/chat-templates"
	const message = "Once upon a time, who was there?"
	rowFile := filepath.Join(t.TempDir(), "rows.jsonl")
	row := `{"prompt":[{"role":"user","content":"` + message + `"}],"chosen":[{"role":"assistant","content":"A cat."}],` +
		`"rejected":[{"role":"assistant","content":"Nobody."}]}` + "\n"
	if err := os.WriteFile(rowFile, []byte(row), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := data.ReadFile(rowFile, data.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct {
		name, dir string
		addBOS    bool
	}{{"stories260K", src, true}, {"add_bos_token=false", noBOS, false}} {
		for _, tmpl := range []struct{ name, file, note string }{
			{"none", "", "built-in"}, {"qwen2.5", "qwen2.5.jinja", "qwen2.5.jinja (--chat-template)"},
			{"llama2", "llama2.jinja", "llama2.jinja (--chat-template)"},
		} {
			t.Run(m.name+"/"+tmpl.name, func(t *testing.T) {
				tok, err := tokenizer.LoadDir(m.dir)
				if err != nil {
					t.Fatal(err)
				}
				override, args := "", []string{"--model", m.dir, "--chat", "--json"}
				if tmpl.file != "" {
					path := filepath.Join(templates, tmpl.file)
					b, err := os.ReadFile(path)
					if err != nil {
						t.Skipf("%s is absent: %v", path, err)
					}
					override, args = string(b), append(args, "--chat-template", path)
				}
				tsrc, origin, err := data.ChatTemplateOf(override, m.dir)
				if err != nil {
					t.Fatal(err)
				}
				enc, err := data.NewEncoder(tok, tsrc, origin, 512)
				if err != nil {
					t.Fatal(err)
				}
				res, err := enc.Encode(d.Rows, true)
				if err != nil {
					t.Fatal(err)
				}
				s := res.Examples[0].Chosen
				want := s.Tokens[:s.ResponseStart]
				bos := 0
				for _, id := range want {
					if id == tok.BOS() {
						bos++
					}
				}
				if wantBOS := map[bool]int{true: 1, false: 0}[m.addBOS || tmpl.name == "llama2"]; bos != wantBOS {
					t.Errorf("training's prompt %v has %d BOS, want %d", want, bos, wantBOS)
				}
				for _, special := range []bool{false, true} {
					a := args
					if special {
						a = append(a[:len(a):len(a)], "--special")
					}
					code, stdout, stderr := tokenizeRun(t, message, a...)
					if code != contract.ExitOK {
						t.Fatalf("%v: exit %d: %s", a, code, stderr)
					}
					var out tokenizeOutput
					if err := json.Unmarshal([]byte(stdout), &out); err != nil {
						t.Fatalf("%s: %v", stdout, err)
					}
					if !reflect.DeepEqual(out.IDs, want) {
						t.Errorf("%v: ids %v, training's prompt ids %v", a, out.IDs, want)
					}
					if !strings.Contains(stderr, "chat template: ") || !strings.Contains(stderr, tmpl.note) {
						t.Errorf("%v: stderr does not name the template (%q): %q", a, tmpl.note, stderr)
					}
				}
			})
		}
	}
}

// storiesTokenizerCopy copies stories260K's tokenizer.json and the other files into a new directory, with its
// tokenizer_config.json changed by edit (skipping when ../shared is absent).
func storiesTokenizerCopy(t *testing.T, files []string, edit func(cfg map[string]any)) string {
	t.Helper()
	src := "../../../shared/models/stories260K"
	if _, err := os.Stat(filepath.Join(src, "tokenizer.json")); err != nil {
		t.Skipf("%s is absent (../shared is the project's read-only test data beside the repository): %v", src, err)
	}
	dir := t.TempDir()
	for _, f := range append([]string{"tokenizer.json"}, files...) {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var cfg map[string]any
	b, err := os.ReadFile(filepath.Join(src, "tokenizer_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	edit(cfg)
	b, _ = json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}
