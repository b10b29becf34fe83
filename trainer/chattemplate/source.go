package chattemplate

import (
	"strings"
)

// spanKind says what a piece of template source is.
type spanKind int

const (
	spanText    spanKind = iota // literal text, printed as is
	spanComment                 // {# ... #}
	spanTag                     // {{ ... }} or {% ... %}, delimiters included
)

// span is a piece of template source: [start, end) in bytes. For tags, strings lists the [start, end) of each
// quoted string literal inside, quotes included.
type span struct {
	kind       spanKind
	start, end int
	strings    [][2]int
}

// scanSource splits a template into text, comments and tags the way Jinja's lexer does with the default delimiters:
// a tag ends at the first closing delimiter that is not inside a quoted string. An unclosed tag runs to the end (the
// engine's compile reports it).
func scanSource(src string) []span {
	var out []span
	textStart := 0
	i := 0
	for i < len(src)-1 {
		if src[i] != '{' || (src[i+1] != '{' && src[i+1] != '%' && src[i+1] != '#') {
			i++
			continue
		}
		if i > textStart {
			out = append(out, span{kind: spanText, start: textStart, end: i})
		}
		open := src[i+1]
		sp := span{kind: spanTag, start: i}
		j := i + 2
		switch open {
		case '#':
			sp.kind = spanComment
			k := strings.Index(src[j:], "#}")
			if k < 0 {
				j = len(src)
			} else {
				j += k + 2
			}
		default:
			closer := byte('}')
			if open == '%' {
				closer = '%'
			}
			for j < len(src) {
				c := src[j]
				if c == '\'' || c == '"' {
					k := j + 1
					for k < len(src) && src[k] != c {
						if src[k] == '\\' {
							k++
						}
						k++
					}
					if k > len(src)-1 {
						k = len(src) - 1
					}
					sp.strings = append(sp.strings, [2]int{j, k + 1})
					j = k + 1
					continue
				}
				if c == closer && j+1 < len(src) && src[j+1] == '}' {
					j += 2
					break
				}
				j++
			}
		}
		if j > len(src) {
			j = len(src)
		}
		sp.end = j
		out = append(out, sp)
		i = j
		textStart = j
	}
	if textStart < len(src) {
		out = append(out, span{kind: spanText, start: textStart, end: len(src)})
	}
	return out
}

// rewriteSource adapts a template to the engine before it is compiled, so that it renders as Python's Jinja2 does:
//   - each `| name` filter application inside a tag (outside string literals) whose name is a key of renamed becomes
//     `| renamed[name]`: the engine looks its built-in filters up before the template's variables, so this is how a
//     filter of ours (a variable holding a callable) replaces a built-in one;
//   - each output tag {{ expr }} becomes {{ (expr) | printer }}, so values print as Python's str() prints them
//     (21.0, None, ['a'], {'k': 1}) rather than as the engine does (21, "", ...).
//
// Whitespace control (`{{-`, `-}}`) is kept. It returns the new source.
func rewriteSource(src string, renamed map[string]string, printer string) string {
	var b strings.Builder
	last := 0
	for _, sp := range scanSource(src) {
		if sp.kind != spanTag {
			continue
		}
		isOutput := src[sp.start+1] == '{'
		closed := sp.end-sp.start >= 4 && src[sp.end-2:sp.end] == "}}"
		if isOutput && closed && printer != "" {
			// Open the parenthesis after `{{` or `{{-`.
			at := sp.start + 2
			if at < sp.end-2 && src[at] == '-' {
				at++
			}
			b.WriteString(src[last:at])
			b.WriteString("(")
			last = at
		}
		// Walk the tag's code between its string literals.
		pos := sp.start + 2
		segs := append(append([][2]int(nil), sp.strings...), [2]int{sp.end, sp.end})
		for _, s := range segs {
			code := src[pos:s[0]]
			for k := 0; k < len(code); k++ {
				if code[k] != '|' {
					continue
				}
				m := k + 1
				for m < len(code) && (code[m] == ' ' || code[m] == '\t' || code[m] == '\n' || code[m] == '\r') {
					m++
				}
				e := m
				for e < len(code) && isIdentByte(code[e]) {
					e++
				}
				if to, ok := renamed[code[m:e]]; ok && e > m {
					b.WriteString(src[last : pos+m])
					b.WriteString(to)
					last = pos + e
				}
			}
			pos = s[1]
		}
		if isOutput && closed && printer != "" {
			// Close it before `}}` or `-}}`.
			at := sp.end - 2
			if at > sp.start+2 && src[at-1] == '-' {
				at--
			}
			b.WriteString(src[last:at])
			b.WriteString(") | " + printer + " ")
			last = at
		}
	}
	b.WriteString(src[last:])
	return b.String()
}

func isIdentByte(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}
