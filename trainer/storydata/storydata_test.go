package storydata

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/preftune/preftune/trainer/data"
	"github.com/preftune/preftune/trainer/tokenizer"
)

func TestCheck(t *testing.T) {
	prompt := Prompt("Lily", "girl", "Max", "play in the park")
	if want := "Once upon a time, there was a little girl named Lily. She had a friend named Max. They liked to play in the park. One day,"; prompt != want {
		t.Fatalf("Prompt = %q, want %q", prompt, want)
	}
	cases := []struct {
		prompt, continuation string
		want                 bool
	}{
		{prompt, "Max went to the park.", true},
		{prompt, " Max went", true},
		{prompt, "Max", true},
		{prompt, "Max, Lily and", true},
		{prompt, "Lily went to the park.", false},
		{prompt, "she went to the park.", false},
		{prompt, "they saw Max.", false},
		{prompt, "max went", false},
		{prompt, "Maxi went", false},
		{prompt, "Ma", false},
		{prompt, "", false},
		{"Once upon a time, there was a dog.", "Max went", false},
		{"He had a friend named .", "went", false},
		{"He had a friend named Max", "Max", false},
	}
	for _, c := range cases {
		if got := Check(c.prompt, c.continuation); got != c.want {
			t.Errorf("Check(%q, %q) = %v, want %v", c.prompt, c.continuation, got, c.want)
		}
	}
}

func TestGenerate(t *testing.T) {
	rows := Generate(300, 7)
	if !reflect.DeepEqual(rows, Generate(300, 7)) {
		t.Fatal("the same seed gave other rows")
	}
	if reflect.DeepEqual(rows, Generate(300, 8)) {
		t.Fatal("another seed gave the same rows")
	}
	subjects := map[string]int{}
	prompts := map[string]bool{}
	for i, r := range rows {
		if r.Line != i+1 {
			t.Fatalf("row %d has line %d", i, r.Line)
		}
		friend, ok := Friend(r.Prompt)
		if !ok {
			t.Fatalf("row %d: no friend in %q", i, r.Prompt)
		}
		if !Check(r.Prompt, r.Chosen) || Check(r.Prompt, r.Rejected) {
			t.Fatalf("row %d: chosen %q must meet the rule and rejected %q not", i, r.Chosen, r.Rejected)
		}
		main := strings.TrimSuffix(strings.Fields(strings.SplitN(r.Prompt, " named ", 2)[1])[0], ".")
		if main == friend {
			t.Fatalf("row %d: both characters are named %s", i, main)
		}
		subj, rest, _ := strings.Cut(strings.TrimPrefix(r.Rejected, " "), " ")
		if _, sent, _ := strings.Cut(strings.TrimPrefix(r.Chosen, " "), " "); sent != rest {
			t.Fatalf("row %d: chosen %q and rejected %q differ past their subject", i, r.Chosen, r.Rejected)
		}
		switch subj {
		case main:
			subjects["main"]++
		case "he", "she":
			subjects["pronoun"]++
		case "they":
			subjects["they"]++
		default:
			t.Fatalf("row %d: rejected subject %q", i, subj)
		}
		if !strings.HasPrefix(r.Chosen, " ") || strings.HasPrefix(r.Chosen, "  ") || !strings.HasSuffix(r.Chosen, ".") {
			t.Fatalf("row %d: chosen %q", i, r.Chosen)
		}
		prompts[r.Prompt] = true
	}
	for _, k := range []string{"main", "pronoun", "they"} {
		if subjects[k] < 60 {
			t.Errorf("rejected subjects %v: %s too rare", subjects, k)
		}
	}
	if len(prompts) < 250 {
		t.Errorf("%d distinct prompts in 300 rows", len(prompts))
	}
	for _, r := range Generate(20, 7) {
		if !strings.HasPrefix(r.Chosen, " ") || !strings.HasPrefix(r.Rejected, " ") || !Check(r.Prompt, r.Chosen) {
			t.Fatalf("responses start with a space: %+v", r)
		}
	}
}

func TestStories(t *testing.T) {
	rows := Config{}.Stories(700, 3)
	if !reflect.DeepEqual(rows, Config{}.Stories(700, 3)) {
		t.Fatal("the same seed gave other rows")
	}
	friend := 0
	for _, r := range rows {
		if r.Rejected != "" {
			t.Fatalf("a story row has a rejected response: %+v", r)
		}
		if Check(r.Prompt, r.Chosen) {
			friend++
		}
	}
	// 1 in 7 on average: 100 of 700, with a wide margin for the draw.
	if friend < 60 || friend > 140 {
		t.Errorf("the friend is the subject of %d of 700 stories, want about 100", friend)
	}
	if s := Story(data.Row{Prompt: "One day,", Chosen: " Max went."}); s != "One day, Max went." {
		t.Errorf("Story = %q", s)
	}
}

func TestWriteReads(t *testing.T) {
	for _, c := range []struct {
		rows   []data.Row
		format string
	}{{Generate(5, 1), "standard"}, {Config{}.Stories(5, 1), "promptCompletion"}} {
		var buf bytes.Buffer
		if err := Write(&buf, c.rows); err != nil {
			t.Fatal(err)
		}
		ds, err := data.Parse(buf.Bytes(), data.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if ds.Format != c.format || len(ds.Invalid) != 0 || !reflect.DeepEqual(ds.Rows, c.rows) {
			t.Errorf("read back as %s with %d invalid rows: %+v, want %s %+v", ds.Format, len(ds.Invalid), ds.Rows, c.format, c.rows)
		}
	}
}

// TestRowsReadAsStories: rows encoded as training encodes them (trainer/data's Encoder, prompt + response as one
// text) with stories260K's tokenizer are the story's own ids (BOS and EOS around them), the response's ids start
// where the prompt's end and decode to the chosen continuation.
func TestRowsReadAsStories(t *testing.T) {
	const dir = "../../../shared/models/stories260K"
	if _, err := os.Stat(filepath.Join(dir, "tokenizer.json")); err != nil {
		t.Skipf("%s is absent (../shared is the project's read-only test data beside the repository): %v", dir, err)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := data.NewEncoder(tok, "", data.TemplateBuiltin, 512)
	if err != nil {
		t.Fatal(err)
	}
	rows := Generate(20, 1)
	res, err := enc.Encode(rows, true)
	if err != nil {
		t.Fatal(err)
	}
	for i, ex := range res.Examples {
		r := rows[i]
		s := ex.Chosen
		body := s.Tokens[1 : len(s.Tokens)-1] // BOS ... EOS
		if got := tok.Decode(body); got != Story(r) {
			t.Fatalf("row %d decodes to %q, want %q", i+1, got, Story(r))
		}
		if want := tok.Encode(Story(r)); !slices.Equal(body, want) {
			t.Fatalf("row %d: ids %v, the story's own are %v", i+1, body, want)
		}
		if got := tok.Decode(s.Tokens[s.ResponseStart : len(s.Tokens)-1]); strings.TrimLeft(got, " ") != strings.TrimLeft(r.Chosen, " ") {
			t.Errorf("row %d: the response decodes to %q, want %q", i+1, got, r.Chosen)
		}
	}
}
