package data

import (
	"testing"
	"unicode/utf8"
)

// FuzzParse checks that no input panics the reader, that every row is either valid or listed as invalid, and that
// valid rows hold valid UTF-8 and non-empty responses.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"prompt":"p","chosen":"c","rejected":"r"}`,
		`[{"chosen":"ab","rejected":"ac"}]`,
		`{"input":{"messages":[{"role":"user","content":"q"}]},"preferred_output":[{"role":"assistant","content":"c"}],"non_preferred_output":[]}`,
		`[{"conversations":[{"from":"human","value":"q"}],"chosen":{"from":"gpt","value":"c"},"rejected":{"from":"gpt","value":"r"}},`,
		"{\"text\":\"\xff\"}\n[1]\nnull\n",
		`[]`, `[`, `{`, "\xEF\xBB\xBF[{\"instruction\":\"i\",\"output\":\"o\"}]",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Parse(b, Options{})
		if err != nil {
			return
		}
		if len(d.Rows)+len(d.Invalid) != d.Total {
			t.Fatalf("%d rows + %d invalid != %d total", len(d.Rows), len(d.Invalid), d.Total)
		}
		for _, r := range d.Rows {
			if r.Chosen == "" || (d.Preference() && r.Rejected == "") {
				t.Fatalf("empty response in %+v", r)
			}
			if !utf8.ValidString(r.Prompt + r.Chosen + r.Rejected) {
				t.Fatalf("invalid UTF-8 in %+v", r)
			}
		}
		for _, r := range d.Invalid {
			if r.Line < 1 || r.Reason == "" {
				t.Fatalf("invalid row without line or reason: %+v", r)
			}
		}
	})
}
