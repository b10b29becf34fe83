package data

import (
	"strings"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
)

// TestCountPluralises: one row is "1 row", never "1 rows"; and an encoder warning uses it (one emptied prompt,
// one cut response).
func TestCountPluralises(t *testing.T) {
	for _, c := range []struct {
		n    int
		want string
	}{{0, "0 rows were"}, {1, "1 row was"}, {2, "2 rows were"}} {
		if got := Count(c.n, "row was", "rows were"); got != c.want {
			t.Errorf("Count(%d) = %q, want %q", c.n, got, c.want)
		}
	}
	res := &EncodeResult{Rows: 3, Truncation: contract.Truncation{ContextLength: 8, RowsTruncated: 1, PromptsEmptied: 1, ResponsesCut: 1, IdenticalPairs: 1},
		EmptiedLines: []int{2}, CutLines: []int{2}, IdenticalLines: []int{2}, SplitApart: 1}
	w := strings.Join(res.Warnings(true), "\n")
	for _, want := range []string{"1 of 3 pairs were truncated", "1 pair lost its whole prompt to truncation: line 2",
		"1 response was cut before its end token", "1 pair has chosen and rejected identical after truncation and was left out",
		"1 response was tokenized apart"} {
		if !strings.Contains(w, want) {
			t.Errorf("warnings miss %q:\n%s", want, w)
		}
	}
	if strings.Contains(w, "1 pairs") || strings.Contains(w, "1 responses") || strings.Contains(w, "1 rows") {
		t.Errorf("a plural after 1:\n%s", w)
	}
}

// raisingRows are 5 conversational pairs; line 3 has a system message, which raisingTemplate refuses.
const raisingRows = `{"prompt":[{"role":"user","content":"a"}],"chosen":[{"role":"assistant","content":"x"}],"rejected":[{"role":"assistant","content":"y"}]}
{"prompt":[{"role":"user","content":"b"}],"chosen":[{"role":"assistant","content":"x"}],"rejected":[{"role":"assistant","content":"y"}]}
{"prompt":[{"role":"system","content":"s"},{"role":"user","content":"c"}],"chosen":[{"role":"assistant","content":"x"}],"rejected":[{"role":"assistant","content":"y"}]}
{"prompt":[{"role":"user","content":"d"}],"chosen":[{"role":"assistant","content":"x"}],"rejected":[{"role":"assistant","content":"y"}]}
{"prompt":[{"role":"user","content":"e"}],"chosen":[{"role":"assistant","content":"x"}],"rejected":[{"role":"assistant","content":"y"}]}
`

const raisingTemplate = `{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{{ m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}`

// TestUnrenderedRowsAreInvalidRows: the rows a chat template cannot render become invalid rows of the report:
// under Skip counted in Counts.Invalid and Skipped, out of Pairs and their split, listed with the template's
// error, and in the skipped-rows warning with the rows invalid on reading; under Reject listed but not skipped.
func TestUnrenderedRowsAreInvalidRows(t *testing.T) {
	// Line 6 is invalid on reading (no rejected).
	d := mustParse(t, raisingRows+`{"prompt":"p","chosen":"c"}`+"\n", Options{Format: FormatConversational})
	if len(d.Rows) != 5 || len(d.Invalid) != 1 {
		t.Fatalf("rows %d invalid %+v", len(d.Rows), d.Invalid)
	}
	res, err := byteEncoder(t, raisingTemplate, 256).Encode(d.Rows, true)
	if err == nil || res.Rows != 4 || len(res.Unrendered) != 1 {
		t.Fatalf("encode: %v %+v", err, res)
	}
	if e := res.UnrenderedErr(); e == nil || !strings.Contains(e.Error(), "cannot render 1 of 5 rows; line 3 (chosen)") {
		t.Fatalf("UnrenderedErr %v", e)
	}
	inv := res.UnrenderedRows()
	if len(inv) != 1 || inv[0].Line != 3 || inv[0].Field != "chosen" || !strings.Contains(inv[0].Reason, "System role not supported") {
		t.Fatalf("UnrenderedRows %+v", inv)
	}

	cfg := contract.DatasetConfig{InvalidRows: contract.InvalidRowsSkip, EvalFraction: 0.2}
	rep, err := Report(d, cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	before := rep.Counts
	if err := AddInvalidRows(&rep, d, cfg, inv, 0); err != nil {
		t.Fatal(err)
	}
	c := rep.Counts
	if c.Invalid != 2 || c.Skipped != 2 || c.Pairs != 4 || c.Train+c.Eval != 4 || c.Train+c.Eval != before.Train+before.Eval-1 {
		t.Fatalf("counts %+v (before %+v)", c, before)
	}
	if len(rep.InvalidRows) != 2 || rep.InvalidRows[0].Line != 3 || rep.InvalidRows[1].Line != 6 {
		t.Fatalf("invalid rows %+v", rep.InvalidRows)
	}
	n := 0
	for _, w := range rep.Warnings {
		if strings.Contains(w, "were skipped (invalidRows: Skip)") {
			n++
			if !strings.HasPrefix(w, "2 of 6 rows are invalid and were skipped (invalidRows: Skip): lines 3, 6") {
				t.Errorf("skipped warning %q", w)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d skipped-rows warnings in %q, want 1", n, rep.Warnings)
	}

	cfg.InvalidRows = contract.InvalidRowsReject
	rep, _ = Report(d, cfg, 0)
	if err := AddInvalidRows(&rep, d, cfg, inv, 0); err != nil {
		t.Fatal(err)
	}
	if rep.Counts.Invalid != 2 || rep.Counts.Skipped != 0 || len(rep.InvalidRows) != 2 {
		t.Fatalf("reject: %+v %+v", rep.Counts, rep.InvalidRows)
	}

	// Skip with every row unrenderable leaves nothing to train on.
	one := mustParse(t, strings.Split(raisingRows, "\n")[2]+"\n", Options{})
	res, _ = byteEncoder(t, raisingTemplate, 256).Encode(one.Rows, true)
	cfg.InvalidRows = contract.InvalidRowsSkip
	rep, _ = Report(one, cfg, 0)
	if err := AddInvalidRows(&rep, one, cfg, res.UnrenderedRows(), 0); err == nil || !strings.Contains(err.Error(), "no valid row") {
		t.Fatalf("all unrenderable: %v", err)
	}
}

// TestSplitNoSignal: a run needs a signal in its training split. When no pair has one the message counts train and
// eval together (as the truncation counts do); when only the eval split keeps one it says "of the training split";
// a training split the template cannot render at all is said so.
func TestSplitNoSignal(t *testing.T) {
	train := []Row{{Line: 1}, {Line: 2}}
	tr := contract.Truncation{ContextLength: 24, IdenticalPairs: 3}
	all := &EncodeResult{Rows: 3, Truncation: tr}
	if got := SplitNoSignal(all, train, true); !strings.Contains(got, "all 3 pairs have chosen and rejected identical after truncation to the context of 24 tokens") {
		t.Errorf("none: %q", got)
	}
	all = &EncodeResult{Rows: 3, Lines: []int{3}, Truncation: contract.Truncation{ContextLength: 24, IdenticalPairs: 2}}
	if got := SplitNoSignal(all, train, true); !strings.Contains(got, "all 2 pairs of the training split have chosen and rejected identical") ||
		!strings.Contains(got, "only 1 pair of the eval split, which is not trained on, has one") {
		t.Errorf("eval only: %q", got)
	}
	all = &EncodeResult{Rows: 2, Lines: []int{2, 3}}
	if got := SplitNoSignal(all, train, true); got != "" {
		t.Errorf("a training pair has a signal: %q", got)
	}
	all = &EncodeResult{Rows: 1, Lines: []int{3}, Unrendered: []*RowError{{Line: 1}, {Line: 2}}}
	if got := SplitNoSignal(all, train, true); !strings.Contains(got, "cannot render any of the 2 rows of the training split") {
		t.Errorf("unrendered: %q", got)
	}
}
