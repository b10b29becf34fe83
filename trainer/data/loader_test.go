package data

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/tokenizer"
)

func loaderExamples(n int) []Example {
	var rows []Row
	for i := 0; i < n; i++ {
		rows = append(rows, Row{Prompt: fmt.Sprintf("%d+1=", i), Chosen: fmt.Sprint(i + 1), Rejected: fmt.Sprint(i)})
	}
	return EncodeRows(tokenizer.NewByte(), rows, 32, true)
}

// firstRows identifies a batch by its first real row's prompt bytes.
func batchKey(b Batch) string {
	s := ""
	for i := 0; i < b.N; i++ {
		in, _, _ := b.Row(i)
		s += tokenizer.NewByte().Decode(in) + "|"
	}
	return s
}

func TestLoaderEpochsVisitEveryExampleOnce(t *testing.T) {
	ex := loaderExamples(10)
	l, err := NewLoader(tokenizer.NewByte(), ex, contract.KindDPO, 4, 32, 9)
	if err != nil {
		t.Fatal(err)
	}
	if l.BatchesPerEpoch() != 3 {
		t.Fatalf("BatchesPerEpoch %d", l.BatchesPerEpoch())
	}
	var orders [2]string
	for epoch := 0; epoch < 2; epoch++ {
		seen := map[string]int{}
		for k := 0; k < 3; k++ {
			b := l.Next()
			wantN := map[bool]int{true: 2, false: 4}[k == 2]
			if b.N != wantN || b.B != 8 {
				t.Fatalf("epoch %d batch %d: N %d B %d", epoch, k, b.N, b.B)
			}
			for i := 0; i < b.N; i++ {
				in, _, _ := b.Row(i)
				seen[tokenizer.NewByte().Decode(in)]++
			}
			orders[epoch] += batchKey(b)
		}
		if len(seen) != 10 {
			t.Fatalf("epoch %d saw %d distinct examples, want 10", epoch, len(seen))
		}
		if c := l.Cursor(); c != (Cursor{Epoch: epoch + 1}) || l.Epoch() != float64(epoch+1) {
			t.Fatalf("after epoch %d cursor %+v epoch %v", epoch, c, l.Epoch())
		}
	}
	if orders[0] == orders[1] {
		t.Fatal("two epochs in the same order")
	}
}

func TestLoaderDeterministicAndResumes(t *testing.T) {
	ex := loaderExamples(23)
	tok := tokenizer.NewByte()
	run := func(seed uint64, n int) []Batch {
		l, err := NewLoader(tok, ex, contract.KindSFT, 5, 32, seed)
		if err != nil {
			t.Fatal(err)
		}
		var out []Batch
		for i := 0; i < n; i++ {
			out = append(out, l.Next())
		}
		return out
	}
	a, b := run(1, 17), run(1, 17)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed, different batches")
	}
	if reflect.DeepEqual(a, run(2, 17)) {
		t.Fatal("different seeds, same batches")
	}
	// Stop after 7 batches (mid second epoch), serialise the cursor, resume in a new loader.
	l, _ := NewLoader(tok, ex, contract.KindSFT, 5, 32, 1)
	for i := 0; i < 7; i++ {
		l.Next()
	}
	saved, err := json.Marshal(l.Cursor())
	if err != nil {
		t.Fatal(err)
	}
	var c Cursor
	if err := json.Unmarshal(saved, &c); err != nil {
		t.Fatal(err)
	}
	if c != (Cursor{Epoch: 1, Position: 10}) {
		t.Fatalf("cursor after 7 batches of 5 over 23: %+v (%s)", c, saved)
	}
	resumed, _ := NewLoader(tok, ex, contract.KindSFT, 5, 32, 1)
	if err := resumed.Seek(c); err != nil {
		t.Fatal(err)
	}
	for i := 7; i < 17; i++ {
		if got := resumed.Next(); !reflect.DeepEqual(got, a[i]) {
			t.Fatalf("resumed batch %d differs", i)
		}
	}
	if err := resumed.Seek(Cursor{Epoch: 0, Position: 23}); err == nil {
		t.Fatal("Seek past the end accepted")
	}
}

func TestNewLoaderRejectsBadArguments(t *testing.T) {
	tok := tokenizer.NewByte()
	if _, err := NewLoader(tok, nil, contract.KindSFT, 4, 32, 0); err == nil {
		t.Fatal("no examples accepted")
	}
	if _, err := NewLoader(tok, loaderExamples(3), contract.KindSFT, 0, 32, 0); err == nil {
		t.Fatal("batch size 0 accepted")
	}
	if _, err := NewLoader(tok, loaderExamples(3), contract.KindInspect, 2, 32, 0); err == nil {
		t.Fatal("kind inspect accepted")
	}
}
