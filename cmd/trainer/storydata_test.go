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
		{[]string{"--leading-space"}, "standard", storydata.Config{LeadingSpace: true}.Generate(40, 5)},
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
	if code := storyData([]string{"--n", "3"}, &bytes.Buffer{}, &bytes.Buffer{}); code != contract.ExitUsage {
		t.Errorf("story-data without --out: exit %d, want %d", code, contract.ExitUsage)
	}
}
