package demodata

import (
	"reflect"
	"testing"

	"github.com/preftune/preftune/trainer/data"
	"github.com/preftune/preftune/trainer/tokenizer"
)

// TestDemoTokensUnchanged: `make demo-local`'s data (1,000 rows, difficulty 1, seed 1, context 16) and the
// default difficulty at the tests' context 32 encode, through the Encoder a run builds for the byte model
// (built-in template, per-pair truncation), to exactly the sequences the per-sequence layout gave before
// (data.Encode: BOS prompt response EOS), chosen and rejected, with nothing truncated or left out.
func TestDemoTokensUnchanged(t *testing.T) {
	for _, c := range []struct {
		difficulty, n, ctx int
	}{{1, 1000, 16}, {DefaultDifficulty, 512, 32}, {4, 512, 32}} {
		rows, err := Config{Difficulty: c.difficulty}.Generate(c.n, 1)
		if err != nil {
			t.Fatal(err)
		}
		tok := tokenizer.NewByte()
		tmpl, origin, err := data.ChatTemplateOf("", "")
		if err != nil {
			t.Fatal(err)
		}
		enc, err := data.NewEncoder(tok, tmpl, origin, c.ctx)
		if err != nil {
			t.Fatal(err)
		}
		res, err := enc.Encode(rows, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Examples) != len(rows) || res.Truncation.RowsTruncated != 0 {
			t.Fatalf("difficulty %d: %d of %d examples, truncation %+v", c.difficulty, len(res.Examples), len(rows), res.Truncation)
		}
		for i, r := range rows {
			ex := res.Examples[i]
			if !reflect.DeepEqual(ex.Chosen, data.Encode(tok, r.Prompt, r.Chosen, c.ctx)) ||
				!reflect.DeepEqual(ex.Rejected, data.Encode(tok, r.Prompt, r.Rejected, c.ctx)) {
				t.Fatalf("difficulty %d row %d: %+v differs from the old layout", c.difficulty, i, ex)
			}
		}
	}
}
