package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// Hand-written matchers for the split patterns of GPT-2, Llama-3 and Qwen2/3, the most used ones: regexp2 spends
// most of an encode's time in them. Each follows the pattern's backtracking semantics (first alternative that
// matches at the leftmost position, greedy quantifiers) and is selected only for the exact pattern text; the tests
// compare them with regexp2 on random text and, end to end, with Hugging Face's tokenizers.
const (
	llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	qwenPattern   = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// fastSplit is one of the three pattern families.
type fastSplit struct {
	llamaStyle bool // Llama-3/Qwen: case-insensitive contractions, any non-letter/number before letters, CR/LF tails
	maxDigits  int  // digits per number piece; 0 = unbounded (GPT-2)
}

// fastSplitFor returns the hand-written matcher of a pattern, or nil.
func fastSplitFor(pattern string) matcher {
	switch pattern {
	case gpt2Pattern:
		return fastSplit{}
	case llama3Pattern:
		return fastSplit{llamaStyle: true, maxDigits: 3}
	case qwenPattern:
		return fastSplit{llamaStyle: true, maxDigits: 1}
	}
	return nil
}

func isL(r rune) bool { return isCategory(r, "L", unicode.L) }
func isN(r rune) bool { return isCategory(r, "N", unicode.N) }

// isS is Oniguruma's Unicode \s (White_Space), the same set as Go's unicode.IsSpace.
func isS(r rune) bool { return unicode.IsSpace(r) }

func isCRLF(r rune) bool { return r == '\r' || r == '\n' }

// foldEq reports whether r matches the ASCII letter c case-insensitively as Oniguruma's Unicode case folding does
// (ſ U+017F folds to s).
func foldEq(r rune, c byte) bool {
	if r == rune(c) || r == rune(c)-'a'+'A' {
		return true
	}
	return c == 's' && r == 'ſ'
}

func (f fastSplit) find(s string) [][2]int {
	var out [][2]int
	for i := 0; i < len(s); {
		n := f.matchAt(s, i)
		if n == 0 {
			_, w := utf8.DecodeRuneInString(s[i:])
			i += w
			continue
		}
		out = append(out, [2]int{i, i + n})
		i += n
	}
	return out
}

// matchAt returns the length of the pattern's match starting at byte i (0: none).
func (f fastSplit) matchAt(s string, i int) int {
	r0, w0 := utf8.DecodeRuneInString(s[i:])
	// contractions
	if r0 == '\'' && i+1 < len(s) {
		rest := s[i+1:]
		r1, w1 := utf8.DecodeRuneInString(rest)
		r2, w2 := utf8.DecodeRuneInString(rest[w1:])
		eq := func(r rune, c byte) bool {
			if f.llamaStyle {
				return foldEq(r, c)
			}
			return r == rune(c)
		}
		switch {
		case eq(r1, 's'), eq(r1, 't'), eq(r1, 'm'), eq(r1, 'd'):
			return 1 + w1
		case eq(r1, 'r') && eq(r2, 'e'), eq(r1, 'v') && eq(r2, 'e'), eq(r1, 'l') && eq(r2, 'l'):
			return 1 + w1 + w2
		}
	}
	// letters, with one optional leading character
	if f.llamaStyle {
		if !isCRLF(r0) && !isL(r0) && !isN(r0) && i+w0 < len(s) {
			if n := runLen(s[i+w0:], isL); n > 0 {
				return w0 + n
			}
		}
	} else if r0 == ' ' {
		if n := runLen(s[i+1:], isL); n > 0 {
			return 1 + n
		}
	}
	if n := runLen(s[i:], isL); n > 0 {
		return n
	}
	// numbers
	if !f.llamaStyle && r0 == ' ' {
		if n := runLen(s[i+1:], isN); n > 0 {
			return 1 + n
		}
	}
	if isN(r0) {
		if f.maxDigits == 0 {
			return runLen(s[i:], isN)
		}
		n, k := 0, 0
		for k < f.maxDigits && i+n < len(s) {
			r, w := utf8.DecodeRuneInString(s[i+n:])
			if !isN(r) {
				break
			}
			n += w
			k++
		}
		return n
	}
	// other characters, with one optional leading space
	other := func(r rune) bool { return !isS(r) && !isL(r) && !isN(r) }
	tail := func(n int) int {
		if f.llamaStyle {
			n += runLen(s[n:], isCRLF)
		}
		return n
	}
	if r0 == ' ' {
		if n := runLen(s[i+1:], other); n > 0 {
			return tail(i+1+n) - i
		}
	}
	if n := runLen(s[i:], other); n > 0 {
		return tail(i+n) - i
	}
	// whitespace
	ws := runLen(s[i:], isS)
	if ws == 0 {
		return 0
	}
	if f.llamaStyle {
		// \s*[\r\n]+: up to the last CR or LF of the whitespace run
		last := -1
		for k := i; k < i+ws; {
			r, w := utf8.DecodeRuneInString(s[k:])
			if isCRLF(r) {
				last = k + w
			}
			k += w
		}
		if last > 0 {
			return last - i
		}
	}
	// \s+(?!\S): the whole run at the end of the text, else all of it but its last character
	if i+ws == len(s) {
		return ws
	}
	_, wl := utf8.DecodeLastRuneInString(s[i : i+ws])
	if ws-wl > 0 {
		return ws - wl
	}
	return ws // \s+
}

// runLen returns the byte length of the run of characters at the start of s for which f holds.
func runLen(s string, f func(rune) bool) int {
	n := 0
	for n < len(s) {
		r, w := utf8.DecodeRuneInString(s[n:])
		if !f(r) {
			break
		}
		n += w
	}
	return n
}
