package train

import (
	"encoding/binary"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/data"
)

// eosPadTok has no BOS and pads with EOS (a model without a pad token); its text is one id per byte from 10.
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

// With PAD == EOS, realTokens and seqKey must count a sequence's final EOS (it holds the PAD id), and a
// prompt carries no BOS when the model has none.
func TestPadIsEOSLengths(t *testing.T) {
	tok := eosPadTok{}
	ex := []data.Example{{Chosen: data.Encode(tok, "ab", "c", 32), Rejected: data.Encode(tok, "ab", "cde", 32)}}
	b := data.MakeBatch(tok, ex, contract.KindDPO, 2, 32)
	if got := realTokens(b); got != 4+6 {
		t.Errorf("realTokens = %d, want 10 (a b c EOS, a b c d e EOS)", got)
	}
	for i, want := range []int{10, 11, 12, 2} {
		key, ok := seqKey(b, 0)
		if !ok || len(key) != 4*5 {
			t.Fatalf("seqKey(row 0) has %d bytes (ok %v), want 20: the loss start and 4 tokens", len(key), ok)
		}
		if got := binary.LittleEndian.Uint32([]byte(key[4*(i+1):])); int(got) != want {
			t.Errorf("seqKey(row 0) token %d = %d, want %d", i, got, want)
		}
	}
	if _, ok := seqKey(b, 1); ok {
		t.Errorf("seqKey(filler row 1) is ok, want a filler")
	}
	if in := PromptIDs(tok, "ab"); len(in) != 2 || in[0] != 10 {
		t.Errorf("PromptIDs = %v, want [10 11] (no BOS)", in)
	}
}
