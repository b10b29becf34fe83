package data

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
)

func TestSplitKeepsPromptsTogetherAndIsStable(t *testing.T) {
	var rows []Row
	for i := 0; i < 4000; i++ {
		// 1000 prompts, 4 rows each, interleaved.
		rows = append(rows, Row{Line: i + 1, Prompt: fmt.Sprintf("prompt %d", i%1000), Chosen: "c", Rejected: fmt.Sprint(i)})
	}
	s, err := Split(rows, 0.2, 42)
	if err != nil {
		t.Fatal(err)
	}
	train, eval := s.Train, s.Eval
	if len(train)+len(eval) != len(rows) || s.By != SplitByPrompt {
		t.Fatalf("%d + %d rows, want %d; by %q", len(train), len(eval), len(rows), s.By)
	}
	if len(eval) != 800 {
		t.Fatalf("%d eval rows, want 800 (0.2 of 4000)", len(eval))
	}
	if n := sharedPrompts(train, eval); n != 0 {
		t.Fatalf("%d prompts on both sides", n)
	}
	// Same inputs, same split; removing rows (here half of each prompt's) moves no other row.
	s2, _ := Split(rows[:2000], 0.2, 42)
	inEval := map[string]bool{}
	for _, r := range eval {
		inEval[r.Prompt] = true
	}
	for _, r := range s2.Eval {
		if !inEval[r.Prompt] {
			t.Fatalf("prompt %q moved to eval when rows were removed", r.Prompt)
		}
	}
	for _, r := range s2.Train {
		if inEval[r.Prompt] {
			t.Fatalf("prompt %q moved to train when rows were removed", r.Prompt)
		}
	}
	// Another seed gives another split.
	s3, _ := Split(rows, 0.2, 43)
	same := 0
	for _, r := range s3.Eval {
		if inEval[r.Prompt] {
			same++
		}
	}
	if same == len(s3.Eval) {
		t.Fatal("seed 43 split exactly like seed 42")
	}
}

func TestSplitFractions(t *testing.T) {
	rows := []Row{{Prompt: "a"}, {Prompt: "b"}}
	s, err := Split(rows, 0, 1)
	if err != nil || len(s.Train) != 2 || len(s.Eval) != 0 || s.By != "" {
		t.Fatalf("fraction 0: %d/%d by %q %v", len(s.Train), len(s.Eval), s.By, err)
	}
	for _, bad := range []float64{-0.1, 1, 1.5, math.NaN()} {
		if _, err := Split(rows, bad, 1); err == nil {
			t.Fatalf("fraction %v accepted", bad)
		}
	}
	// A fraction close to 1 never holds out every row.
	s, _ = Split(rows, 0.99, 1)
	if len(s.Train) != 1 || len(s.Eval) != 1 {
		t.Fatalf("fraction 0.99 of 2 rows: %d train, %d eval", len(s.Train), len(s.Eval))
	}
}

// TestSplitSpreadsSimilarPrompts guards against a weak hash: prompts that differ in their last byte must be taken
// from all over the data, not from its start.
func TestSplitSpreadsSimilarPrompts(t *testing.T) {
	var rows []Row
	for i := 0; i < 10000; i++ {
		rows = append(rows, Row{Line: i + 1, Prompt: fmt.Sprintf("%d+%d=", i/100, i%100)})
	}
	s, err := Split(rows, 0.1, 0)
	if err != nil || len(s.Eval) != 1000 || s.By != SplitByPrompt {
		t.Fatalf("%d of 10000 in eval by %q (%v), want 1000 by prompt", len(s.Eval), s.By, err)
	}
	firstHalf := 0
	for _, r := range s.Eval {
		if r.Line <= 5000 {
			firstHalf++
		}
	}
	if firstHalf < 400 || firstHalf > 600 {
		t.Fatalf("%d of the 1000 eval rows come from the first half of the data, want about 500", firstHalf)
	}
}

// TestSplitRepeatedPrompts is case 08: {"text"} rows (no prompt) and rows that all share one prompt. Grouping by
// prompt would hold out all or nothing; the split groups by row instead, reaches the fraction within a row, keeps
// identical rows on one side, and says so.
func TestSplitRepeatedPrompts(t *testing.T) {
	for _, file := range []string{"08a-split-text-sft.jsonl", "08b-split-same-prompt.jsonl"} {
		t.Run(file, func(t *testing.T) {
			d, err := ReadFile(caseFile(t, file), Options{})
			if err != nil || len(d.Rows) != 20 {
				t.Fatalf("%v, %d rows", err, len(d.Rows))
			}
			for seed := int64(0); seed < 20; seed++ {
				s, err := Split(d.Rows, 0.1, seed)
				if err != nil {
					t.Fatal(err)
				}
				if len(s.Eval) < 1 || len(s.Eval) > 3 || len(s.Train)+len(s.Eval) != 20 {
					t.Fatalf("seed %d: %d train, %d eval; want 2±1 of 20 held out", seed, len(s.Train), len(s.Eval))
				}
				if s.By != SplitByRow {
					t.Fatalf("seed %d: split by %q, want %q", seed, s.By, SplitByRow)
				}
				inTrain := map[string]bool{}
				for _, r := range s.Train {
					inTrain[r.Prompt+"\x00"+r.Chosen+"\x00"+r.Rejected] = true
				}
				for _, r := range s.Eval {
					if inTrain[r.Prompt+"\x00"+r.Chosen+"\x00"+r.Rejected] {
						t.Fatalf("seed %d: line %d's text is in both splits", seed, r.Line)
					}
				}
			}
			rep, err := Report(d, contract.DatasetConfig{EvalFraction: 0.1}, 0)
			if err != nil {
				t.Fatal(err)
			}
			if rep.SplitBy != SplitByRow || rep.Counts.Eval != 2 || rep.Counts.Train != 18 {
				t.Fatalf("report: split by %q, counts %+v", rep.SplitBy, rep.Counts)
			}
			// A shared prompt on both sides is worth a warning; rows without a prompt are not.
			if wantWarn := file == "08b-split-same-prompt.jsonl"; warns(rep, "split by row, not by prompt") != wantWarn {
				t.Fatalf("warnings %q; want a split-by-row warning: %v", rep.Warnings, wantWarn)
			}
		})
	}
}

// TestSplitDuplicatesStayTogether: rows with the same text never straddle the split, even split by row.
func TestSplitDuplicatesStayTogether(t *testing.T) {
	var rows []Row
	for i := 0; i < 40; i++ {
		rows = append(rows, Row{Line: i + 1, Prompt: "same", Chosen: fmt.Sprint(i % 10), Rejected: "r"})
	}
	s, _ := Split(rows, 0.1, 3)
	if s.By != SplitByRow || len(s.Eval) != 4 {
		t.Fatalf("by %q, %d eval rows; want 4 by row", s.By, len(s.Eval))
	}
	if sharedTexts(s.Train, s.Eval) != 0 {
		t.Fatal("a duplicated row is on both sides")
	}
}

func TestSplitDegenerateWarnings(t *testing.T) {
	d := mustParse(t, `{"prompt":"a","chosen":"b","rejected":"c"}
{"prompt":"d","chosen":"e","rejected":"f"}
`, Options{})
	rep, err := Report(d, contract.DatasetConfig{EvalFraction: 0.1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Counts.Eval != 0 || !warns(rep, "the eval split is empty") {
		t.Fatalf("counts %+v warnings %q", rep.Counts, rep.Warnings)
	}
}

func sharedTexts(a, b []Row) int {
	in := map[string]bool{}
	for _, r := range a {
		in[r.Prompt+"\x00"+r.Chosen] = true
	}
	n := 0
	for _, r := range b {
		if in[r.Prompt+"\x00"+r.Chosen] {
			n++
		}
	}
	return n
}

// casesDir holds the small inputs of ../shared/testdata/cases (README.md there says what each shows).
const casesDir = "../../../shared/testdata/cases"

func caseFile(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(casesDir, name)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("case file %s is absent (%v): skipping", p, err)
	}
	return p
}

// warns says whether one of the report's warnings contains want.
func warns(rep contract.DatasetReport, want string) bool {
	for _, w := range rep.Warnings {
		if strings.Contains(w, want) {
			return true
		}
	}
	return false
}
