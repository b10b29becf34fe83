package data

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"unicode/utf8"

	"github.com/preftune/preftune/trainer/contract"
)

// record is one row of a file before its format is applied: its raw JSON object, or the reason it is not one.
type record struct {
	line int
	obj  map[string]json.RawMessage
	bad  *contract.InvalidRow
}

// lineIndex maps byte offsets to 1-based lines and columns.
type lineIndex []int // offsets where each line starts

func newLineIndex(b []byte) lineIndex {
	idx := lineIndex{0}
	for i, c := range b {
		if c == '\n' {
			idx = append(idx, i+1)
		}
	}
	return idx
}

func (l lineIndex) pos(off int) (line, col int) {
	i := sort.Search(len(l), func(i int) bool { return l[i] > off }) - 1
	return i + 1, off - l[i] + 1
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// splitRecords cuts a file into records, as JSON Lines or as one JSON array (chosen by the first non-space byte).
func splitRecords(b []byte) ([]record, error) {
	b = bytes.TrimPrefix(b, utf8BOM)
	trimmed := bytes.TrimLeft(b, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, errors.New("the file is empty: no rows")
	}
	if trimmed[0] == '[' {
		return splitArray(b)
	}
	return splitLines(b), nil
}

func splitLines(b []byte) []record {
	var recs []record
	for i, line := range bytes.Split(b, []byte("\n")) {
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		recs = append(recs, parseRecord(i+1, line, func(off int) string { return fmt.Sprintf("column %d", off+1) }))
	}
	return recs
}

// parseRecord decodes one JSON object starting at line; where names the place of a byte offset into raw in the
// file ("column 7", or "line 12 column 3" for an element of an array that spans lines).
func parseRecord(line int, raw []byte, where func(off int) string) record {
	r := record{line: line}
	if !utf8.Valid(raw) {
		r.bad = &contract.InvalidRow{Line: line, Reason: "invalid UTF-8 at " + where(firstInvalidUTF8(raw))}
		return r
	}
	err := json.Unmarshal(raw, &r.obj)
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typeErr) || (err == nil && r.obj == nil):
		r.obj = nil
		r.bad = &contract.InvalidRow{Line: line, Reason: fmt.Sprintf("row is a JSON %s, not an object", jsonKind(bytes.TrimSpace(raw)))}
	case err != nil:
		r.obj = nil
		r.bad = &contract.InvalidRow{Line: line, Reason: jsonErrorReason(err, where)}
	}
	return r
}

func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return len(b)
}

func jsonErrorReason(err error, where func(off int) string) string {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		// Offset counts the bytes read, the bad one included.
		return fmt.Sprintf("invalid JSON at %s: %s", where(max(int(syn.Offset)-1, 0)), syn.Error())
	}
	return "invalid JSON: " + err.Error()
}

// splitArray reads a JSON array element by element so that each element keeps the line where it starts.
func splitArray(b []byte) ([]record, error) {
	lines := newLineIndex(b)
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil { // the '['
		return nil, err
	}
	var recs []record
	for dec.More() {
		start := skipSeparators(b, int(dec.InputOffset()))
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			// A syntax error leaves the decoder unable to find the next element: report it and stop.
			off := start
			var syn *json.SyntaxError
			if errors.As(err, &syn) {
				off = int(syn.Offset) - 1
			} else if errors.Is(err, io.ErrUnexpectedEOF) {
				off = len(b)
				err = errors.New("the file ends inside this element")
			}
			line, col := lines.pos(max(off, 0))
			startLine, _ := lines.pos(start)
			recs = append(recs, record{line: startLine, bad: &contract.InvalidRow{Line: startLine,
				Reason: fmt.Sprintf("invalid JSON at line %d column %d: %s; the rest of the array was not read", line, col, shortErr(err))}})
			return recs, nil
		}
		line, _ := lines.pos(start)
		recs = append(recs, parseRecord(line, raw, func(off int) string {
			l, c := lines.pos(start + off)
			return fmt.Sprintf("line %d column %d", l, c)
		}))
	}
	if _, err := dec.Token(); err != nil { // the ']'
		line, col := lines.pos(int(dec.InputOffset()))
		return recs, fmt.Errorf("line %d column %d: the JSON array is not closed: %v", line, col, err)
	}
	if rest := bytes.TrimSpace(b[dec.InputOffset():]); len(rest) > 0 {
		line, col := lines.pos(int(dec.InputOffset()) + bytes.Index(b[dec.InputOffset():], rest[:1]))
		return recs, fmt.Errorf("line %d column %d: data after the JSON array", line, col)
	}
	return recs, nil
}

func shortErr(err error) string {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return syn.Error()
	}
	return err.Error()
}

// skipSeparators moves past the whitespace and the comma between two array elements.
func skipSeparators(b []byte, off int) int {
	for off < len(b) && (b[off] == ' ' || b[off] == '\t' || b[off] == '\r' || b[off] == '\n' || b[off] == ',') {
		off++
	}
	return off
}

// jsonKind names the JSON type of a raw value, for "must be a string, got number".
func jsonKind(raw []byte) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}
