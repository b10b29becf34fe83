package train

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/preftune/preftune/trainer/tokenizer"
)

// TestContinuationKeepsLeadingSpace: a completion's text is what it adds after the prompt, so a first token that
// starts a word (SentencePiece's "▁there") keeps its space: "Once upon a time" + " there was", not "there was".
func TestContinuationKeepsLeadingSpace(t *testing.T) {
	src := "../../../shared/models/stories260K"
	if _, err := os.Stat(filepath.Join(src, "tokenizer.json")); err != nil {
		t.Skipf("%s is absent (../shared is the project's read-only test data beside the repository): %v", src, err)
	}
	tok, err := tokenizer.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	prompt, full := tok.Encode("Once upon a time"), tok.Encode("Once upon a time there was")
	if !slices.Equal(full[:len(prompt)], prompt) {
		t.Fatalf("the prompt's ids %v are not a prefix of %v", prompt, full)
	}
	out := full[len(prompt):]
	if got := continuation(tok, prompt, out); got != " there was" {
		t.Errorf("continuation %q, want %q (Decode alone gives %q)", got, " there was", tok.Decode(out))
	}
	if got := continuation(tok, prompt, nil); got != "" {
		t.Errorf("empty completion: %q", got)
	}
}
