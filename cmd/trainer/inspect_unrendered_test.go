package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
)

// gemma2Template is Gemma-2's chat template, which raises on a system message.
const gemma2Template = "../../../shared/testdata/chat-templates/gemma2.jinja"

// TestInspectDatasetUnrenderedRows: rows the chat template cannot render (Gemma-2's template raises on chatRows'
// system message, line 2) are invalid rows. Under Skip they are counted (invalid, skipped), listed with the
// template's error, the report is printed and the exit is 0, as a run skips them; under Reject the report still
// lists them (stdout and the termination message) and the exit is 3 naming the row.
func TestInspectDatasetUnrenderedRows(t *testing.T) {
	dir := storiesDir(t)
	if _, err := os.Stat(gemma2Template); err != nil {
		t.Skipf("%s is absent (../shared is the project's read-only test data): %v", gemma2Template, err)
	}
	rows := writeFile(t, "chat.jsonl", chatRows)
	code, stdout, stderr, msg := inspectRun(t, "--data", rows, "--model", dir, "--chat-template", gemma2Template, "--invalid-rows", "Skip")
	if code != contract.ExitOK {
		t.Fatalf("skip: exit %d, want 0; stderr %s", code, stderr)
	}
	var rep contract.DatasetReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("skip: stdout is not the report (%v): %s", err, stdout)
	}
	for name, r := range map[string]*contract.DatasetReport{"stdout": &rep, "termination message": msg.Dataset} {
		if r == nil {
			t.Fatalf("skip: no report in the %s", name)
		}
		c := r.Counts
		if c.Total != 4 || c.Invalid != 1 || c.Skipped != 1 || c.Pairs != 3 || c.Train+c.Eval != 3 {
			t.Errorf("skip: %s counts %+v", name, c)
		}
		if len(r.InvalidRows) != 1 || r.InvalidRows[0].Line != 2 || r.InvalidRows[0].Field != "chosen" ||
			!strings.Contains(r.InvalidRows[0].Reason, "System role not supported") {
			t.Errorf("skip: %s invalid rows %+v", name, r.InvalidRows)
		}
		if !warningsHave(r.Warnings, "1 of 4 rows are invalid and were skipped (invalidRows: Skip): line 2") {
			t.Errorf("skip: %s warnings %q", name, r.Warnings)
		}
	}
	if strings.Contains(stderr, "--- line 2,") || !strings.Contains(stderr, "--- line 3, chosen:") {
		t.Errorf("skip: the preview should leave out line 2 and show the next rows: %s", stderr)
	}

	code, stdout, stderr, msg = inspectRun(t, "--data", rows, "--model", dir, "--chat-template", gemma2Template)
	if code != contract.ExitInvalidInput || !strings.Contains(stderr, "InvalidDataset: the chat template cannot render 1 of 4 rows; line 2 (chosen)") {
		t.Fatalf("reject: exit %d stderr %s", code, stderr)
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("reject: stdout is not the report (%v): %s", err, stdout)
	}
	if r := msg.Dataset; r == nil || r.Counts.Invalid != 1 || r.Counts.Skipped != 0 || len(r.InvalidRows) != 1 || r.InvalidRows[0].Line != 2 ||
		rep.Counts.Invalid != 1 {
		t.Fatalf("reject: termination %+v stdout %+v", msg.Dataset, rep.Counts)
	}
}
