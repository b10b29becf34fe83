// Package demodata is the project's own synthetic preference dataset: addition problems such as "47+8=" whose
// chosen response is the sum ("55") and whose rejected response carries a mistake a small model makes.
//
// Why addition: the rule is exact and checkable in code (Check), so a test can measure how often a model's
// greedy answers are right, not just how its loss moves. Prompts are at most 8 bytes and answers at most 4, so a
// whole sequence (BOS, prompt, answer, EOS) takes at most 14 tokens and fits the smallest bucket of a 32-token
// context: batches stay small enough for a tiny byte-level GPT on a CPU.
//
// The rejected answers are the three mistakes of digit-by-digit addition:
//   - OffByOne: the last digit is one too high or too low (wrapping within the digit: 19 -> 10 or 18);
//   - DroppedCarry: every column is added but carries are forgotten (47+8 -> 45, 7+5 -> 2);
//   - SwappedDigits: two adjacent differing digits of the answer trade places (55 has none; 12 -> 21).
//
// Each rejected answer picks uniformly among the mistakes that change that sum (OffByOne always does). The
// mistakes differ from the right answer only locally, so telling them apart needs the sum; some also leave a
// cheaper trace (a dropped carry can shorten the answer, a swap can put a wrong digit first), which a small
// model may pick up before it adds reliably. The untested claim that a tiny model learns it in a CPU minute or
// two belongs to the learning test that trains one; this package only guarantees the data and the rule.
//
// Difficulty sets the operands' ranges:
//
//	1: a, b in 0..9     (100 distinct prompts)
//	2: a in 0..99, b in 0..9 (1,000 prompts; the default)
//	3: a, b in 0..99    (10,000 prompts)
//	4: a, b in 0..999   (1,000,000 prompts)
//
// Level 2 is the default because every eval prompt is new (the split is by prompt) yet each of its digit
// columns was seen thousands of times in training: held-out sums are reachable by learning the columns, not
// only by memorising. Generate draws distinct prompts until the level's prompts run out, then starts again; a
// prompt that comes back gets a wrong answer it has not had yet while one is left, so rows rarely repeat.
package demodata

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/preftune/preftune/trainer/data"
)

// Mistake is a kind of wrong answer.
type Mistake int

const (
	OffByOne Mistake = iota
	DroppedCarry
	SwappedDigits
)

func (m Mistake) String() string {
	return [...]string{"offByOne", "droppedCarry", "swappedDigits"}[m]
}

// DefaultDifficulty is the level Generate uses.
const DefaultDifficulty = 2

// Config chooses the dataset's difficulty (1 to 4).
type Config struct {
	Difficulty int
}

// ranges returns the exclusive upper bounds of the two operands.
func (c Config) ranges() (int, int, error) {
	switch c.Difficulty {
	case 1:
		return 10, 10, nil
	case 2:
		return 100, 10, nil
	case 3:
		return 100, 100, nil
	case 4:
		return 1000, 1000, nil
	}
	return 0, 0, fmt.Errorf("difficulty %d: want 1 to 4", c.Difficulty)
}

// Generate returns n rows at the default difficulty.
func Generate(n int, seed uint64) []data.Row {
	rows, err := Config{Difficulty: DefaultDifficulty}.Generate(n, seed)
	if err != nil {
		panic(err) // the default difficulty is valid
	}
	return rows
}

// Generate returns n rows; the same seed and difficulty always give the same rows. Line numbers are those the
// rows get when written with Write.
func (c Config) Generate(n int, seed uint64) ([]data.Row, error) {
	maxA, maxB, err := c.ranges()
	if err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, fmt.Errorf("n %d: must not be negative", n)
	}
	rng := rand.New(rand.NewPCG(seed, uint64(c.Difficulty)))
	space := maxA * maxB
	used := map[int]bool{}
	pairs := map[[2]string]bool{} // rows written, to give a returning prompt a fresh wrong answer
	rows := make([]data.Row, 0, n)
	for len(rows) < n {
		if len(used) == space {
			clear(used)
		}
		k := rng.IntN(space)
		if used[k] {
			continue
		}
		used[k] = true
		a, b := k/maxB, k%maxB
		prompt := Prompt(a, b)
		wrong := Wrong(a, b, rng)
		// A handful of draws finds an unused wrong answer when one is left (each sum has two to five).
		for try := 0; try < 16 && pairs[[2]string{prompt, wrong}]; try++ {
			wrong = Wrong(a, b, rng)
		}
		pairs[[2]string{prompt, wrong}] = true
		rows = append(rows, data.Row{Line: len(rows) + 1, Prompt: prompt, Chosen: strconv.Itoa(a + b), Rejected: wrong})
	}
	return rows, nil
}

// Prompt is the text of the problem a+b.
func Prompt(a, b int) string { return strconv.Itoa(a) + "+" + strconv.Itoa(b) + "=" }

// Wrong returns a wrong answer to a+b, with a mistake drawn from rng among those that apply.
func Wrong(a, b int, rng *rand.Rand) string {
	var options []string
	for _, m := range []Mistake{OffByOne, DroppedCarry, SwappedDigits} {
		if s, ok := Apply(m, a, b, rng); ok {
			options = append(options, s)
		}
	}
	return options[rng.IntN(len(options))]
}

// Apply makes mistake m on a+b; ok is false when the mistake would not change the answer (no carry to drop, no
// two differing adjacent digits to swap).
func Apply(m Mistake, a, b int, rng *rand.Rand) (string, bool) {
	sum := []byte(strconv.Itoa(a + b))
	switch m {
	case OffByOne:
		d := int(sum[len(sum)-1]-'0') + 9 // -1 mod 10
		if rng.IntN(2) == 0 {
			d += 2 // +1 mod 10
		}
		sum[len(sum)-1] = byte('0' + d%10)
		return string(sum), true
	case DroppedCarry:
		s := noCarrySum(a, b)
		return s, s != string(sum)
	case SwappedDigits:
		var at []int
		for i := 0; i+1 < len(sum); i++ {
			if sum[i] != sum[i+1] {
				at = append(at, i)
			}
		}
		if len(at) == 0 {
			return "", false
		}
		i := at[rng.IntN(len(at))]
		sum[i], sum[i+1] = sum[i+1], sum[i]
		return string(sum), true
	}
	return "", false
}

// noCarrySum adds column by column and forgets every carry.
func noCarrySum(a, b int) string {
	if a == 0 && b == 0 {
		return "0"
	}
	var digits []byte
	for a > 0 || b > 0 {
		digits = append(digits, byte('0'+(a%10+b%10)%10))
		a, b = a/10, b/10
	}
	for len(digits) > 1 && digits[len(digits)-1] == '0' { // a dropped carry can leave leading zeros: 5+5 -> 0
		digits = digits[:len(digits)-1]
	}
	for i, j := 0, len(digits)-1; i < j; i, j = i+1, j-1 {
		digits[i], digits[j] = digits[j], digits[i]
	}
	return string(digits)
}

// Answer returns the right answer to a prompt of this dataset; ok is false for any other text.
func Answer(prompt string) (string, bool) {
	rest, ok := strings.CutSuffix(prompt, "=")
	if !ok {
		return "", false
	}
	as, bs, ok := strings.Cut(rest, "+")
	if !ok {
		return "", false
	}
	a, okA := operand(as)
	b, okB := operand(bs)
	if !okA || !okB {
		return "", false
	}
	return strconv.Itoa(a + b), true
}

// operand parses a non-negative decimal without sign, spaces or leading zeros, as Prompt writes them.
func operand(s string) (int, bool) {
	if s == "" || len(s) > 9 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// Check is the dataset's rule: the response is exactly the sum the prompt asks for, in canonical decimal (no
// spaces, no leading zeros, nothing after it).
func Check(prompt, response string) bool {
	want, ok := Answer(prompt)
	return ok && response == want
}

// Write writes rows as standard-format JSON Lines ({"prompt", "chosen", "rejected"}).
func Write(w io.Writer, rows []data.Row) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, r := range rows {
		if err := enc.Encode(struct {
			Prompt   string `json:"prompt"`
			Chosen   string `json:"chosen"`
			Rejected string `json:"rejected"`
		}{r.Prompt, r.Chosen, r.Rejected}); err != nil {
			return err
		}
	}
	return nil
}
