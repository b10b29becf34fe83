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
}

var (
	openAIKeys = messageKeys{"role", "content", map[string]string{
		RoleSystem: RoleSystem, RoleUser: RoleUser, RoleAssistant: RoleAssistant}}
	shareGPTKeys = messageKeys{"from", "value", map[string]string{
		"system": RoleSystem, "human": RoleUser, "gpt": RoleAssistant}}
)

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
	role, ok := k.roles[name]
	if !ok {
		return Message{}, &fieldError{path + "." + k.role, fmt.Sprintf("unknown role %q (want %s)", name, k.roleList())}
	}
	content, err := str(obj, k.content, path+"."+k.content)
	if err != nil {
		return Message{}, err
	}
	return Message{Role: role, Content: content}, nil
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
