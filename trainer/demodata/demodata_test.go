package demodata

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/data"
	"github.com/preftune/preftune/trainer/tokenizer"
)

func TestCheck(t *testing.T) {
	cases := []struct {
		prompt, response string
		want             bool
	}{
		{"12+7=", "19", true},
		{"0+0=", "0", true},
		{"999+999=", "1998", true},
		{"12+7=", "18", false},
		{"12+7=", "019", false},
		{"12+7=", "19 ", false},
		{"12+7=", " 19", false},
		{"12+7=", "", false},
		{"12+7", "19", false},
		{"012+7=", "19", false},
		{"12-7=", "5", false},
		{"+7=", "7", false},
		{"a+b=", "0", false},
		{"12+7=19", "", false},
	}
	for _, c := range cases {
		if got := Check(c.prompt, c.response); got != c.want {
			t.Errorf("Check(%q, %q) = %v, want %v", c.prompt, c.response, got, c.want)
		}
	}
}

func TestMistakes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := []struct {
		m      Mistake
		a, b   int
		oneOf  []string
		exists bool
	}{
		{OffByOne, 12, 7, []string{"18", "10"}, true},
		{OffByOne, 0, 0, []string{"9", "1"}, true},
		{DroppedCarry, 47, 8, []string{"45"}, true},
		{DroppedCarry, 7, 5, []string{"2"}, true},
		{DroppedCarry, 5, 5, []string{"0"}, true},
		{DroppedCarry, 95, 7, []string{"92"}, true},
		{DroppedCarry, 12, 7, nil, false},
		{SwappedDigits, 7, 5, []string{"21"}, true},
		{SwappedDigits, 50, 5, nil, false}, // 55
		{SwappedDigits, 3, 4, nil, false},  // one digit
	}
	for _, c := range cases {
		for i := 0; i < 20; i++ {
			got, ok := Apply(c.m, c.a, c.b, rng)
			if ok != c.exists {
				t.Fatalf("%v on %d+%d: ok %v", c.m, c.a, c.b, ok)
			}
			if ok && !contains(c.oneOf, got) {
				t.Fatalf("%v on %d+%d gave %q, want one of %q", c.m, c.a, c.b, got, c.oneOf)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestGenerateRowsFollowTheRule(t *testing.T) {
	for level := 1; level <= 4; level++ {
		rows, err := Config{Difficulty: level}.Generate(3000, 5)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 3000 {
			t.Fatalf("level %d: %d rows", level, len(rows))
		}
		prompts := map[string]int{}
		for i, r := range rows {
			if r.Line != i+1 {
				t.Fatalf("row %d has line %d", i, r.Line)
			}
			if !Check(r.Prompt, r.Chosen) || Check(r.Prompt, r.Rejected) || r.Chosen == r.Rejected {
				t.Fatalf("level %d row %+v breaks the rule", level, r)
			}
			if len(r.Prompt) >= 16 {
				t.Fatalf("prompt %q is not short", r.Prompt)
			}
			if s := data.Encode(tokenizer.NewByte(), r.Prompt, r.Chosen, 32); s.ResponseStart != 1+len(r.Prompt) {
				t.Fatalf("row %+v does not fit a 32-token context untruncated", r)
			}
			prompts[r.Prompt]++
		}
		// Prompts are drawn without repetition until the level's prompts run out.
		space := map[int]int{1: 100, 2: 1000, 3: 10000, 4: 1000000}[level]
		if want := min(space, 3000); len(prompts) != want {
			t.Fatalf("level %d: %d distinct prompts, want %d", level, len(prompts), want)
		}
	}
}

func TestGenerateDeterministicAndMixesMistakes(t *testing.T) {
	a, b := Generate(500, 11), Generate(500, 11)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed, different rows")
	}
	if reflect.DeepEqual(a, Generate(500, 12)) {
		t.Fatal("different seeds, same rows")
	}
	// Classify each rejected answer by the mistake that explains it; all three must be common.
	seen := map[string]int{}
	for _, r := range a {
		switch {
		case len(r.Rejected) == len(r.Chosen) && r.Rejected[:len(r.Rejected)-1] == r.Chosen[:len(r.Chosen)-1]:
			seen["offByOne"]++
		case sameDigits(r.Rejected, r.Chosen):
			seen["swapped"]++
		default:
			seen["droppedCarry"]++
		}
	}
	for _, k := range []string{"offByOne", "swapped", "droppedCarry"} {
		if seen[k] < 50 {
			t.Fatalf("mistake mix %v: %s is rare", seen, k)
		}
	}
}

// sameDigits says whether x is a rearrangement of y's digits.
func sameDigits(x, y string) bool {
	bx, by := []byte(x), []byte(y)
	slices.Sort(bx)
	slices.Sort(by)
	return bytes.Equal(bx, by)
}

func TestRepeatedPromptsGetFreshWrongAnswers(t *testing.T) {
	rows, err := Config{Difficulty: 2}.Generate(2000, 1) // every one of the 1,000 prompts twice
	if err != nil {
		t.Fatal(err)
	}
	seen := map[data.Row]bool{}
	dups := 0
	for _, r := range rows {
		r.Line = 0
		if seen[r] {
			dups++
		}
		seen[r] = true
	}
	if dups != 0 {
		t.Fatalf("%d exact duplicate rows", dups)
	}
}

func TestWriteReadsBackAsStandard(t *testing.T) {
	rows := Generate(200, 3)
	var buf bytes.Buffer
	if err := Write(&buf, rows); err != nil {
		t.Fatal(err)
	}
	d, err := data.Parse(buf.Bytes(), data.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Format != data.FormatStandard || len(d.Invalid) != 0 || !reflect.DeepEqual(d.Rows, rows) {
		t.Fatalf("format %s invalid %v, rows equal %v", d.Format, d.Invalid, reflect.DeepEqual(d.Rows, rows))
	}
	rep, err := data.Report(d, contract.DatasetConfig{EvalFraction: 0.1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Counts.Eval == 0 || rep.Counts.Train == 0 {
		t.Fatalf("counts %+v", rep.Counts)
	}
}

func TestBadConfig(t *testing.T) {
	for _, c := range []Config{{0}, {5}, {-1}} {
		if _, err := c.Generate(10, 1); err == nil {
			t.Fatalf("difficulty %d accepted", c.Difficulty)
		}
	}
	if _, err := (Config{Difficulty: 1}).Generate(-1, 1); err == nil {
		t.Fatal("negative n accepted")
	}
}
