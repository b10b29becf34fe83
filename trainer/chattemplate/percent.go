package chattemplate

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/ardanlabs/jinja"
)

// formatName is the variable our printf-style formatter is bound to (see rewritePercent).
const formatName = "preftune_format"

// rewritePercent rewrites Python's printf-style formatting of a string literal, `'...' % x` and
// `'...' % (a, b)`, inside the template's tags into calls of our formatter: `preftune_format('...', x)` and
// `preftune_format('...', a, b)`. ardanlabs/jinja v1.8.0 evaluates `string % value` as the number 0 without an
// error; a formatting string held in a variable (`fmt % x`) cannot be found this way and still renders 0.
//
// The right operand is what Jinja2 parses there: a primary (name, number, string, (…), […], {…}) with its
// attribute, item, call and filter suffixes, optionally raised to a power with **.
func rewritePercent(src string) (string, error) {
	var b strings.Builder
	last := 0
	for _, sp := range scanSource(src) {
		if sp.kind != spanTag || len(sp.strings) == 0 {
			continue
		}
		start, end := sp.start+2, sp.end-2
		if end < start || src[sp.end-1] != '}' {
			continue // unclosed: the engine reports it
		}
		if start < end && src[start] == '-' {
			start++
		}
		code, err := rewritePercentCode(src[start:end])
		if err != nil {
			line := strings.Count(src[:sp.start], "\n") + 1
			return "", fmt.Errorf("line %d: %w", line, err)
		}
		b.WriteString(src[last:start])
		b.WriteString(code)
		last = end
	}
	b.WriteString(src[last:])
	return b.String(), nil
}

// rewritePercentCode rewrites the string-literal formatting in one tag's code (see rewritePercent).
func rewritePercentCode(code string) (string, error) {
	var b strings.Builder
	last := 0
	for i := 0; i < len(code); {
		c := code[i]
		if c != '\'' && c != '"' {
			i++
			continue
		}
		litEnd := skipString(code, i)
		j := skipSpace(code, litEnd)
		if j >= len(code) || code[j] != '%' {
			i = litEnd
			continue
		}
		rhsStart := skipSpace(code, j+1)
		rhsEnd, tupleInner, ok := parseOperand(code, rhsStart)
		if !ok {
			return "", fmt.Errorf("cannot read the right operand of %s %% …", code[i:litEnd])
		}
		args := code[rhsStart:rhsEnd]
		if tupleInner != "" {
			args = strings.TrimRight(strings.TrimSpace(tupleInner), ",")
		}
		args, err := rewritePercentCode(args)
		if err != nil {
			return "", err
		}
		b.WriteString(code[last:i])
		b.WriteString(formatName + "(" + code[i:litEnd])
		if strings.TrimSpace(args) != "" {
			b.WriteString(", " + args)
		}
		b.WriteString(")")
		last = rhsEnd
		i = rhsEnd
	}
	b.WriteString(code[last:])
	return b.String(), nil
}

// skipString returns the index after the quoted string starting at i.
func skipString(code string, i int) int {
	q := code[i]
	k := i + 1
	for k < len(code) && code[k] != q {
		if code[k] == '\\' {
			k++
		}
		k++
	}
	return min(k+1, len(code))
}

func skipSpace(code string, i int) int {
	for i < len(code) && (code[i] == ' ' || code[i] == '\t' || code[i] == '\n' || code[i] == '\r') {
		i++
	}
	return i
}

// skipBracket returns the index after the bracket group opening at i, respecting strings and nesting; -1 when it
// does not close.
func skipBracket(code string, i int) int {
	depth := 0
	for k := i; k < len(code); k++ {
		switch code[k] {
		case '\'', '"':
			k = skipString(code, k) - 1
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			depth--
			if depth == 0 {
				return k + 1
			}
		}
	}
	return -1
}

// parseOperand reads a unary operand of % from i (see rewritePercent) and returns where it ends; tupleInner is
// the inside of a parenthesised tuple (a top-level comma, no suffix), which Python spreads into the arguments.
func parseOperand(code string, i int) (end int, tupleInner string, ok bool) {
	if i < len(code) && (code[i] == '-' || code[i] == '+') {
		i = skipSpace(code, i+1)
	}
	if i >= len(code) {
		return 0, "", false
	}
	start := i
	switch c := code[i]; {
	case c == '\'' || c == '"':
		i = skipString(code, i)
	case c >= '0' && c <= '9':
		for i < len(code) && (isIdentByte(code[i]) || code[i] == '.' ||
			((code[i] == '+' || code[i] == '-') && (code[i-1] == 'e' || code[i-1] == 'E'))) {
			i++
		}
	case isIdentByte(c):
		for i < len(code) && isIdentByte(code[i]) {
			i++
		}
	case c == '(' || c == '[' || c == '{':
		i = skipBracket(code, i)
		if i < 0 {
			return 0, "", false
		}
		if c == '(' && hasTopLevelComma(code[start+1:i-1]) {
			tupleInner = code[start+1 : i-1]
		}
	default:
		return 0, "", false
	}
	// Suffixes: .name, [..], (..), and filters | name(..).
	for {
		j := i
		switch {
		case j < len(code) && code[j] == '.':
			k := j + 1
			for k < len(code) && isIdentByte(code[k]) {
				k++
			}
			if k == j+1 {
				return i, tupleInner, true
			}
			i = k
		case j < len(code) && (code[j] == '[' || code[j] == '('):
			k := skipBracket(code, j)
			if k < 0 {
				return 0, "", false
			}
			i = k
		default:
			k := skipSpace(code, j)
			if k < len(code) && code[k] == '|' {
				m := skipSpace(code, k+1)
				n := m
				for n < len(code) && isIdentByte(code[n]) {
					n++
				}
				if n == m {
					return 0, "", false
				}
				i = n
				if i < len(code) && code[i] == '(' {
					if i = skipBracket(code, i); i < 0 {
						return 0, "", false
					}
				}
			} else if k+1 < len(code) && code[k] == '*' && code[k+1] == '*' {
				e, _, ok := parseOperand(code, skipSpace(code, k+2))
				if !ok {
					return 0, "", false
				}
				i = e
			} else {
				return i, tupleInner, true
			}
		}
		tupleInner = ""
	}
}

// hasTopLevelComma reports whether s has a comma outside brackets and strings.
func hasTopLevelComma(s string) bool {
	depth := 0
	for k := 0; k < len(s); k++ {
		switch s[k] {
		case '\'', '"':
			k = skipString(s, k) - 1
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			depth--
		case ',':
			if depth == 0 {
				return true
			}
		}
	}
	return false
}

// filterFormat is Python's printf-style str % args for our rewritten `'...' % x`: args[0] is the format, the rest
// its values; a single dict value serves %(name)s keys.
func filterFormat(args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
	if len(args) == 0 || !args[0].IsString() {
		return jinja.Undefined(), errors.New("string formatting: no format string")
	}
	s, err := pyFormat(args[0].AsString(), args[1:])
	if err != nil {
		return jinja.Undefined(), fmt.Errorf("string formatting %q: %w", args[0].AsString(), err)
	}
	return jinja.NewString(s), nil
}

// pyFormat formats as Python's str % values does: conversions s r a d i u f F e E g G x X o c and %%, the flags
// "-+ #0", a width and a precision (either may be *), and %(key)s with a single dict value.
func pyFormat(format string, vals []jinja.Value) (string, error) {
	var mapping *jinja.Dict
	if len(vals) == 1 && vals[0].IsDict() && strings.Contains(format, "%(") {
		mapping = vals[0].AsDict()
	}
	next := 0
	take := func() (jinja.Value, error) {
		if next >= len(vals) {
			return jinja.Value{}, errors.New("not enough arguments for format string")
		}
		next++
		return vals[next-1], nil
	}
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			b.WriteByte(format[i])
			continue
		}
		i++
		if i >= len(format) {
			return "", errors.New("incomplete format")
		}
		var val jinja.Value
		haveVal := false
		if format[i] == '(' {
			k := strings.IndexByte(format[i:], ')')
			if k < 0 || mapping == nil {
				return "", errors.New("format requires a mapping")
			}
			key := format[i+1 : i+k]
			v, ok := mapping.Get(key)
			if !ok {
				return "", fmt.Errorf("key %q missing", key)
			}
			val, haveVal = v, true
			i += k + 1
		}
		flags := ""
		for i < len(format) && strings.IndexByte("-+ #0", format[i]) >= 0 {
			flags += string(format[i])
			i++
		}
		width, prec := "", ""
		readNum := func() (string, error) {
			if i < len(format) && format[i] == '*' {
				i++
				v, err := take()
				if err != nil {
					return "", err
				}
				if !v.IsInt() {
					return "", errors.New("* wants int")
				}
				return strconv.FormatInt(v.AsInt(), 10), nil
			}
			st := i
			for i < len(format) && format[i] >= '0' && format[i] <= '9' {
				i++
			}
			return format[st:i], nil
		}
		var err error
		if width, err = readNum(); err != nil {
			return "", err
		}
		hasPrec := false
		if i < len(format) && format[i] == '.' {
			i++
			hasPrec = true
			if prec, err = readNum(); err != nil {
				return "", err
			}
			if prec == "" {
				prec = "0"
			}
		}
		for i < len(format) && strings.IndexByte("hlL", format[i]) >= 0 {
			i++
		}
		if i >= len(format) {
			return "", errors.New("incomplete format")
		}
		conv := format[i]
		if conv == '%' {
			b.WriteByte('%')
			continue
		}
		if !haveVal {
			if mapping != nil {
				return "", errors.New("format requires a mapping")
			}
			if val, err = take(); err != nil {
				return "", err
			}
		}
		spec := "%" + flags + width
		if hasPrec {
			spec += "." + prec
		}
		switch conv {
		case 's', 'r', 'a':
			text := pyStr(val)
			if conv != 's' {
				var rb strings.Builder
				pyRepr(&rb, val)
				text = rb.String()
			}
			b.WriteString(fmt.Sprintf("%"+strings.ReplaceAll(flags, "0", "")+width+optPrec(hasPrec, prec)+"s", text))
		case 'd', 'i', 'u':
			n, err := pyInt(val, conv)
			if err != nil {
				return "", err
			}
			b.WriteString(fmt.Sprintf(strings.Replace(spec, "#", "", 1)+"d", n))
		case 'x', 'X', 'o':
			n, err := pyInt(val, conv)
			if err != nil {
				return "", err
			}
			s := fmt.Sprintf(spec+string(conv), n)
			if conv == 'o' && strings.Contains(flags, "#") {
				s = strings.Replace(s, "0", "0o", 1)
			}
			b.WriteString(s)
		case 'f', 'F', 'e', 'E', 'g', 'G':
			f, err := pyFloat(val, conv)
			if err != nil {
				return "", err
			}
			if !hasPrec {
				spec += ".6"
			}
			switch {
			case math.IsInf(f, 0) || math.IsNaN(f):
				s := strings.ToLower(fmt.Sprint(f))
				s = strings.TrimPrefix(s, "+")
				if conv >= 'A' && conv <= 'Z' {
					s = strings.ToUpper(s)
				}
				b.WriteString(fmt.Sprintf("%"+strings.ReplaceAll(flags, "0", "")+width+"s", s))
			default:
				b.WriteString(fmt.Sprintf(spec+string(conv), f))
			}
		case 'c':
			switch {
			case val.IsString() && len([]rune(val.AsString())) == 1:
				b.WriteString(fmt.Sprintf("%"+strings.ReplaceAll(flags, "0", "")+width+"s", val.AsString()))
			case val.IsInt():
				b.WriteString(fmt.Sprintf("%"+strings.ReplaceAll(flags, "0", "")+width+"c", rune(val.AsInt())))
			default:
				return "", errors.New("%c requires an int or a single character")
			}
		default:
			return "", fmt.Errorf("unsupported format character %q", conv)
		}
	}
	if mapping == nil && next < len(vals) {
		return "", errors.New("not all arguments converted during string formatting")
	}
	return b.String(), nil
}

func optPrec(has bool, prec string) string {
	if has {
		return "." + prec
	}
	return ""
}

// pyInt converts a value for %d, %x, %o as Python does: ints and booleans as they are, floats truncated.
func pyInt(v jinja.Value, conv byte) (int64, error) {
	switch {
	case v.IsInt():
		return v.AsInt(), nil
	case v.IsBool():
		if v.AsBool() {
			return 1, nil
		}
		return 0, nil
	case v.IsFloat() && conv != 'x' && conv != 'X' && conv != 'o':
		return int64(v.AsFloat()), nil
	}
	return 0, fmt.Errorf("%%%c format: a real number is required, not %s", conv, pyTypeName(v))
}

// pyFloat converts a value for %f, %e, %g as Python does.
func pyFloat(v jinja.Value, conv byte) (float64, error) {
	switch {
	case v.IsFloat():
		return v.AsFloat(), nil
	case v.IsInt():
		return float64(v.AsInt()), nil
	case v.IsBool():
		if v.AsBool() {
			return 1, nil
		}
		return 0, nil
	}
	return 0, fmt.Errorf("%%%c format: a real number is required, not %s", conv, pyTypeName(v))
}

func pyTypeName(v jinja.Value) string {
	switch {
	case v.IsString():
		return "str"
	case v.IsNone():
		return "NoneType"
	case v.IsList():
		return "list"
	case v.IsDict():
		return "dict"
	case v.IsUndefined():
		return "Undefined"
	}
	return v.String()
}
