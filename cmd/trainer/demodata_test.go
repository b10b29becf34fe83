package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/data"
	"github.com/preftune/preftune/trainer/demodata"
)

func TestDemoDataWritesCheckableRows(t *testing.T) {
	out := filepath.Join(t.TempDir(), "demo.jsonl")
	var errb bytes.Buffer
	if code := demoData([]string{"--out", out, "--n", "50", "--seed", "7", "--difficulty", "3"}, &bytes.Buffer{}, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	d, err := data.ReadFile(out, data.Options{Format: data.FormatStandard})
	if err != nil || len(d.Rows) != 50 || len(d.Invalid) != 0 {
		t.Fatalf("read back: %v, %d rows, invalid %v", err, len(d.Rows), d.Invalid)
	}
	for _, r := range d.Rows {
		if !demodata.Check(r.Prompt, r.Chosen) || demodata.Check(r.Prompt, r.Rejected) {
			t.Fatalf("row %+v breaks the rule", r)
		}
	}
	// The same seed writes the same bytes.
	var stdout bytes.Buffer
	if code := demoData([]string{"--out", "-", "--n", "50", "--seed", "7", "--difficulty", "3"}, &stdout, &bytes.Buffer{}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if b, _ := os.ReadFile(out); !bytes.Equal(b, stdout.Bytes()) {
		t.Fatal("same seed, different files")
	}
}

func TestDemoDataUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"--n", "3"}, {"--out", "x", "extra"}, {"--out", "x", "--difficulty", "9"}} {
		var errb bytes.Buffer
		if code := demoData(args, &bytes.Buffer{}, &errb); code != contract.ExitUsage {
			t.Fatalf("args %q: exit %d", args, code)
		}
		if !strings.Contains(errb.String(), "demo-data") {
			t.Fatalf("args %q: stderr %q", args, errb.String())
		}
	}
	if code := demoData([]string{"--out", filepath.Join(t.TempDir(), "no", "such", "dir.jsonl")}, &bytes.Buffer{}, &bytes.Buffer{}); code != contract.ExitFailed {
		t.Fatalf("unwritable --out: exit %d", code)
	}
}
