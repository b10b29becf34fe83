package data

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/preftune/preftune/trainer/chattemplate"
	"github.com/preftune/preftune/trainer/tokenizer"
)

func byteEncoder(t *testing.T, template string, ctx int) *Encoder {
	t.Helper()
	e, err := NewEncoder(tokenizer.NewByte(), template, TemplateOverride, ctx)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func encodeAll(t *testing.T, e *Encoder, src string, preference bool) *EncodeResult {
	t.Helper()
	d := mustParse(t, src, Options{})
	if len(d.Invalid) > 0 {
		t.Fatalf("invalid rows: %+v", d.Invalid)
	}
	res, err := e.Encode(d.Rows, preference)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestBuiltinTemplateMatchesOldRendering: the built-in template, now a Jinja template rendered like any model's,
// gives the texts RenderPrompt and RenderResponse built, so the byte model's (and the demo's) token ids do not
// change: BOS prompt response EOS, as data.Encode laid them out.
func TestBuiltinTemplateMatchesOldRendering(t *testing.T) {
	convs := []Chat{
		{Prompt: []Message{{RoleUser, "What is 2+3?"}}, Chosen: []Message{{RoleAssistant, "5"}}, Rejected: []Message{{RoleAssistant, "6"}}},
		{Prompt: []Message{{RoleSystem, "Be brief."}, {RoleUser, "Hi"}}, Chosen: []Message{{RoleAssistant, "Hello"}}, Rejected: []Message{{RoleAssistant, "Go away"}}},
		{Prompt: []Message{{RoleUser, "a"}, {RoleAssistant, "b"}, {RoleUser, "c\nd"}}, Chosen: []Message{{RoleAssistant, "e"}, {RoleUser, "f"}, {RoleAssistant, "g"}}, Rejected: []Message{{RoleAssistant, ""}}},
		{Prompt: nil, Chosen: []Message{{RoleAssistant, "only the assistant"}}, Rejected: []Message{{RoleAssistant, "x"}}},
		{Prompt: []Message{{RoleUser, "ünïcödé 🙂"}}, Chosen: []Message{{RoleAssistant, "  spaces\n\n"}}, Rejected: nil},
	}
	tok := tokenizer.NewByte()
	e, err := NewEncoder(tok, "", "", 4096)
	if err != nil {
		t.Fatal(err)
	}
	if e.TemplateOrigin != TemplateBuiltin || e.Template.Source() != BuiltinChatTemplate {
		t.Fatalf("origin %q", e.TemplateOrigin)
	}
	// The built-in template writes nothing special after a response: the turn ends with EOS.
	if e.TurnEnd() != tok.EOS() {
		t.Errorf("TurnEnd %d, want EOS %d", e.TurnEnd(), tok.EOS())
	}
	for i, c := range convs {
		row := Row{Line: i + 1, Prompt: RenderPrompt(c.Prompt), Chosen: RenderResponse(c.Chosen), Rejected: RenderResponse(c.Rejected), Chat: &c}
		rd, err := e.Render(row, true)
		if err != nil {
			t.Fatalf("conversation %d: %v", i, err)
		}
		if rd.Prompt != row.Prompt || rd.Chosen != row.Chosen || rd.Rejected != row.Rejected {
			t.Errorf("conversation %d: rendered %q | %q | %q, old %q | %q | %q", i, rd.Prompt, rd.Chosen, rd.Rejected, row.Prompt, row.Chosen, row.Rejected)
		}
		res, err := e.Encode([]Row{row}, true)
		if err != nil || len(res.Examples) != 1 {
			t.Fatalf("conversation %d: %v", i, err)
		}
		ex := res.Examples[0]
		for side, want := range map[string]Sequence{"chosen": Encode(tok, row.Prompt, row.Chosen, 4096), "rejected": Encode(tok, row.Prompt, row.Rejected, 4096)} {
			got := ex.Chosen
			if side == "rejected" {
				got = ex.Rejected
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("conversation %d %s: %v, old layout %v", i, side, got, want)
			}
		}
	}
	// The template's control markers are the role headers.
	if m := e.Template.ControlMarkers(); !slices.Equal(m, []string{"<|assistant|>", "<|system|>", "<|user|>"}) {
		t.Errorf("markers %q", m)
	}
}

// TestTruncationOncePerPair is the class of case 07: the prompt is cut once for the pair (keeping its end) so that
// chosen and rejected see the same prompt tokens; a response is cut at its end only when it alone does not fit.
func TestTruncationOncePerPair(t *testing.T) {
	e := byteEncoder(t, "", 12)
	cases := []struct {
		name                     string
		row                      string
		prompt, chosen, rejected string // byte texts after truncation (BOS and EOS are implied)
		chosenEnd, rejectedEnd   bool
		truncated, emptied, cut  int
	}{
		{"fits", `{"prompt":"ab","chosen":"c","rejected":"de"}`, "ab", "c", "de", true, true, 0, 0, 0},
		{"prompt cut for the longer side", `{"prompt":"abcdefgh","chosen":"xy","rejected":"uvwxyz"}`, "efgh", "xy", "uvwxyz", true, true, 1, 0, 0},
		{"prompt emptied", `{"prompt":"abc","chosen":"x","rejected":"0123456789"}`, "", "x", "0123456789", true, true, 1, 1, 0},
		{"response cut", `{"prompt":"abc","chosen":"x","rejected":"0123456789ABC"}`, "", "x", "0123456789A", true, false, 1, 1, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := encodeAll(t, e, c.row, true)
			ex := res.Examples[0]
			check := func(s Sequence, resp string, end bool) {
				want := seq(bos, c.prompt, resp)
				if end {
					want = append(want, eos)
				}
				if !slices.Equal(s.Tokens, want) || s.ResponseStart != 1+len(c.prompt) || len(s.Tokens) > 12 {
					t.Errorf("sequence %v start %d, want %v start %d", s.Tokens, s.ResponseStart, want, 1+len(c.prompt))
				}
			}
			check(ex.Chosen, c.chosen, c.chosenEnd)
			check(ex.Rejected, c.rejected, c.rejectedEnd)
			if !slices.Equal(ex.Chosen.Tokens[:ex.Chosen.ResponseStart], ex.Rejected.Tokens[:ex.Rejected.ResponseStart]) {
				t.Errorf("chosen and rejected see different prompts")
			}
			tr := res.Truncation
			if tr.RowsTruncated != c.truncated || tr.PromptsEmptied != c.emptied || tr.ResponsesCut != c.cut || tr.ContextLength != 12 {
				t.Errorf("truncation %+v, want rows %d emptied %d cut %d", tr, c.truncated, c.emptied, c.cut)
			}
		})
	}
}

// TestCaseAsymmetricPromptTruncation is case 07 at context 64: every pair keeps one prompt for both sides.
func TestCaseAsymmetricPromptTruncation(t *testing.T) {
	e := byteEncoder(t, "", 64)
	res := encodeAll(t, e, readCase(t, "07-asymmetric-prompt-truncation.jsonl"), true)
	if len(res.Examples) != 8 {
		t.Fatalf("%d examples", len(res.Examples))
	}
	for i, ex := range res.Examples {
		cp, rp := ex.Chosen.Tokens[:ex.Chosen.ResponseStart], ex.Rejected.Tokens[:ex.Rejected.ResponseStart]
		if !slices.Equal(cp, rp) {
			t.Errorf("pair %d: chosen sees prompt %q, rejected %q", i, tokenizer.NewByte().Decode(cp), tokenizer.NewByte().Decode(rp))
		}
		if len(ex.Rejected.Tokens) > 64 || ex.Chosen.Tokens[len(ex.Chosen.Tokens)-1] != eos || ex.Rejected.Tokens[len(ex.Rejected.Tokens)-1] != eos {
			t.Errorf("pair %d: lengths %d/%d or end token missing", i, len(ex.Chosen.Tokens), len(ex.Rejected.Tokens))
		}
	}
	// Prompts of ~70 bytes with a 52-byte rejected reply at 64 tokens: all 8 pairs lose the prompt's start, none
	// loses all of it, no response is cut.
	if tr := res.Truncation; tr.RowsTruncated != 8 || tr.PromptsEmptied != 0 || tr.ResponsesCut != 0 || tr.IdenticalPairs != 0 {
		t.Errorf("truncation %+v", tr)
	}
	if w := res.Warnings(true); len(w) != 1 || !strings.Contains(w[0], "8 of 8 pairs were truncated to the context of 64 tokens") {
		t.Errorf("warnings %q", w)
	}
}

// TestCaseIdenticalAfterTruncation is case 06 at context 64: the responses differ only after their first 63
// bytes, so every pair is token-identical after truncation; they are counted and left out, and NoSignal says why.
func TestCaseIdenticalAfterTruncation(t *testing.T) {
	e := byteEncoder(t, "", 64)
	res := encodeAll(t, e, readCase(t, "06-identical-after-truncation.jsonl"), true)
	tr := res.Truncation
	if len(res.Examples) != 0 || tr.IdenticalPairs != 8 || tr.PromptsEmptied != 8 || tr.ResponsesCut != 16 || tr.RowsTruncated != 8 {
		t.Fatalf("examples %d truncation %+v", len(res.Examples), tr)
	}
	if why := res.NoSignal(true); !strings.Contains(why, "no pair carries a preference signal: all 8 pairs") {
		t.Errorf("NoSignal %q", why)
	}
	w := strings.Join(res.Warnings(true), "\n")
	for _, want := range []string{"8 pairs have chosen and rejected identical after truncation and were left out",
		"MORE THAN HALF THE PAIRS LOST THEIR WHOLE PROMPT: 8 of 8", "16 responses were cut before their end token"} {
		if !strings.Contains(w, want) {
			t.Errorf("warnings %q lack %q", w, want)
		}
	}
	// With room for the responses, the pairs differ and every one trains.
	res = encodeAll(t, byteEncoder(t, "", 256), readCase(t, "06-identical-after-truncation.jsonl"), true)
	if len(res.Examples) != 8 || res.Truncation.IdenticalPairs != 0 || res.NoSignal(true) != "" {
		t.Fatalf("context 256: %d examples %+v", len(res.Examples), res.Truncation)
	}
}

// TestCaseLongPromptSFT is case 17 at context 32: the truncation of SFT rows is counted (rows truncated, prompts
// emptied, responses cut without their end token) and reported.
func TestCaseLongPromptSFT(t *testing.T) {
	res := encodeAll(t, byteEncoder(t, "", 32), readCase(t, "17-long-prompt-sft.jsonl"), false)
	tr := res.Truncation
	// Rows 1-6: a ~280-byte prompt and a short completion (prompt cut); row 7: a 75-byte completion alone does not
	// fit (prompt emptied, completion cut without EOS).
	if tr.RowsTruncated != 7 || tr.PromptsEmptied != 1 || tr.ResponsesCut != 1 || len(res.Examples) != 7 {
		t.Fatalf("truncation %+v, %d examples", tr, len(res.Examples))
	}
	last := res.Examples[6].Chosen
	if len(last.Tokens) != 32 || last.Tokens[31] == eos || last.ResponseStart != 1 {
		t.Errorf("row 7: %d tokens, start %d", len(last.Tokens), last.ResponseStart)
	}
	w := strings.Join(res.Warnings(false), "\n")
	for _, want := range []string{"7 of 7 rows were truncated", "1 row lost its whole prompt to truncation: line 7",
		"1 response was cut before its end token", "line 7"} {
		if !strings.Contains(w, want) {
			t.Errorf("warnings %q lack %q", w, want)
		}
	}
}

// TestCaseTemplateMarkers is case 12: message contents holding the template's own control tokens are named in a
// warning (here the built-in template's <|assistant|> and <|user|>; row 2's <s> is not one of its markers).
func TestCaseTemplateMarkers(t *testing.T) {
	res := encodeAll(t, byteEncoder(t, "", 256), readCase(t, "12-template-markers.jsonl"), true)
	if !slices.Equal(res.MarkerLines, []int{1}) || !slices.Equal(res.Markers, []string{"<|assistant|>", "<|user|>"}) {
		t.Fatalf("marker lines %v markers %q", res.MarkerLines, res.Markers)
	}
	// Through a Llama-2 style template on stories260K's tokenizer, whose markers include its special tokens <s> and
	// </s>, row 2 is named instead (row 1's markers are not this template's).
	llama2 := `{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] + ' [/INST]' }}{% else %}{{ ' ' + m['content'] + ' ' + eos_token }}{% endif %}{% endfor %}`
	e, err := NewEncoder(storiesTokenizer(t), llama2, TemplateOverride, 256) // bos_token <s>, eos_token </s>
	if err != nil {
		t.Fatal(err)
	}
	res = encodeAll(t, e, readCase(t, "12-template-markers.jsonl"), true)
	if !slices.Equal(res.MarkerLines, []int{2}) {
		t.Fatalf("llama2 template: marker lines %v markers %q (template markers %q)", res.MarkerLines, res.Markers, e.Template.ControlMarkers())
	}
	if w := strings.Join(res.Warnings(true), "\n"); !strings.Contains(w, "1 row has content holding the chat template's own control tokens") ||
		!strings.Contains(w, ": line 2") {
		t.Errorf("warnings %q", w)
	}
}

// TestTemplateErrorsNameTheRow: raise_exception and a template that does not render the prompt as a prefix of
// prompt+response are errors naming the row's line.
func TestTemplateErrorsNameTheRow(t *testing.T) {
	rows := `{"prompt":[{"role":"user","content":"ok"}],"chosen":[{"role":"assistant","content":"a"}],"rejected":[{"role":"assistant","content":"b"}]}
{"prompt":[{"role":"system","content":"s"},{"role":"user","content":"q"}],"chosen":[{"role":"assistant","content":"a"}],"rejected":[{"role":"assistant","content":"b"}]}`
	d := mustParse(t, rows, Options{})
	raising := `{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{{ m['content'] }}{% endfor %}`
	_, err := byteEncoder(t, raising, 64).Encode(d.Rows, true)
	var re *RowError
	var raise *chattemplate.RaiseError
	if err == nil || !strings.Contains(err.Error(), "cannot render 1 of 2 rows; line 2 (chosen)") || !strings.Contains(err.Error(), "System role not supported") {
		t.Fatalf("raise: %v", err)
	}
	if _, err := byteEncoder(t, raising, 64).Render(d.Rows[1], true); !errors.As(err, &re) || re.Line != 2 || !errors.As(err, &raise) {
		t.Fatalf("Render: %v", err)
	}
	// A template that writes the generation prompt differently from a finished turn.
	noPrefix := `{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}`
	_, err = byteEncoder(t, noPrefix, 64).Encode(d.Rows, true)
	var pe *chattemplate.PrefixError
	if err == nil || !strings.Contains(err.Error(), "line 1 (chosen)") || !strings.Contains(err.Error(), "not render the prompt as a prefix") {
		t.Fatalf("prefix: %v", err)
	}
	if _, err := byteEncoder(t, noPrefix, 64).Render(d.Rows[0], false); !errors.As(err, &pe) {
		t.Fatalf("Render prefix: %v", err)
	}
}

const stories260K = "../../../shared/models/stories260K"

func storiesTokenizer(t *testing.T) *tokenizer.Pretrained {
	t.Helper()
	if _, err := os.Stat(filepath.Join(stories260K, "tokenizer.json")); err != nil {
		t.Skipf("stories260K is absent (%v): skipping", err)
	}
	p, err := tokenizer.LoadDir(stories260K)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSentencePieceJointTokenization: stories260K's SentencePiece tokenizer gives a text's first word a prefix
// space ("▁"), so a response tokenized on its own differs from the same text after its prompt; the encoder
// tokenizes prompt+response and splits after the prompt's ids, so the sequence is the tokenization of the whole.
// A template that writes BOS and closes the turn with EOS gets neither a second BOS nor a second EOS.
func TestSentencePieceJointTokenization(t *testing.T) {
	tok := storiesTokenizer(t)
	e, err := NewEncoder(tok, "", "", 256)
	if err != nil {
		t.Fatal(err)
	}
	rows := mustParse(t, `{"prompt":"Once upon a time","chosen":" there was a cat.","rejected":" the dog ran."}`, Options{}).Rows
	res, err := e.Encode(rows, true)
	if err != nil {
		t.Fatal(err)
	}
	ex := res.Examples[0]
	whole := append(append([]int{tok.BOS()}, tok.Encode("Once upon a time there was a cat.")...), tok.EOS())
	if !slices.Equal(ex.Chosen.Tokens, whole) {
		t.Errorf("chosen %v, want the whole text's ids %v", ex.Chosen.Tokens, whole)
	}
	if apart := tok.Encode(" there was a cat."); slices.Equal(apart, ex.Chosen.Tokens[ex.Chosen.ResponseStart:len(ex.Chosen.Tokens)-1]) {
		t.Logf("note: the response tokenizes alike alone and in context here")
	}
	// A template with BOS and EOS of its own.
	tmpl := `{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}{{ 'Q: ' + m['content'] + '\n' }}{% else %}{{ 'A: ' + m['content'] + eos_token }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'A: ' }}{% endif %}`
	e, err = NewEncoder(tok, tmpl, TemplateOverride, 256)
	if err != nil {
		t.Fatal(err)
	}
	chat := mustParse(t, `{"prompt":[{"role":"user","content":"Who was there?"}],"chosen":[{"role":"assistant","content":"A cat."}],"rejected":[{"role":"assistant","content":"Nobody."}]}`, Options{}).Rows
	res, err = e.Encode(chat, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []Sequence{res.Examples[0].Chosen, res.Examples[0].Rejected} {
		if countID(s.Tokens, tok.BOS()) != 1 || s.Tokens[0] != tok.BOS() {
			t.Errorf("BOS not exactly once at the start: %v", s.Tokens)
		}
		if countID(s.Tokens, tok.EOS()) != 1 || s.Tokens[len(s.Tokens)-1] != tok.EOS() {
			t.Errorf("EOS not exactly once at the end: %v", s.Tokens)
		}
	}
	if !slices.Equal(res.Examples[0].Chosen.Tokens[:res.Examples[0].Chosen.ResponseStart], res.Examples[0].Rejected.Tokens[:res.Examples[0].Rejected.ResponseStart]) {
		t.Errorf("chosen and rejected prompts differ")
	}
}

func countID(ids []int, id int) int {
	n := 0
	for _, x := range ids {
		if x == id {
			n++
		}
	}
	return n
}

// TestTurnEndWhenContentRepeatsInTail: the turn's end is found after the last message's content even when that
// content also occurs in what the template writes after it ("im" inside "<|im_end|>"): Qwen-style ChatML on
// stories260K's tokenizer with <|im_end|> as text would be bytes, so a template closing with eos_token is used.
func TestTurnEndWhenContentRepeatsInTail(t *testing.T) {
	tok := storiesTokenizer(t)
	tmpl := `{% for m in messages %}{{ '<' + m['role'] + '>' + m['content'] }}{% if m['role'] == 'assistant' %}{{ eos_token + '\n' }}{% else %}{{ '\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<assistant>' }}{% endif %}`
	e, err := NewEncoder(tok, tmpl, TemplateOverride, 256)
	if err != nil {
		t.Fatal(err)
	}
	// The chosen content "\n" and "s>" both occur in the tail "</s>\n".
	for _, content := range []string{"\n", "s>", "a"} {
		row := Row{Line: 1, Chat: &Chat{Prompt: []Message{{RoleUser, "q"}}, Chosen: []Message{{RoleAssistant, content}}}}
		res, err := e.Encode([]Row{row}, false)
		if err != nil {
			t.Fatal(err)
		}
		s := res.Examples[0].Chosen
		if s.Tokens[len(s.Tokens)-1] != tok.EOS() || countID(s.Tokens, tok.EOS()) != 1 {
			t.Errorf("content %q: response %v does not end once with EOS", content, s.Tokens[s.ResponseStart:])
		}
	}
}

// TestUnknownTurnMarkers: a ChatML template on stories260K's tokenizer (a base Llama without <|im_start|> or
// <|im_end|> tokens) reports both markers; Llama 2's template ([INST] and <<SYS>> are plain text in its
// tokenizer, <s> and </s> are tokens) reports none, nor does the byte tokenizer, which names no tokens.
func TestUnknownTurnMarkers(t *testing.T) {
	tok := storiesTokenizer(t)
	chatml := `{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}` +
		`{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}`
	e, err := NewEncoder(tok, chatml, TemplateOverride, 256)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.UnknownTurnMarkers(); !slices.Equal(got, []string{"<|im_end|>", "<|im_start|>"}) {
		t.Errorf("ChatML on stories260K: %q, want <|im_end|> and <|im_start|>", got)
	}
	llama2 := `{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] + ' [/INST]' }}` +
		`{% elif m['role'] == 'system' %}{{ '<<SYS>>\n' + m['content'] + '\n<</SYS>>\n\n' }}{% else %}{{ ' ' + m['content'] + ' ' + eos_token }}{% endif %}{% endfor %}`
	e, err = NewEncoder(tok, llama2, TemplateOverride, 256)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.UnknownTurnMarkers(); len(got) != 0 {
		t.Errorf("Llama 2's template on stories260K: %q, want none", got)
	}
	e, err = NewEncoder(tokenizer.NewByte(), chatml, TemplateOverride, 256)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.UnknownTurnMarkers(); len(got) != 0 {
		t.Errorf("byte tokenizer: %q, want none", got)
	}
}
