package data

import (
	"strings"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
)

func mustParse(t *testing.T, src string, opts Options) *Dataset {
	t.Helper()
	d, err := Parse([]byte(src), opts)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return d
}

func TestFormatsReadAndDetect(t *testing.T) {
	cases := []struct {
		name, format, src string
		want              Row
	}{
		{"standard", FormatStandard, `{"prompt":"2+2=","chosen":"4","rejected":"5"}`, textRow(1, "2+2=", "4", "5")},
		{"implicit prompt keeps the space", FormatImplicitPrompt, `{"chosen":"The sky is blue.","rejected":"The sky is green."}`,
			textRow(1, "The sky is ", "blue.", "green.")},
		{"conversational", FormatConversational,
			`{"prompt":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}],"chosen":[{"role":"assistant","content":"Hello"}],"rejected":[{"role":"assistant","content":"Go away"}]}`,
			textRow(1, "<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\n", "Hello", "Go away")},
		{"conversational multi-message response", FormatConversational,
			`{"prompt":[{"role":"user","content":"Hi"}],"chosen":[{"role":"assistant","content":"A"},{"role":"user","content":"B"},{"role":"assistant","content":"C"}],"rejected":[{"role":"assistant","content":"D"}]}`,
			textRow(1, "<|user|>\nHi\n<|assistant|>\n", "A\n<|user|>\nB\n<|assistant|>\nC", "D")},
		{"sharegpt with system", FormatShareGPT,
			`{"system":"S","conversations":[{"from":"human","value":"Q"}],"chosen":{"from":"gpt","value":"good"},"rejected":{"from":"gpt","value":"bad"}}`,
			textRow(1, "<|system|>\nS\n<|user|>\nQ\n<|assistant|>\n", "good", "bad")},
		{"chatPreference", FormatChatPreference,
			`{"input":{"messages":[{"role":"user","content":"Q"}]},"preferred_output":[{"role":"assistant","content":"good"}],"non_preferred_output":[{"role":"assistant","content":"bad"}]}`,
			textRow(1, "<|user|>\nQ\n<|assistant|>\n", "good", "bad")},
		{"promptCompletion", FormatPromptCompletion, `{"prompt":"Say hi:","completion":" hi"}`, textRow(1, "Say hi:", " hi", "")},
		{"messages", FormatMessages,
			`{"messages":[{"role":"user","content":"Q"},{"role":"assistant","content":"A"}]}`,
			textRow(1, "<|user|>\nQ\n<|assistant|>\n", "A", "")},
		{"text", FormatText, `{"text":"all of it"}`, textRow(1, "", "all of it", "")},
		{"alpaca with input", FormatAlpaca, `{"instruction":"Add","input":"1 and 2","output":"3"}`,
			textRow(1, "<|user|>\nAdd\n\n1 and 2\n<|assistant|>\n", "3", "")},
		{"alpaca without input", FormatAlpaca, `{"instruction":"Say 3","input":"","output":"3"}`,
			textRow(1, "<|user|>\nSay 3\n<|assistant|>\n", "3", "")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, format := range []string{"", FormatAuto, c.format} {
				d := mustParse(t, c.src+"\n", Options{Format: format})
				if d.Format != c.format {
					t.Fatalf("format %q: read as %s, want %s", format, d.Format, c.format)
				}
				if len(d.Invalid) != 0 || len(d.Rows) != 1 {
					t.Fatalf("format %q: %d rows, invalid %v", format, len(d.Rows), d.Invalid)
				}
				if plain(d.Rows[0]) != c.want {
					t.Fatalf("format %q: row\n%#v\nwant\n%#v", format, d.Rows[0], c.want)
				}
				if d.Preference() != (c.want.Rejected != "") {
					t.Fatalf("Preference() = %v", d.Preference())
				}
			}
		})
	}
}

func TestSFTFormatNameDetectsSFTShapes(t *testing.T) {
	d := mustParse(t, `{"instruction":"a","output":"b"}`, Options{Format: FormatSFT})
	if d.Format != FormatAlpaca {
		t.Fatalf("sft read as %s", d.Format)
	}
	if _, err := Parse([]byte(`{"prompt":"a","chosen":"b","rejected":"c"}`), Options{Format: FormatSFT}); err == nil {
		t.Fatal("format sft accepted a standard preference file")
	}
}

func TestFieldMapping(t *testing.T) {
	opts := Options{PromptField: "question", ChosenField: "good", RejectedField: "bad"}
	d := mustParse(t, `{"question":"q","good":"g","bad":"b","extra":1}`, opts)
	if d.Format != FormatStandard || plain(d.Rows[0]) != (textRow(1, "q", "g", "b")) {
		t.Fatalf("mapped standard: %s %+v %v", d.Format, d.Rows, d.Invalid)
	}
	d = mustParse(t, `{"good":"x1","bad":"x2"}`, opts)
	if d.Format != FormatImplicitPrompt || plain(d.Rows[0]) != (textRow(1, "x", "1", "2")) {
		t.Fatalf("mapped implicit: %s %+v %v", d.Format, d.Rows, d.Invalid)
	}
	d = mustParse(t, `{"question":"q","good":"g"}`, Options{Format: FormatStandard, PromptField: "question", ChosenField: "good", RejectedField: "bad"})
	if len(d.Invalid) != 1 || d.Invalid[0].Field != "bad" || d.Invalid[0].Reason != "missing field" {
		t.Fatalf("missing mapped field: %+v", d.Invalid)
	}
}

func TestImplicitPromptUTF8Boundary(t *testing.T) {
	// "é" is C3 A9 and "è" is C3 A8: the byte prefix ends inside the character, the prompt must not.
	d := mustParse(t, `{"chosen":"café","rejected":"cafè"}`, Options{})
	if got := d.Rows[0]; got.Prompt != "caf" || got.Chosen != "é" || got.Rejected != "è" {
		t.Fatalf("implicit prompt split %#v", got)
	}
	d = mustParse(t, `{"chosen":"答案是四","rejected":"答案是五"}`, Options{})
	if got := d.Rows[0]; got.Prompt != "答案是" || got.Chosen != "四" || got.Rejected != "五" {
		t.Fatalf("implicit prompt split %#v", got)
	}
}

func TestMalformedRowsNameLineAndField(t *testing.T) {
	cases := []struct {
		name, format, row, field, reason string
	}{
		{"bad JSON", FormatStandard, `{"prompt":"p","chosen":}`, "", "invalid JSON at column 24"},
		{"not an object", FormatStandard, `["p","c","r"]`, "", "row is a JSON array, not an object"},
		{"null row", FormatStandard, `null`, "", "row is a JSON null, not an object"},
		{"trailing data", FormatStandard, `{"prompt":"p","chosen":"c","rejected":"r"} x`, "", "invalid JSON at column"},
		{"missing chosen", FormatStandard, `{"prompt":"p","rejected":"r"}`, "chosen", "missing field"},
		{"wrong type", FormatStandard, `{"prompt":"p","chosen":5,"rejected":"r"}`, "chosen", "must be a string, got number"},
		{"null field", FormatStandard, `{"prompt":null,"chosen":"c","rejected":"r"}`, "prompt", "must be a string, got null"},
		{"empty response", FormatStandard, `{"prompt":"p","chosen":"c","rejected":""}`, "rejected", "empty response"},
		{"invalid UTF-8", FormatStandard, "{\"prompt\":\"\xff\",\"chosen\":\"c\",\"rejected\":\"r\"}", "", "invalid UTF-8 at column 12"},
		{"implicit identical", FormatImplicitPrompt, `{"chosen":"same","rejected":"same"}`, "rejected", "identical to chosen"},
		{"implicit conversations identical", FormatImplicitPrompt, `{"chosen":[{"role":"user","content":"q"}],"rejected":[{"role":"user","content":"q"}]}`,
			"rejected", "identical to chosen"},
		{"implicit conversations share nothing", FormatImplicitPrompt,
			`{"chosen":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}],"rejected":[{"role":"user","content":"Q"},{"role":"assistant","content":"b"}]}`,
			"chosen[0]", "share no leading message"},
		{"implicit conversations differ after a reply", FormatImplicitPrompt,
			`{"chosen":[{"role":"user","content":"q"},{"role":"assistant","content":"a"},{"role":"user","content":"x"}],"rejected":[{"role":"user","content":"q"},{"role":"assistant","content":"a"},{"role":"user","content":"y"}]}`,
			"chosen[1]", "end with the assistant's"},
		{"implicit conversation against a string", FormatImplicitPrompt,
			`{"chosen":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}],"rejected":"q b"}`,
			"rejected", "both sides must be"},
		{"implicit conversations empty sides render alike", FormatImplicitPrompt,
			`{"chosen":[{"role":"user","content":"q"},{"role":"assistant","content":""}],"rejected":[{"role":"user","content":"q"}]}`,
			"rejected", "renders identical"},
		{"tool role", FormatConversational,
			`{"prompt":[{"role":"user","content":"x"},{"role":"tool","tool_call_id":"1","content":"sunny"}],"chosen":[{"role":"assistant","content":"c"}],"rejected":[{"role":"assistant","content":"r"}]}`,
			"prompt[1].role", `role "tool" (a tool's result) is not supported: the built-in chat template has no syntax for tool calls`},
		{"assistant tool call in a response", FormatConversational,
			`{"prompt":[{"role":"user","content":"x"}],"chosen":[{"role":"assistant","content":"","tool_calls":[{"id":"1","type":"function","function":{"name":"f","arguments":"{}"}}]}],"rejected":[{"role":"assistant","content":"r"}]}`,
			"chosen[0].tool_calls", "tool calls are not supported"},
		{"legacy function call", FormatChatPreference,
			`{"input":{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":null,"function_call":{"name":"f","arguments":"{}"}},{"role":"user","content":"so?"}]},"preferred_output":[{"role":"assistant","content":"c"}],"non_preferred_output":[{"role":"assistant","content":"r"}]}`,
			"input.messages[1].function_call", "tool calls are not supported"},
		{"sharegpt observation", FormatShareGPT,
			`{"conversations":[{"from":"human","value":"q"},{"from":"function_call","value":"{}"},{"from":"observation","value":"sunny"}],"chosen":{"from":"gpt","value":"c"},"rejected":{"from":"gpt","value":"r"}}`,
			"conversations[1].from", `role "function_call" (a tool call) is not supported`},
		{"messages tool call", FormatMessages,
			`{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"","tool_calls":[{"id":"1"}]},{"role":"user","content":"r"},{"role":"assistant","content":"a"}]}`,
			"messages[1].tool_calls", "tool calls are not supported"},
		{"conversational bad role", FormatConversational,
			`{"prompt":[{"role":"robot","content":"x"}],"chosen":[{"role":"assistant","content":"c"}],"rejected":[{"role":"assistant","content":"r"}]}`,
			"prompt[0].role", `unknown role "robot"`},
		{"conversational prompt ends with assistant", FormatConversational,
			`{"prompt":[{"role":"user","content":"x"},{"role":"assistant","content":"y"}],"chosen":[{"role":"assistant","content":"c"}],"rejected":[{"role":"assistant","content":"r"}]}`,
			"prompt[1]", "last message is the assistant's"},
		{"conversational response from user", FormatConversational,
			`{"prompt":[{"role":"user","content":"x"}],"chosen":[{"role":"user","content":"c"}],"rejected":[{"role":"assistant","content":"r"}]}`,
			"chosen[0]", "starts with the assistant"},
		{"conversational empty list", FormatConversational,
			`{"prompt":[{"role":"user","content":"x"}],"chosen":[],"rejected":[{"role":"assistant","content":"r"}]}`,
			"chosen", "empty response"},
		{"sharegpt chosen from human", FormatShareGPT,
			`{"conversations":[{"from":"human","value":"q"}],"chosen":{"from":"human","value":"c"},"rejected":{"from":"gpt","value":"r"}}`,
			"chosen.from", "comes from gpt"},
		{"sharegpt empty value", FormatShareGPT,
			`{"conversations":[{"from":"human","value":"q"}],"chosen":{"from":"gpt","value":""},"rejected":{"from":"gpt","value":"r"}}`,
			"chosen.value", "empty response"},
		{"sharegpt missing value", FormatShareGPT,
			`{"conversations":[{"from":"human"}],"chosen":{"from":"gpt","value":"c"},"rejected":{"from":"gpt","value":"r"}}`,
			"conversations[0].value", "missing field"},
		{"chatPreference content not a string", FormatChatPreference,
			`{"input":{"messages":[{"role":"user","content":["x"]}]},"preferred_output":[{"role":"assistant","content":"c"}],"non_preferred_output":[{"role":"assistant","content":"r"}]}`,
			"input.messages[0].content", "must be a string, got array"},
		{"chatPreference input not an object", FormatChatPreference,
			`{"input":"q","preferred_output":[],"non_preferred_output":[]}`, "input", "must be an object, got string"},
		{"messages last from user", FormatMessages, `{"messages":[{"role":"user","content":"q"}]}`, "messages[0].role", "last message must be the assistant's"},
		{"alpaca output missing", FormatAlpaca, `{"instruction":"i","input":""}`, "output", "missing field"},
		{"alpaca input wrong type", FormatAlpaca, `{"instruction":"i","input":3,"output":"o"}`, "input", "must be a string, got number"},
		{"text empty", FormatText, `{"text":""}`, "text", "empty response"},
		{"completion missing", FormatPromptCompletion, `{"prompt":"p"}`, "completion", "missing field"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// The bad row sits on line 3, after a good row and a blank line, to check line numbering.
			src := goodRowFor(c.format) + "\n\n" + c.row + "\n" + goodRowFor(c.format) + "\n"
			d := mustParse(t, src, Options{Format: c.format})
			if d.Total != 3 || len(d.Rows) != 2 || len(d.Invalid) != 1 {
				t.Fatalf("total %d, rows %d, invalid %+v", d.Total, len(d.Rows), d.Invalid)
			}
			bad := d.Invalid[0]
			if bad.Line != 3 || bad.Field != c.field || !strings.Contains(bad.Reason, c.reason) {
				t.Fatalf("invalid row %+v, want line 3 field %q reason containing %q", bad, c.field, c.reason)
			}
			if d.Rows[1].Line != 4 {
				t.Fatalf("row after the bad one has line %d, want 4", d.Rows[1].Line)
			}
			if err := d.Err(); err == nil || !strings.Contains(err.Error(), "line 3") {
				t.Fatalf("Err() = %v, want it to name line 3", err)
			}
		})
	}
}

// goodRowFor returns one valid row of a format.
func goodRowFor(format string) string {
	switch format {
	case FormatImplicitPrompt:
		return `{"chosen":"ab","rejected":"ac"}`
	case FormatConversational:
		return `{"prompt":[{"role":"user","content":"x"}],"chosen":[{"role":"assistant","content":"c"}],"rejected":[{"role":"assistant","content":"r"}]}`
	case FormatShareGPT:
		return `{"conversations":[{"from":"human","value":"q"}],"chosen":{"from":"gpt","value":"c"},"rejected":{"from":"gpt","value":"r"}}`
	case FormatChatPreference:
		return `{"input":{"messages":[{"role":"user","content":"q"}]},"preferred_output":[{"role":"assistant","content":"c"}],"non_preferred_output":[{"role":"assistant","content":"r"}]}`
	case FormatMessages:
		return `{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]}`
	case FormatAlpaca:
		return `{"instruction":"i","input":"","output":"o"}`
	case FormatText:
		return `{"text":"t"}`
	case FormatPromptCompletion:
		return `{"prompt":"p","completion":"c"}`
	}
	return `{"prompt":"p","chosen":"c","rejected":"r"}`
}

func TestJSONArrayLines(t *testing.T) {
	src := "[\n  {\"prompt\": \"p\",\n   \"chosen\": \"c\", \"rejected\": \"r\"},\n  {\"prompt\": \"p\",\n   \"chosen\": 1, \"rejected\": \"r\"},\n\n  {\"prompt\": \"q\", \"chosen\": \"c\", \"rejected\": \"r\"}\n]\n"
	d := mustParse(t, src, Options{})
	if d.Total != 3 || len(d.Rows) != 2 {
		t.Fatalf("total %d rows %d invalid %+v", d.Total, len(d.Rows), d.Invalid)
	}
	if d.Rows[0].Line != 2 || d.Rows[1].Line != 7 {
		t.Fatalf("row lines %d, %d: want 2 and 7", d.Rows[0].Line, d.Rows[1].Line)
	}
	if len(d.Invalid) != 1 || d.Invalid[0] != (contract.InvalidRow{Line: 4, Field: "chosen", Reason: "must be a string, got number"}) {
		t.Fatalf("invalid %+v", d.Invalid)
	}
}

func TestJSONArrayInvalidUTF8NamesItsLine(t *testing.T) {
	// The bad byte is the 14th of line 3 (after ` "chosen": "c`); the element starts on line 2.
	src := "[\n{\"prompt\": \"p\",\n \"chosen\": \"c\xff\", \"rejected\": \"r\"},\n{\"text\": \"t\"}\n]"
	d := mustParse(t, src, Options{Format: FormatStandard})
	if len(d.Invalid) != 2 || d.Invalid[0].Line != 2 || d.Invalid[0].Reason != "invalid UTF-8 at line 3 column 14" {
		t.Fatalf("invalid %+v", d.Invalid)
	}
}

func TestJSONArraySyntaxErrorStopsWithLine(t *testing.T) {
	src := "[\n{\"prompt\":\"p\",\"chosen\":\"c\",\"rejected\":\"r\"},\n{\"prompt\":\"p\",\n \"chosen\" \"c\"},\n{\"prompt\":\"p\",\"chosen\":\"c\",\"rejected\":\"r\"}\n]"
	d := mustParse(t, src, Options{})
	if len(d.Rows) != 1 || len(d.Invalid) != 1 {
		t.Fatalf("rows %d invalid %+v", len(d.Rows), d.Invalid)
	}
	bad := d.Invalid[0]
	if bad.Line != 3 || !strings.Contains(bad.Reason, "line 4 column") || !strings.Contains(bad.Reason, "rest of the array was not read") {
		t.Fatalf("invalid %+v", bad)
	}
}

func TestUnreadableFiles(t *testing.T) {
	cases := map[string]string{
		"":                    "empty",
		"[]":                  "no rows",
		" [ \n ] ":            "no rows",
		"  \n\n":              "empty",
		"not json\nnor this":  "no row is a JSON object",
		`{"a":1}` + "\n":      "line 1 has a",
		`[{"prompt":"p"`:      "ends inside this element",
		`[{"text":"t"}] junk`: "data after the JSON array",
	}
	for src, want := range cases {
		_, err := Parse([]byte(src), Options{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) error %v, want one containing %q", src, err, want)
		}
	}
	if _, err := Parse([]byte(`{"text":"t"}`), Options{Format: "csv"}); err == nil || !strings.Contains(err.Error(), `unknown format "csv"`) {
		t.Errorf("unknown format: %v", err)
	}
}

func TestDetectionSkipsLeadingBadRows(t *testing.T) {
	src := "garbage\n{\"prompt\":\"p\"}\n{\"prompt\":\"p\",\"chosen\":\"c\",\"rejected\":\"r\"}\n"
	d := mustParse(t, src, Options{})
	if d.Format != FormatStandard || len(d.Rows) != 1 || len(d.Invalid) != 2 {
		t.Fatalf("format %s rows %d invalid %+v", d.Format, len(d.Rows), d.Invalid)
	}
	if d.Invalid[0].Line != 1 || d.Invalid[1].Line != 2 || d.Invalid[1].Field != "chosen" {
		t.Fatalf("invalid %+v", d.Invalid)
	}
}

func TestBOMAndCRLF(t *testing.T) {
	src := "\xEF\xBB\xBF{\"text\":\"a\"}\r\n{\"text\":\"b\"}\r\n"
	d := mustParse(t, src, Options{})
	if len(d.Rows) != 2 || len(d.Invalid) != 0 || d.Rows[1].Chosen != "b" {
		t.Fatalf("rows %+v invalid %+v", d.Rows, d.Invalid)
	}
}

func TestDigest(t *testing.T) {
	d := mustParse(t, `{"text":"a"}`, Options{})
	// sha256 of the 12 bytes {"text":"a"}
	if !strings.HasPrefix(d.Digest, "sha256:") || len(d.Digest) != len("sha256:")+64 {
		t.Fatalf("digest %q", d.Digest)
	}
	if err := d.CheckDigest(d.Digest); err != nil {
		t.Fatal(err)
	}
	if err := d.CheckDigest("sha256:00"); err == nil || !strings.Contains(err.Error(), "changed") {
		t.Fatalf("CheckDigest of another digest: %v", err)
	}
	e := mustParse(t, `{"text":"b"}`, Options{})
	if e.Digest == d.Digest {
		t.Fatal("different bytes, same digest")
	}
}

// textRow is a row's line and texts; plain drops a row's messages, so rows compare by their texts.
func textRow(line int, prompt, chosen, rejected string) Row {
	return Row{Line: line, Prompt: prompt, Chosen: chosen, Rejected: rejected}
}

func plain(r Row) Row { r.Chat = nil; return r }
