package data

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// Format names, as DatasetConfig.Format and DatasetReport.Format spell them.
const (
	FormatAuto             = "auto"
	FormatStandard         = "standard"
	FormatImplicitPrompt   = "implicitPrompt"
	FormatConversational   = "conversational"
	FormatShareGPT         = "sharegpt"
	FormatChatPreference   = "chatPreference"
	FormatSFT              = "sft" // any of the SFT formats below, detected
	FormatPromptCompletion = "promptCompletion"
	FormatMessages         = "messages"
	FormatText             = "text"
	FormatAlpaca           = "alpaca"
)

// PreferenceFormats and SFTFormats list the concrete formats.
var (
	PreferenceFormats = []string{FormatStandard, FormatImplicitPrompt, FormatConversational, FormatShareGPT, FormatChatPreference}
	SFTFormats        = []string{FormatPromptCompletion, FormatMessages, FormatText, FormatAlpaca}
)

// IsPreferenceFormat says whether rows of the format carry a rejected response.
func IsPreferenceFormat(format string) bool {
	for _, f := range PreferenceFormats {
		if f == format {
			return true
		}
	}
	return false
}

// fieldNames are the (possibly renamed) keys of the standard fields.
type fieldNames struct{ prompt, chosen, rejected string }

func (o Options) names() fieldNames {
	n := fieldNames{"prompt", "chosen", "rejected"}
	if o.PromptField != "" {
		n.prompt = o.PromptField
	}
	if o.ChosenField != "" {
		n.chosen = o.ChosenField
	}
	if o.RejectedField != "" {
		n.rejected = o.RejectedField
	}
	return n
}

// rowParser turns one JSON object into a Row.
type rowParser func(obj map[string]json.RawMessage, n fieldNames) (Row, *fieldError)

var parsers = map[string]rowParser{
	FormatStandard:         parseStandard,
	FormatImplicitPrompt:   parseImplicit,
	FormatConversational:   parseConversational,
	FormatShareGPT:         parseShareGPT,
	FormatChatPreference:   parseChatPreference,
	FormatPromptCompletion: parsePromptCompletion,
	FormatMessages:         parseMessages,
	FormatText:             parseText,
	FormatAlpaca:           parseAlpaca,
}

func parseStandard(obj map[string]json.RawMessage, n fieldNames) (Row, *fieldError) {
	var r Row
	var err *fieldError
	if r.Prompt, err = str(obj, n.prompt, n.prompt); err != nil {
		return r, err
	}
	if r.Chosen, err = nonEmpty(obj, n.chosen, n.chosen); err != nil {
		return r, err
	}
	r.Rejected, err = nonEmpty(obj, n.rejected, n.rejected)
	return r, err
}

// parseImplicit reads an implicit-prompt row: two strings, or two message lists (TRL's conversational implicit
// prompt). The prompt is what the two share at their start; each response is the rest. One response may be empty
// (the text, or the conversation, of one side ends where the other's reply starts): the model then learns to
// end the turn there, as the chosen response of refusal data often does. Both empty means the sides are
// identical: invalid.
func parseImplicit(obj map[string]json.RawMessage, n fieldNames) (Row, *fieldError) {
	if raw, ok := obj[n.chosen]; ok && jsonKind(trimJSON(raw)) == "array" {
		return parseImplicitMessages(obj, n)
	}
	chosen, err := nonEmpty(obj, n.chosen, n.chosen)
	if err != nil {
		return Row{}, err
	}
	rejected, err := nonEmpty(obj, n.rejected, n.rejected)
	if err != nil {
		return Row{}, err
	}
	p := commonPrefix(chosen, rejected)
	if p == len(chosen) && p == len(rejected) {
		return Row{}, &fieldError{n.rejected, "identical to " + n.chosen + ": no response left after the common prefix"}
	}
	return Row{Prompt: chosen[:p], Chosen: chosen[p:], Rejected: rejected[p:]}, nil
}

// parseImplicitMessages reads an implicit-prompt row of two conversations: the prompt is their shared leading
// messages, each response the messages after them (it starts with the assistant, or is empty).
func parseImplicitMessages(obj map[string]json.RawMessage, n fieldNames) (Row, *fieldError) {
	chosen, err := messageList(obj, n.chosen, openAIKeys)
	if err != nil {
		return Row{}, err
	}
	rejected, err := messageList(obj, n.rejected, openAIKeys)
	if err != nil {
		if raw, ok := obj[n.rejected]; ok && jsonKind(trimJSON(raw)) != "array" {
			err.reason += fmt.Sprintf(" (%s is a list of messages: both sides must be)", n.chosen)
		}
		return Row{}, err
	}
	k := 0
	for k < len(chosen) && k < len(rejected) && chosen[k] == rejected[k] {
		k++
	}
	switch {
	case k == len(chosen) && k == len(rejected):
		return Row{}, &fieldError{n.rejected, "identical to " + n.chosen + ": no message left after the shared ones"}
	case k == 0:
		return Row{}, &fieldError{n.chosen + "[0]", "the two conversations share no leading message: the implicit " +
			"prompt format needs the prompt's messages at the start of both (or use the conversational format " +
			"with a separate prompt)"}
	case chosen[k-1].Role == RoleAssistant:
		return Row{}, &fieldError{fmt.Sprintf("%s[%d]", n.chosen, k-1), "the shared messages end with the " +
			"assistant's, so the two sides differ after a finished reply; a preference is between the assistant's " +
			"replies to the same prompt"}
	}
	r := Row{Prompt: RenderPrompt(chosen[:k]), Chat: &Chat{Prompt: chosen[:k], Chosen: chosen[k:], Rejected: rejected[k:]}}
	for _, side := range []struct {
		key  string
		msgs []Message
		dst  *string
	}{{n.chosen, chosen[k:], &r.Chosen}, {n.rejected, rejected[k:], &r.Rejected}} {
		if len(side.msgs) == 0 {
			continue // this side ends where the reply starts: an empty response
		}
		if side.msgs[0].Role != RoleAssistant {
			return r, &fieldError{fmt.Sprintf("%s[%d]", side.key, k), fmt.Sprintf("a response starts with the "+
				"assistant, got %s (the message after the %d shared ones)", side.msgs[0].Role, k)}
		}
		*side.dst = RenderResponse(side.msgs)
	}
	if r.Chosen == r.Rejected {
		return r, &fieldError{n.rejected, "renders identical to " + n.chosen + ": no difference between the responses"}
	}
	return r, nil
}

// commonPrefix is the length of the longest common prefix of a and b that ends on a character boundary of both.
func commonPrefix(a, b string) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	// Back up while the split would fall inside a multibyte character of either text.
	for i > 0 && ((i < len(a) && !utf8.RuneStart(a[i])) || (i < len(b) && !utf8.RuneStart(b[i]))) {
		i--
	}
	return i
}

func parseConversational(obj map[string]json.RawMessage, n fieldNames) (Row, *fieldError) {
	prompt, err := messageList(obj, n.prompt, openAIKeys)
	if err != nil {
		return Row{}, err
	}
	if err := promptMessages(prompt, n.prompt); err != nil {
		return Row{}, err
	}
	return chatRow(prompt, obj, n.chosen, n.rejected, openAIKeys)
}

func messageList(obj map[string]json.RawMessage, key string, k messageKeys) ([]Message, *fieldError) {
	items, err := list(obj, key, key)
	if err != nil {
		return nil, err
	}
	return k.messages(items, key)
}

// chatRow reads the two response lists of a chat preference row.
func chatRow(prompt []Message, obj map[string]json.RawMessage, chosenKey, rejectedKey string, k messageKeys) (Row, *fieldError) {
	r := Row{Prompt: RenderPrompt(prompt), Chat: &Chat{Prompt: prompt}}
	for _, side := range []struct {
		key  string
		dst  *string
		msgs *[]Message
	}{{chosenKey, &r.Chosen, &r.Chat.Chosen}, {rejectedKey, &r.Rejected, &r.Chat.Rejected}} {
		msgs, err := messageList(obj, side.key, k)
		if err != nil {
			return r, err
		}
		if *side.dst, err = responseMessages(msgs, side.key); err != nil {
			return r, err
		}
		*side.msgs = msgs
	}
	return r, nil
}

func parseShareGPT(obj map[string]json.RawMessage, n fieldNames) (Row, *fieldError) {
	system, err := optStr(obj, "system", "system")
	if err != nil {
		return Row{}, err
	}
	turns, err := messageList(obj, "conversations", shareGPTKeys)
	if err != nil {
		return Row{}, err
	}
	if err := promptMessages(turns, "conversations"); err != nil {
		return Row{}, err
	}
	if system != "" {
		turns = append([]Message{{RoleSystem, system}}, turns...)
	}
	r := Row{Prompt: RenderPrompt(turns), Chat: &Chat{Prompt: turns}}
	for _, side := range []struct {
		key  string
		dst  *string
		msgs *[]Message
	}{{n.chosen, &r.Chosen, &r.Chat.Chosen}, {n.rejected, &r.Rejected, &r.Chat.Rejected}} {
		raw, ok := obj[side.key]
		if !ok {
			return r, missing(side.key)
		}
		m, err := shareGPTKeys.message(raw, side.key)
		if err != nil {
			return r, err
		}
		if *side.dst, err = responseMessages([]Message{m}, side.key); err != nil {
			err.path = side.key + ".value"
			if m.Role != RoleAssistant {
				err.path = side.key + ".from"
				err.reason = fmt.Sprintf("a response comes from gpt, got the %s role", m.Role)
			}
			return r, err
		}
		*side.msgs = []Message{m}
	}
	return r, nil
}

func parseChatPreference(obj map[string]json.RawMessage, _ fieldNames) (Row, *fieldError) {
	raw, ok := obj["input"]
	if !ok {
		return Row{}, missing("input")
	}
	input, err := object(raw, "input")
	if err != nil {
		return Row{}, err
	}
	items, err := list(input, "messages", "input.messages")
	if err != nil {
		return Row{}, err
	}
	prompt, err := openAIKeys.messages(items, "input.messages")
	if err != nil {
		return Row{}, err
	}
	if err := promptMessages(prompt, "input.messages"); err != nil {
		return Row{}, err
	}
	return chatRow(prompt, obj, "preferred_output", "non_preferred_output", openAIKeys)
}

func parsePromptCompletion(obj map[string]json.RawMessage, n fieldNames) (Row, *fieldError) {
	var r Row
	var err *fieldError
	if r.Prompt, err = str(obj, n.prompt, n.prompt); err != nil {
		return r, err
	}
	r.Chosen, err = nonEmpty(obj, "completion", "completion")
	return r, err
}

func parseMessages(obj map[string]json.RawMessage, _ fieldNames) (Row, *fieldError) {
	msgs, err := messageList(obj, "messages", openAIKeys)
	if err != nil {
		return Row{}, err
	}
	last := len(msgs) - 1
	if last < 0 {
		return Row{}, &fieldError{"messages", "empty list: the last message must be the assistant's completion"}
	}
	if msgs[last].Role != RoleAssistant {
		return Row{}, &fieldError{fmt.Sprintf("messages[%d].role", last), "the last message must be the assistant's completion, got " + msgs[last].Role}
	}
	if msgs[last].Content == "" {
		return Row{}, &fieldError{fmt.Sprintf("messages[%d].content", last), "empty response"}
	}
	return Row{Prompt: RenderPrompt(msgs[:last]), Chosen: msgs[last].Content, Chat: &Chat{Prompt: msgs[:last], Chosen: msgs[last:]}}, nil
}

func parseText(obj map[string]json.RawMessage, _ fieldNames) (Row, *fieldError) {
	text, err := nonEmpty(obj, "text", "text")
	return Row{Chosen: text}, err
}

func parseAlpaca(obj map[string]json.RawMessage, _ fieldNames) (Row, *fieldError) {
	instruction, err := str(obj, "instruction", "instruction")
	if err != nil {
		return Row{}, err
	}
	input, err := optStr(obj, "input", "input")
	if err != nil {
		return Row{}, err
	}
	if instruction == "" && input == "" {
		return Row{}, &fieldError{"instruction", "empty: the instruction and the input are both empty"}
	}
	system, err := optStr(obj, "system", "system")
	if err != nil {
		return Row{}, err
	}
	output, err := nonEmpty(obj, "output", "output")
	if err != nil {
		return Row{}, err
	}
	user := instruction
	if input != "" {
		user += "\n\n" + input
	}
	var msgs []Message
	if system != "" {
		msgs = append(msgs, Message{RoleSystem, system})
	}
	msgs = append(msgs, Message{RoleUser, user})
	return Row{Prompt: RenderPrompt(msgs), Chosen: output, Chat: &Chat{Prompt: msgs, Chosen: []Message{{RoleAssistant, output}}}}, nil
}
