package data

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/preftune/preftune/trainer/tokenizer"
)

const sharedTemplates = "../../../shared/testdata/chat-templates"

// storiesAddBOS loads stories260K's tokenizer from a copy whose tokenizer_config.json has add_bos_token set to
// *addBOS, or removed when addBOS is nil.
func storiesAddBOS(t *testing.T, addBOS *bool) *tokenizer.Pretrained {
	t.Helper()
	storiesTokenizer(t) // skips when ../shared is absent
	dir := t.TempDir()
	for _, f := range []string{tokenizer.FileName, tokenizer.GenerationConfigFileName} {
		b, err := os.ReadFile(filepath.Join(stories260K, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.Join(stories260K, tokenizer.ConfigFileName))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	delete(cfg, "add_bos_token")
	if addBOS != nil {
		cfg["add_bos_token"] = *addBOS
	}
	b, _ = json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, tokenizer.ConfigFileName), b, 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := tokenizer.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func readTemplate(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(sharedTemplates, name))
	if err != nil {
		t.Skipf("chat template %s is absent (../shared is the project's read-only test data): %v", name, err)
	}
	return string(b)
}

// TestAddBOSTokenRule: the sequence's BOS follows transformers. add_bos_token false: no BOS from the tokenizer, so
// plain-text rows, the built-in template and Qwen2.5's (which writes none) give sequences without BOS, while
// Llama-2's template, which writes bos_token itself, gives exactly one. add_bos_token true or absent: exactly one
// BOS, first, for every template. The prompt ids (PromptIDs) are each sequence's Tokens[:ResponseStart], and the
// token-length statistics count the BOS the rows really have.
func TestAddBOSTokenRule(t *testing.T) {
	f, tr := false, true
	templates := []struct{ name, src string }{
		{"plain", ""}, {"builtin", ""},
		{"qwen2.5", readTemplate(t, "qwen2.5.jinja")}, {"llama2", readTemplate(t, "llama2.jinja")},
	}
	chat := `{"prompt":[{"role":"user","content":"Who was there?"}],"chosen":[{"role":"assistant","content":"A cat."}],` +
		`"rejected":[{"role":"assistant","content":"Nobody."}]}`
	plain := `{"prompt":"Once upon a time","chosen":" there was a cat.","rejected":" the dog ran."}`
	for _, a := range []struct {
		name   string
		addBOS *bool
	}{{"false", &f}, {"true", &tr}, {"absent", nil}} {
		tok := storiesAddBOS(t, a.addBOS)
		for _, tm := range templates {
			t.Run(a.name+"/"+tm.name, func(t *testing.T) {
				want := 1
				if a.addBOS != nil && !*a.addBOS && tm.name != "llama2" {
					want = 0
				}
				origin := TemplateOverride
				if tm.src == "" {
					origin = TemplateBuiltin
				}
				e, err := NewEncoder(tok, tm.src, origin, 512)
				if err != nil {
					t.Fatal(err)
				}
				src := chat
				if tm.name == "plain" {
					src = plain
				}
				rows := mustParse(t, src, Options{}).Rows
				res, err := e.Encode(rows, true)
				if err != nil {
					t.Fatal(err)
				}
				prompt, _, err := e.PromptIDs(rows[0])
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range []Sequence{res.Examples[0].Chosen, res.Examples[0].Rejected} {
					if n := countID(s.Tokens, tok.BOS()); n != want || (want == 1 && s.Tokens[0] != tok.BOS()) {
						t.Errorf("%d BOS in %v, want %d (first)", n, s.Tokens, want)
					}
					if !slices.Equal(s.Tokens[:s.ResponseStart], prompt) {
						t.Errorf("sequence's prompt %v, PromptIDs %v", s.Tokens[:s.ResponseStart], prompt)
					}
				}
				if got := res.TokenLengths.PromptMax; got != len(prompt) {
					t.Errorf("tokens.promptMax %d, want %d (the prompt with its BOS)", got, len(prompt))
				}
			})
		}
	}
}
