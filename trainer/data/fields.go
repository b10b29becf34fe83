package data

import (
	"encoding/json"
	"fmt"
	"strings"
)

// fieldError is why one field of a row is invalid; path is the field as a JSON path ("input.messages[1].content").
type fieldError struct {
	path, reason string
}

func (e *fieldError) Error() string { return e.path + ": " + e.reason }

func missing(path string) *fieldError { return &fieldError{path, "missing field"} }

func wrongType(path string, raw json.RawMessage, want string) *fieldError {
	return &fieldError{path, fmt.Sprintf("must be %s, got %s", want, jsonKind(trimJSON(raw)))}
}

func trimJSON(raw json.RawMessage) []byte { return []byte(strings.TrimSpace(string(raw))) }

// str reads a string field; a JSON null counts as the wrong type, not as missing, so the reason says what is there.
func str(obj map[string]json.RawMessage, key, path string) (string, *fieldError) {
	raw, ok := obj[key]
	if !ok {
		return "", missing(path)
	}
	return asString(raw, path)
}

func asString(raw json.RawMessage, path string) (string, *fieldError) {
	var s string
	if jsonKind(trimJSON(raw)) != "string" || json.Unmarshal(raw, &s) != nil {
		return "", wrongType(path, raw, "a string")
	}
	return s, nil
}

// optStr reads a string field that may be absent.
func optStr(obj map[string]json.RawMessage, key, path string) (string, *fieldError) {
	if _, ok := obj[key]; !ok {
		return "", nil
	}
	return str(obj, key, path)
}

// nonEmpty reads a string field that must hold text (responses, completions).
func nonEmpty(obj map[string]json.RawMessage, key, path string) (string, *fieldError) {
	s, err := str(obj, key, path)
	if err == nil && s == "" {
		return "", &fieldError{path, "empty response"}
	}
	return s, err
}

func object(raw json.RawMessage, path string) (map[string]json.RawMessage, *fieldError) {
	var obj map[string]json.RawMessage
	if jsonKind(trimJSON(raw)) != "object" || json.Unmarshal(raw, &obj) != nil {
		return nil, wrongType(path, raw, "an object")
	}
	return obj, nil
}

func list(obj map[string]json.RawMessage, key, path string) ([]json.RawMessage, *fieldError) {
	raw, ok := obj[key]
	if !ok {
		return nil, missing(path)
	}
	var items []json.RawMessage
	if jsonKind(trimJSON(raw)) != "array" || json.Unmarshal(raw, &items) != nil {
		return nil, wrongType(path, raw, "a list")
	}
	return items, nil
}
