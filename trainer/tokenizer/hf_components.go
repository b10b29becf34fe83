package tokenizer

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// The components of a Hugging Face tokenizer.json this package implements, each following the Rust crate
// `tokenizers` (v0.23; its npm build is the reference the tests compare against). A type not listed fails at load.
var (
	supportedNormalizers   = []string{"Sequence", "NFC", "NFD", "NFKC", "NFKD", "Prepend", "Replace", "Strip"}
	supportedPreTokenizers = []string{"Sequence", "Split", "ByteLevel", "Metaspace", "Digits", "Punctuation", "WhitespaceSplit"}
	supportedDecoders      = []string{"Sequence", "ByteLevel", "Metaspace", "ByteFallback", "Fuse", "Strip", "Replace"}
	supportedProcessors    = []string{"Sequence", "ByteLevel", "TemplateProcessing", "RobertaProcessing", "BertProcessing"}
)

// componentError names the unsupported component and what is supported.
func componentError(kind, typ string, supported []string) error {
	return fmt.Errorf("%s type %q is not supported (supported: %s)", kind, typ, strings.Join(supported, ", "))
}

// typed reads the "type" field of a component.
func typed(raw json.RawMessage) (string, error) {
	var t struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(raw, &t); err != nil {
		return "", err
	}
	return t.Type, nil
}

// isNull reports whether a component is absent or JSON null.
func isNull(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null"
}

// patternJSON is a tokenizer.json pattern: {"String": "..."} or {"Regex": "..."}.
type patternJSON struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

func (p patternJSON) matcher() (matcher, error) {
	switch {
	case p.String != nil && p.Regex == nil:
		if *p.String == "" {
			return nil, fmt.Errorf("pattern: empty String")
		}
		return literal(*p.String), nil
	case p.Regex != nil && p.String == nil:
		if f := fastSplitFor(*p.Regex); f != nil {
			return f, nil
		}
		r, err := compileRegex(*p.Regex)
		if err != nil {
			return nil, fmt.Errorf("pattern: Regex %q: %w", *p.Regex, err)
		}
		return r, nil
	}
	return nil, fmt.Errorf("pattern: want exactly one of String and Regex")
}

// replaceAll replaces the non-overlapping matches of m in s with content.
func replaceAll(s string, m matcher, content string) string {
	if lit, ok := m.(literal); ok {
		return strings.ReplaceAll(s, string(lit), content)
	}
	ms := m.find(s)
	if len(ms) == 0 {
		return s
	}
	var b strings.Builder
	prev := 0
	for _, r := range ms {
		b.WriteString(s[prev:r[0]])
		b.WriteString(content)
		prev = r[1]
	}
	b.WriteString(s[prev:])
	return b.String()
}

// ---- normalizers

// normalizer rewrites a piece of text (Hugging Face's Normalizer, without offset tracking).
type normalizer func(string) string

func buildNormalizer(raw json.RawMessage) (normalizer, error) {
	if isNull(raw) {
		return nil, nil
	}
	typ, err := typed(raw)
	if err != nil {
		return nil, fmt.Errorf("normalizer: %w", err)
	}
	switch typ {
	case "Sequence":
		return buildSequence(raw, "normalizer", "normalizers", buildNormalizer)
	case "NFC":
		return norm.NFC.String, nil
	case "NFD":
		return norm.NFD.String, nil
	case "NFKC":
		return norm.NFKC.String, nil
	case "NFKD":
		return norm.NFKD.String, nil
	case "Prepend":
		var p struct {
			Prepend string `json:"prepend"`
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, fmt.Errorf("normalizer Prepend: %w", err)
		}
		// Like Rust's Prepend: an empty piece stays empty.
		return func(x string) string {
			if x == "" {
				return x
			}
			return p.Prepend + x
		}, nil
	case "Replace":
		var r struct {
			Pattern patternJSON `json:"pattern"`
			Content string      `json:"content"`
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, fmt.Errorf("normalizer Replace: %w", err)
		}
		m, err := r.Pattern.matcher()
		if err != nil {
			return nil, fmt.Errorf("normalizer Replace: %w", err)
		}
		return func(x string) string { return replaceAll(x, m, r.Content) }, nil
	case "Strip":
		var s struct {
			Left  bool `json:"strip_left"`
			Right bool `json:"strip_right"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("normalizer Strip: %w", err)
		}
		return func(x string) string {
			if s.Left {
				x = strings.TrimLeftFunc(x, unicode.IsSpace)
			}
			if s.Right {
				x = strings.TrimRightFunc(x, unicode.IsSpace)
			}
			return x
		}, nil
	}
	return nil, componentError("normalizer", typ, supportedNormalizers)
}

// ---- pre-tokenizers

// word is a piece of text on its way to the model. first is true when it starts at the input's first byte
// (Metaspace's prepend_scheme "first" tests that).
type word struct {
	text  string
	first bool
}

// preTokenizer splits words into smaller words (Hugging Face's PreTokenizer).
type preTokenizer func([]word) []word

// splitWords applies a per-word split to every word; sub-words keep first only at offset 0.
func splitWords(ws []word, f func(string) [][2]int) []word {
	out := make([]word, 0, len(ws))
	for _, w := range ws {
		for _, r := range f(w.text) {
			out = append(out, word{text: w.text[r[0]:r[1]], first: w.first && r[0] == 0})
		}
	}
	return out
}

// gpt2Pattern is the split pattern of ByteLevel with use_regex (GPT-2's).
const gpt2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

func buildPreTokenizer(raw json.RawMessage) (preTokenizer, error) {
	if isNull(raw) {
		return nil, nil
	}
	typ, err := typed(raw)
	if err != nil {
		return nil, fmt.Errorf("pre_tokenizer: %w", err)
	}
	switch typ {
	case "Sequence":
		return buildSequence(raw, "pre_tokenizer", "pretokenizers", buildPreTokenizer)
	case "Split":
		var s struct {
			Pattern  patternJSON `json:"pattern"`
			Behavior string      `json:"behavior"`
			Invert   bool        `json:"invert"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("pre_tokenizer Split: %w", err)
		}
		m, err := s.Pattern.matcher()
		if err != nil {
			return nil, fmt.Errorf("pre_tokenizer Split: %w", err)
		}
		b, ok := splitBehaviors[s.Behavior]
		if !ok {
			return nil, fmt.Errorf("pre_tokenizer Split: behavior %q is not one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous", s.Behavior)
		}
		return func(ws []word) []word {
			return splitWords(ws, func(x string) [][2]int { return splitBy(x, m, b, s.Invert) })
		}, nil
	case "ByteLevel":
		var s struct {
			AddPrefixSpace bool  `json:"add_prefix_space"`
			UseRegex       *bool `json:"use_regex"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("pre_tokenizer ByteLevel: %w", err)
		}
		useRegex := s.UseRegex == nil || *s.UseRegex // the Rust default is true
		var re matcher
		if useRegex {
			re = fastSplitFor(gpt2Pattern)
		}
		return func(ws []word) []word {
			if s.AddPrefixSpace {
				for i := range ws {
					if !strings.HasPrefix(ws[i].text, " ") {
						ws[i].text = " " + ws[i].text
					}
				}
			}
			if re != nil {
				ws = splitWords(ws, func(x string) [][2]int { return splitBy(x, re, splitIsolated, false) })
			}
			for i := range ws {
				ws[i].text = byteLevelEncode(ws[i].text)
			}
			return ws
		}, nil
	case "Metaspace":
		var s struct {
			Replacement    string  `json:"replacement"`
			PrependScheme  *string `json:"prepend_scheme"`
			AddPrefixSpace *bool   `json:"add_prefix_space"`
			Split          *bool   `json:"split"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("pre_tokenizer Metaspace: %w", err)
		}
		rep, err := singleRune(s.Replacement)
		if err != nil {
			return nil, fmt.Errorf("pre_tokenizer Metaspace: replacement: %w", err)
		}
		scheme, err := prependScheme(s.PrependScheme, s.AddPrefixSpace)
		if err != nil {
			return nil, fmt.Errorf("pre_tokenizer Metaspace: %w", err)
		}
		split := s.Split == nil || *s.Split
		repStr := string(rep)
		return func(ws []word) []word {
			for i := range ws {
				x := strings.ReplaceAll(ws[i].text, " ", repStr)
				if !strings.HasPrefix(x, repStr) && (scheme == "always" || scheme == "first" && ws[i].first) {
					x = repStr + x
				}
				ws[i].text = x
			}
			if !split {
				return ws
			}
			return splitWords(ws, func(x string) [][2]int {
				return splitBy(x, runeClass(func(r rune) bool { return r == rep }), splitMergedWithNext, false)
			})
		}, nil
	case "Digits":
		var s struct {
			Individual bool `json:"individual_digits"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("pre_tokenizer Digits: %w", err)
		}
		b := splitContiguous
		if s.Individual {
			b = splitIsolated
		}
		return func(ws []word) []word {
			isNumber := func(r rune) bool { return isCategory(r, "N", unicode.N) }
			return splitWords(ws, func(x string) [][2]int { return splitBy(x, runeClass(isNumber), b, false) })
		}, nil
	case "Punctuation":
		var s struct {
			Behavior *string `json:"behavior"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("pre_tokenizer Punctuation: %w", err)
		}
		b := splitIsolated // the Rust default
		if s.Behavior != nil {
			var ok bool
			if b, ok = splitBehaviors[*s.Behavior]; !ok {
				return nil, fmt.Errorf("pre_tokenizer Punctuation: behavior %q is not one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous", *s.Behavior)
			}
		}
		// Rust: char::is_ascii_punctuation (which counts ASCII symbols such as $ + < = > ^ ` | ~) or a Unicode P
		// category.
		isPunct := func(r rune) bool {
			return r < 0x80 && (r >= '!' && r <= '/' || r >= ':' && r <= '@' || r >= '[' && r <= '`' || r >= '{' && r <= '~') ||
				isCategory(r, "P", unicode.P)
		}
		return func(ws []word) []word {
			return splitWords(ws, func(x string) [][2]int { return splitBy(x, runeClass(isPunct), b, false) })
		}, nil
	case "WhitespaceSplit":
		return func(ws []word) []word {
			return splitWords(ws, func(x string) [][2]int { return splitBy(x, runeClass(unicode.IsSpace), splitRemoved, false) })
		}, nil
	}
	return nil, componentError("pre_tokenizer", typ, supportedPreTokenizers)
}

// prependScheme reads Metaspace's prepend_scheme, or the older add_prefix_space (true = "always").
func prependScheme(scheme *string, addPrefixSpace *bool) (string, error) {
	if scheme != nil {
		switch *scheme {
		case "always", "first", "never":
			return *scheme, nil
		}
		return "", fmt.Errorf("prepend_scheme %q is not one of always, first, never", *scheme)
	}
	if addPrefixSpace != nil && !*addPrefixSpace {
		return "never", nil
	}
	return "always", nil
}

func singleRune(s string) (rune, error) {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 || n != len(s) || r == utf8.RuneError {
		return 0, fmt.Errorf("%q is not a single character", s)
	}
	return r, nil
}

// ---- byte-level alphabet (GPT-2's bytes_to_unicode)

var (
	byteToRune [256]rune
	runeToByte = map[rune]byte{}
	byteRunes  [256]string
)

func init() {
	n := 0
	for b := 0; b < 256; b++ {
		if b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE && b <= 0xFF {
			byteToRune[b] = rune(b)
		} else {
			byteToRune[b] = rune(256 + n)
			n++
		}
		runeToByte[byteToRune[b]] = byte(b)
		byteRunes[b] = string(byteToRune[b])
	}
}

func byteLevelEncode(s string) string {
	var b strings.Builder
	b.Grow(2 * len(s))
	for i := 0; i < len(s); i++ {
		b.WriteString(byteRunes[s[i]])
	}
	return b.String()
}

// ---- decoders

// decoder turns tokens into strings (Hugging Face's Decoder::decode_chain); the final text is their concatenation.
type decoder func([]string) []string

func buildDecoder(raw json.RawMessage) (decoder, error) {
	if isNull(raw) {
		return nil, nil
	}
	typ, err := typed(raw)
	if err != nil {
		return nil, fmt.Errorf("decoder: %w", err)
	}
	switch typ {
	case "Sequence":
		return buildSequence(raw, "decoder", "decoders", buildDecoder)
	case "ByteLevel":
		// Every token's characters map back to bytes; a token with a character outside the alphabet (an added
		// token such as DeepSeek's "<｜begin▁of▁sentence｜>") contributes its own UTF-8 bytes. Invalid UTF-8 in the
		// result becomes U+FFFD as Rust's String::from_utf8_lossy does.
		return func(ts []string) []string {
			var buf []byte
			for _, t := range ts {
				start := len(buf)
				ok := true
				for _, r := range t {
					b, in := runeToByte[r]
					if !in {
						ok = false
						break
					}
					buf = append(buf, b)
				}
				if !ok {
					buf = append(buf[:start], t...)
				}
			}
			return []string{utf8Lossy(buf)}
		}, nil
	case "Metaspace":
		var s struct {
			Replacement    string  `json:"replacement"`
			PrependScheme  *string `json:"prepend_scheme"`
			AddPrefixSpace *bool   `json:"add_prefix_space"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("decoder Metaspace: %w", err)
		}
		rep, err := singleRune(s.Replacement)
		if err != nil {
			return nil, fmt.Errorf("decoder Metaspace: replacement: %w", err)
		}
		scheme, err := prependScheme(s.PrependScheme, s.AddPrefixSpace)
		if err != nil {
			return nil, fmt.Errorf("decoder Metaspace: %w", err)
		}
		return func(ts []string) []string {
			out := make([]string, len(ts))
			for i, t := range ts {
				var b strings.Builder
				for _, r := range t {
					if r == rep {
						// Rust drops every replacement character of the first token when it prepends.
						if i == 0 && scheme != "never" {
							continue
						}
						b.WriteByte(' ')
					} else {
						b.WriteRune(r)
					}
				}
				out[i] = b.String()
			}
			return out
		}, nil
	case "ByteFallback":
		return func(ts []string) []string {
			out := make([]string, 0, len(ts))
			var pending []byte
			flush := func() {
				if len(pending) == 0 {
					return
				}
				if utf8.Valid(pending) {
					out = append(out, string(pending))
				} else {
					for range pending {
						out = append(out, "\uFFFD")
					}
				}
				pending = pending[:0]
			}
			for _, t := range ts {
				if b, ok := byteFallbackByte(t); ok {
					pending = append(pending, b)
					continue
				}
				flush()
				out = append(out, t)
			}
			flush()
			return out
		}, nil
	case "Fuse":
		return func(ts []string) []string { return []string{strings.Join(ts, "")} }, nil
	case "Strip":
		var s struct {
			Content string `json:"content"`
			Start   int    `json:"start"`
			Stop    int    `json:"stop"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("decoder Strip: %w", err)
		}
		c, err := singleRune(s.Content)
		if err != nil {
			return nil, fmt.Errorf("decoder Strip: content: %w", err)
		}
		return func(ts []string) []string {
			out := make([]string, len(ts))
			for i, t := range ts {
				rs := []rune(t)
				lo, hi := 0, len(rs)
				for j := 0; j < s.Start && j < len(rs) && rs[j] == c; j++ {
					lo = j + 1
				}
				for j := 0; j < s.Stop && len(rs)-j-1 >= lo && rs[len(rs)-j-1] == c; j++ {
					hi = len(rs) - j - 1
				}
				out[i] = string(rs[lo:hi])
			}
			return out
		}, nil
	case "Replace":
		var r struct {
			Pattern patternJSON `json:"pattern"`
			Content string      `json:"content"`
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, fmt.Errorf("decoder Replace: %w", err)
		}
		m, err := r.Pattern.matcher()
		if err != nil {
			return nil, fmt.Errorf("decoder Replace: %w", err)
		}
		return func(ts []string) []string {
			out := make([]string, len(ts))
			for i, t := range ts {
				out[i] = replaceAll(t, m, r.Content)
			}
			return out
		}, nil
	}
	return nil, componentError("decoder", typ, supportedDecoders)
}

// byteFallbackByte parses a byte-fallback token "<0xNN>" the way Rust's ByteFallback decoder does
// (u8::from_str_radix of the two characters after "<0x").
func byteFallbackByte(t string) (byte, bool) {
	if len(t) != 6 || !strings.HasPrefix(t, "<0x") || t[5] != '>' {
		return 0, false
	}
	digits := t[3:5]
	if digits[0] == '+' {
		digits = digits[1:]
	}
	v, err := strconv.ParseUint(digits, 16, 8)
	if err != nil {
		return 0, false
	}
	return byte(v), true
}

// utf8Lossy converts b to a string, replacing each invalid sequence with U+FFFD the way Rust's
// String::from_utf8_lossy does (one replacement per maximal invalid prefix of a valid sequence).
func utf8Lossy(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var out strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r != utf8.RuneError || n > 1 {
			out.Write(b[:n])
			b = b[n:]
			continue
		}
		// n = 1: an invalid sequence. Rust consumes the longest prefix that could start a valid sequence.
		out.WriteString("\uFFFD")
		b = b[invalidPrefixLen(b):]
	}
	return out.String()
}

// invalidPrefixLen returns how many bytes of b Rust's from_utf8_lossy replaces with one U+FFFD, given that b does
// not start with a valid sequence: the lead byte plus the continuation bytes that still fit a valid encoding.
func invalidPrefixLen(b []byte) int {
	c := b[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF)
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c >= 0xE1 && c <= 0xEC || c == 0xEE || c == 0xEF:
		need = 2
	case c == 0xED:
		need, hi = 2, 0x9F
	case c == 0xF0:
		need, lo = 3, 0x90
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	case c == 0xF4:
		need, hi = 3, 0x8F
	default:
		return 1
	}
	i := 1
	for ; i <= need && i < len(b); i++ {
		if b[i] < lo || b[i] > hi {
			break
		}
		lo, hi = 0x80, 0xBF
	}
	return i
}

// ---- post-processors

// processor adds special tokens around a sequence's ids (Hugging Face's PostProcessor with add_special_tokens).
type processor func([]int) []int

func buildProcessor(raw json.RawMessage) (processor, error) {
	if isNull(raw) {
		return nil, nil
	}
	typ, err := typed(raw)
	if err != nil {
		return nil, fmt.Errorf("post_processor: %w", err)
	}
	switch typ {
	case "Sequence":
		return buildSequence(raw, "post_processor", "processors", buildProcessor)
	case "ByteLevel":
		return nil, nil // offsets only
	case "TemplateProcessing":
		var s struct {
			Single []struct {
				SpecialToken *struct {
					ID string `json:"id"`
				} `json:"SpecialToken"`
				Sequence *struct {
					ID string `json:"id"`
				} `json:"Sequence"`
			} `json:"single"`
			SpecialTokens map[string]struct {
				IDs []int `json:"ids"`
			} `json:"special_tokens"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("post_processor TemplateProcessing: %w", err)
		}
		// pieces: nil entry = the sequence itself.
		var pieces [][]int
		for i, it := range s.Single {
			switch {
			case it.SpecialToken != nil:
				st, ok := s.SpecialTokens[it.SpecialToken.ID]
				if !ok {
					return nil, fmt.Errorf("post_processor TemplateProcessing: single[%d]: special token %q is not in special_tokens", i, it.SpecialToken.ID)
				}
				pieces = append(pieces, append([]int{}, st.IDs...))
			case it.Sequence != nil:
				if it.Sequence.ID != "A" {
					return nil, fmt.Errorf("post_processor TemplateProcessing: single[%d]: sequence %q, a single template has only A", i, it.Sequence.ID)
				}
				pieces = append(pieces, nil)
			default:
				return nil, fmt.Errorf("post_processor TemplateProcessing: single[%d]: neither SpecialToken nor Sequence", i)
			}
		}
		return func(ids []int) []int {
			var out []int
			for _, p := range pieces {
				if p == nil {
					out = append(out, ids...)
				} else {
					out = append(out, p...)
				}
			}
			return out
		}, nil
	case "RobertaProcessing", "BertProcessing":
		var s struct {
			Sep []json.RawMessage `json:"sep"`
			Cls []json.RawMessage `json:"cls"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("post_processor %s: %w", typ, err)
		}
		var sep, cls int
		if len(s.Sep) != 2 || json.Unmarshal(s.Sep[1], &sep) != nil || len(s.Cls) != 2 || json.Unmarshal(s.Cls[1], &cls) != nil {
			return nil, fmt.Errorf("post_processor %s: sep and cls must be [token, id]", typ)
		}
		return func(ids []int) []int {
			out := append([]int{cls}, ids...)
			return append(out, sep)
		}, nil
	}
	return nil, componentError("post_processor", typ, supportedProcessors)
}

// buildSequence builds a Sequence component (normalizer, pre-tokenizer, decoder or post-processor): the list under
// its field (what names the component for errors), each item built with build, null items left out, applied in
// order.
func buildSequence[T any, F ~func(T) T](raw json.RawMessage, what, field string, build func(json.RawMessage) (F, error)) (F, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("%s Sequence: %w", what, err)
	}
	var list []json.RawMessage
	if f, ok := obj[field]; ok {
		if err := json.Unmarshal(f, &list); err != nil {
			return nil, fmt.Errorf("%s Sequence: %w", what, err)
		}
	}
	var seq []F
	for i, r := range list {
		f, err := build(r)
		if err != nil {
			return nil, fmt.Errorf("%s Sequence[%d]: %w", what, i, err)
		}
		if f != nil {
			seq = append(seq, f)
		}
	}
	return func(x T) T {
		for _, f := range seq {
			x = f(x)
		}
		return x
	}, nil
}
