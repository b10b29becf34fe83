package data

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/preftune/preftune/trainer/contract"
)

// sharedData is the read-only folder of real datasets beside the repository (../shared/data from the root).
const sharedData = "../../../shared/data"

func sharedFile(t *testing.T, rel string) string {
	t.Helper()
	p := filepath.Join(sharedData, rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("real dataset %s is absent (%v): skipping", p, err)
	}
	return p
}

func TestRealDatasets(t *testing.T) {
	cases := []struct {
		file, format string
		rows         int
		preference   bool
		firstLines   [2]int // lines of the first two rows
	}{
		{"orca-dpo-pairs/validation.jsonl", FormatChatPreference, 284, true, [2]int{1, 2}},
		{"llama-factory-demo/dpo_en_demo.json", FormatShareGPT, 300, true, [2]int{2, 18}},
		{"llama-factory-demo/dpo_zh_demo.json", FormatShareGPT, 300, true, [2]int{2, 18}},
		{"llama-factory-demo/alpaca_en_demo.json", FormatAlpaca, 999, false, [2]int{2, 7}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			path := sharedFile(t, c.file)
			d, err := ReadFile(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if d.Format != c.format || d.Total != c.rows || len(d.Rows) != c.rows || len(d.Invalid) != 0 {
				t.Fatalf("format %s total %d rows %d invalid %v; want %s with %d valid rows",
					d.Format, d.Total, len(d.Rows), d.Invalid, c.format, c.rows)
			}
			if d.Preference() != c.preference {
				t.Fatalf("Preference() = %v", d.Preference())
			}
			if d.Rows[0].Line != c.firstLines[0] || d.Rows[1].Line != c.firstLines[1] {
				t.Fatalf("first rows on lines %d and %d, want %v", d.Rows[0].Line, d.Rows[1].Line, c.firstLines)
			}
			// The explicit format name reads the same rows.
			e, err := ReadFile(path, Options{Format: c.format})
			if err != nil || len(e.Rows) != c.rows {
				t.Fatalf("explicit format: %v, %d rows", err, len(e.Rows))
			}
			for _, r := range d.Rows {
				if !strings.HasSuffix(r.Prompt, "<|assistant|>\n") || r.Chosen == "" || c.preference == (r.Rejected == "") {
					t.Fatalf("line %d: rendered row %.80q / %.40q / %.40q", r.Line, r.Prompt, r.Chosen, r.Rejected)
				}
				if !utf8.ValidString(r.Prompt) || !utf8.ValidString(r.Chosen) || !utf8.ValidString(r.Rejected) {
					t.Fatalf("line %d: invalid UTF-8 after reading", r.Line)
				}
			}
		})
	}
}

func TestRealChineseDatasetKeepsMultibyteText(t *testing.T) {
	d, err := ReadFile(sharedFile(t, "llama-factory-demo/dpo_zh_demo.json"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	multibyte := 0
	for _, r := range d.Rows {
		if utf8.RuneCountInString(r.Chosen) < len(r.Chosen) {
			multibyte++
		}
	}
	if multibyte < len(d.Rows)/2 {
		t.Fatalf("only %d of %d chosen responses hold multibyte characters", multibyte, len(d.Rows))
	}
}

func TestRealDatasetInspection(t *testing.T) {
	path := sharedFile(t, "orca-dpo-pairs/validation.jsonl")
	rep, err := Inspect(path, contract.DatasetConfig{EvalFraction: 0.1, Seed: 7}, 0)
	if err != nil {
		t.Fatal(err)
	}
	c := rep.Counts
	if c.Total != 284 || c.Pairs != 284 || c.Invalid != 0 || c.Train+c.Eval != 284 || c.Eval == 0 {
		t.Fatalf("counts %+v", c)
	}
	if rep.Format != FormatChatPreference || !strings.HasPrefix(rep.Digest, "sha256:") {
		t.Fatalf("format %s digest %s", rep.Format, rep.Digest)
	}
	if rep.Lengths.PromptMax == 0 || rep.Lengths.ChosenMean == 0 || rep.Lengths.RejectedMean == 0 {
		t.Fatalf("lengths %+v", rep.Lengths)
	}
	if rep.ChosenLongerFraction <= 0 || rep.ChosenLongerFraction >= 1 {
		t.Fatalf("chosenLongerFraction %v", rep.ChosenLongerFraction)
	}
	for _, w := range rep.Warnings {
		if strings.Contains(w, "train and eval") {
			t.Fatalf("split leaked prompts: %s", w)
		}
	}
}
