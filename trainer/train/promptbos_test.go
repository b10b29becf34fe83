package train

import (
	"slices"
	"strings"
	"testing"
)

// bosTok has BOS 1 (its text "<s>" encodes to it) and adds it by addsBOS (tokenizer_config.json's add_bos_token);
// other text is one id per byte from 10.
type bosTok struct{ addsBOS bool }

func (bosTok) Name() string   { return "test" }
func (bosTok) VocabSize() int { return 300 }
func (bosTok) BOS() int       { return 1 }
func (bosTok) EOS() int       { return 2 }
func (bosTok) PAD() int       { return 2 }
func (t bosTok) AddsBOS() bool {
	return t.addsBOS
}
func (bosTok) Encode(s string) []int {
	var out []int
	if rest, ok := strings.CutPrefix(s, "<s>"); ok {
		out, s = []int{1}, rest
	}
	for i := range s {
		out = append(out, int(s[i])+10-'a')
	}
	return out
}
func (bosTok) Decode([]int) string { return "" }

// TestPromptIDsBOSRule: generate's prompts get BOS as training rows do: the tokenizer's BOS unless add_bos_token
// is false, and a prompt that writes BOS itself keeps exactly that one.
func TestPromptIDsBOSRule(t *testing.T) {
	for _, c := range []struct {
		adds   bool
		prompt string
		want   []int
	}{
		{true, "ab", []int{1, 10, 11}},
		{false, "ab", []int{10, 11}},
		{true, "<s>ab", []int{1, 10, 11}},
		{false, "<s>ab", []int{1, 10, 11}},
	} {
		if got := PromptIDs(bosTok{c.adds}, c.prompt); !slices.Equal(got, c.want) {
			t.Errorf("addsBOS %v, PromptIDs(%q) = %v, want %v", c.adds, c.prompt, got, c.want)
		}
	}
}
