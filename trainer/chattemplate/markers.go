package chattemplate

import (
	"regexp"
	"sort"
	"strings"
)

// markerPattern matches the shapes of the control strings chat templates write around turns:
// <|im_start|>, <|eot_id|> (Qwen, Llama-3, Phi); <｜User｜>, <｜tool▁calls▁begin｜> (DeepSeek, full-width bars);
// [INST], [/INST], [TOOL_CALLS], [SYSTEM_PROMPT] (Llama-2, Mistral); <<SYS>> (Llama-2); <start_of_turn>, <s>, </s>,
// <think>, <tool_call> (Gemma, Llama-2's text BOS/EOS, Qwen).
var markerPattern = regexp.MustCompile(`<\|[^\s|<>]{1,64}\|>` +
	`|<｜[^\s｜<>]{1,64}｜>` +
	`|\[/?[A-Z][A-Z0-9_]*\]` +
	`|<</?[A-Z]+>>` +
	`|</?[a-z][a-z0-9_]*>`)

// controlMarkers returns the control strings a template writes: the matches of markerPattern in its literal text and
// in its string literals (e.g. '<|im_start|>' + message.role), and the special tokens' texts. A marker built from
// pieces at render time ('<|' + name + '|>') is not found. Sorted, without repeats.
func controlMarkers(src string, specialTokens map[string]string) []string {
	seen := map[string]bool{}
	add := func(s string) {
		for _, m := range markerPattern.FindAllString(s, -1) {
			seen[m] = true
		}
	}
	for _, sp := range scanSource(src) {
		switch sp.kind {
		case spanText:
			add(src[sp.start:sp.end])
		case spanTag:
			for _, s := range sp.strings {
				add(unquote(src[s[0]:s[1]]))
			}
		}
	}
	for _, v := range specialTokens {
		if strings.TrimSpace(v) != "" {
			seen[v] = true
		}
	}
	out := make([]string, 0, len(seen))
	for m := range seen {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// unquote strips a Jinja string literal's quotes and resolves its backslash escapes of \n, \t, \\ and the quotes.
func unquote(lit string) string {
	if len(lit) < 2 {
		return lit
	}
	body := lit[1 : len(lit)-1]
	if !strings.Contains(body, `\`) {
		return body
	}
	var b strings.Builder
	for i := 0; i < len(body); i++ {
		if body[i] != '\\' || i+1 >= len(body) {
			b.WriteByte(body[i])
			continue
		}
		i++
		switch body[i] {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		default:
			b.WriteByte(body[i])
		}
	}
	return b.String()
}

// ControlMarkers returns the control strings the template writes (turn and role markers such as <|im_start|>,
// [INST], <start_of_turn>, <｜Assistant｜>, <think>) and its special tokens' texts, sorted. Callers warn when a
// message's content holds one: the model could not tell it from the template's own.
func (t *Template) ControlMarkers() []string {
	return append([]string(nil), t.markers...)
}

// FindControlMarkers returns the template's control markers that occur in text, in ControlMarkers' order.
func (t *Template) FindControlMarkers(text string) []string {
	var out []string
	for _, m := range t.markers {
		if strings.Contains(text, m) {
			out = append(out, m)
		}
	}
	return out
}
