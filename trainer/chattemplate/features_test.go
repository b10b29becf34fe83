package chattemplate

import (
	"encoding/json"
	"testing"
)

// mustJSON decodes JSON with key order kept, for test inputs.
func mustJSON(t *testing.T, s string) any {
	t.Helper()
	v, err := ParseJSON([]byte(s))
	if err != nil {
		t.Fatalf("bad test JSON %s: %v", s, err)
	}
	return v
}

func mustMessages(t *testing.T, s string) []Message {
	t.Helper()
	var msgs []Message
	if err := json.Unmarshal([]byte(s), &msgs); err != nil {
		t.Fatalf("bad test messages %s: %v", s, err)
	}
	return msgs
}

// featureCases are small templates that exercise, one at a time, what real chat templates use: key order, tojson's
// arguments, printing of values, whitespace control with trim_blocks and lstrip_blocks, loops, namespaces, string
// methods, filters, tests, macros, tool calls, content parts, documents, raise_exception and strftime_now.
func featureCases(t *testing.T) []goCase {
	conv := mustMessages(t, `[
		{"role": "system", "content": "Be brief."},
		{"role": "user", "content": "  Hi \"there\" & <b>\n"},
		{"role": "assistant", "content": "Hello!", "reasoning_content": "greet"},
		{"role": "user", "content": "日本語 😀 don't"}
	]`)
	odd := mustMessages(t, `[{"content": "c", "zeta": {"b": 1, "a": [2, "s", null, true, {}, []]}, "role": "user", "alpha": "x"}]`)
	controls := mustMessages(t, `[{"role": "user", "content": "nul\u0000 bell\u0007 esc\u001b del\u007f nbsp\u00a0 ls\u2028 \"q\" \\ /"}]`)
	floats := mustMessages(t, `[{"role": "user", "content": "c", "v": [2.0, 1.5, 1e-05, 1e16, -0.0, 0.1, 123456789.125]}]`)
	toolCall := mustMessages(t, `[
		{"role": "user", "content": "Weather?"},
		{"role": "assistant", "content": null, "tool_calls": [
			{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": {"unit": "celsius", "location": "Paris"}}},
			{"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{\"tz\": \"CET\"}"}}]},
		{"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "{\"temp\": 21.0}"}
	]`)
	parts := mustMessages(t, `[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]}]`)
	tools := mustJSON(t, `[{"type": "function", "function": {"name": "get_weather", "description": "Weather \"now\" in a <city>",
		"parameters": {"type": "object", "properties": {"location": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
		"required": ["location"], "additionalProperties": false, "examples": [], "meta": {}}}}]`).([]any)
	docs := mustJSON(t, `[{"title": "A", "text": "alpha"}, {"title": "B", "text": "beta"}]`).([]any)

	// b prints a condition as 1 or 0, since the references print booleans differently (see featureDifferences).
	const b = `{% macro b(x) %}{% if x %}1{% else %}0{% endif %}{% endmacro %}`
	cs := []goCase{
		{name: "key_order_items", template: `{% for k, v in messages[0].items() %}{{ k }}={{ v | tojson }};{% endfor %}`, messages: odd},
		{name: "key_order_tojson", template: `{{ messages[0] | tojson }}`, messages: odd},
		{name: "tojson_indent2", template: `{{ messages[0] | tojson(indent=2) }}`, messages: odd},
		{name: "tojson_indent4_tools", template: `{% for t in tools %}{{ t | tojson(indent=4) }}{{ "\n\n" }}{% endfor %}`, opts: RenderOptions{Tools: tools}},
		{name: "tojson_separators", template: `{{ tools | tojson(separators=(",", ":")) }}`, opts: RenderOptions{Tools: tools}},
		{name: "tojson_sort_keys", template: `{{ messages[0] | tojson(sort_keys=true) }}`, messages: odd},
		{name: "tojson_ensure_ascii", template: `{{ messages[3].content | tojson(ensure_ascii=true) }}{{ messages[1].content | tojson }}`, messages: conv},
		{name: "tojson_scalars", template: `{{ 7 | tojson }} {{ none | tojson }} {{ true | tojson }} {{ "a\tb" | tojson }} {{ messages[0].content | tojson }}`, messages: controls},
		{name: "string_literal_unicode_escape", template: `{{ "\u00e9\x41" }}`},
		{name: "tojson_floats", template: `{{ messages[0] | tojson }} {{ 21.0 | tojson }}`, messages: floats},
		{name: "print_values", template: `{{ 21.0 }}|{{ 3 }}|{{ none }}|{{ true }}|{{ [1, 'a', none, 2.5] }}|{{ {'k': 'v'} }}|{{ 0.00001 }}|{{ "it's" }}|{{ ["it's"] }}`},
		{name: "print_message", template: `{{ messages[0] }}`, messages: floats},
		{name: "whitespace_blocks", template: "{% for m in messages %}\n  {% if m.role == 'user' %}\n    U: {{ m.content }}\n  {% else %}\n    {{- m.role }}: {{ m.content }}\n  {% endif %}\n{% endfor %}\n{%- if add_generation_prompt %}\nA:{% endif %}", messages: conv, opts: RenderOptions{AddGenerationPrompt: true}},
		{name: "whitespace_comments", template: "a\n  {# note #}\nb {#- trimmed -#}   c\n{% set x = 1 %}  \nd{{ x }}", messages: conv},
		{name: "loop_vars", template: b + `{% for m in messages %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.length }}/{{ b(loop.first) }}/{{ b(loop.last) }}/{{ loop.revindex }};{% endfor %}`, messages: conv},
		{name: "namespace_last_user", template: `{% set ns = namespace(last=-1, n=0) %}{% for m in messages %}{% if m.role == 'user' %}{% set ns.last = loop.index0 %}{% set ns.n = ns.n + 1 %}{% endif %}{% endfor %}{{ ns.last }} {{ ns.n }}`, messages: conv},
		{name: "slices", template: `{{ messages[1:] | length }} {{ messages[-1].role }} {% for m in messages[::-1] %}{{ m.role[0] }}{% endfor %} {{ "abcdef"[1:4] }} {{ "abcdef"[::-1] }}`, messages: conv},
		{name: "string_methods", template: b + `[{{ messages[1].content.strip() }}][{{ messages[1].content.lstrip() }}][{{ messages[1].content.rstrip() }}][{{ "a,b,,c".split(",") | join("|") }}][{{ "x y  z".split() | join("|") }}][{{ b("Hello".startswith("He")) }}{{ b("Hello".endswith("lo")) }}][{{ "aXbX".replace("X", "-") }}][{{ "mIx".upper() }}{{ "mIx".lower() }}]`, messages: conv},
		{name: "strip_chars", template: `[{{ "  a  ".strip(" a") }}][{{ "xxaxx".strip("x") }}]`},
		{name: "title_method", template: `{{ "mIx word".title() }}`},
		{name: "filters", template: `{{ messages | map(attribute='role') | join(',') }}|{{ messages | selectattr('role', 'equalto', 'user') | list | length }}|{{ messages | rejectattr('role', 'equalto', 'user') | map(attribute='role') | join(',') }}|{{ "  x " | trim }}|{{ "ab" | upper }}|{{ [3, 1, 2] | sort | join(',') }}|{{ [1, 2] | first }}{{ [1, 2] | last }}|{{ messages[0].missing | default('dflt') }}|{{ "a\nb" | indent(2) }}|{{ [1, 1, 2] | unique | join(',') }}|{{ "x" | length }}|{{ "user" | capitalize }}`, messages: conv},
		{name: "tests", template: b + `{% for v in [none, 1, 2.5, 'a', [1], {'a': 1}] %}{{ b(v is none) }}{{ b(v is string) }}{{ b(v is number) }}{{ b(v is integer) }}{{ b(v is mapping) }};{% endfor %}{{ b(messages[0].nope is defined) }}{{ b(messages[0].role is defined) }}{{ b(messages[0].nope is undefined) }}{{ b('user' in messages[1].role) }}{{ b('role' in messages[0]) }}{{ b(3 is odd) }}{{ b(3 is even) }}{{ b(messages[0].role is not none) }}{{ b(true is true) }}{{ b(false is false) }}`, messages: conv},
		{name: "test_float", template: b + `{% for v in [1, 2.5] %}{{ b(v is float) }}{% endfor %}`},
		{name: "tests_python_types", template: b + `{{ b('a' is iterable) }}{{ b('a' is sequence) }}{{ b({'a': 1} is sequence) }}{{ b(true is number) }}`},
		{name: "arithmetic", template: `{{ 7 // 2 }} {{ 7 / 2 }} {{ 7 % 3 }} {{ -3 + 1 }} {{ 1 + 2 * 3 }} {{ 'a' ~ 1 }} {{ ([1] + [2]) | join(',') }}`},
		{name: "string_repeat", template: `{{ 'ab' * 2 }}`},
		{name: "power", template: `{{ 2 ** 10 }}`},
		{name: "concat_none", template: `{{ 'a' ~ none }}`},
		{name: "conditionals", template: `{{ 'y' if messages else 'n' }} {{ 'y' if not messages[0].nope else 'n' }} {{ 1 if (messages | length) > 3 and messages[0].role == 'system' or false }}`, messages: conv},
		{name: "macro_call", template: `{% macro turn(role, text, sep='\n') %}<{{ role }}>{{ text }}{{ sep }}{% endmacro %}{% for m in messages %}{{ turn(m.role, m.content) }}{{ turn('x', 'y', sep='|') }}{% endfor %}`, messages: conv},
		{name: "set_block_and_loop_controls", template: `{% set body %}{% for m in messages %}{% if loop.index0 == 0 %}{% continue %}{% endif %}{% if m.role == 'assistant' %}{% break %}{% endif %}{{ m.role }}{% endfor %}{% endset %}[{{ body }}]`, messages: conv},
		{name: "dict_methods", template: `{% set d = {'b': 1, 'a': 2} %}{{ d.keys() | join(',') }} {{ d.values() | join(',') }} {{ d.get('a') }} {{ d.get('z', 'none') }} {{ d['b'] }} {% for k, v in d | dictsort %}{{ k }}{{ v }}{% endfor %}{% for k, v in d.items() %}{{ k }}{{ v }}{% endfor %}`},
		{name: "tool_calls", template: `{% for m in messages %}{% if m.tool_calls %}{% for tc in m.tool_calls %}{{ tc.function.name }}:{% if tc.function.arguments is string %}{{ tc.function.arguments }}{% else %}{{ tc.function.arguments | tojson }}{% endif %};{% endfor %}{% elif m.role == 'tool' %}[{{ m.tool_call_id }} {{ m.name }} {{ m.content }}]{% else %}{{ m.content }}{% endif %}{% endfor %}`, messages: toolCall},
		{name: "content_parts", template: `{% for m in messages %}{% if m.content is string %}{{ m.content }}{% else %}{% for p in m.content %}{% if p.type == 'image' %}<image>{% elif p.type == 'text' %}{{ p.text }}{% endif %}{% endfor %}{% endif %}{% endfor %}`, messages: parts},
		{name: "documents", template: b + `{% if documents %}{% for d in documents %}[{{ loop.index }}] {{ d.title }}: {{ d.text }}
{% endfor %}{% endif %}{{ b(tools is none) }}{{ b(documents is none) }}`, opts: RenderOptions{Documents: docs}},
		{name: "none_tools_and_documents", template: b + `{{ b(tools is none) }} {{ b(tools is defined) }} {{ b(documents is none) }} {% if tools %}T{% else %}F{% endif %}`},
		{name: "special_tokens_and_vars", template: b + `{{ bos_token }}{{ messages[0].content }}{{ eos_token }}{{ b(pad_token is defined) }}{% if enable_thinking is defined and enable_thinking is false %}<think></think>{% endif %}{{ custom }}`, specials: map[string]string{BOSToken: "<s>", EOSToken: "</s>"}, messages: conv, opts: RenderOptions{Vars: Object{{"enable_thinking", false}, {"custom", "C"}}}},
		{name: "raise_in_macro", template: `{% macro check(m) %}{% if m.role not in ['user', 'assistant'] %}{{ raise_exception('Unknown role: ' + m.role) }}{% endif %}{% endmacro %}{% for m in messages %}{{ check(m) }}{{ m.content }}{% endfor %}`, messages: conv},
		{name: "raise_after_output", template: `partial {{ raise_exception("stop here") }} never`},
		{name: "strftime_now", template: `{{ strftime_now("%d %b %Y") }}|{{ strftime_now("%Y-%m-%d") }}|{{ strftime_now("%B %%") }}`},
		{name: "strftime_more", template: `{{ strftime_now("%A %a %y %j") }}`},
		{name: "percent_format", template: `{{ '%s-%d' % ('a', 3) }}|{{ "%s" % messages[0].content | upper }}|{% set x = 'Hi %s!' % messages[0]['role'] %}{{ x }}|{{ '%s' % ('%d' % 4) }}|{{ '%d items' % messages | length }}|{{ 7 % 3 }}|{{ '%s' % none }}|{{ '%s' % [1, 'a'] }}`, messages: conv},
		{name: "percent_format_specs", template: `{{ '%5s|%-5s|%05d|%+d|%x|%#x|%o|%e|%g|%.3g|%c|%r|%%|%.2f|%*d|%.*f' % ('ab', 'cd', 42, 5, 255, 255, 8, 12345.678, 0.00001, 3.14159, 65, 'q', 2.675, 4, 7, 2, 1.5) }}`},
		{name: "percent_format_mapping", template: `{{ '%(a)s=%(b)05.1f' % {'a': 'k', 'b': 2.25} }}`},
		{name: "percent_format_too_few", template: `{{ '%s %s' % 'x' }}`},
		{name: "string_filter", template: `{{ 21.0 | string }}|{{ none | string }}|{{ [1, 2.0] | string }}|{{ (2.0 | string) + 'x' }}`},
		{name: "number_filters", template: `{{ 2.5 | round }}|{{ 2.567 | round(2) }}|{{ 3.7 | int }}|{{ "4" | int }}|{{ 3 | float }}|{{ (-2) | abs }}|{{ -2.5 | round }}|{{ [1, 2.5] | sum }}|{{ [3, 1] | max }}|{{ [3, 1] | min }}`},
		{name: "unary_minus_filter", template: `{{ -2 | abs }}`},
		{name: "join_numbers", template: `{{ [1, 2.0, none, true] | join(",") }}`},
		{name: "dict_iteration", template: b + `{% set d = {'b': 1, 'a': 2} %}{% for k in d %}{{ k }}{% endfor %}|{% for k, v in d | items %}{{ k }}={{ v }}{% endfor %}|{{ d | length }}|{{ b('a' in d) }}`},
		{name: "loop_neighbours", template: `{% for m in messages %}{% if not loop.first %}{{ loop.previtem.role }}>{% endif %}{{ m.role }}{% if not loop.last %}>{{ loop.nextitem.role }},{% endif %}{% endfor %}`, messages: conv},
		{name: "reverse_range", template: `{% for i in range(messages | length - 1, -1, -1) %}{{ i }}{{ messages[i].role[0] }}{% endfor %}|{{ range(2, 8, 3) | join(',') }}`, messages: conv},
		{name: "think_split", template: `{% for m in messages %}{% set c = m.content %}{% if '</think>' in c %}{{ c.split('</think>')[-1].lstrip('\n') }}|{{ c.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') }}{% endif %}{% endfor %}`, messages: mustMessages(t, `[{"role": "assistant", "content": "<think>\nreason here\n</think>\n\nanswer"}]`)},
		{name: "list_concat_set", template: `{% set ns = namespace(parts=[]) %}{% for m in messages %}{% set ns.parts = ns.parts + [m.role] %}{% endfor %}{{ ns.parts | join('+') }}|{{ (messages | selectattr('role', 'equalto', 'system') | first).content }}`, messages: conv},
		{name: "undefined_checks", template: `{{ 'a' if messages[0].x is not defined else 'b' }}{{ 'c' if messages[0].tool_calls is defined and messages[0].tool_calls else 'd' }}{{ messages[0].x | default('e', true) }}{{ '' | default('f', true) }}{{ none | default('g') }}`, messages: conv},
		{name: "generation_prompt_only", template: `{% for m in messages %}{{ m.role }}{% endfor %}{% if add_generation_prompt %}+gen{% endif %}`, messages: conv, opts: RenderOptions{AddGenerationPrompt: true}},
	}
	return cs
}

// featureDifferences are the feature cases that may differ from a reference, with the reason each is acceptable:
// where @huggingface/jinja departs from Python's Jinja2 (which transformers runs and which we follow).
var featureDifferences = map[string]string{
	"huggingface-jinja/tojson_floats":                 jsNumbers,
	"huggingface-jinja/print_values":                  "@huggingface/jinja cannot parse 0.00001 and prints lists and dicts as JSON; Python's Jinja2 prints Python's str()",
	"huggingface-jinja/print_message":                 "@huggingface/jinja prints a dict as JSON and 2.0 as 2; Python's Jinja2 prints Python's str()",
	"huggingface-jinja/strip_chars":                   `@huggingface/jinja's strip(" a") removes only spaces; Python's removes every leading and trailing space and "a"`,
	"huggingface-jinja/test_float":                    "@huggingface/jinja has no `float` test",
	"huggingface-jinja/tests_python_types":            "@huggingface/jinja follows JavaScript's types here (a string is not a sequence, true is not a number)",
	"huggingface-jinja/concat_none":                   "@huggingface/jinja fails on `~ none`; Python's Jinja2 writes None",
	"huggingface-jinja/string_repeat":                 "@huggingface/jinja cannot multiply a string",
	"huggingface-jinja/power":                         "@huggingface/jinja's ** gives 1024 like Python; ardanlabs/jinja gives 1024.0 (see python-jinja2/power)",
	"python-jinja2/string_literal_unicode_escape":     engineOnly + ": string literals in the template keep \\u and \\x escapes as written (Python decodes them); no real template we know writes them",
	"huggingface-jinja/string_literal_unicode_escape": "@huggingface/jinja decodes \\u escapes like Python (see python-jinja2/string_literal_unicode_escape)",
	"huggingface-jinja/percent_format":                jsNoPercent,
	"huggingface-jinja/percent_format_specs":          jsNoPercent,
	"huggingface-jinja/percent_format_mapping":        jsNoPercent,
	"huggingface-jinja/string_filter":                 "@huggingface/jinja's string filter rejects None",
	"huggingface-jinja/number_filters":                "@huggingface/jinja has no round filter for numbers",
	"huggingface-jinja/join_numbers":                  "@huggingface/jinja joins true as JavaScript writes it (true); Python writes True",
	"huggingface-jinja/unary_minus_filter":            "@huggingface/jinja applies the filter to -2 like Python (see python-jinja2/unary_minus_filter)",
	"huggingface-jinja/undefined_checks":              "@huggingface/jinja prints None as an empty string; Python's Jinja2 prints None",
	"huggingface-jinja/strftime_more":                 "@huggingface/jinja's strftime_now knows only %Y %m %d %b %B %H %M %%",
	"python-jinja2/title_method":                      engineOnly + ": str.title() upper-cases each word's first letter but leaves the others as they are (Python lower-cases them); no real template we know calls it",
	"python-jinja2/tests_python_types":                engineOnly + ": a string and a dict are not `sequence`s and true is not a `number` (Python's are); real templates test `is string` and `is mapping`, which agree",
	"python-jinja2/unary_minus_filter":                engineOnly + ": a filter binds tighter than a unary minus (-(2|abs) = -2; Jinja2 applies it to -2); write (-2)|abs",
	"python-jinja2/power":                             engineOnly + ": ** always gives a float (1024.0; Python 1024)",
	"python-jinja2/concat_none":                       engineOnly + ": `~` writes none as \"\" (Python writes None)",
}

const (
	jsNoPercent = "@huggingface/jinja has no printf-style `string % values`; Python's Jinja2 has it, and we rewrite it into our formatter"
	jsNumbers   = "@huggingface/jinja writes floats as JavaScript does (2.0 as 2, 1e-05 as 0.00001); Python's json.dumps, which transformers runs, writes 2.0 and 1e-05 as we do"
	engineOnly  = "ardanlabs/jinja v1.8.0 evaluates this itself and we cannot replace it without forking"
)

// TestFeaturesMatchReferences compares small templates exercising each feature real chat templates use with
// @huggingface/jinja and Python's Jinja2.
func TestFeaturesMatchReferences(t *testing.T) {
	compareWithReferences(t, featureCases(t), featureDifferences)
}
