package data

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Roles of the chat template.
const (
	RoleSystem    = "system"
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// Message is one chat turn.
type Message struct {
	Role, Content string
}

// header is the line that opens a message in the chat template.
func header(role string) string { return "<|" + role + "|>\n" }

// BuiltinChatTemplate is the trainer's own chat template, as a Jinja chat template: the template of models trained
// from scratch (the byte tokenizer), and the fallback for a pretrained model that has none. Each message is
// "<|role|>\n" + content, messages are separated by "\n", and the generation prompt is "<|assistant|>\n" (after
// a "\n" when there are messages). It renders exactly what RenderPrompt and RenderResponse build: the prompt of a
// conversation is RenderPrompt of its prompt messages, and what the whole conversation adds after it is
// RenderResponse of the response messages (the model's EOS then takes the place of a final newline). Roles other
// than system, user and assistant raise.
const BuiltinChatTemplate = `{%- for message in messages -%}` +
	`{%- if not loop.first %}{{ '\n' }}{% endif -%}` +
	`{%- if message['role'] == 'system' %}{{ '<|system|>\n' }}` +
	`{%- elif message['role'] == 'user' %}{{ '<|user|>\n' }}` +
	`{%- elif message['role'] == 'assistant' %}{{ '<|assistant|>\n' }}` +
	`{%- else %}{{ raise_exception('the built-in chat template has no role ' + message['role']) }}{% endif -%}` +
	`{{ message['content'] }}` +
	`{%- endfor -%}` +
	`{%- if add_generation_prompt %}{% if messages|length > 0 %}{{ '\n' }}{% endif %}{{ '<|assistant|>\n' }}{% endif -%}`

// Chat holds a conversational row's messages, which the model's chat template renders (Encoder): Prompt are the
// messages before the response; Chosen (the SFT completion) and Rejected are the response messages, each starting
// with the assistant's. A response without messages (an implicit-prompt side that ends where the reply starts) is
// rendered as one empty assistant message. Rejected is empty for SFT rows.
type Chat struct {
	Prompt, Chosen, Rejected []Message
}

// RenderPrompt renders prompt messages with the chat template and opens the assistant's turn.
func RenderPrompt(msgs []Message) string {
	var b strings.Builder
	for _, m := range msgs {
		b.WriteString(header(m.Role))
		b.WriteString(m.Content)
		b.WriteString("\n")
	}
	b.WriteString(header(RoleAssistant))
	return b.String()
}

// RenderResponse renders a response whose first message is the assistant's (its header already ends the prompt).
func RenderResponse(msgs []Message) string {
	var b strings.Builder
	for i, m := range msgs {
		if i > 0 {
			b.WriteString("\n")
			b.WriteString(header(m.Role))
		}
		b.WriteString(m.Content)
	}
	return b.String()
}

// messageKeys names the keys of a message object: role/content, or ShareGPT's from/value with its role names.
type messageKeys struct {
	role, content string
	roles         map[string]string // the file's role name -> template role
	// toolRoles are the file's role names for tool turns (a tool's result, a function call), which the template
	// cannot render: a message in one is refused, naming what it is.
	toolRoles map[string]string
}

var (
	openAIKeys = messageKeys{"role", "content", map[string]string{
		RoleSystem: RoleSystem, RoleUser: RoleUser, RoleAssistant: RoleAssistant},
		map[string]string{"tool": "a tool's result", "function": "a function's result", "ipython": "a tool's result"}}
	shareGPTKeys = messageKeys{"from", "value", map[string]string{
		"system": RoleSystem, "human": RoleUser, "gpt": RoleAssistant},
		map[string]string{"observation": "a tool's result", "function_call": "a tool call", "tool": "a tool's result"}}
)

// toolCallKeys are the keys of an OpenAI-style message that carry tool calls; the template has no syntax for
// them, so a message that has any (not null, not empty) is refused instead of being rendered without them.
var toolCallKeys = []string{"tool_calls", "function_call"}

// noToolTurns is why tool turns are refused: the fixed template would render them empty or drop them.
const noToolTurns = "the built-in chat template has no syntax for tool calls or tool results, so this message " +
	"would lose them; remove the row, or write the tool exchange into the messages' text"

func (k messageKeys) roleList() string {
	names := make([]string, 0, len(k.roles))
	for _, n := range []string{"system", "user", "assistant", "human", "gpt"} {
		if _, ok := k.roles[n]; ok {
			names = append(names, n)
		}
	}
	return strings.Join(names, ", ")
}

func (k messageKeys) message(raw json.RawMessage, path string) (Message, *fieldError) {
	obj, err := object(raw, path)
	if err != nil {
		return Message{}, err
	}
	name, err := str(obj, k.role, path+"."+k.role)
	if err != nil {
		return Message{}, err
	}
	if what, ok := k.toolRoles[name]; ok {
		return Message{}, &fieldError{path + "." + k.role, fmt.Sprintf("role %q (%s) is not supported: %s", name, what, noToolTurns)}
	}
	role, ok := k.roles[name]
	if !ok {
		return Message{}, &fieldError{path + "." + k.role, fmt.Sprintf("unknown role %q (want %s)", name, k.roleList())}
	}
	for _, key := range toolCallKeys {
		if raw, ok := obj[key]; ok && !emptyJSON(raw) {
			return Message{}, &fieldError{path + "." + key, "tool calls are not supported: " + noToolTurns}
		}
	}
	content, err := str(obj, k.content, path+"."+k.content)
	if err != nil {
		return Message{}, err
	}
	return Message{Role: role, Content: content}, nil
}

// emptyJSON says whether a raw value holds nothing: null, [], {} or "".
func emptyJSON(raw json.RawMessage) bool {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return false
	}
	switch x := v.(type) {
	case nil:
		return true
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	case string:
		return x == ""
	}
	return false
}

func (k messageKeys) messages(items []json.RawMessage, path string) ([]Message, *fieldError) {
	msgs := make([]Message, len(items))
	for i, raw := range items {
		m, err := k.message(raw, fmt.Sprintf("%s[%d]", path, i))
		if err != nil {
			return nil, err
		}
		msgs[i] = m
	}
	return msgs, nil
}

// promptMessages checks a prompt: not empty, and not ending with the assistant (the response is its turn).
func promptMessages(msgs []Message, path string) *fieldError {
	if len(msgs) == 0 {
		return &fieldError{path, "empty list: the prompt needs at least one message"}
	}
	if msgs[len(msgs)-1].Role == RoleAssistant {
		return &fieldError{fmt.Sprintf("%s[%d]", path, len(msgs)-1), "the prompt's last message is the assistant's; the response must be"}
	}
	return nil
}

// responseMessages checks a response: it starts with the assistant and has some text.
func responseMessages(msgs []Message, path string) (string, *fieldError) {
	if len(msgs) == 0 {
		return "", &fieldError{path, "empty response: no messages"}
	}
	if msgs[0].Role != RoleAssistant {
		return "", &fieldError{path + "[0]", fmt.Sprintf("a response starts with the assistant, got %s", msgs[0].Role)}
	}
	text := RenderResponse(msgs)
	if text == "" {
		return "", &fieldError{path + "[0]", "empty response"}
	}
	return text, nil
}
