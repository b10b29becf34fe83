package data

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/preftune/preftune/trainer/contract"
)

func report(t *testing.T, src string, evalFraction float64, maxInvalid int) contract.DatasetReport {
	t.Helper()
	rep, err := Report(mustParse(t, src, Options{}), contract.DatasetConfig{EvalFraction: evalFraction, Seed: 1}, maxInvalid)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func hasWarning(rep contract.DatasetReport, want string) bool {
	for _, w := range rep.Warnings {
		if w == want {
			return true
		}
	}
	return false
}

// TestLengthBiasSaysItsDirection: chosen shorter in most pairs is a bias too, and the warning says "shorter".
func TestLengthBiasSaysItsDirection(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 20; i++ {
		chosen, rejected := "ok", "a long rambling answer"
		if i < 2 {
			chosen, rejected = "a long good answer", "no"
		}
		fmt.Fprintf(&b, `{"prompt":"q%d","chosen":%q,"rejected":%q}`+"\n", i, chosen, rejected)
	}
	rep := report(t, b.String(), 0.3, 0)
	if !hasWarning(rep, "length bias: chosen is shorter in 18 of 20 pairs whose lengths differ") {
		t.Errorf("warnings %q", rep.Warnings)
	}
}

func TestReportCountsLengthsAndWarnings(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 20; i++ {
		// chosen longer in 18 of 20 pairs: a length bias
		chosen, rejected := "a long good answer", "bad"
		if i < 2 {
			chosen, rejected = "ok", "a long bad answer"
		}
		fmt.Fprintf(&b, `{"prompt":"q%d","chosen":%q,"rejected":%q}`+"\n", i, chosen, rejected)
	}
	b.WriteString(`{"prompt":"q5","chosen":"a long good answer","rejected":"bad"}` + "\n") // repeats the q5 row
	b.WriteString(`{"prompt":"mail","chosen":"write to jo.doe@example.com","rejected":"write to jo.doe@example.com"}` + "\n")
	b.WriteString(`{"prompt":"call","chosen":"call (555) 123-4567","rejected":"no"}` + "\n")
	b.WriteString(`{"prompt":"x","chosen":""}` + "\n")
	rep := report(t, b.String(), 0.3, 0)
	c := rep.Counts
	if c.Total != 24 || c.Pairs != 23 || c.Invalid != 1 || c.Train+c.Eval != 23 {
		t.Fatalf("counts %+v", c)
	}
	if len(rep.InvalidRows) != 1 || rep.InvalidRows[0].Line != 24 || rep.InvalidRows[0].Field != "chosen" {
		t.Fatalf("invalid rows %+v", rep.InvalidRows)
	}
	if rep.Lengths.ChosenMax != len("write to jo.doe@example.com") || rep.Lengths.RejectedMax != len("write to jo.doe@example.com") {
		t.Fatalf("lengths %+v", rep.Lengths)
	}
	// q0..q19: 18 longer; the repeated row: longer; mail: equal; call: longer -> 20 of 23.
	if rep.ChosenLongerFraction != 0.87 {
		t.Fatalf("chosenLongerFraction %v, want 20/23 rounded = 0.87", rep.ChosenLongerFraction)
	}
	for _, w := range []string{
		"1 exact duplicate row",
		"1 pair with chosen identical to rejected",
		"length bias: chosen is longer in 20 of 22 pairs whose lengths differ",
		"1 row contains e-mail addresses",
		"1 row contains phone numbers",
	} {
		if !hasWarning(rep, w) {
			t.Errorf("missing warning %q in %q", w, rep.Warnings)
		}
	}
	for _, w := range rep.Warnings {
		if strings.Contains(w, "train and eval") {
			t.Errorf("split leaked: %s", w)
		}
	}
}

func TestReportNoFalseAlarms(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 20; i++ {
		c, r := "longer answer", "short"
		if i%2 == 0 {
			c, r = r, c
		}
		fmt.Fprintf(&b, `{"prompt":"In 2023-10-12 we sold 1000 000 units, version 1.2.3; %d","chosen":%q,"rejected":%q}`+"\n", i, c, r)
	}
	rep := report(t, b.String(), 0.1, 0)
	if len(rep.Warnings) != 0 {
		t.Fatalf("warnings on a clean dataset: %q", rep.Warnings)
	}
	if rep.ChosenLongerFraction != 0.5 {
		t.Fatalf("chosenLongerFraction %v", rep.ChosenLongerFraction)
	}
}

func TestReportSharedPromptsCounted(t *testing.T) {
	train := []Row{{Prompt: "a"}, {Prompt: "b"}}
	eval := []Row{{Prompt: "b"}, {Prompt: "b"}, {Prompt: "c"}}
	if n := sharedPrompts(train, eval); n != 1 {
		t.Fatalf("sharedPrompts = %d, want 1", n)
	}
}

// TestReportStaysSmall fills a file with bad rows whose reasons are long and checks that the termination message
// stays well under the kubelet's limit, while every bad row is still counted.
func TestReportStaysSmall(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"prompt":"p","chosen":"c","rejected":"r"}` + "\n")
	long := strings.Repeat("ü", 500)
	for i := 0; i < 5000; i++ {
		switch i % 3 {
		case 0:
			fmt.Fprintf(&b, `{"prompt":[{"role":%q,"content":"x"}],"chosen":"c","rejected":"r"}`+"\n", long)
		case 1:
			b.WriteString(`{"prompt":"p","chosen":` + "\n")
		default:
			fmt.Fprintf(&b, `{"prompt":"p","chosen":"c","rejected":"r",%q:1,"x":}`+"\n", long)
		}
	}
	for _, maxInvalid := range []int{0, 10, 1000} {
		rep := report(t, b.String(), 0.1, maxInvalid)
		if rep.Counts.Invalid != 5000 || rep.Counts.Total != 5001 {
			t.Fatalf("counts %+v", rep.Counts)
		}
		msg, err := json.Marshal(contract.TerminationMessage{Dataset: &rep})
		if err != nil {
			t.Fatal(err)
		}
		if len(msg) > contract.MaxTerminationMessageBytes*3/4 {
			t.Fatalf("maxInvalidRows %d: termination message of %d bytes", maxInvalid, len(msg))
		}
		if len(rep.InvalidRows) == 0 || (maxInvalid == 10 && len(rep.InvalidRows) > 10) {
			t.Fatalf("maxInvalidRows %d: %d rows listed", maxInvalid, len(rep.InvalidRows))
		}
		for _, r := range rep.InvalidRows {
			if len(r.Reason) > maxReasonBytes || !utf8.ValidString(r.Reason) {
				t.Fatalf("reason of %d bytes: %q", len(r.Reason), r.Reason)
			}
		}
	}
}

func TestTruncateKeepsCharacters(t *testing.T) {
	s := truncate(strings.Repeat("日", 100), 20)
	if len(s) > 20 || !strings.HasSuffix(s, "…") || strings.ContainsRune(s, '\uFFFD') {
		t.Fatalf("truncate gave %q (%d bytes)", s, len(s))
	}
}

func TestLengthBiasIgnoresTies(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 30; i++ {
		// equal lengths everywhere: no length signal, though chosen is "longer" in no pair
		fmt.Fprintf(&b, `{"prompt":"%d+1=","chosen":"%d","rejected":"%d"}`+"\n", i+10, i+11, i+12)
	}
	rep := report(t, b.String(), 0, 0)
	if rep.ChosenLongerFraction != 0 || len(rep.Warnings) != 0 {
		t.Fatalf("fraction %v warnings %q", rep.ChosenLongerFraction, rep.Warnings)
	}
}
