package chattemplate

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ardanlabs/jinja"
)

// Message is one chat message as the template sees it: a JSON object whose keys keep their order, usually "role" and
// "content" (a string, null, or a list of parts) and any others the template reads (tool_calls, tool_call_id, name,
// reasoning_content, thinking, ...). Templates see it as a Python dict.
type Message Object

// NewMessage returns {"role": role, "content": content} followed by extra, in that order.
func NewMessage(role, content string, extra ...Field) Message {
	m := Message{{Key: "role", Value: role}, {Key: "content", Value: content}}
	for _, f := range extra {
		(*Object)(&m).Set(f.Key, f.Value)
	}
	return m
}

// Role returns the message's "role" when it is a string, else "".
func (m Message) Role() string {
	v, _ := Object(m).Get("role")
	s, _ := v.(string)
	return s
}

// Get returns the value of key and whether the message has it.
func (m Message) Get(key string) (any, bool) { return Object(m).Get(key) }

// MarshalJSON writes the message with its keys in order.
func (m Message) MarshalJSON() ([]byte, error) { return Object(m).MarshalJSON() }

// UnmarshalJSON reads a JSON object keeping its keys' order (see ParseJSON).
func (m *Message) UnmarshalJSON(data []byte) error { return (*Object)(m).UnmarshalJSON(data) }

// Template is a compiled Hugging Face chat template with the tokenizer's special tokens it renders with. It is safe
// for concurrent use.
type Template struct {
	source        string
	tmpl          *jinja.Template
	specialTokens map[string]string
	markers       []string
}

// Special-token variables that transformers passes to every chat template (the tokenizer's special_tokens_map).
const (
	BOSToken = "bos_token"
	EOSToken = "eos_token"
	PADToken = "pad_token"
	UNKToken = "unk_token"
)

// printerName is the variable of the filter every {{ output }} is piped through (see rewriteSource).
const printerName = "preftune_print"

// Compile parses a chat template (the `chat_template` string of a model's tokenizer_config.json). specialTokens is the
// tokenizer's special_tokens_map: keys such as "bos_token" and "eos_token" and the tokens' text; a token the tokenizer
// lacks is left out (the template then sees it undefined, as with transformers). A template the engine cannot parse is
// an error carrying the engine's message.
func Compile(source string, specialTokens map[string]string) (*Template, error) {
	rewritten, err := rewritePercent(source)
	if err != nil {
		return nil, fmt.Errorf("chattemplate: %w", err)
	}
	renamed := make(map[string]string, len(ourFilters))
	for name := range ourFilters {
		renamed[name] = ourFilterVar(name)
	}
	rewritten = rewriteSource(rewritten, renamed, printerName)
	var tmpl *jinja.Template
	err = catchPanic("compiling", func() error {
		var err error
		tmpl, err = jinja.Compile(rewritten)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("chattemplate: %w", err)
	}
	st := make(map[string]string, len(specialTokens))
	for k, v := range specialTokens {
		st[k] = v
	}
	return &Template{source: source, tmpl: tmpl, specialTokens: st, markers: controlMarkers(source, st)}, nil
}

// Source returns the template's text as given to Compile.
func (t *Template) Source() string { return t.source }

// SpecialTokens returns a copy of the special-token variables the template renders with.
func (t *Template) SpecialTokens() map[string]string {
	out := make(map[string]string, len(t.specialTokens))
	for k, v := range t.specialTokens {
		out[k] = v
	}
	return out
}

// RenderOptions are apply_chat_template's arguments besides the messages.
type RenderOptions struct {
	// AddGenerationPrompt appends the opening of an assistant turn (add_generation_prompt).
	AddGenerationPrompt bool
	// Tools are the tools' JSON schemas ({"type": "function", "function": {...}}); nil renders `tools` as None.
	Tools []any
	// Documents for retrieval-augmented templates; nil renders `documents` as None.
	Documents []any
	// Vars are further template variables, as transformers' **kwargs to apply_chat_template (e.g.
	// {"enable_thinking": false}). They may override the special tokens; messages, tools, documents,
	// add_generation_prompt, raise_exception, strftime_now and our filters' names are an error.
	Vars Object
	// Now is strftime_now's clock; nil means time.Now (local time, as Python's datetime.now()).
	Now func() time.Time
}

// RaiseError is the error of a template that called raise_exception(message): the template rejects its input.
type RaiseError struct {
	Message string
}

func (e *RaiseError) Error() string { return "chat template raised an exception: " + e.Message }

// Render renders the conversation as transformers' apply_chat_template(messages, tokenize=False, ...) does. The
// template sees messages, tools, documents, add_generation_prompt, the special tokens, opts.Vars, and the functions
// raise_exception and strftime_now. A raise_exception in the template returns a *RaiseError carrying its message;
// an engine error or panic is returned as an error.
func (t *Template) Render(messages []Message, opts RenderOptions) (string, error) {
	data := make(map[string]jinja.Value, 8+len(t.specialTokens)+len(opts.Vars))
	for k, v := range t.specialTokens {
		data[k] = jinja.NewString(v)
	}
	for _, f := range opts.Vars {
		if reservedVar(f.Key) {
			return "", fmt.Errorf("chattemplate: variable %q is set by Render itself, not through RenderOptions.Vars", f.Key)
		}
		v, err := toValue(f.Value, f.Key)
		if err != nil {
			return "", fmt.Errorf("chattemplate: variable %w", err)
		}
		data[f.Key] = v
	}
	msgs := make([]jinja.Value, len(messages))
	for i, m := range messages {
		v, err := toValue(Object(m), fmt.Sprintf("messages[%d]", i))
		if err != nil {
			return "", fmt.Errorf("chattemplate: %w", err)
		}
		msgs[i] = v
	}
	data["messages"] = jinja.NewList(msgs)
	for _, list := range []struct {
		name  string
		items []any
	}{{"tools", opts.Tools}, {"documents", opts.Documents}} {
		if list.items == nil {
			data[list.name] = jinja.None()
			continue
		}
		v, err := toValue(list.items, list.name)
		if err != nil {
			return "", fmt.Errorf("chattemplate: %w", err)
		}
		data[list.name] = v
	}
	data["add_generation_prompt"] = jinja.NewBool(opts.AddGenerationPrompt)

	var raised *RaiseError
	data["raise_exception"] = jinja.NewCallable("raise_exception", func(args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
		msg := ""
		if len(args) > 0 {
			msg = pyStr(args[0])
		}
		raised = &RaiseError{Message: msg}
		return jinja.Undefined(), raised
	})
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	data["strftime_now"] = jinja.NewCallable("strftime_now", func(args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
		if len(args) != 1 || !args[0].IsString() {
			return jinja.Undefined(), errors.New("strftime_now takes one format string")
		}
		return jinja.NewString(strftime(now(), args[0].AsString())), nil
	})
	for name, f := range ourFilters {
		data[ourFilterVar(name)] = jinja.NewCallable(name, f)
	}
	data[printerName] = jinja.NewCallable("str", filterPrint)
	data[formatName] = jinja.NewCallable("format", filterFormat)

	var out string
	err := catchPanic("rendering", func() error {
		var err error
		out, err = t.tmpl.RenderValues(data)
		return err
	})
	if raised != nil {
		return "", raised
	}
	if err != nil {
		return "", fmt.Errorf("chattemplate: %w", err)
	}
	return out, nil
}

// catchPanic runs f and turns a panic in the engine into an error.
func catchPanic(what string, f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("template engine panicked while %s: %v", what, r)
		}
	}()
	return f()
}

// filterToJSON is transformers' tojson filter: json.dumps(x, ensure_ascii=False, indent=None, separators=None,
// sort_keys=False) with those keyword arguments accepted (indent also positionally, as Jinja's own tojson takes it).
func filterToJSON(args []jinja.Value, kwargs map[string]jinja.Value) (jinja.Value, error) {
	if len(args) == 0 {
		return jinja.Undefined(), errors.New("tojson: no value")
	}
	o := jsonOptions{indent: -1}
	indent := jinja.None()
	if len(args) > 1 {
		indent = args[1]
	}
	if v, ok := kwargs["indent"]; ok {
		indent = v
	}
	switch {
	case indent.IsNone() || indent.IsUndefined():
	case indent.IsInt():
		o.indent = max(int(indent.AsInt()), 0)
	default:
		return jinja.Undefined(), fmt.Errorf("tojson: indent must be an integer, got %s", indent.String())
	}
	if o.indent >= 0 {
		o.itemSep, o.keySep = ",", ": "
	} else {
		o.itemSep, o.keySep = ", ", ": "
	}
	if v, ok := kwargs["separators"]; ok && !v.IsNone() {
		if !v.IsList() || v.AsList().Len() != 2 || !v.AsList().Items[0].IsString() || !v.AsList().Items[1].IsString() {
			return jinja.Undefined(), fmt.Errorf("tojson: separators must be two strings, got %s", v.String())
		}
		o.itemSep, o.keySep = v.AsList().Items[0].AsString(), v.AsList().Items[1].AsString()
	}
	if v, ok := kwargs["ensure_ascii"]; ok {
		o.ensureASCII = v.IsTruthy()
	}
	if v, ok := kwargs["sort_keys"]; ok {
		o.sortKeys = v.IsTruthy()
	}
	for k := range kwargs {
		switch k {
		case "indent", "separators", "ensure_ascii", "sort_keys":
		default:
			return jinja.Undefined(), fmt.Errorf("tojson: unexpected keyword argument %q", k)
		}
	}
	var b strings.Builder
	if err := pyJSON(&b, args[0], o, 0); err != nil {
		return jinja.Undefined(), err
	}
	return jinja.NewString(b.String()), nil
}

// filterPrint prints a value as Jinja2 does: Python's str() of it, "" for an undefined one.
func filterPrint(args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
	if len(args) == 0 {
		return jinja.NewString(""), nil
	}
	return jinja.NewString(pyStr(args[0])), nil
}

// reservedVar reports whether name is a variable Render sets itself.
func reservedVar(name string) bool {
	switch name {
	case "messages", "tools", "documents", "add_generation_prompt", "raise_exception", "strftime_now", printerName, formatName:
		return true
	}
	for f := range ourFilters {
		if name == ourFilterVar(f) {
			return true
		}
	}
	return false
}

// ToMessages converts a decoded JSON list of messages (ParseJSON's []any of Object, or encoding/json's []any of
// map[string]any, whose keys are then sorted) to Messages. Each must be an object with a string "role"; errors name
// the index, e.g. "messages[2]: no string role".
func ToMessages(v any) ([]Message, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("messages: want a list of messages, got %s", jsonKind(v))
	}
	out := make([]Message, len(list))
	for i, e := range list {
		var obj Object
		switch m := e.(type) {
		case Object:
			obj = m
		case Message:
			obj = Object(m)
		case map[string]any:
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				obj = append(obj, Field{Key: k, Value: m[k]})
			}
		default:
			return nil, fmt.Errorf("messages[%d]: want an object, got %s", i, jsonKind(e))
		}
		if _, ok := Message(obj).Get("role"); !ok || Message(obj).Role() == "" {
			return nil, fmt.Errorf("messages[%d]: no string role", i)
		}
		out[i] = Message(obj)
	}
	return out, nil
}
