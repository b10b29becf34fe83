package data

import (
	"fmt"
	"math"
	"testing"
)

func TestSplitKeepsPromptsTogetherAndIsStable(t *testing.T) {
	var rows []Row
	for i := 0; i < 4000; i++ {
		// 1000 prompts, 4 rows each, interleaved.
		rows = append(rows, Row{Line: i + 1, Prompt: fmt.Sprintf("prompt %d", i%1000), Chosen: "c", Rejected: fmt.Sprint(i)})
	}
	train, eval, err := Split(rows, 0.2, 42)
	if err != nil {
		t.Fatal(err)
	}
	if len(train)+len(eval) != len(rows) {
		t.Fatalf("%d + %d rows, want %d", len(train), len(eval), len(rows))
	}
	if frac := float64(len(eval)) / float64(len(rows)); math.Abs(frac-0.2) > 0.04 {
		t.Fatalf("eval fraction %.3f, want about 0.2", frac)
	}
	if n := sharedPrompts(train, eval); n != 0 {
		t.Fatalf("%d prompts on both sides", n)
	}
	// Same inputs, same split; removing rows moves no other row.
	train2, eval2, _ := Split(rows[:2000], 0.2, 42)
	inEval := map[string]bool{}
	for _, r := range eval {
		inEval[r.Prompt] = true
	}
	for _, r := range eval2 {
		if !inEval[r.Prompt] {
			t.Fatalf("prompt %q moved to eval when rows were removed", r.Prompt)
		}
	}
	for _, r := range train2 {
		if inEval[r.Prompt] {
			t.Fatalf("prompt %q moved to train when rows were removed", r.Prompt)
		}
	}
	// Another seed gives another split.
	_, eval3, _ := Split(rows, 0.2, 43)
	same := 0
	for _, r := range eval3 {
		if inEval[r.Prompt] {
			same++
		}
	}
	if same == len(eval3) {
		t.Fatal("seed 43 split exactly like seed 42")
	}
}

func TestSplitFractions(t *testing.T) {
	rows := []Row{{Prompt: "a"}, {Prompt: "b"}}
	train, eval, err := Split(rows, 0, 1)
	if err != nil || len(train) != 2 || len(eval) != 0 {
		t.Fatalf("fraction 0: %d/%d %v", len(train), len(eval), err)
	}
	for _, bad := range []float64{-0.1, 1, 1.5, math.NaN()} {
		if _, _, err := Split(rows, bad, 1); err == nil {
			t.Fatalf("fraction %v accepted", bad)
		}
	}
}

// TestIsEvalSpreadsSimilarPrompts guards against a weak hash: prompts that differ in their last byte must still
// split near the asked fraction.
func TestIsEvalSpreadsSimilarPrompts(t *testing.T) {
	n := 0
	for i := 0; i < 10000; i++ {
		if IsEval(fmt.Sprintf("%d+%d=", i/100, i%100), 0.1, 0) {
			n++
		}
	}
	if n < 850 || n > 1150 {
		t.Fatalf("%d of 10000 arithmetic prompts in eval, want about 1000", n)
	}
}
