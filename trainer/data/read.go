package data

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/preftune/preftune/trainer/contract"
)

// Row is one valid example. Preference rows have all three texts; SFT rows leave Rejected empty and keep the
// completion in Chosen. For conversational rows the texts are the built-in template's rendering (RenderPrompt,
// RenderResponse: what the split groups by and the report measures) and Chat keeps the messages, which an Encoder
// renders with the model's own chat template; plain-text rows have no Chat.
type Row struct {
	// Line is the 1-based line of the row in its file.
	Line                     int
	Prompt, Chosen, Rejected string
	// Chat is the row's messages (nil for plain-text formats: standard, implicitPrompt of strings,
	// promptCompletion, text).
	Chat *Chat
}

// Options says how to read a file.
type Options struct {
	// Format is a format name, "sft", or "auto"/"" to detect it.
	Format                                  string
	PromptField, ChosenField, RejectedField string
}

// OptionsOf takes the reading options out of a run's dataset configuration.
func OptionsOf(c contract.DatasetConfig) Options {
	return Options{Format: c.Format, PromptField: c.PromptField, ChosenField: c.ChosenField, RejectedField: c.RejectedField}
}

// Dataset is a file read in one format.
type Dataset struct {
	// Format is the concrete format the rows were read in (detected when asked for auto or sft).
	Format string
	// Digest is "sha256:<hex>" of the file's bytes.
	Digest string
	// Total counts the rows of the file, valid or not.
	Total   int
	Rows    []Row
	Invalid []contract.InvalidRow
}

// Preference says whether the rows carry rejected responses (a DPO run needs this; SFT takes either kind).
func (d *Dataset) Preference() bool { return IsPreferenceFormat(d.Format) }

// Err is nil when every row is valid, and otherwise says how many are not and names the first few.
func (d *Dataset) Err() error {
	if len(d.Invalid) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d rows are invalid (format %s)", len(d.Invalid), d.Total, d.Format)
	for i, r := range d.Invalid {
		if i == 3 {
			b.WriteString("; ...")
			break
		}
		b.WriteString("; ")
		b.WriteString(describe(r))
	}
	return fmt.Errorf("%s", b.String())
}

// CheckInvalidRows applies a dataset's invalid-rows policy (contract.InvalidRowsReject, the default when empty, or
// contract.InvalidRowsSkip). Reject fails as Err does. Skip fails only when no row is valid, and otherwise returns
// a warning that counts the skipped rows and names their first lines ("" when there are none).
func (d *Dataset) CheckInvalidRows(policy string) (warning string, err error) {
	switch policy {
	case "", contract.InvalidRowsReject:
		return "", d.Err()
	case contract.InvalidRowsSkip:
	default:
		return "", fmt.Errorf("invalidRows is %q, want %s or %s", policy, contract.InvalidRowsReject, contract.InvalidRowsSkip)
	}
	if len(d.Invalid) == 0 {
		return "", nil
	}
	if len(d.Rows) == 0 {
		return "", fmt.Errorf("no valid row to train on (invalidRows Skip): %w", d.Err())
	}
	return SkippedWarning(d.Invalid, d.Total), nil
}

// SkippedWarning counts rows left out under the Skip policy and names the first of them.
func SkippedWarning(invalid []contract.InvalidRow, total int) string {
	lines := make([]int, len(invalid))
	for i, r := range invalid {
		lines[i] = r.Line
	}
	first := invalid[0]
	return fmt.Sprintf("%d of %d rows are invalid and were skipped (invalidRows: Skip): %s; first: %s",
		len(invalid), total, lineList(lines), describe(first))
}

// lineList names the first few of lines: "lines 2, 3, 9 and 4 more".
func lineList(lines []int) string {
	const shown = 5
	var b strings.Builder
	if len(lines) == 1 {
		b.WriteString("line ")
	} else {
		b.WriteString("lines ")
	}
	for i, l := range lines {
		if i == shown {
			fmt.Fprintf(&b, " and %d more", len(lines)-shown)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprint(&b, l)
	}
	return b.String()
}

func describe(r contract.InvalidRow) string {
	if r.Field == "" {
		return fmt.Sprintf("line %d: %s", r.Line, r.Reason)
	}
	return fmt.Sprintf("line %d, field %s: %s", r.Line, r.Field, r.Reason)
}

// CheckDigest fails when want is set and differs from the data's digest.
func (d *Dataset) CheckDigest(want string) error {
	if want != "" && want != d.Digest {
		return fmt.Errorf("dataset digest is %s, the run was pinned to %s: the data changed", d.Digest, want)
	}
	return nil
}

// ReadFile reads a dataset file.
func ReadFile(path string, opts Options) (*Dataset, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	d, err := Parse(b, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return d, nil
}

// Parse reads a dataset from its bytes. The error is for data that cannot be read as a dataset at all (not JSON
// Lines or an array, unknown or undetectable format); bad rows are listed in Dataset.Invalid instead.
func Parse(b []byte, opts Options) (*Dataset, error) {
	sum := sha256.Sum256(b)
	d := &Dataset{Digest: "sha256:" + hex.EncodeToString(sum[:])}
	recs, err := splitRecords(b)
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("the file holds no rows")
	}
	names := opts.names()
	if d.Format, err = chooseFormat(recs, opts.Format, names); err != nil {
		return nil, err
	}
	parse := parsers[d.Format]
	d.Total = len(recs)
	for _, rec := range recs {
		if rec.bad != nil {
			d.Invalid = append(d.Invalid, *rec.bad)
			continue
		}
		row, ferr := parse(rec.obj, names)
		if ferr != nil {
			d.Invalid = append(d.Invalid, contract.InvalidRow{Line: rec.line, Field: ferr.path, Reason: ferr.reason})
			continue
		}
		row.Line = rec.line
		d.Rows = append(d.Rows, row)
	}
	return d, nil
}

func chooseFormat(recs []record, format string, n fieldNames) (string, error) {
	switch format {
	case "", FormatAuto:
		return detect(recs, n, append(append([]string{}, PreferenceFormats...), SFTFormats...))
	case FormatSFT:
		return detect(recs, n, SFTFormats)
	}
	if _, ok := parsers[format]; !ok {
		return "", fmt.Errorf("unknown format %q (want auto, sft, %s, %s)", format,
			strings.Join(PreferenceFormats, ", "), strings.Join(SFTFormats, ", "))
	}
	return format, nil
}

// detect picks the format from the keys of the first row that is an object some candidate recognises.
func detect(recs []record, n fieldNames, candidates []string) (string, error) {
	firstObj := -1
	for i, rec := range recs {
		if rec.obj == nil {
			continue
		}
		if firstObj < 0 {
			firstObj = i
		}
		if f := formatOfKeys(rec.obj, n, candidates); f != "" {
			return f, nil
		}
	}
	if firstObj < 0 {
		return "", fmt.Errorf("cannot detect the format: no row is a JSON object (first problem: %s)", describe(*recs[0].bad))
	}
	keys := make([]string, 0, len(recs[firstObj].obj))
	for k := range recs[firstObj].obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return "", fmt.Errorf("cannot detect the format: no row has the fields of a known format (line %d has %s)",
		recs[firstObj].line, strings.Join(keys, ", "))
}

func formatOfKeys(obj map[string]json.RawMessage, n fieldNames, candidates []string) string {
	has := func(keys ...string) bool {
		for _, k := range keys {
			if _, ok := obj[k]; !ok {
				return false
			}
		}
		return true
	}
	var f string
	switch {
	case has("input", "preferred_output"):
		f = FormatChatPreference
	case has("conversations", n.chosen):
		f = FormatShareGPT
	case has(n.prompt, n.chosen, n.rejected):
		f = FormatStandard
		if jsonKind(trimJSON(obj[n.prompt])) == "array" {
			f = FormatConversational
		}
	case has(n.chosen, n.rejected):
		f = FormatImplicitPrompt
	case has("messages"):
		f = FormatMessages
	case has("instruction", "output"):
		f = FormatAlpaca
	case has(n.prompt, "completion"):
		f = FormatPromptCompletion
	case has("text"):
		f = FormatText
	}
	for _, c := range candidates {
		if c == f {
			return f
		}
	}
	return ""
}
