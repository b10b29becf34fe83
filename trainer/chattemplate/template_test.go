package chattemplate

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// chatML is a Qwen-style template, small enough to read: turns are <|im_start|>role\ncontent<|im_end|>\n.
const chatML = `{% for m in messages %}<|im_start|>{{ m.role }}
{{ m.content }}<|im_end|>
{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant
{% endif %}`

func mustCompile(t *testing.T, src string, specials map[string]string) *Template {
	t.Helper()
	tmpl, err := Compile(src, specials)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return tmpl
}

func TestRenderPromptResponse(t *testing.T) {
	tmpl := mustCompile(t, chatML, nil)
	prompt := []Message{NewMessage("system", "Be brief."), NewMessage("user", "Hi")}
	response := []Message{NewMessage("assistant", "Hello!")}
	p, r, err := tmpl.RenderPromptResponse(prompt, response, RenderOptions{AddGenerationPrompt: false})
	if err != nil {
		t.Fatal(err)
	}
	wantP := "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
	if p != wantP {
		t.Errorf("prompt = %q, want %q", p, wantP)
	}
	if want := "Hello!<|im_end|>\n"; r != want {
		t.Errorf("response = %q, want %q", r, want)
	}

	if _, _, err := tmpl.RenderPromptResponse(prompt, nil, RenderOptions{}); err == nil || !strings.Contains(err.Error(), "response has no messages") {
		t.Errorf("empty response: err = %v, want one saying the response has no messages", err)
	}
	if _, _, err := tmpl.RenderPromptResponse(nil, response, RenderOptions{}); err == nil || !strings.Contains(err.Error(), "prompt has no messages") {
		t.Errorf("empty prompt: err = %v, want one saying the prompt has no messages", err)
	}
}

// TestRenderPromptResponseNotPrefix: a template whose generation prompt differs from how it renders the assistant's
// turn (here "<|assistant|>\n" against "<|assistant|> ") gives a *PrefixError pointing at the first difference.
func TestRenderPromptResponseNotPrefix(t *testing.T) {
	tmpl := mustCompile(t, `{% for m in messages %}<|{{ m.role }}|> {{ m.content }}
{% endfor %}{% if add_generation_prompt %}<|assistant|>
{% endif %}`, nil)
	p, r, err := tmpl.RenderPromptResponse([]Message{NewMessage("user", "Q")}, []Message{NewMessage("assistant", "A")}, RenderOptions{})
	var pe *PrefixError
	if !errors.As(err, &pe) {
		t.Fatalf("got prompt %q, response %q, err %v; want a *PrefixError", p, r, err)
	}
	if pe.Prompt != "<|user|> Q\n<|assistant|>\n" || pe.Full != "<|user|> Q\n<|assistant|> A\n" {
		t.Errorf("PrefixError holds prompt %q and full %q", pe.Prompt, pe.Full)
	}
	if pe.Offset != len("<|user|> Q\n<|assistant|>") {
		t.Errorf("Offset = %d, want %d", pe.Offset, len("<|user|> Q\n<|assistant|>"))
	}
	if msg := err.Error(); !strings.Contains(msg, "does not render the prompt as a prefix") || !strings.Contains(msg, `"\n"`) || !strings.Contains(msg, `" A\n"`) {
		t.Errorf("error %q should say it is not a prefix and show both sides at the difference", msg)
	}
}

// TestRenderPromptResponseRealTemplates: on the shared real templates the prompt is a prefix of the whole, the
// response is what the template writes for the assistant's turn, and a raise_exception reaches the caller.
func TestRenderPromptResponseRealTemplates(t *testing.T) {
	load := func(name string, specials map[string]string) *Template {
		src, err := os.ReadFile(filepath.Join(sharedTemplates, name))
		if err != nil {
			t.Skipf("shared chat templates absent (%v): skipping", err)
		}
		return mustCompile(t, string(src), specials)
	}
	prompt := []Message{NewMessage("system", "S"), NewMessage("user", "Q")}
	response := []Message{NewMessage("assistant", "A")}
	cases := []struct {
		file     string
		specials map[string]string
		vars     Object
		prompt   string
		response string
	}{
		{"qwen2.5.jinja", map[string]string{EOSToken: "<|im_end|>"}, nil,
			"<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n", "A<|im_end|>\n"},
		// Qwen3 writes an empty think block into the last assistant turn; with enable_thinking=false it moves into
		// the generation prompt instead.
		{"qwen3.jinja", map[string]string{EOSToken: "<|im_end|>"}, nil,
			"<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n", "<think>\n\n</think>\n\nA<|im_end|>\n"},
		{"qwen3.jinja", map[string]string{EOSToken: "<|im_end|>"}, Object{{"enable_thinking", false}},
			"<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n", "A<|im_end|>\n"},
		{"llama2.jinja", map[string]string{BOSToken: "<s>", EOSToken: "</s>"}, nil,
			"<s>[INST] <<SYS>>\nS\n<</SYS>>\n\nQ [/INST]", " A </s>"},
		{"gemma3.jinja", map[string]string{BOSToken: "<bos>", EOSToken: "<eos>"}, nil,
			"<bos><start_of_turn>user\nS\n\nQ<end_of_turn>\n<start_of_turn>model\n", "A<end_of_turn>\n"},
		// The original Llama-3 template writes the assistant header whatever add_generation_prompt says, so the
		// response ends with the opening of the next assistant turn (callers that tokenize must know).
		{"llama3.jinja", map[string]string{BOSToken: "<|begin_of_text|>", EOSToken: "<|end_of_text|>"}, nil,
			"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nQ<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
			"A<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
		{"deepseek_v3.jinja", map[string]string{BOSToken: "<｜begin▁of▁sentence｜>", EOSToken: "<｜end▁of▁sentence｜>"}, nil,
			"<｜begin▁of▁sentence｜>S<｜User｜>Q<｜Assistant｜>", "A<｜end▁of▁sentence｜>"},
	}
	for _, c := range cases {
		tmpl := load(c.file, c.specials)
		p, r, err := tmpl.RenderPromptResponse(prompt, response, RenderOptions{Vars: c.vars})
		if err != nil {
			t.Errorf("%s %v: %v", c.file, c.vars, err)
			continue
		}
		if p != c.prompt || r != c.response {
			t.Errorf("%s %v:\n prompt %q\n   want %q\n response %q\n     want %q", c.file, c.vars, p, c.prompt, r, c.response)
		}
	}

	// Gemma-2 rejects a system message: the template's own message comes back as a *RaiseError.
	gemma2 := load("gemma2.jinja", map[string]string{BOSToken: "<bos>", EOSToken: "<eos>"})
	_, _, err := gemma2.RenderPromptResponse(prompt, response, RenderOptions{})
	var re *RaiseError
	if !errors.As(err, &re) || re.Message != "System role not supported" {
		t.Errorf("gemma2 with a system message: err = %v, want a *RaiseError %q", err, "System role not supported")
	}
	if err == nil || !strings.Contains(err.Error(), "rendering the prompt") {
		t.Errorf("err = %v, want it to say which rendering failed", err)
	}
}

// TestMustRaise: the shared conversations each template must reject, with the template's message (checked without
// the references, which TestSharedTemplatesMatchReferences also compares).
func TestMustRaise(t *testing.T) {
	const alternate = "Conversation roles must alternate user/assistant/user/assistant/..."
	want := map[string]string{
		"llama2/bad_alternation":  alternate,
		"llama2/tool_call":        alternate,
		"mistral/sys_user_asst":   alternate,
		"mistral/multiturn_gen":   alternate,
		"mistral/bad_alternation": alternate,
		"mistral/tools":           alternate,
		"mistral/tool_call":       alternate,
		"mistral-small/tool_call": "Only user, system and assistant roles are supported!",
		"gemma2/sys_user_asst":    "System role not supported",
		"gemma2/multiturn_gen":    "System role not supported",
		"gemma2/bad_alternation":  alternate,
		"gemma2/tools":            "System role not supported",
		"gemma2/tool_call":        alternate,
		"gemma3/bad_alternation":  alternate,
		"gemma3/tool_call":        alternate,
	}
	for _, c := range loadSharedCases(t) {
		tmpl := mustCompile(t, c.template, c.specials)
		out, err := tmpl.Render(c.messages, c.opts)
		msg, mustRaise := want[c.name]
		var re *RaiseError
		switch {
		case mustRaise && !errors.As(err, &re):
			t.Errorf("%s: want raise_exception(%q), got %q, %v", c.name, msg, out, err)
		case mustRaise && re.Message != msg:
			t.Errorf("%s: raised %q, want %q", c.name, re.Message, msg)
		case !mustRaise && err != nil:
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

func TestRaiseErrorAndPanics(t *testing.T) {
	tmpl := mustCompile(t, `{% macro check(m) %}{% if m.role == 'tool' %}{{ raise_exception('No tools: ' ~ m.content) }}{% endif %}{% endmacro %}{% for m in messages %}{{ check(m) }}{% endfor %}ok`, nil)
	if out, err := tmpl.Render([]Message{NewMessage("user", "x")}, RenderOptions{}); err != nil || out != "ok" {
		t.Errorf("got %q, %v; want ok", out, err)
	}
	_, err := tmpl.Render([]Message{NewMessage("tool", "x")}, RenderOptions{})
	var re *RaiseError
	if !errors.As(err, &re) || re.Message != "No tools: x" || err.Error() != "chat template raised an exception: No tools: x" {
		t.Errorf("err = %v, want a *RaiseError carrying %q", err, "No tools: x")
	}

	// ardanlabs/jinja v1.8.0 panics (slice bounds out of range) on selectattr with a number: an error, not a crash.
	tmpl = mustCompile(t, `{{ messages | selectattr(1) | list }}`, nil)
	_, err = tmpl.Render([]Message{NewMessage("user", "x")}, RenderOptions{})
	if err == nil || !strings.Contains(err.Error(), "panicked") || errors.As(err, &re) {
		t.Errorf("err = %v, want the engine's panic as a plain error", err)
	}

	if _, err := Compile(`{% for m in messages %}`, nil); err == nil {
		t.Error("an unclosed for compiled")
	}
	if _, err := Compile(`{{ messages[0] `, nil); err == nil {
		t.Error("an unclosed expression compiled")
	}
}

// TestValuesKeepTypesAndOrder: messages, tools and variables reach the template as JSON values with their key order
// and number types; a value of another Go type is an error naming where it is.
func TestValuesKeepTypesAndOrder(t *testing.T) {
	tmpl := mustCompile(t, `{% for k, v in messages[0].items() %}{{ k }}={{ v }};{% endfor %}|{{ tools | tojson }}|{{ n }} {{ f }} {{ big | tojson }}`, nil)
	msgs := mustMessages(t, `[{"z": 1, "role": "user", "a": 2.0, "content": "c", "tool_calls": [{"b": true, "a": null}]}]`)
	tools := mustJSON(t, `[{"type": "function", "function": {"name": "f", "parameters": {"z": 1, "a": 2}}}]`).([]any)
	out, err := tmpl.Render(msgs, RenderOptions{Tools: tools, Vars: Object{{"n", 3}, {"f", 2.5}, {"big", mustJSON(t, "9007199254740993")}}})
	if err != nil {
		t.Fatal(err)
	}
	want := `z=1;role=user;a=2.0;content=c;tool_calls=[{'b': True, 'a': None}];|` +
		`[{"type": "function", "function": {"name": "f", "parameters": {"z": 1, "a": 2}}}]|3 2.5 9007199254740993`
	if out != want {
		t.Errorf("got  %q\nwant %q", out, want)
	}

	_, err = tmpl.Render([]Message{{{Key: "role", Value: struct{}{}}}}, RenderOptions{})
	if err == nil || !strings.Contains(err.Error(), "messages[0].role") {
		t.Errorf("err = %v, want one naming messages[0].role", err)
	}
	_, err = tmpl.Render(nil, RenderOptions{Vars: Object{{"add_generation_prompt", true}}})
	if err == nil || !strings.Contains(err.Error(), `variable "add_generation_prompt" is set by Render`) {
		t.Errorf("err = %v, want one refusing add_generation_prompt in Vars", err)
	}
	_, err = tmpl.Render(nil, RenderOptions{Tools: []any{Object{{"function", Object{{"x", []int{1}}}}}}})
	if err == nil || !strings.Contains(err.Error(), "tools[0].function.x") {
		t.Errorf("err = %v, want one naming tools[0].function.x", err)
	}
}

func TestParseJSON(t *testing.T) {
	v, err := ParseJSON([]byte(`{"b": [1, 2.0, "x", null, true], "a": {"d": 1, "c": 2}, "b2": 1e3, "a": {"e": 0}}`))
	if err != nil {
		t.Fatal(err)
	}
	// A repeated key keeps its first place and its last value, as Python's json does.
	want := Object{
		{"b", []any{jsonNumber("1"), jsonNumber("2.0"), "x", nil, true}},
		{"a", Object{{"e", jsonNumber("0")}}},
		{"b2", jsonNumber("1e3")},
	}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("got %#v\nwant %#v", v, want)
	}
	for _, bad := range []string{`{"a": 1} x`, `{"a": }`, `[1, 2`} {
		if _, err := ParseJSON([]byte(bad)); err == nil {
			t.Errorf("ParseJSON(%q) succeeded", bad)
		}
	}
	var m Message
	if err := m.UnmarshalJSON([]byte(`["not", "an object"]`)); err == nil || !strings.Contains(err.Error(), "want a JSON object, got an array") {
		t.Errorf("err = %v, want one saying it is an array", err)
	}
	if err := m.UnmarshalJSON([]byte(`{"role": "tool", "content": "r", "tool_call_id": "c1"}`)); err != nil {
		t.Fatal(err)
	}
	if m.Role() != "tool" {
		t.Errorf("Role() = %q", m.Role())
	}
	data, err := m.MarshalJSON()
	if err != nil || string(data) != `{"role":"tool","content":"r","tool_call_id":"c1"}` {
		t.Errorf("MarshalJSON = %s, %v", data, err)
	}
}

// TestToJSON checks tojson against strings Python's json.dumps writes (Python 3.11, checked by hand), as the
// transformers filter calls it.
func TestToJSON(t *testing.T) {
	msgs := mustMessages(t, `[{"role": "user", "content": "é \"q\" <b>&\n\t\u0001\u007f", "v": [2.0, 1e-05, 1e16, 0.1, -0.0, 100, []], "o": {}}]`)
	cases := map[string]string{
		`{{ messages[0] | tojson }}`:                                        `{"role": "user", "content": "é \"q\" <b>&\n\t\u0001` + "\x7f" + `", "v": [2.0, 1e-05, 1e+16, 0.1, -0.0, 100, []], "o": {}}`,
		`{{ messages[0].v | tojson(indent=2) }}`:                            "[\n  2.0,\n  1e-05,\n  1e+16,\n  0.1,\n  -0.0,\n  100,\n  []\n]",
		`{{ messages[0] | tojson(indent=0) }}`:                              "{\n\"role\": \"user\",\n\"content\": \"\u00e9 \\\"q\\\" <b>&\\n\\t\\u0001\x7f\",\n\"v\": [\n2.0,\n1e-05,\n1e+16,\n0.1,\n-0.0,\n100,\n[]\n],\n\"o\": {}\n}",
		`{{ messages[0].content | tojson(ensure_ascii=true) }}`:             `"\u00e9 \"q\" <b>&\n\t\u0001\u007f"`,
		`{{ messages[0] | tojson(separators=(",", ":"), sort_keys=true) }}`: `{"content":"é \"q\" <b>&\n\t\u0001` + "\x7f" + `","o":{},"role":"user","v":[2.0,1e-05,1e+16,0.1,-0.0,100,[]]}`,
		`{{ "😀" | tojson(ensure_ascii=true) }}`:                             `"\ud83d\ude00"`,
	}
	for src, want := range cases {
		out, err := mustCompile(t, src, nil).Render(msgs, RenderOptions{})
		if err != nil {
			t.Errorf("%s: %v", src, err)
			continue
		}
		if out != want {
			t.Errorf("%s:\n got %q\nwant %q", src, out, want)
		}
	}
	if _, err := mustCompile(t, `{{ 1 | tojson(bogus=1) }}`, nil).Render(nil, RenderOptions{}); err == nil || !strings.Contains(err.Error(), `unexpected keyword argument "bogus"`) {
		t.Errorf("err = %v, want an unexpected keyword argument", err)
	}
}

func TestPyFloatRepr(t *testing.T) {
	for f, want := range map[float64]string{
		2: "2.0", 0.1: "0.1", 1e-05: "1e-05", 0.0001: "0.0001", 1e16: "1e+16", 1e15: "1000000000000000.0",
		123456789.125: "123456789.125", -1.5e-7: "-1.5e-07", 1.7976931348623157e308: "1.7976931348623157e+308", 5e-324: "5e-324",
	} {
		if got := pyFloatRepr(f); got != want {
			t.Errorf("pyFloatRepr(%v) = %q, want %q", f, got, want)
		}
	}
}

func TestStrftimeNow(t *testing.T) {
	at := time.Date(2024, time.July, 5, 9, 3, 7, 0, time.UTC)
	tmpl := mustCompile(t, `{{ strftime_now("%d %b %Y") }}|{{ strftime_now("%-d %B %y, %A %a %H:%M:%S %I%p %j %e %% %Q") }}`, nil)
	out, err := tmpl.Render(nil, RenderOptions{Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	if want := "05 Jul 2024|5 July 24, Friday Fri 09:03:07 09AM 187  5 % %Q"; out != want {
		t.Errorf("got %q, want %q", out, want)
	}
	// Llama-3.2's templates call strftime_now("%d %b %Y") when no date_string is given; the clock is ours to set.
	tmpl = mustCompile(t, `{%- if strftime_now is defined %}{% set date_string = strftime_now("%d %b %Y") %}{% endif %}Today Date: {{ date_string }}`, nil)
	out, err = tmpl.Render(nil, RenderOptions{Now: func() time.Time { return at.AddDate(0, 0, 30) }})
	if err != nil || out != "Today Date: 04 Aug 2024" {
		t.Errorf("got %q, %v; want Today Date: 04 Aug 2024", out, err)
	}
}

func TestControlMarkers(t *testing.T) {
	tmpl := mustCompile(t, chatML+`{# <|not_this|> #}{{ '<tool_call>' + "\n" }}{% set x = a|b %}`, map[string]string{EOSToken: "<|endoftext|>", PADToken: ""})
	want := []string{"<tool_call>", "<|endoftext|>", "<|im_end|>", "<|im_start|>"}
	if got := tmpl.ControlMarkers(); !reflect.DeepEqual(got, want) {
		t.Errorf("ControlMarkers() = %q, want %q", got, want)
	}
	if got := tmpl.FindControlMarkers("ok <|im_start|>system\nhi<|im_end|>"); !reflect.DeepEqual(got, []string{"<|im_end|>", "<|im_start|>"}) {
		t.Errorf("FindControlMarkers = %q", got)
	}
	if got := tmpl.FindControlMarkers("a plain <b>message</b> with | bars |"); got != nil {
		t.Errorf("FindControlMarkers on plain text = %q, want none", got)
	}

	shared := map[string][]string{
		"llama2.jinja":         {"</s>", "<</SYS>>", "<<SYS>>", "<s>", "[/INST]", "[INST]"},
		"mistral-small.jinja":  {"</s>", "<s>", "[/INST]", "[/SYSTEM_PROMPT]", "[INST]", "[SYSTEM_PROMPT]"},
		"gemma3.jinja":         {"<bos>", "<end_of_turn>", "<eos>", "<start_of_image>", "<start_of_turn>"},
		"llama3_1_tools.jinja": {"<|begin_of_text|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>", "<|start_header_id|>"},
		"deepseek_v3.jinja": {"<｜Assistant｜>", "<｜User｜>", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜tool▁calls▁begin｜>",
			"<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>", "<｜tool▁outputs▁begin｜>", "<｜tool▁outputs▁end｜>",
			"<｜tool▁output▁begin｜>", "<｜tool▁output▁end｜>", "<｜tool▁sep｜>"},
		"qwen3.jinja": {"</think>", "</tool_call>", "</tool_response>", "</tools>", "<think>", "<tool_call>", "<tool_response>", "<tools>", "<|im_end|>", "<|im_start|>"},
	}
	index := map[string][2]string{
		"llama2.jinja": {"<s>", "</s>"}, "mistral-small.jinja": {"<s>", "</s>"}, "gemma3.jinja": {"<bos>", "<eos>"},
		"llama3_1_tools.jinja": {"<|begin_of_text|>", "<|eot_id|>"}, "deepseek_v3.jinja": {"<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"},
		"qwen3.jinja": {"", "<|im_end|>"},
	}
	for file, want := range shared {
		src, err := os.ReadFile(filepath.Join(sharedTemplates, file))
		if err != nil {
			t.Skipf("shared chat templates absent (%v): skipping the real templates", err)
		}
		sp := map[string]string{EOSToken: index[file][1]}
		if index[file][0] != "" {
			sp[BOSToken] = index[file][0]
		}
		if got := mustCompile(t, string(src), sp).ControlMarkers(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: ControlMarkers() = %q, want %q", file, got, want)
		}
	}
}

func jsonNumber(s string) any { return json.Number(s) }

// TestPercentFormat: `'...' % values` renders as Python's printf-style formatting (expected strings from Python 3.11);
// the engine alone renders 0.
func TestPercentFormat(t *testing.T) {
	msgs := []Message{NewMessage("user", "hi")}
	for src, want := range map[string]string{
		`{{ '%s-%d' % ('a', 3) }}`:                                                             "a-3",
		`{{ "<%s>" % messages[0].content | upper }}`:                                           "<HI>",
		`{% set x = 'Hi %s!' % messages[0]['role'] %}{{ x }}`:                                  "Hi user!",
		`{{ '%s' % ('%d' % 4) }} {{ 7 % 3 }}`:                                                  "4 1",
		`{{ '%(a)s=%(b)05.1f' % {'a': 'k', 'b': 2.25} }}`:                                      "k=002.2",
		`{{ '%5s|%-5s|%+d|%#x|%e|%g|%r|%%' % ('ab', 'cd', 5, 255, 12345.678, 0.00001, 'q') }}`: "   ab|cd   |+5|0xff|1.234568e+04|1e-05|'q'|%",
	} {
		out, err := mustCompile(t, src, nil).Render(msgs, RenderOptions{})
		if err != nil || out != want {
			t.Errorf("%s: got %q, %v; want %q", src, out, err, want)
		}
	}
	for src, wantErr := range map[string]string{
		`{{ '%s %s' % 'x' }}`: "not enough arguments",
		`{{ '%s' % (1, 2) }}`: "not all arguments converted",
		`{{ '%d' % 'x' }}`:    "a real number is required, not str",
	} {
		_, err := mustCompile(t, src, nil).Render(msgs, RenderOptions{})
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%s: err = %v, want %q", src, err, wantErr)
		}
	}
	if _, err := Compile("a\n{{ 'x' % }}", nil); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("err = %v, want one naming line 2", err)
	}
}

func TestSelectTemplate(t *testing.T) {
	list := mustJSON(t, `[{"name": "default", "template": "D"}, {"name": "tool_use", "template": "T"}, {"name": "rag", "template": "R"}]`)
	for _, c := range []struct {
		value     any
		name      string
		withTools bool
		want      string
		wantErr   string
	}{
		{"S", "", false, "S", ""},
		{"S", "rag", false, "", `not a list with one named "rag"`},
		{list, "", false, "D", ""},
		{list, "", true, "T", ""},
		{list, "rag", true, "R", ""},
		{list, "nope", false, "", `no template named "nope" (it has ["default" "rag" "tool_use"])`},
		{mustJSON(t, `[{"name": "tool_use", "template": "T"}]`), "", false, "", `no template named "default"`},
		{nil, "", false, "", "no chat_template"},
		{mustJSON(t, `[{"name": 1, "template": "T"}]`), "", false, "", "chat_template[0]: want string fields"},
		{[]any{map[string]any{"name": "default", "template": "M"}}, "", false, "M", ""},
		{mustJSON(t, `{"default": "x"}`), "", false, "", "got an object"},
	} {
		got, err := SelectTemplate(c.value, c.name, c.withTools)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("SelectTemplate(%v, %q, %v) = %q, %v; want error %q", c.value, c.name, c.withTools, got, err, c.wantErr)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("SelectTemplate(%v, %q, %v) = %q, %v; want %q", c.value, c.name, c.withTools, got, err, c.want)
		}
	}
}

// TestConcurrentRender: one compiled template renders from many goroutines; each render's raise_exception and
// clock are its own.
func TestConcurrentRender(t *testing.T) {
	tmpl := mustCompile(t, `{% for m in messages %}{% if m.role == 'bad' %}{{ raise_exception('bad ' ~ m.content) }}{% endif %}{{ m.content }}{% endfor %}@{{ strftime_now("%Y") }}`, nil)
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			year := 2000 + i
			now := func() time.Time { return time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC) }
			role := "user"
			if i%2 == 1 {
				role = "bad"
			}
			out, err := tmpl.Render([]Message{NewMessage(role, strconv.Itoa(i))}, RenderOptions{Now: now})
			var re *RaiseError
			switch {
			case role == "bad" && (!errors.As(err, &re) || re.Message != "bad "+strconv.Itoa(i)):
				errs <- fmt.Sprintf("%d: %q, %v", i, out, err)
			case role == "user" && (err != nil || out != fmt.Sprintf("%d@%d", i, year)):
				errs <- fmt.Sprintf("%d: %q, %v", i, out, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestToMessages(t *testing.T) {
	msgs, err := ToMessages(mustJSON(t, `[{"role": "user", "content": "a", "name": "n"}, {"content": "b", "role": "assistant"}]`))
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || msgs[1].Role() != "assistant" || msgs[1][0].Key != "content" {
		t.Errorf("got %v", msgs)
	}
	if msgs, err := ToMessages([]any{map[string]any{"role": "user", "content": "x"}}); err != nil || msgs[0][0].Key != "content" {
		t.Errorf("from a Go map: %v, %v (want keys sorted)", msgs, err)
	}
	for src, want := range map[string]string{
		`{"role": "user"}`:                     "want a list of messages, got an object",
		`[{"role": "user"}, "hi"]`:             "messages[1]: want an object, got a string",
		`[{"role": "user"}, {"content": "x"}]`: "messages[1]: no string role",
		`[{"role": 3, "content": "x"}]`:        "messages[0]: no string role",
	} {
		if _, err := ToMessages(mustJSON(t, src)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ToMessages(%s): err = %v, want %q", src, err, want)
		}
	}
}
