package chattemplate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"

	"github.com/ardanlabs/jinja"
)

// Field is one key of a JSON object and its value.
type Field struct {
	Key   string
	Value any
}

// Object is a JSON object whose keys keep their order, as Python's dict (and so transformers' messages and tools)
// does: a template that prints a tool with `tojson` or walks `message.items()` sees the keys in this order.
//
// Values are nil, bool, string, json.Number, int, int64, float64, []any, Object, or map[string]any (whose keys are
// sorted, since a Go map has no order). ParseJSON produces only nil, bool, string, json.Number, []any and Object.
type Object []Field

// Get returns the value of key and whether the object has it.
func (o Object) Get(key string) (any, bool) {
	for _, f := range o {
		if f.Key == key {
			return f.Value, true
		}
	}
	return nil, false
}

// Set replaces the value of key, or appends key when the object lacks it.
func (o *Object) Set(key string, value any) {
	for i, f := range *o {
		if f.Key == key {
			(*o)[i].Value = value
			return
		}
	}
	*o = append(*o, Field{Key: key, Value: value})
}

// MarshalJSON writes the object with its keys in order.
func (o Object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(f.Key)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(f.Value)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", f.Key, err)
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads a JSON object keeping its keys' order (see ParseJSON).
func (o *Object) UnmarshalJSON(data []byte) error {
	v, err := ParseJSON(data)
	if err != nil {
		return err
	}
	obj, ok := v.(Object)
	if !ok {
		return fmt.Errorf("chattemplate: want a JSON object, got %s", jsonKind(v))
	}
	*o = obj
	return nil
}

// ParseJSON decodes one JSON value keeping the order of object keys: objects become Object, arrays []any, numbers
// json.Number (so 21 stays an integer and 21.0 a float, as in Python), strings, booleans and null as themselves.
// A duplicated key keeps its first position and its last value, as Python's json module does.
func ParseJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("chattemplate: extra data after the JSON value at offset %d", dec.InputOffset())
	}
	return v, nil
}

func decodeValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			obj := Object{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				key := kt.(string)
				v, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				obj.Set(key, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return obj, nil
		case '[':
			arr := []any{}
			for dec.More() {
				v, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				arr = append(arr, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return arr, nil
		}
		return nil, fmt.Errorf("chattemplate: unexpected %q at offset %d", t, dec.InputOffset())
	default:
		return tok, nil
	}
}

// toValue converts a Go value (see Object for the types allowed) to the template engine's value. path names the
// value in errors, e.g. messages[2].tool_calls[0].
func toValue(v any, path string) (jinja.Value, error) {
	switch x := v.(type) {
	case nil:
		return jinja.None(), nil
	case jinja.Value:
		return x, nil
	case bool:
		return jinja.NewBool(x), nil
	case string:
		return jinja.NewString(x), nil
	case int:
		return jinja.NewInt(int64(x)), nil
	case int64:
		return jinja.NewInt(x), nil
	case int32:
		return jinja.NewInt(int64(x)), nil
	case float32:
		return jinja.NewFloat(float64(x)), nil
	case float64:
		return jinja.NewFloat(x), nil
	case json.Number:
		s := string(x)
		if !strings.ContainsAny(s, ".eE") {
			if i, err := x.Int64(); err == nil {
				return jinja.NewInt(i), nil
			}
		}
		f, err := x.Float64()
		if err != nil {
			return jinja.Value{}, fmt.Errorf("%s: number %q: %w", path, s, err)
		}
		return jinja.NewFloat(f), nil
	case []any:
		items := make([]jinja.Value, len(x))
		for i, e := range x {
			ev, err := toValue(e, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return jinja.Value{}, err
			}
			items[i] = ev
		}
		return jinja.NewList(items), nil
	case []Object:
		items := make([]any, len(x))
		for i := range x {
			items[i] = x[i]
		}
		return toValue(items, path)
	case Message:
		return toValue(Object(x), path)
	case []Message:
		items := make([]any, len(x))
		for i := range x {
			items[i] = Object(x[i])
		}
		return toValue(items, path)
	case Object:
		d := jinja.NewDict()
		dict := d.AsDict()
		for _, f := range x {
			fv, err := toValue(f.Value, path+"."+f.Key)
			if err != nil {
				return jinja.Value{}, err
			}
			dict.Set(f.Key, fv)
		}
		return d, nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		obj := make(Object, 0, len(keys))
		for _, k := range keys {
			obj = append(obj, Field{Key: k, Value: x[k]})
		}
		return toValue(obj, path)
	}
	return jinja.Value{}, fmt.Errorf("%s: unsupported type %T (want nil, bool, string, a number, []any, Object or map[string]any)", path, v)
}

// jsonKind names a decoded value's JSON type, for errors.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case json.Number, int, int64, float64:
		return "a number"
	case []any:
		return "an array"
	case Object:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// jsonOptions are json.dumps's arguments that transformers' tojson passes on.
type jsonOptions struct {
	indent      int // -1: no indent (one line)
	itemSep     string
	keySep      string
	ensureASCII bool
	sortKeys    bool
}

// pyJSON writes v as Python's json.dumps does with transformers' tojson settings (ensure_ascii=False, the keys in
// order, sort_keys=False): separators ", " and ": " without indent, "," and ": " with one, each nesting level on its own
// lines indented by indent spaces, empty lists and objects as [] and {}, floats in Python's repr (21.0, 1e-05, 1e+16).
func pyJSON(b *strings.Builder, v jinja.Value, o jsonOptions, depth int) error {
	switch {
	case v.IsUndefined() || v.IsNone():
		b.WriteString("null")
	case v.IsBool():
		if v.AsBool() {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case v.IsInt():
		b.WriteString(strconv.FormatInt(v.AsInt(), 10))
	case v.IsFloat():
		f := v.AsFloat()
		switch {
		case math.IsNaN(f):
			b.WriteString("NaN")
		case math.IsInf(f, 1):
			b.WriteString("Infinity")
		case math.IsInf(f, -1):
			b.WriteString("-Infinity")
		default:
			b.WriteString(pyFloatRepr(f))
		}
	case v.IsString():
		writeJSONString(b, v.AsString(), o.ensureASCII)
	case v.IsList():
		items := v.AsList().Items
		if len(items) == 0 {
			b.WriteString("[]")
			return nil
		}
		b.WriteByte('[')
		for i, item := range items {
			if i > 0 {
				b.WriteString(o.itemSep)
			}
			newline(b, o.indent, depth+1)
			if err := pyJSON(b, item, o, depth+1); err != nil {
				return err
			}
		}
		newline(b, o.indent, depth)
		b.WriteByte(']')
	case v.IsDict():
		d := v.AsDict()
		if d.Len() == 0 {
			b.WriteString("{}")
			return nil
		}
		keys := d.Keys
		if o.sortKeys {
			keys = append([]string(nil), keys...)
			sort.Strings(keys)
		}
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(o.itemSep)
			}
			newline(b, o.indent, depth+1)
			writeJSONString(b, k, o.ensureASCII)
			b.WriteString(o.keySep)
			if err := pyJSON(b, d.Data[k], o, depth+1); err != nil {
				return err
			}
		}
		newline(b, o.indent, depth)
		b.WriteByte('}')
	default:
		return fmt.Errorf("tojson: a %s is not JSON serializable", v.String())
	}
	return nil
}

func newline(b *strings.Builder, indent, depth int) {
	if indent < 0 {
		return
	}
	b.WriteByte('\n')
	b.WriteString(strings.Repeat(" ", indent*depth))
}

// writeJSONString quotes s as Python's json.dumps(ensure_ascii=False) does: ", \ and the control characters below
// U+0020 escaped (\n, \r, \t, \b, \f by name, others as \u00XX), everything else, HTML characters included, as is.
// With ascii (ensure_ascii=True) every rune above U+007E is escaped too, as \uXXXX or a UTF-16 surrogate pair.
func writeJSONString(b *strings.Builder, s string, ascii bool) {
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			switch {
			case r < 0x20 || (ascii && r > 0x7e && r < 0x10000):
				fmt.Fprintf(b, `\u%04x`, r)
			case ascii && r >= 0x10000:
				r1, r2 := utf16.EncodeRune(r)
				fmt.Fprintf(b, `\u%04x\u%04x`, r1, r2)
			default:
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}

// pyFloatRepr formats f as Python's repr(float) does: the shortest digits that round-trip, positional notation for
// exponents from -4 to 15 with at least one digit after the point, scientific (1e-05, 1.5e+16) otherwise.
func pyFloatRepr(f float64) string {
	if f == 0 {
		if math.Signbit(f) {
			return "-0.0"
		}
		return "0.0"
	}
	s := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±XX
	mant, expStr, _ := strings.Cut(s, "e")
	exp, _ := strconv.Atoi(expStr)
	if exp < -4 || exp >= 16 {
		sign := "+"
		if exp < 0 {
			sign = "-"
			exp = -exp
		}
		return fmt.Sprintf("%se%s%02d", mant, sign, exp)
	}
	p := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.Contains(p, ".") {
		p += ".0"
	}
	return p
}

// pyStr is Python's str() of a template value (how Jinja2 prints it): strings as they are, None as "None",
// booleans as True/False, floats in repr (21.0, 1e-05), lists and dicts as their repr (['a', 1], {'k': None}), and
// an undefined value as "".
func pyStr(v jinja.Value) string {
	if v.IsString() {
		return v.AsString()
	}
	if v.IsUndefined() {
		return ""
	}
	var b strings.Builder
	pyRepr(&b, v)
	return b.String()
}

// pyRepr writes Python's repr() of v.
func pyRepr(b *strings.Builder, v jinja.Value) {
	switch {
	case v.IsUndefined():
		// Jinja2's Undefined inside a container prints as "Undefined"; alone it prints "".
		b.WriteString("Undefined")
	case v.IsNone():
		b.WriteString("None")
	case v.IsBool():
		if v.AsBool() {
			b.WriteString("True")
		} else {
			b.WriteString("False")
		}
	case v.IsInt():
		b.WriteString(strconv.FormatInt(v.AsInt(), 10))
	case v.IsFloat():
		f := v.AsFloat()
		switch {
		case math.IsNaN(f):
			b.WriteString("nan")
		case math.IsInf(f, 1):
			b.WriteString("inf")
		case math.IsInf(f, -1):
			b.WriteString("-inf")
		default:
			b.WriteString(pyFloatRepr(f))
		}
	case v.IsString():
		pyStringRepr(b, v.AsString())
	case v.IsList():
		b.WriteByte('[')
		for i, item := range v.AsList().Items {
			if i > 0 {
				b.WriteString(", ")
			}
			pyRepr(b, item)
		}
		b.WriteByte(']')
	case v.IsDict():
		d := v.AsDict()
		b.WriteByte('{')
		for i, k := range d.Keys {
			if i > 0 {
				b.WriteString(", ")
			}
			pyStringRepr(b, k)
			b.WriteString(": ")
			pyRepr(b, d.Data[k])
		}
		b.WriteByte('}')
	default:
		b.WriteString(v.String())
	}
}

// pyStringRepr writes Python's repr() of a str: single quotes unless the text holds a single quote and no double
// one; backslash escapes for the quote, \\, \n, \r, \t and the characters Python does not print (controls, format
// characters, separators other than the space); other non-ASCII as is.
func pyStringRepr(b *strings.Builder, s string) {
	q := byte('\'')
	if strings.ContainsRune(s, '\'') && !strings.ContainsRune(s, '"') {
		q = '"'
	}
	b.WriteByte(q)
	for _, r := range s {
		switch {
		case r == rune(q) || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r != ' ' && (!unicode.IsGraphic(r) || unicode.Is(unicode.Zs, r)):
			// Python's str.isprintable() is false: escaped as \xhh, \uhhhh or \Uhhhhhhhh.
			switch {
			case r < 0x100:
				fmt.Fprintf(b, `\x%02x`, r)
			case r < 0x10000:
				fmt.Fprintf(b, `\u%04x`, r)
			default:
				fmt.Fprintf(b, `\U%08x`, r)
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte(q)
}
