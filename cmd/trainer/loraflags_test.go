package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
)

// TestLoRAFlags: --lora-rank 0 (or none) is full fine-tuning, as its help says; the other adapter flags without a
// rank are a usage error naming them; a rank gives the adapter with the flags' values.
func TestLoRAFlags(t *testing.T) {
	for _, c := range []struct {
		args    []string
		adapter bool
		err     string
	}{
		{[]string{"--lora-rank", "0"}, false, ""},
		{nil, false, ""},
		{[]string{"--lora-dropout", "0.1", "--lora-alpha", "32"}, false, "--lora-alpha, --lora-dropout set options of a LoRA adapter, but --lora-rank is absent or 0"},
		{[]string{"--lora-rank", "0", "--lora-targets", "q_proj"}, false, "--lora-targets set options of a LoRA adapter"},
		{[]string{"--lora-rank", "8", "--lora-targets", "q_proj, v_proj"}, true, ""},
	} {
		rc, err := newRunFlags(contract.KindSFT).parse(append([]string{"--data", "d.jsonl", "--out", "o"}, c.args...))
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%v: %v, want an error containing %q", c.args, err, c.err)
		case c.err == "" && err != nil:
			t.Errorf("%v: %v", c.args, err)
		case c.err == "" && (rc.Adapter != nil) != c.adapter:
			t.Errorf("%v: adapter %+v, want one: %v", c.args, rc.Adapter, c.adapter)
		case c.adapter && (rc.Adapter.Rank != 8 || strings.Join(rc.Adapter.TargetModules, ",") != "q_proj,v_proj"):
			t.Errorf("%v: adapter %+v", c.args, rc.Adapter)
		}
	}
}

// TestFlagHints: a run from flags that fails on a field says which flag sets it.
func TestFlagHints(t *testing.T) {
	dir := storiesDir(t)
	data := writeFile(t, "rows.jsonl", `{"prompt": "a", "completion": "b"}`+"\n")
	term := filepath.Join(t.TempDir(), "term")
	if code := runSFT([]string{"--from", dir, "--data", data, "--out", t.TempDir(), "--steps", "1", "--lora-rank", "2000",
		"--termination-log", term}); code != contract.ExitInvalidInput {
		t.Errorf("exit %d, want %d", code, contract.ExitInvalidInput)
	}
	b, _ := os.ReadFile(term)
	if msg := string(b); !strings.Contains(msg, "adapter.rank") || !strings.Contains(msg, "(on the command line: adapter.rank is --lora-rank)") {
		t.Errorf("termination message %s: want the field and its flag", msg)
	}
	if got := withFlagHint("training.maxSteps and training.epochs are both 0"); got != "training.maxSteps and training.epochs are both 0 "+
		"(on the command line: training.maxSteps is --steps, training.epochs is --epochs)" {
		t.Errorf("withFlagHint: %q", got)
	}
}
