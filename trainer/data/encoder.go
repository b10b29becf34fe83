package data

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/preftune/preftune/trainer/chattemplate"
	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/tokenizer"
)

// Where an Encoder's chat template comes from (Encoder.TemplateOrigin).
const (
	TemplateOverride = "override" // ModelConfig.ChatTemplate (--chat-template)
	TemplateModel    = "model"    // the model directory's tokenizer_config.json (or chat_template.jinja)
	TemplateBuiltin  = "builtin"  // BuiltinChatTemplate: a from-scratch byte model, or a model without a template
)

// Encoder turns rows into the token sequences a model trains on, the way TRL's DPO and SFT trainers build them
// (maybe_apply_chat_template, then tokenization of prompt and prompt+response):
//
//   - Text. A conversational row (Row.Chat) is rendered with the chat template: the prompt is its prompt messages
//     with add_generation_prompt, the response what the whole conversation adds after it
//     (chattemplate.RenderPromptResponse). A plain-text row is its Prompt and response text as they are.
//   - Tokens. Prompt+response is tokenized as one text and split after the prompt's own ids, so a tokenizer that
//     treats the start of a text specially (SentencePiece's prefix space) gives the response the ids it has in
//     context; both sides of a pair share the prompt's ids. When the tokenizer merges across the boundary (the
//     prompt's ids are not a prefix), the response is tokenized on its own and counted (EncodeResult.SplitApart).
//   - BOS exactly once: the template's own BOS (the rendered text starts with the BOS token) is the sequence's
//     BOS; otherwise the tokenizer's BOS is put first when the model has one and tokenizer_config.json does not
//     say "add_bos_token": false (tokenizer.AddsBOS, as transformers' Llama/Gemma tokenizers do).
//   - End exactly once: when the template closes the assistant's turn with a special token (Llama-3's
//     <|eot_id|>, Qwen's <|im_end|>, Gemma's <end_of_turn>, EOS) the response ends with that token and whatever
//     the template writes after it (a newline, the next turn's header) is not trained on; otherwise (the
//     built-in template, plain-text rows) the tokenizer's EOS is appended, unless the response already ends with
//     a stop token.
//   - Truncation once per pair into CtxLen tokens: the prompt loses tokens from its start (after BOS), the same
//     tokens for chosen and rejected, until the longer response fits; only a response that does not fit on its
//     own (after BOS) is cut at its end, and then has no end token. Pairs whose chosen and rejected are the same
//     tokens afterwards carry no preference signal: they are left out and counted.
type Encoder struct {
	Tok tokenizer.Tokenizer
	// Template renders Row.Chat; TemplateOrigin says where it came from.
	Template       *chattemplate.Template
	TemplateOrigin string
	// CtxLen is the context in tokens: min(the model's positions, training.maxLength).
	CtxLen int
	stop   map[int]bool
	// now is the time strftime_now renders (Llama-3.1's "Today Date"): read once, so the prompt and each whole
	// conversation of a run render the same date.
	now time.Time
}

// specialTokener is implemented by Hugging Face tokenizers (tokenizer.Pretrained).
type specialTokener interface {
	IsSpecial(id int) bool
	Token(id int) (string, bool)
}

// NewEncoder compiles chatTemplate (BuiltinChatTemplate when empty, origin then TemplateBuiltin) for tok and
// fits sequences into ctxLen tokens (at least 2). The template sees the tokenizer's special tokens (bos_token,
// eos_token, pad_token, unk_token) as transformers passes them.
func NewEncoder(tok tokenizer.Tokenizer, chatTemplate, origin string, ctxLen int) (*Encoder, error) {
	if ctxLen < 2 {
		return nil, fmt.Errorf("context length %d: need at least 2 tokens", ctxLen)
	}
	if chatTemplate == "" {
		chatTemplate, origin = BuiltinChatTemplate, TemplateBuiltin
	}
	special := map[string]string{}
	if p, ok := tok.(*tokenizer.Pretrained); ok {
		for k, v := range map[string]string{chattemplate.BOSToken: p.Config.BOSToken, chattemplate.EOSToken: p.Config.EOSToken,
			chattemplate.PADToken: p.Config.PadToken, chattemplate.UNKToken: p.Config.UnkToken} {
			if v != "" {
				special[k] = v
			}
		}
	}
	tmpl, err := chattemplate.Compile(chatTemplate, special)
	if err != nil {
		return nil, fmt.Errorf("chat template (%s): %w", origin, err)
	}
	e := &Encoder{Tok: tok, Template: tmpl, TemplateOrigin: origin, CtxLen: ctxLen, stop: map[int]bool{tok.EOS(): true}, now: time.Now()}
	if p, ok := tok.(*tokenizer.Pretrained); ok {
		for _, id := range p.StopTokens() {
			e.stop[id] = true
		}
	}
	return e, nil
}

// ChatTemplateOf is the chat template a run renders with: the override when set, else the model directory's
// (tokenizer_config.json's chat_template or chat_template.jinja; modelDir "" for a model built from scratch), else
// "" (NewEncoder then takes BuiltinChatTemplate). It returns the template's origin.
func ChatTemplateOf(override, modelDir string) (template, origin string, err error) {
	if override != "" {
		return override, TemplateOverride, nil
	}
	if modelDir != "" {
		c, err := tokenizer.ReadConfig(modelDir)
		if err != nil {
			return "", "", err
		}
		if c.ChatTemplate != "" {
			return c.ChatTemplate, TemplateModel, nil
		}
	}
	return "", TemplateBuiltin, nil
}

// Rendered is a row's text as the model sees it: the prompt and each response (chosen, and rejected for
// preference rows), before tokenization and truncation.
type Rendered struct {
	Prompt, Chosen, Rejected string
	// chosenTail and rejectedTail are what the template writes after the last response message's content.
	chosenTail, rejectedTail string
}

// RowError is a row the chat template cannot render: raise_exception (wrapping *chattemplate.RaiseError), a
// template error, or a prompt that is not a prefix of prompt+response (*chattemplate.PrefixError).
type RowError struct {
	Line int
	Side string // "chosen" or "rejected"
	Err  error
}

func (e *RowError) Error() string { return fmt.Sprintf("line %d (%s): %v", e.Line, e.Side, e.Err) }
func (e *RowError) Unwrap() error { return e.Err }

// Render renders one row. Plain-text rows come back as they are.
func (e *Encoder) Render(r Row, preference bool) (Rendered, error) {
	if r.Chat == nil {
		out := Rendered{Prompt: r.Prompt, Chosen: r.Chosen}
		if preference {
			out.Rejected = r.Rejected
		}
		return out, nil
	}
	var out Rendered
	sides := []struct {
		name       string
		msgs       []Message
		text, tail *string
	}{{"chosen", r.Chat.Chosen, &out.Chosen, &out.chosenTail}}
	if preference {
		sides = append(sides, struct {
			name       string
			msgs       []Message
			text, tail *string
		}{"rejected", r.Chat.Rejected, &out.Rejected, &out.rejectedTail})
	}
	for _, s := range sides {
		p, resp, tail, err := e.promptResponse(r.Chat.Prompt, s.msgs)
		if err != nil {
			return out, &RowError{Line: r.Line, Side: s.name, Err: err}
		}
		out.Prompt, *s.text, *s.tail = p, resp, tail
	}
	return out, nil
}

func toTemplate(msgs []Message) []chattemplate.Message {
	out := make([]chattemplate.Message, len(msgs))
	for i, m := range msgs {
		out[i] = chattemplate.NewMessage(m.Role, m.Content)
	}
	return out
}

// promptResponse renders prompt and response messages (an empty response is one empty assistant message) and
// returns the prompt text, the response text and the response's tail: what follows the last message's content.
func (e *Encoder) promptResponse(prompt, response []Message) (promptText, responseText, tail string, err error) {
	if len(response) == 0 {
		response = []Message{{Role: RoleAssistant}}
	}
	if len(prompt) > 0 {
		promptText, responseText, err = e.Template.RenderPromptResponse(toTemplate(prompt), toTemplate(response), e.opts(false))
	} else {
		// A conversation that starts with the assistant (an SFT row of one message): RenderPromptResponse needs a
		// prompt message, so the split is done here the same way.
		promptText, err = e.Template.Render(nil, e.opts(true))
		if err == nil {
			var full string
			if full, err = e.Template.Render(toTemplate(response), e.opts(false)); err == nil {
				if !strings.HasPrefix(full, promptText) {
					return "", "", "", &chattemplate.PrefixError{Prompt: promptText, Full: full, Offset: commonPrefix(promptText, full)}
				}
				responseText = full[len(promptText):]
			}
		}
	}
	if err != nil {
		return "", "", "", err
	}
	return promptText, responseText, e.tail(prompt, response, responseText), nil
}

// tailSentinel stands in for the last message's content when finding what the template writes after it.
const tailSentinel = "\x00preftune-content-end\x00"

// tail returns what the template writes after the last response message's content: the text after a sentinel
// put in place of that content, when the real rendering ends with it (a template that edits the content, such as
// `| trim`, leaves the sentinel alone); else the text after the content's last occurrence; else the whole
// response.
func (e *Encoder) tail(prompt, response []Message, responseText string) string {
	marked := append(append([]Message(nil), prompt...), response...)
	last := marked[len(marked)-1]
	marked[len(marked)-1] = Message{Role: last.Role, Content: tailSentinel}
	if full, err := e.Template.Render(toTemplate(marked), e.opts(false)); err == nil {
		if i := strings.LastIndex(full, tailSentinel); i >= 0 {
			if t := full[i+len(tailSentinel):]; strings.HasSuffix(responseText, t) {
				return t
			}
		}
	}
	if c := last.Content; c != "" {
		if i := strings.LastIndex(responseText, c); i >= 0 {
			return responseText[i+len(c):]
		}
	}
	return responseText
}

func (e *Encoder) opts(generationPrompt bool) chattemplate.RenderOptions {
	return chattemplate.RenderOptions{AddGenerationPrompt: generationPrompt, Now: func() time.Time { return e.now }}
}

// EncodeResult is what Encode made of rows.
type EncodeResult struct {
	// Examples are the encoded rows that carry a training signal, in the rows' order; Lines their rows' lines.
	Examples []Example
	Lines    []int
	// Truncation counts what fitting the rows into CtxLen changed.
	Truncation contract.Truncation
	// IdenticalLines are the pairs left out because chosen and rejected were the same tokens after truncation;
	// EmptiedLines the rows whose whole prompt was cut; CutLines the rows with a response cut before its end.
	IdenticalLines, EmptiedLines, CutLines []int
	// SplitApart counts responses tokenized apart from their prompt because the tokenizer merged across the
	// boundary.
	SplitApart int
	// MarkerLines are the rows whose content holds the template's own control markers (Markers, sorted).
	MarkerLines []int
	Markers     []string
	// Rows counts the rows encoded; ChatRows those rendered with the chat template.
	Rows, ChatRows int
	// Unrendered are the rows the chat template could not render (Encode's error names the first few).
	Unrendered []*RowError
	// Longest is the longest sequence, in tokens after truncation; TokenLengths the per-row lengths before it.
	Longest      int
	TokenLengths contract.LengthStats
}

// maxRowErrors is how many unrenderable rows an error names.
const maxRowErrors = 3

// Encode renders, tokenizes and truncates rows (rejected responses only when preference is true). The error
// names the rows the template cannot render (RowError: raise_exception, a prompt that is not a prefix), the first
// few of them, with their count.
func (e *Encoder) Encode(rows []Row, preference bool) (*EncodeResult, error) {
	res := &EncodeResult{Truncation: contract.Truncation{ContextLength: e.CtxLen}}
	var errs []error
	markers := map[string]bool{}
	var promptSum, chosenSum, rejectedSum int
	for _, r := range rows {
		rd, err := e.Render(r, preference)
		if err != nil {
			errs = append(errs, err)
			var re *RowError
			if errors.As(err, &re) {
				res.Unrendered = append(res.Unrendered, re)
			}
			continue
		}
		res.Rows++
		if r.Chat != nil {
			res.ChatRows++
		}
		if found := e.rowMarkers(r, preference); len(found) > 0 {
			res.MarkerLines = append(res.MarkerLines, r.Line)
			for _, m := range found {
				markers[m] = true
			}
		}
		pr := e.tokenize(rd, r.Chat != nil, preference, res)
		promptSum += len(pr.bos) + len(pr.prompt)
		chosenSum += len(pr.chosen)
		rejectedSum += len(pr.rejected)
		tl := &res.TokenLengths
		tl.PromptMax = max(tl.PromptMax, len(pr.prompt)+len(pr.bos))
		tl.ChosenMax = max(tl.ChosenMax, len(pr.chosen))
		tl.RejectedMax = max(tl.RejectedMax, len(pr.rejected))
		ex, t := e.fit(pr, preference)
		tr := &res.Truncation
		if t.truncated {
			tr.RowsTruncated++
		}
		if t.emptied {
			tr.PromptsEmptied++
			res.EmptiedLines = append(res.EmptiedLines, r.Line)
		}
		if t.cut > 0 {
			tr.ResponsesCut += t.cut
			res.CutLines = append(res.CutLines, r.Line)
		}
		res.Longest = max(res.Longest, len(ex.Chosen.Tokens), len(ex.Rejected.Tokens))
		if preference && slices.Equal(ex.Chosen.Tokens, ex.Rejected.Tokens) && ex.Chosen.ResponseStart == ex.Rejected.ResponseStart {
			tr.IdenticalPairs++
			res.IdenticalLines = append(res.IdenticalLines, r.Line)
			continue
		}
		res.Examples = append(res.Examples, ex)
		res.Lines = append(res.Lines, r.Line)
	}
	if n := float64(res.Rows); n > 0 {
		res.TokenLengths.PromptMean = round1(float64(promptSum) / n)
		res.TokenLengths.ChosenMean = round1(float64(chosenSum) / n)
		if preference {
			res.TokenLengths.RejectedMean = round1(float64(rejectedSum) / n)
		}
	}
	for m := range markers {
		res.Markers = append(res.Markers, m)
	}
	slices.Sort(res.Markers)
	if len(errs) > 0 {
		return res, renderErrors(errs, len(rows))
	}
	return res, nil
}

// renderErrors joins the first few row errors into one error that counts them all.
func renderErrors(errs []error, total int) error {
	var b strings.Builder
	fmt.Fprintf(&b, "the chat template cannot render %d of %s", len(errs), Count(total, "row", "rows"))
	for i, err := range errs {
		if i == maxRowErrors {
			b.WriteString("; ...")
			break
		}
		b.WriteString("; ")
		b.WriteString(err.Error())
	}
	return errors.New(b.String())
}

// rowMarkers returns the template's control markers found in the row's message contents (or, for a plain-text
// row, in its texts, which the tokenizer reads the same way).
func (e *Encoder) rowMarkers(r Row, preference bool) []string {
	var texts []string
	if r.Chat != nil {
		for _, msgs := range [][]Message{r.Chat.Prompt, r.Chat.Chosen, r.Chat.Rejected} {
			for _, m := range msgs {
				texts = append(texts, m.Content)
			}
		}
	} else {
		texts = []string{r.Prompt, r.Chosen}
		if preference {
			texts = append(texts, r.Rejected)
		}
	}
	seen := map[string]bool{}
	var out []string
	for _, t := range texts {
		for _, m := range e.Template.FindControlMarkers(t) {
			if !seen[m] {
				seen[m] = true
				out = append(out, m)
			}
		}
	}
	return out
}

// pairTokens is a row tokenized, before truncation: BOS (none or one id), the prompt after it, and each
// response with its end.
type pairTokens struct {
	bos                      []int
	prompt, chosen, rejected []int
}

// promptTokens tokenizes a rendered prompt into the sequence's BOS (none or one id) and the prompt after it. When
// the text starts with the BOS token (the template wrote it) that id is the BOS; otherwise the tokenizer's BOS is
// put first when tokenizer.AddsBOS says so (not for add_bos_token false, nor for a model without BOS).
func (e *Encoder) promptTokens(prompt string) (bos, ids []int) {
	ids = e.Tok.Encode(prompt)
	b := e.Tok.BOS()
	switch {
	case b < 0:
	case len(ids) > 0 && ids[0] == b:
		bos, ids = ids[:1:1], ids[1:]
	case tokenizer.AddsBOS(e.Tok):
		bos = []int{b}
	}
	return bos, ids
}

// PromptIDs are the ids a row's prompt has in training, before truncation: the sequence's BOS (by the rule of
// promptTokens) and the rendered prompt's tokens, which every side of the row starts with (Encode gives
// Tokens[:ResponseStart] equal to them when nothing is truncated). A conversational row is rendered with its
// response, as Encode does, so a template that cannot render it fails the same way (RowError). It returns the
// rendered prompt text too.
func (e *Encoder) PromptIDs(r Row) (ids []int, text string, err error) {
	rd, err := e.Render(r, false)
	if err != nil {
		return nil, "", err
	}
	bos, p := e.promptTokens(rd.Prompt)
	return append(bos, p...), rd.Prompt, nil
}

// TurnEnd is the id that ends an assistant turn as training lays responses out (closeTurn): the first special or
// stop token of what the template writes after an assistant message's content (Llama-3's <|eot_id|>, ChatML's
// <|im_end|>), else EOS. Generation from a chat prompt stops at it.
func (e *Encoder) TurnEnd() int {
	msgs := []Message{{Role: RoleUser, Content: "hi"}, {Role: RoleAssistant, Content: tailSentinel}}
	if full, err := e.Template.Render(toTemplate(msgs), e.opts(false)); err == nil {
		if i := strings.LastIndex(full, tailSentinel); i >= 0 {
			for _, id := range e.Tok.Encode(full[i+len(tailSentinel):]) {
				if e.stop[id] || e.isSpecial(id) {
					return id
				}
			}
		}
	}
	return e.Tok.EOS()
}

// tokenize tokenizes a rendered row; templated says the text came from the chat template.
func (e *Encoder) tokenize(rd Rendered, templated, preference bool, res *EncodeResult) pairTokens {
	var pt pairTokens
	pt.bos, pt.prompt = e.promptTokens(rd.Prompt)
	p := pt.prompt
	respond := func(text, tail string) []int {
		full := e.Tok.Encode(rd.Prompt + text)
		if len(pt.bos) > 0 && len(full) > 0 && full[0] == pt.bos[0] {
			full = full[1:]
		}
		var r []int
		if len(full) >= len(p) && slices.Equal(full[:len(p)], p) {
			r = full[len(p):]
		} else {
			res.SplitApart++
			r = e.Tok.Encode(text)
		}
		return e.closeTurn(r, tail, templated)
	}
	pt.chosen = respond(rd.Chosen, rd.chosenTail)
	if preference {
		pt.rejected = respond(rd.Rejected, rd.rejectedTail)
	}
	return pt
}

// closeTurn ends a response exactly once. When the template's tail (what it writes after the last message's
// content) tokenizes to the response's last ids and holds a special or stop token, the response ends at the
// first such token: that is the turn's end, and what follows (a newline, the header of a next turn) is not
// trained on. Otherwise EOS is appended, unless the response already ends with a stop token.
func (e *Encoder) closeTurn(r []int, tail string, templated bool) []int {
	if templated && tail != "" {
		t := e.Tok.Encode(tail)
		if len(t) > 0 && len(t) <= len(r) && slices.Equal(r[len(r)-len(t):], t) {
			for i, id := range t {
				if e.stop[id] || e.isSpecial(id) {
					return r[:len(r)-len(t)+i+1]
				}
			}
		}
	}
	if len(r) > 0 && e.stop[r[len(r)-1]] {
		return r
	}
	return append(r[:len(r):len(r)], e.Tok.EOS())
}

// UnknownTurnMarkers are the template's turn markers written as special tokens are (<|im_start|>, <|eot_id|>,
// <｜User｜>) that the tokenizer has no token for: they are split into ordinary pieces, a sign that the model was not
// trained with this template (a ChatML template on a base Llama, say). Markers of other shapes ([INST], <<SYS>>)
// are plain text in the tokenizers that use them and are not reported. Empty for tokenizers without a vocabulary
// of named tokens (the byte tokenizer).
func (e *Encoder) UnknownTurnMarkers() []string {
	vocab, ok := e.Tok.(interface{ TokenID(string) (int, bool) })
	if !ok {
		return nil
	}
	var out []string
	for _, m := range e.Template.ControlMarkers() {
		special := strings.HasPrefix(m, "<|") && strings.HasSuffix(m, "|>") ||
			strings.HasPrefix(m, "<｜") && strings.HasSuffix(m, "｜>")
		if _, known := vocab.TokenID(m); special && !known {
			out = append(out, m)
		}
	}
	return out
}

// UnusedTemplateWarning is the warning when a chat template was given (model.chatTemplate, --chat-template) but no
// row is a conversation: plain prompt/response rows are tokenized as text, without a template.
const UnusedTemplateWarning = "a chat template was given (model.chatTemplate, --chat-template) but no row is a " +
	"conversation: plain prompt/response rows are tokenized as text, without it (it is still recorded in the output " +
	"model's tokenizer_config.json, for use with conversations)"

// UnknownTurnMarkersWarning is the warning a run and inspect-dataset give for UnknownTurnMarkers ("" when there
// are none, and for the built-in template, whose role headers are never tokens: its callers warn that the model
// has no template instead).
func (e *Encoder) UnknownTurnMarkersWarning() string {
	u := e.UnknownTurnMarkers()
	if len(u) == 0 || e.TemplateOrigin == TemplateBuiltin {
		return ""
	}
	return fmt.Sprintf("the chat template writes %s, which the tokenizer has no token for: each is split into ordinary "+
		"tokens, so the model was most likely not trained with this template; check model.chatTemplate (--chat-template)",
		strings.Join(u, ", "))
}

func (e *Encoder) isSpecial(id int) bool {
	s, ok := e.Tok.(specialTokener)
	return ok && s.IsSpecial(id)
}

// fitting is what truncation did to one row.
type fitting struct {
	truncated, emptied bool
	cut                int // responses cut before their end
}

// fit lays out BOS prompt response for each side in CtxLen tokens, cutting the prompt once for the pair.
func (e *Encoder) fit(pt pairTokens, preference bool) (Example, fitting) {
	var f fitting
	room := e.CtxLen - len(pt.bos)
	longest := len(pt.chosen)
	if preference {
		longest = max(longest, len(pt.rejected))
	}
	p := pt.prompt
	if keep := room - longest; keep < len(p) {
		f.truncated = true
		keep = max(keep, 0)
		if keep == 0 && len(p) > 0 {
			f.emptied = true
		}
		p = p[len(p)-keep:]
	}
	seq := func(r []int) Sequence {
		if len(r) > room {
			f.truncated = true
			f.cut++
			r = r[:room]
		}
		toks := make([]int, 0, len(pt.bos)+len(p)+len(r))
		toks = append(append(append(toks, pt.bos...), p...), r...)
		return Sequence{Tokens: toks, ResponseStart: len(pt.bos) + len(p)}
	}
	ex := Example{Chosen: seq(pt.chosen)}
	if preference {
		ex.Rejected = seq(pt.rejected)
	}
	return ex, f
}

// Warnings describe what Encode changed or found, each a short sentence with its count and first lines:
// truncation (rows, emptied prompts, cut responses, identical pairs left out; a loud one when more than half the
// rows lost their whole prompt), responses tokenized apart from their prompt, and rows holding the template's
// control markers. preference says the rows are pairs.
func (res *EncodeResult) Warnings(preference bool) []string {
	var out []string
	t := res.Truncation
	one, many := "row", "rows"
	if preference {
		one, many = "pair", "pairs"
	}
	if t.RowsTruncated > 0 {
		out = append(out, fmt.Sprintf("%d of %s truncated to the context of %d tokens (prompts cut from their start, "+
			"once per pair)", t.RowsTruncated, Count(res.Rows, one+" was", many+" were"), t.ContextLength))
	}
	if t.PromptsEmptied > 0 {
		w := fmt.Sprintf("%s whole prompt to truncation: %s", Count(t.PromptsEmptied, one+" lost its", many+" lost their"), lineList(res.EmptiedLines))
		if 2*t.PromptsEmptied > res.Rows {
			w = fmt.Sprintf("MORE THAN HALF THE %s LOST THEIR WHOLE PROMPT: %d of %s trained without any prompt "+
				"at the context of %d tokens (raise training.maxLength or shorten the responses): %s", strings.ToUpper(many),
				t.PromptsEmptied, Count(res.Rows, one+" is", many+" are"), t.ContextLength, lineList(res.EmptiedLines))
		}
		out = append(out, w)
	}
	if t.ResponsesCut > 0 {
		out = append(out, fmt.Sprintf("%s end token (they do not fit the context of %d "+
			"tokens on their own): %s", Count(t.ResponsesCut, "response was cut before its", "responses were cut before their"),
			t.ContextLength, lineList(res.CutLines)))
	}
	if t.IdenticalPairs > 0 {
		out = append(out, fmt.Sprintf("%s chosen and rejected identical after truncation and %s left out "+
			"(no preference signal): %s", Count(t.IdenticalPairs, "pair has", "pairs have"), wasWere(t.IdenticalPairs), lineList(res.IdenticalLines)))
	}
	if res.SplitApart > 0 {
		out = append(out, fmt.Sprintf("%s tokenized apart from their prompt: the tokenizer merges "+
			"across the prompt/response boundary", Count(res.SplitApart, "response was", "responses were")))
	}
	if len(res.MarkerLines) > 0 {
		out = append(out, fmt.Sprintf("%s content holding the chat template's own control tokens (%s), which the model "+
			"cannot tell from real turn markers: %s", rowsHave(len(res.MarkerLines)), strings.Join(res.Markers, " "),
			lineList(res.MarkerLines)))
	}
	return out
}

// UnrenderedWarning counts the rows the chat template could not render and names the first ones, for a run that
// skips them (invalidRows: Skip); "" when there are none.
func (res *EncodeResult) UnrenderedWarning() string {
	if len(res.Unrendered) == 0 {
		return ""
	}
	lines := make([]int, len(res.Unrendered))
	for i, r := range res.Unrendered {
		lines[i] = r.Line
	}
	return fmt.Sprintf("%s the chat template cannot render %s skipped (invalidRows: Skip): %s; first: %v",
		Count(len(lines), "row", "rows"), wasWere(len(lines)), lineList(lines), res.Unrendered[0])
}

// UnrenderedErr is the error for the rows the chat template cannot render, counted against all the rows Encode
// was given (res.Rows plus them) and naming the first few; nil when there are none.
func (res *EncodeResult) UnrenderedErr() error {
	if len(res.Unrendered) == 0 {
		return nil
	}
	errs := make([]error, len(res.Unrendered))
	for i, e := range res.Unrendered {
		errs[i] = e
	}
	return renderErrors(errs, res.Rows+len(res.Unrendered))
}

// UnrenderedRows are the rows the chat template cannot render as invalid rows of a dataset report: the line, the
// side (chosen or rejected) as the field, and the template's error as the reason.
func (res *EncodeResult) UnrenderedRows() []contract.InvalidRow {
	out := make([]contract.InvalidRow, len(res.Unrendered))
	for i, e := range res.Unrendered {
		out[i] = contract.InvalidRow{Line: e.Line, Field: e.Side, Reason: "the chat template cannot render it: " + e.Err.Error()}
	}
	return out
}

// NoSignal says why rows that Encode left nothing to train on carry no signal ("" when some do).
func (res *EncodeResult) NoSignal(preference bool) string {
	if len(res.Examples) > 0 || res.Rows == 0 {
		return ""
	}
	if preference && res.Truncation.IdenticalPairs > 0 {
		return fmt.Sprintf("no pair carries a preference signal: all %d pairs have chosen and rejected identical after "+
			"truncation to the context of %d tokens", res.Rows, res.Truncation.ContextLength)
	}
	return "no row carries a training signal"
}

// SplitNoSignal says why a run on the rows all encodes (train and eval together, as Encode gives them or as
// their results merged, with Lines) would have nothing to train on: none of the train rows is left with a signal.
// It counts train and eval together when neither has a signal (NoSignal), and says "of the training split" when
// only the eval split keeps one; "" when some training row carries a signal, or when train is empty.
func SplitNoSignal(all *EncodeResult, train []Row, preference bool) string {
	withSignal, unrendered := map[int]bool{}, map[int]bool{}
	for _, l := range all.Lines {
		withSignal[l] = true
	}
	for _, e := range all.Unrendered {
		unrendered[e.Line] = true
	}
	rendered, signal := 0, 0
	for _, r := range train {
		if unrendered[r.Line] {
			continue
		}
		rendered++
		if withSignal[r.Line] {
			signal++
		}
	}
	switch {
	case signal > 0 || len(train) == 0:
		return ""
	case rendered == 0:
		return fmt.Sprintf("no training row is left: the chat template cannot render any of the %s of the training split "+
			"(invalidRows: Skip)", Count(len(train), "row", "rows"))
	case len(all.Lines) == 0:
		return all.NoSignal(preference)
	case preference:
		return fmt.Sprintf("no training pair carries a preference signal: all %s of the training split %s chosen and "+
			"rejected identical after truncation to the context of %d tokens (only %s of the eval split, which is not "+
			"trained on, %s one)", Count(rendered, "pair", "pairs"), hasHave(rendered), all.Truncation.ContextLength,
			Count(len(all.Lines), "pair", "pairs"), hasHave(len(all.Lines)))
	}
	return "no training row carries a training signal"
}

func hasHave(n int) string {
	if n == 1 {
		return "has"
	}
	return "have"
}

// BoundaryMark separates the prompt from the response in Preview.
const BoundaryMark = "⟦|⟧"

// Preview shows a row as the model sees it after rendering, tokenization and truncation: for each side, the
// sequence's text decoded with its special tokens (BOS, the template's markers, EOS) kept where the tokenizer can
// write them (a Hugging Face tokenizer; the byte tokenizer writes <|bos|> and <|eos|> here), with BoundaryMark
// where the response, the part the loss covers, starts.
func (e *Encoder) Preview(r Row, preference bool) (chosen, rejected string, err error) {
	rd, err := e.Render(r, preference)
	if err != nil {
		return "", "", err
	}
	pt := e.tokenize(rd, r.Chat != nil, preference, &EncodeResult{})
	ex, _ := e.fit(pt, preference)
	chosen = e.show(ex.Chosen)
	if preference {
		rejected = e.show(ex.Rejected)
	}
	return chosen, rejected, nil
}

func (e *Encoder) show(s Sequence) string {
	return e.decodeSpecial(s.Tokens[:s.ResponseStart]) + BoundaryMark + e.decodeSpecial(s.Tokens[s.ResponseStart:])
}

// decodeSpecial decodes ids keeping special tokens' text.
func (e *Encoder) decodeSpecial(ids []int) string {
	if p, ok := e.Tok.(*tokenizer.Pretrained); ok {
		return p.DecodeWithSpecial(ids)
	}
	if _, ok := e.Tok.(tokenizer.Byte); !ok {
		return e.Tok.Decode(ids)
	}
	var b strings.Builder
	start := 0
	for i, id := range ids {
		var name string
		switch id {
		case tokenizer.ByteBOS:
			name = tokenizer.ByteBOSToken
		case tokenizer.ByteEOS:
			name = tokenizer.ByteEOSToken
		case tokenizer.BytePAD:
			name = tokenizer.BytePADToken
		default:
			continue
		}
		b.WriteString(e.Tok.Decode(ids[start:i]))
		b.WriteString(name)
		start = i + 1
	}
	b.WriteString(e.Tok.Decode(ids[start:]))
	return b.String()
}
