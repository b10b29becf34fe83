package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/data"
	"github.com/preftune/preftune/trainer/storydata"
)

// TestStoryData: story-data writes storydata's rows, preference pairs or (--stories) SFT rows, the same for the
// same seed, and refuses a call without --out.
func TestStoryData(t *testing.T) {
	tmp := t.TempDir()
	for _, c := range []struct {
		flags  []string
		format string
		want   []data.Row
	}{
		{nil, "standard", storydata.Generate(40, 5)},
		{[]string{"--stories"}, "promptCompletion", storydata.Config{}.Stories(40, 5)},
	} {
		out := filepath.Join(tmp, "rows.jsonl")
		var stderr bytes.Buffer
		if code := storyData(append([]string{"--out", out, "--n", "40", "--seed", "5"}, c.flags...), &bytes.Buffer{}, &stderr); code != contract.ExitOK {
			t.Fatalf("story-data %v: exit %d: %s", c.flags, code, stderr.String())
		}
		ds, err := data.ReadFile(out, data.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if ds.Format != c.format || len(ds.Rows) != 40 || ds.Rows[7] != c.want[7] || !strings.Contains(stderr.String(), "wrote 40") {
			t.Errorf("story-data %v: %s, %d rows, row 8 %+v (want %s, %+v); %s", c.flags, ds.Format, len(ds.Rows), ds.Rows[7], c.format, c.want[7], stderr.String())
		}
		os.Remove(out)
	}
	// Held-out openings: none of the training file's prompts.
	train, held := filepath.Join(tmp, "train.jsonl"), filepath.Join(tmp, "held.jsonl")
	if code := storyData([]string{"--out", train, "--n", "500", "--seed", "1"}, &bytes.Buffer{}, &bytes.Buffer{}); code != contract.ExitOK {
		t.Fatalf("exit %d", code)
	}
	if code := storyData([]string{"--out", held, "--n", "50", "--seed", "1001", "--held-out-from", train}, &bytes.Buffer{}, &bytes.Buffer{}); code != contract.ExitOK {
		t.Fatalf("--held-out-from: exit %d", code)
	}
	tr, _ := data.ReadFile(train, data.Options{})
	hd, err := data.ReadFile(held, data.Options{})
	if err != nil || len(hd.Rows) != 50 {
		t.Fatalf("held-out file: %v, %d rows", err, len(hd.Rows))
	}
	seen := map[string]bool{}
	for _, r := range tr.Rows {
		seen[r.Prompt] = true
	}
	for _, r := range hd.Rows {
		if seen[r.Prompt] {
			t.Fatalf("held-out prompt %q is in the training file", r.Prompt)
		}
		seen[r.Prompt] = true
	}
	if code := storyData([]string{"--out", held, "--held-out-from", filepath.Join(tmp, "absent.jsonl")}, &bytes.Buffer{}, &bytes.Buffer{}); code != contract.ExitUsage {
		t.Errorf("--held-out-from a missing file: exit %d, want %d", code, contract.ExitUsage)
	}
	if code := storyData([]string{"--n", "3"}, &bytes.Buffer{}, &bytes.Buffer{}); code != contract.ExitUsage {
		t.Errorf("story-data without --out: exit %d, want %d", code, contract.ExitUsage)
	}
}
