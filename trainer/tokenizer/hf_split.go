package tokenizer

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// span is a byte range [start, end) of a string and whether a split pattern matched it.
type span struct {
	start, end int
	match      bool
}

// matcher finds the non-overlapping, leftmost matches of a pattern in s as byte ranges, in order, the way
// Hugging Face tokenizers' Pattern trait does for strings, characters and Oniguruma regexes.
type matcher interface {
	find(s string) [][2]int
}

// literal matches a fixed string (a tokenizer.json pattern {"String": ...}).
type literal string

func (l literal) find(s string) [][2]int {
	var out [][2]int
	for off := 0; off <= len(s); {
		i := strings.Index(s[off:], string(l))
		if i < 0 {
			break
		}
		out = append(out, [2]int{off + i, off + i + len(l)})
		off += i + len(l)
	}
	return out
}

// runeClass matches every single character for which the predicate holds.
type runeClass func(rune) bool

func (f runeClass) find(s string) [][2]int {
	var out [][2]int
	for i, r := range s {
		if f(r) {
			out = append(out, [2]int{i, i + utf8.RuneLen(r)})
		}
	}
	return out
}

// regex matches an Oniguruma-syntax pattern (a tokenizer.json pattern {"Regex": ...}) with regexp2, which supports
// the lookaheads of Llama-3's and Qwen's patterns and Unicode \s, \p{L}, \p{N} (its default options; the RE2 option
// would make \s ASCII-only). regexp2 reports rune offsets; find converts them to byte offsets.
type regex struct {
	re *regexp2.Regexp
}

func compileRegex(pattern string) (regex, error) {
	re, err := regexp2.Compile(extendClasses(pattern), regexp2.None)
	if err != nil {
		return regex{}, err
	}
	return regex{re: re}, nil
}

func (r regex) find(s string) [][2]int {
	if s == "" {
		return nil
	}
	runes := []rune(s)
	// byteAt[i] is the byte offset of rune i (byteAt[len(runes)] = len(s)).
	byteAt := make([]int, len(runes)+1)
	b := 0
	for i, c := range runes {
		byteAt[i] = b
		b += utf8.RuneLen(c)
	}
	byteAt[len(runes)] = b
	if b != len(s) {
		// Invalid UTF-8: HF.Encode replaces it before any pattern runs, so this cannot happen.
		panic("tokenizer: regex.find on invalid UTF-8")
	}
	var out [][2]int
	m, err := r.re.FindRunesMatch(runes)
	for err == nil && m != nil {
		out = append(out, [2]int{byteAt[m.Index], byteAt[m.Index+m.Length]})
		m, err = r.re.FindNextMatch(m)
	}
	return out
}

// splitBehavior is a tokenizer.json SplitDelimiterBehavior.
type splitBehavior int

const (
	splitRemoved splitBehavior = iota
	splitIsolated
	splitMergedWithPrevious
	splitMergedWithNext
	splitContiguous
)

var splitBehaviors = map[string]splitBehavior{
	"Removed": splitRemoved, "Isolated": splitIsolated, "MergedWithPrevious": splitMergedWithPrevious,
	"MergedWithNext": splitMergedWithNext, "Contiguous": splitContiguous,
}

// splitBy cuts s at the matches of m the way Hugging Face's NormalizedString::split does with the behavior and
// invert flag, and returns the non-empty parts as byte ranges of s.
func splitBy(s string, m matcher, behavior splitBehavior, invert bool) [][2]int {
	if s == "" {
		return nil
	}
	var spans []span
	prev := 0
	for _, r := range m.find(s) {
		if r[0] != prev {
			spans = append(spans, span{prev, r[0], false})
		}
		spans = append(spans, span{r[0], r[1], true})
		prev = r[1]
	}
	if prev != len(s) {
		spans = append(spans, span{prev, len(s), false})
	}
	if invert {
		for i := range spans {
			spans[i].match = !spans[i].match
		}
	}
	var parts []span
	switch behavior {
	case splitRemoved:
		for _, sp := range spans {
			if !sp.match {
				parts = append(parts, sp)
			}
		}
	case splitIsolated:
		parts = spans
	case splitMergedWithPrevious:
		previous := false
		for _, sp := range spans {
			if sp.match && !previous && len(parts) > 0 {
				parts[len(parts)-1].end = sp.end
			} else {
				parts = append(parts, span{sp.start, sp.end, false})
			}
			previous = sp.match
		}
	case splitMergedWithNext:
		previous := false
		for i := len(spans) - 1; i >= 0; i-- {
			sp := spans[i]
			if sp.match && !previous && len(parts) > 0 {
				parts[len(parts)-1].start = sp.start
			} else {
				parts = append(parts, span{sp.start, sp.end, false})
			}
			previous = sp.match
		}
		for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
			parts[i], parts[j] = parts[j], parts[i]
		}
	case splitContiguous:
		previous := false
		for _, sp := range spans {
			if sp.match == previous && len(parts) > 0 {
				parts[len(parts)-1].end = sp.end
			} else {
				parts = append(parts, span{sp.start, sp.end, false})
			}
			previous = sp.match
		}
	default:
		panic(fmt.Sprintf("tokenizer: split behavior %d", behavior))
	}
	out := make([][2]int, 0, len(parts))
	for _, p := range parts {
		if p.end > p.start {
			out = append(out, [2]int{p.start, p.end})
		}
	}
	return out
}

// extendClasses adds to every \p{X} of an Oniguruma pattern the characters of category X that Hugging Face's
// Oniguruma knows but Go's older Unicode tables (which regexp2 uses) leave unassigned (unicodeExtra), so that
// \p{L}, \p{N}, \p{P}, \p{S}, \p{M} match the same characters as in Hugging Face. \P{X} outside a bracket becomes
// [^\p{X}...]; \P{X} inside a bracket is left as it is (no tokenizer.json in use writes it).
func extendClasses(pattern string) string {
	rs := []rune(pattern)
	var b strings.Builder
	depth := 0
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		if c == '\\' && i+1 < len(rs) {
			if (rs[i+1] == 'p' || rs[i+1] == 'P') && i+2 < len(rs) && rs[i+2] == '{' {
				end := -1
				for j := i + 3; j < len(rs); j++ {
					if rs[j] == '}' {
						end = j
						break
					}
				}
				if end > 0 {
					name := string(rs[i+3 : end])
					if tbl, ok := unicodeExtra[name]; ok {
						extra := rangeChars(tbl)
						neg := rs[i+1] == 'P'
						switch {
						case depth > 0 && !neg:
							b.WriteString(`\p{` + name + `}` + extra)
						case depth == 0 && !neg:
							b.WriteString(`[\p{` + name + `}` + extra + `]`)
						case depth == 0 && neg:
							b.WriteString(`[^\p{` + name + `}` + extra + `]`)
						default:
							b.WriteString(string(rs[i : end+1]))
						}
						i = end
						continue
					}
				}
			}
			b.WriteRune(c)
			b.WriteRune(rs[i+1])
			i++
			continue
		}
		switch {
		case c == '[':
			depth++
		case c == ']' && depth > 0:
			depth--
		}
		b.WriteRune(c)
	}
	return b.String()
}

// rangeChars writes a range table's characters as character-class ranges ("a-z").
func rangeChars(t *unicode.RangeTable) string {
	var b strings.Builder
	add := func(lo, hi rune) {
		b.WriteRune(lo)
		if hi > lo {
			b.WriteByte('-')
			b.WriteRune(hi)
		}
	}
	for _, r := range t.R16 {
		add(rune(r.Lo), rune(r.Hi))
	}
	for _, r := range t.R32 {
		add(rune(r.Lo), rune(r.Hi))
	}
	return b.String()
}

// isCategory reports whether r is in Go's table of a general category or in unicodeExtra's.
func isCategory(r rune, name string, goTable *unicode.RangeTable) bool {
	if unicode.Is(goTable, r) {
		return true
	}
	t, ok := unicodeExtra[name]
	return ok && unicode.Is(t, r)
}
