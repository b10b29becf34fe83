package data

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
)

// The tests in this file read the small inputs of ../shared/testdata/cases (its README.md lists what the trainer
// did with each and what it should do); each test is the expected outcome of one row of that table.

// TestCaseImplicitConversational is case 02: full conversations in chosen/rejected (TRL's conversational implicit
// prompt) read as the shared leading messages (the prompt) and the messages after them (the responses).
func TestCaseImplicitConversational(t *testing.T) {
	d, err := ReadFile(caseFile(t, "02-implicit-conversational.jsonl"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Format != FormatImplicitPrompt || len(d.Invalid) != 0 || len(d.Rows) != 2 {
		t.Fatalf("format %s rows %d invalid %+v", d.Format, len(d.Rows), d.Invalid)
	}
	want := []Row{
		textRow(1, "<|user|>\nWhat is 2+2?\n<|assistant|>\n", "4", "5"),
		textRow(2, "<|system|>\nBe brief.\n<|user|>\nColor of the sky?\n<|assistant|>\n", "Blue.", "Green."),
	}
	for i, w := range want {
		if plain(d.Rows[i]) != w {
			t.Errorf("row %d: %#v, want %#v", i, d.Rows[i], w)
		}
	}
	// The same rows read through the explicit format name and through renamed fields.
	e, err := ReadFile(caseFile(t, "02-implicit-conversational.jsonl"), Options{Format: FormatImplicitPrompt})
	if err != nil || len(e.Rows) != 2 || plain(e.Rows[1]) != want[1] {
		t.Fatalf("format implicitPrompt: %v %+v", err, e.Rows)
	}
	src := strings.NewReplacer(`"chosen"`, `"good"`, `"rejected"`, `"bad"`).Replace(readCase(t, "02-implicit-conversational.jsonl"))
	m := mustParse(t, src, Options{ChosenField: "good", RejectedField: "bad"})
	if m.Format != FormatImplicitPrompt || len(m.Rows) != 2 || plain(m.Rows[0]) != want[0] {
		t.Fatalf("renamed fields: %s %+v %+v", m.Format, m.Rows, m.Invalid)
	}
	// A multi-turn conversation: the shared prompt keeps every earlier turn, the response may hold several.
	multi := mustParse(t, `{"chosen":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"c"},{"role":"assistant","content":"d"},{"role":"user","content":"e"},{"role":"assistant","content":"f"}],"rejected":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"c"},{"role":"assistant","content":"x"}]}`, Options{})
	if r := multi.Rows[0]; len(multi.Invalid) != 0 || r.Prompt != "<|user|>\na\n<|assistant|>\nb\n<|user|>\nc\n<|assistant|>\n" ||
		r.Chosen != "d\n<|user|>\ne\n<|assistant|>\nf" || r.Rejected != "x" {
		t.Fatalf("multi-turn: %#v %+v", multi.Rows, multi.Invalid)
	}
}

// TestCaseToolRole is case 03: no message is silently emptied. The built-in template cannot render tool calls or
// tool results, so rows with them are refused, naming the message and the field; plain rows still read.
func TestCaseToolRole(t *testing.T) {
	d, err := ReadFile(caseFile(t, "03-tool-role.jsonl"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Format != FormatConversational || len(d.Rows) != 1 || d.Rows[0].Line != 2 || len(d.Invalid) != 2 {
		t.Fatalf("format %s rows %+v invalid %+v", d.Format, d.Rows, d.Invalid)
	}
	for i, line := range []int{1, 3} {
		bad := d.Invalid[i]
		if bad.Line != line || bad.Field != "prompt[1].tool_calls" || !strings.Contains(bad.Reason, "tool calls are not supported") ||
			!strings.Contains(bad.Reason, "would lose them") {
			t.Errorf("invalid row %+v, want line %d field prompt[1].tool_calls", bad, line)
		}
	}
	// Without the tool call, row 1's tool result is refused on its own.
	src := `{"prompt": [{"role": "user", "content": "Search"}, {"role": "tool", "tool_call_id": "c1", "content": "sunny, 21C"}], "chosen": [{"role": "assistant", "content": "Sunny."}], "rejected": [{"role": "assistant", "content": "?"}]}`
	e := mustParse(t, src, Options{})
	if len(e.Invalid) != 1 || e.Invalid[0].Field != "prompt[1].role" || !strings.Contains(e.Invalid[0].Reason, `role "tool"`) {
		t.Fatalf("tool result: %+v", e.Invalid)
	}
	// An empty tool_calls list or null is no tool call: nothing is dropped, the row reads.
	ok := mustParse(t, `{"prompt":[{"role":"user","content":"q"},{"role":"assistant","content":"a","tool_calls":[]},{"role":"user","content":"more","tool_calls":null}],"chosen":[{"role":"assistant","content":"c"}],"rejected":[{"role":"assistant","content":"r"}]}`, Options{})
	if len(ok.Invalid) != 0 || len(ok.Rows) != 1 {
		t.Fatalf("empty tool_calls: %+v", ok.Invalid)
	}
}

// TestCaseEmptyNullWhitespace is case 09: null and empty responses are invalid rows (named), and whitespace-only
// responses are valid but warned about with their lines.
func TestCaseEmptyNullWhitespace(t *testing.T) {
	d, err := ReadFile(caseFile(t, "09-empty-null-whitespace.jsonl"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Rows) != 3 || len(d.Invalid) != 2 || d.Invalid[0].Line != 2 || d.Invalid[0].Field != "chosen" ||
		d.Invalid[1].Line != 3 || d.Invalid[1].Field != "rejected" {
		t.Fatalf("rows %+v invalid %+v", d.Rows, d.Invalid)
	}
	rep, err := Report(d, contract.DatasetConfig{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !warns(rep, "2 rows have a response that is only whitespace: lines 4, 5") {
		t.Fatalf("warnings %q", rep.Warnings)
	}
	// The same in a chat format: a blank assistant message.
	c := mustParse(t, `{"prompt":[{"role":"user","content":"q"}],"chosen":[{"role":"assistant","content":" \n"}],"rejected":[{"role":"assistant","content":"r"}]}`, Options{})
	if w := RowWarnings(c.Rows, true); len(w) != 1 || !strings.Contains(w[0], "1 row has a response that is only whitespace: line 1") {
		t.Fatalf("chat warnings %q", w)
	}
	// And an SFT completion.
	s := mustParse(t, `{"prompt":"p","completion":"\t"}`, Options{})
	if w := RowWarnings(s.Rows, false); len(w) != 1 || !strings.Contains(w[0], "only whitespace: line 1") {
		t.Fatalf("sft warnings %q", w)
	}
}

// TestCaseEmptyChosenImplicit is case 13: implicit-prompt rows whose preferred reply is to say nothing read as
// valid preferences (the prompt ends where the reply starts, the chosen response is empty), counted in the
// warnings, in both implicit shapes (strings and conversations).
func TestCaseEmptyChosenImplicit(t *testing.T) {
	d, err := ReadFile(caseFile(t, "13-empty-chosen-implicit.jsonl"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Format != FormatImplicitPrompt || len(d.Rows) != 3 || len(d.Invalid) != 0 {
		t.Fatalf("format %s rows %d invalid %+v", d.Format, len(d.Rows), d.Invalid)
	}
	for _, r := range d.Rows[:2] {
		if r.Chosen != "" || !strings.HasSuffix(r.Prompt, "\n\nAssistant: ") || r.Rejected == "" || strings.HasPrefix(r.Rejected, " ") {
			t.Fatalf("line %d: %#v", r.Line, r)
		}
	}
	if r := d.Rows[2]; r.Chosen != "Making a fake ID is illegal where most people live." || !strings.HasSuffix(r.Prompt, "Assistant: ") {
		t.Fatalf("line 3: %#v", r)
	}
	rep, err := Report(d, contract.DatasetConfig{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Counts.Invalid != 0 || !warns(rep, "2 rows have an empty chosen response") || !warns(rep, "lines 1, 2") {
		t.Fatalf("counts %+v warnings %q", rep.Counts, rep.Warnings)
	}
	// The conversational shape of the same rows: chosen stops after the user's turn.
	var conv strings.Builder
	for _, r := range d.Rows {
		turn := func(resp string) []map[string]string {
			m := []map[string]string{{"role": "user", "content": strings.TrimSpace(r.Prompt)}}
			if resp != "" {
				m = append(m, map[string]string{"role": "assistant", "content": resp})
			}
			return m
		}
		b, _ := json.Marshal(map[string]any{"chosen": turn(r.Chosen), "rejected": turn(r.Rejected)})
		conv.Write(b)
		conv.WriteByte('\n')
	}
	c := mustParse(t, conv.String(), Options{})
	if c.Format != FormatImplicitPrompt || len(c.Rows) != 3 || len(c.Invalid) != 0 {
		t.Fatalf("conversational: rows %d invalid %+v", len(c.Rows), c.Invalid)
	}
	if r := c.Rows[0]; r.Chosen != "" || !strings.HasSuffix(r.Prompt, "<|assistant|>\n") || r.Rejected == "" {
		t.Fatalf("conversational line 1: %#v", r)
	}
	if w := RowWarnings(c.Rows, true); len(w) != 1 || !strings.Contains(w[0], "2 rows have an empty chosen response") {
		t.Fatalf("conversational warnings %q", w)
	}
	// An empty rejected response (the rejected reply is to say nothing) reads too, and is named.
	e := mustParse(t, `{"chosen":"Q: hi A: hello","rejected":"Q: hi A: "}`, Options{})
	if len(e.Rows) != 1 || e.Rows[0].Rejected != "" || e.Rows[0].Chosen != "hello" {
		t.Fatalf("empty rejected: %+v %+v", e.Rows, e.Invalid)
	}
	if w := RowWarnings(e.Rows, true); len(w) != 1 || !strings.Contains(w[0], "empty rejected response") {
		t.Fatalf("empty rejected warnings %q", w)
	}
}

// TestInvalidRowsPolicy: Reject (default) fails a dataset with any invalid row; Skip keeps the valid rows, counts
// the skipped ones and names their first lines, and still fails a dataset with no valid row.
func TestInvalidRowsPolicy(t *testing.T) {
	d, err := ReadFile(caseFile(t, "09-empty-null-whitespace.jsonl"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"", contract.InvalidRowsReject} {
		if _, err := d.CheckInvalidRows(p); err == nil || !strings.Contains(err.Error(), "2 of 5 rows are invalid") {
			t.Fatalf("policy %q: %v", p, err)
		}
	}
	w, err := d.CheckInvalidRows(contract.InvalidRowsSkip)
	if err != nil || !strings.Contains(w, "2 of 5 rows are invalid and were skipped") || !strings.Contains(w, "lines 2, 3") ||
		!strings.Contains(w, "line 2, field chosen: must be a string, got null") {
		t.Fatalf("skip: %q %v", w, err)
	}
	rep, err := Report(d, contract.DatasetConfig{InvalidRows: contract.InvalidRowsSkip}, 0)
	if err != nil || rep.Counts.Skipped != 2 || rep.Counts.Invalid != 2 || rep.Counts.Pairs != 3 || !warns(rep, "were skipped") {
		t.Fatalf("report %+v %v", rep, err)
	}
	if rep, _ := Report(d, contract.DatasetConfig{}, 0); rep.Counts.Skipped != 0 || warns(rep, "were skipped") {
		t.Fatalf("reject report %+v", rep)
	}
	if _, err := d.CheckInvalidRows("Ignore"); err == nil || !strings.Contains(err.Error(), `invalidRows is "Ignore"`) {
		t.Fatalf("unknown policy: %v", err)
	}
	if _, err := Report(d, contract.DatasetConfig{InvalidRows: "Ignore"}, 0); err == nil || !strings.Contains(err.Error(), "dataset.invalidRows") {
		t.Fatalf("unknown policy in a report: %v", err)
	}
	none := mustParse(t, `{"prompt":"p","chosen":"","rejected":"r"}`+"\n"+`{"prompt":"p","chosen":"c"}`, Options{Format: FormatStandard})
	if _, err := none.CheckInvalidRows(contract.InvalidRowsSkip); err == nil || !strings.Contains(err.Error(), "no valid row") {
		t.Fatalf("all invalid under Skip: %v", err)
	}
	// Many skipped rows: the first five are named and the rest counted.
	var many strings.Builder
	for range 8 {
		many.WriteString(`{"prompt":"p","chosen":"c","rejected":""}` + "\n")
	}
	many.WriteString(`{"prompt":"p","chosen":"c","rejected":"r"}` + "\n")
	m := mustParse(t, many.String(), Options{})
	if w, _ := m.CheckInvalidRows(contract.InvalidRowsSkip); !strings.Contains(w, "lines 1, 2, 3, 4, 5 and 3 more") {
		t.Fatalf("many: %q", w)
	}
}

func readCase(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(caseFile(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
