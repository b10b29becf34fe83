package data

import (
	"testing"

	"github.com/preftune/preftune/trainer/contract"
)

// eosPadTok is a tokenizer like Qwen3's or Llama's without a pad token: no BOS (-1) and PAD == EOS; its text
// is one id per byte from 10 (EOS is 2).
type eosPadTok struct{}

func (eosPadTok) Name() string   { return "test" }
func (eosPadTok) VocabSize() int { return 300 }
func (eosPadTok) BOS() int       { return -1 }
func (eosPadTok) EOS() int       { return 2 }
func (eosPadTok) PAD() int       { return 2 }
func (eosPadTok) Encode(s string) []int {
	out := make([]int, len(s))
	for i := range s {
		out[i] = int(s[i]) + 10 - 'a'
	}
	return out
}
func (eosPadTok) Decode([]int) string { return "" }

func TestEncodeWithoutBOS(t *testing.T) {
	s := Encode(eosPadTok{}, "ab", "cd", 16)
	want := []int{10, 11, 12, 13, 2}
	if len(s.Tokens) != len(want) || s.ResponseStart != 2 {
		t.Fatalf("Encode = %v start %d, want %v start 2", s.Tokens, s.ResponseStart, want)
	}
	for i := range want {
		if s.Tokens[i] != want[i] {
			t.Fatalf("Encode = %v, want %v (no BOS, EOS at the end)", s.Tokens, want)
		}
	}
	// Truncation counts no BOS: the response fills the whole context, without EOS.
	s = Encode(eosPadTok{}, "ab", "cdefg", 4)
	if len(s.Tokens) != 4 || s.ResponseStart != 0 || s.Tokens[0] != 12 || s.Tokens[3] != 15 {
		t.Fatalf("truncated Encode = %v start %d, want [12 13 14 15] start 0", s.Tokens, s.ResponseStart)
	}
	// The prompt keeps its end: room is ctxLen - len(response) - EOS.
	s = Encode(eosPadTok{}, "abc", "d", 4)
	if len(s.Tokens) != 4 || s.Tokens[0] != 11 || s.ResponseStart != 2 {
		t.Fatalf("Encode = %v start %d, want [11 12 13 2] start 2", s.Tokens, s.ResponseStart)
	}
}

// With PAD == EOS a sequence's end holds the PAD id: RowLen finds lengths from the mask, not by searching PAD.
func TestRowLenPadIsEOS(t *testing.T) {
	tok := eosPadTok{}
	ex := []Example{
		{Chosen: Encode(tok, "ab", "c", 32), Rejected: Encode(tok, "ab", "cde", 32)},
	}
	b := MakeBatch(tok, ex, contract.KindDPO, 2, 32)
	// Rows: chosen 0, filler 1, rejected 0, filler 3.
	for i, want := range []int{4, 0, 6, 0} {
		if got := b.RowLen(i); got != want {
			t.Errorf("RowLen(%d) = %d, want %d", i, got, want)
		}
	}
	in, _, _ := b.Row(0)
	if in[3] != tok.PAD() {
		t.Fatalf("row 0 = %v: the test needs its EOS to equal PAD", in[:6])
	}
}
