package chattemplate

import (
	"errors"
	"fmt"
	"sort"
)

// SelectTemplate picks the template to render from the `chat_template` value of a tokenizer_config.json, as
// transformers does: a string is the template; a list of {"name": ..., "template": ...} entries gives named templates,
// of which name is taken when given, else "tool_use" when the conversation has tools and the list has one, else
// "default". chatTemplate is the decoded JSON value (ParseJSON's or encoding/json's). Errors name what is missing.
func SelectTemplate(chatTemplate any, name string, withTools bool) (string, error) {
	switch v := chatTemplate.(type) {
	case string:
		if name != "" && name != "default" {
			return "", fmt.Errorf("chat_template is a single template, not a list with one named %q", name)
		}
		return v, nil
	case nil:
		return "", errors.New("the tokenizer has no chat_template")
	case []any:
		named := map[string]string{}
		for i, e := range v {
			var get func(string) (any, bool)
			switch entry := e.(type) {
			case Object:
				get = entry.Get
			case map[string]any:
				get = func(k string) (any, bool) { x, ok := entry[k]; return x, ok }
			default:
				return "", fmt.Errorf("chat_template[%d]: want an object with name and template, got %s", i, jsonKind(e))
			}
			n, _ := get("name")
			tmpl, _ := get("template")
			ns, ok1 := n.(string)
			ts, ok2 := tmpl.(string)
			if !ok1 || !ok2 {
				return "", fmt.Errorf("chat_template[%d]: want string fields name and template", i)
			}
			named[ns] = ts
		}
		pick := name
		if pick == "" {
			pick = "default"
			if _, ok := named["tool_use"]; ok && withTools {
				pick = "tool_use"
			}
		}
		if t, ok := named[pick]; ok {
			return t, nil
		}
		names := make([]string, 0, len(named))
		for n := range named {
			names = append(names, n)
		}
		sort.Strings(names)
		return "", fmt.Errorf("chat_template has no template named %q (it has %q)", pick, names)
	}
	return "", fmt.Errorf("chat_template: want a string or a list of named templates, got %s", jsonKind(chatTemplate))
}
