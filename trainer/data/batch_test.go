package data

import (
	"reflect"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/tokenizer"
)

func TestMakeBatchSFTLayout(t *testing.T) {
	tok := tokenizer.NewByte()
	ex := EncodeRows(tok, []Row{{Prompt: "ab", Chosen: "c"}, {Prompt: "", Chosen: "xyz"}}, 64, false)
	b := MakeBatch(tok, ex, contract.KindSFT, 3, 64)
	if b.B != 3 || b.T != 32 || b.N != 2 || len(b.Inputs) != 96 || len(b.Targets) != 96 || len(b.Mask) != 96 {
		t.Fatalf("B %d T %d N %d lens %d/%d/%d", b.B, b.T, b.N, len(b.Inputs), len(b.Targets), len(b.Mask))
	}
	in, tg, m := b.Row(0)
	// BOS a b c EOS: position 2 (reads b) predicts c, position 3 (reads c) predicts EOS: the two response targets.
	if !reflect.DeepEqual(in[:6], []int{bos, 'a', 'b', 'c', eos, pad}) {
		t.Fatalf("row 0 inputs %v", in[:6])
	}
	if !reflect.DeepEqual(tg[:6], []int{'a', 'b', 'c', eos, pad, pad}) {
		t.Fatalf("row 0 targets %v", tg[:6])
	}
	if !reflect.DeepEqual(m[:6], []float32{0, 0, 1, 1, 0, 0}) {
		t.Fatalf("row 0 mask %v", m[:6])
	}
	_, _, m = b.Row(1)
	if !reflect.DeepEqual(m[:5], []float32{1, 1, 1, 1, 0}) {
		t.Fatalf("row 1 (empty prompt) mask %v", m[:5])
	}
	in, tg, m = b.Row(2)
	for i := range in {
		if in[i] != pad || tg[i] != pad || m[i] != 0 {
			t.Fatalf("padding row not all PAD and masked: %v %v %v", in, tg, m)
		}
	}
	if b.MaskedTokens() != 2+4 {
		t.Fatalf("MaskedTokens %d", b.MaskedTokens())
	}
}

func TestMakeBatchDPOLayoutAndBucket(t *testing.T) {
	tok := tokenizer.NewByte()
	long := string(make([]byte, 40)) // pushes the batch into the 64 bucket through a rejected response
	rows := []Row{{Prompt: "p1", Chosen: "c1", Rejected: "r1"}, {Prompt: "p2", Chosen: "c2", Rejected: long}}
	ex := EncodeRows(tok, rows, 128, true)
	b := MakeBatch(tok, ex, contract.KindDPO, 3, 128)
	if b.B != 6 || b.T != 64 || b.N != 2 {
		t.Fatalf("B %d T %d N %d", b.B, b.T, b.N)
	}
	want := []string{"p1c1", "p2c2", "", "p1r1", "p2" + long, ""}
	for i, w := range want {
		in, _, m := b.Row(i)
		var got []int
		for _, id := range in {
			if id < 256 {
				got = append(got, id)
			}
		}
		if tok.Decode(got) != w {
			t.Fatalf("row %d holds %q, want %q", i, tok.Decode(got), w)
		}
		if w == "" && in[0] != pad {
			t.Fatalf("row %d should be padding", i)
		}
		masked := 0
		for _, v := range m {
			masked += int(v)
		}
		if wantMasked := map[bool]int{true: 0, false: len(w) - 2 + 1}[w == ""]; masked != wantMasked {
			t.Fatalf("row %d: %d masked positions, want %d", i, masked, wantMasked)
		}
	}
}

func TestEvalBatchesFixedOrderShortLast(t *testing.T) {
	tok := tokenizer.NewByte()
	var rows []Row
	for i := 0; i < 7; i++ {
		rows = append(rows, Row{Prompt: "p", Chosen: string(rune('a' + i)), Rejected: "z"})
	}
	ex := EncodeRows(tok, rows, 32, true)
	bs := EvalBatches(tok, ex, contract.KindDPO, 3, 32)
	if len(bs) != 3 || bs[0].N != 3 || bs[2].N != 1 || bs[2].B != 6 {
		t.Fatalf("%d batches, N %d..%d", len(bs), bs[0].N, bs[len(bs)-1].N)
	}
	if in, _, _ := bs[2].Row(0); in[2] != 'g' {
		t.Fatalf("last batch starts with %q, want the 7th row", rune(in[2]))
	}
	if !reflect.DeepEqual(EvalBatches(tok, ex, contract.KindDPO, 3, 32), bs) {
		t.Fatal("eval batches differ between calls")
	}
}
