package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/model"
	"github.com/preftune/preftune/trainer/storage/hubtest"
)

// TestGenerateAdapterFromHub: generate --model BASE --adapter hf://org/name@revision (a PEFT adapter repository
// on a Hub on loopback, at $HF_ENDPOINT with $HF_TOKEN) completes prompts as --adapter DIR does with the same
// adapter, and as the merged model/ the SFT run wrote, not as the base alone; so does --model hf:// with the
// base's repository, and --model on an adapter repository is invalid input naming --model; stderr's adapter-downloaded event
// names the commit; dpo --reference-adapter hf://... records it in the termination message. A missing repository,
// a model repository and an adapter whose peft_type is not LORA exit with invalid input, naming --adapter.
func TestGenerateAdapterFromHub(t *testing.T) {
	dir := storiesDir(t)
	tmp := t.TempDir()
	demo := filepath.Join(tmp, "demo.jsonl")
	if code := demoData([]string{"--out", demo, "--n", "32", "--seed", "3"}, &bytes.Buffer{}, &bytes.Buffer{}); code != 0 {
		t.Fatalf("demo-data exit %d", code)
	}
	sftOut := filepath.Join(tmp, "sft")
	if code := runSFT([]string{"--from", dir, "--data", demo, "--out", sftOut, "--steps", "2", "--batch-size", "4",
		"--lora-rank", "4", "--lr", "2e-2"}); code != contract.ExitOK {
		t.Fatalf("sft exit %d", code)
	}
	adapter := filepath.Join(sftOut, "adapter")
	ia3 := filepath.Join(tmp, "ia3")
	if err := os.MkdirAll(ia3, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{model.AdapterConfigFile, model.AdapterWeightsFile} {
		b, err := os.ReadFile(filepath.Join(adapter, name))
		if err != nil {
			t.Fatal(err)
		}
		if name == model.AdapterConfigFile {
			b = bytes.Replace(b, []byte(`"peft_type": "LORA"`), []byte(`"peft_type": "IA3"`), 1)
		}
		if err := os.WriteFile(filepath.Join(ia3, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hub := &hubtest.Hub{Repos: map[string]string{"org/story-lora": adapter, "org/ia3": ia3, "org/stories": dir},
		Commit: strings.Repeat("7f", 20), Refs: map[string]bool{"main": true}, Token: "hf_generate_token"}
	hubtest.Start(t, hub)

	prompts := writeFile(t, "prompts.jsonl", `{"prompt": "Once upon a time"}`+"\n"+`{"prompt": "Lily saw a"}`+"\n")
	generate := func(args ...string) (code int, stdout, stderr string) {
		stderr = captureStderr(t, func() {
			stdout = captureStdout(t, func() {
				code = runGenerate(append(args, "--prompts-file", prompts, "--max-new", "12"))
			})
		})
		return code, stdout, stderr
	}
	code, viaHub, stderr := generate("--model", dir, "--adapter", "hf://org/story-lora@main")
	if code != contract.ExitOK {
		t.Fatalf("generate --adapter hf://: exit %d, stderr %s", code, stderr)
	}
	var event map[string]any
	for _, line := range strings.Split(stderr, "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) == nil && e["event"] == "adapter-downloaded" {
			event = e
		}
	}
	if event == nil || event["commit"] != hub.Commit || event["uri"] != "hf://org/story-lora@main" {
		t.Errorf("stderr %q: want an adapter-downloaded event with commit %s", stderr, hub.Commit)
	}
	_, viaDir, _ := generate("--model", dir, "--adapter", adapter)
	_, merged, _ := generate("--model", filepath.Join(sftOut, "model"))
	_, baseOnly, _ := generate("--model", dir)
	if strings.Count(viaHub, "\n") != 2 || viaHub != viaDir || viaHub != merged {
		t.Errorf("completions with the Hub adapter:\n%s\nwith its directory:\n%s\nwith the merged model:\n%s\nwant all equal", viaHub, viaDir, merged)
	}
	if viaHub == baseOnly {
		t.Errorf("completions with the Hub adapter equal the base's:\n%s\nthe adapter was not applied", baseOnly)
	}
	t.Logf("with the Hub adapter: %s", viaHub)
	// --model hf:// too: the base from the Hub, with the adapter from the Hub, completes as both directories do.
	code, bothHub, stderr := generate("--model", "hf://org/stories@main", "--adapter", "hf://org/story-lora")
	if code != contract.ExitOK || bothHub != viaDir || !strings.Contains(stderr, `"event":"model-downloaded"`) {
		t.Errorf("generate --model hf://org/stories --adapter hf://org/story-lora: exit %d, completions\n%s\nwant\n%s\nstderr %s",
			code, bothHub, viaDir, stderr)
	}
	if code, _, stderr := generate("--model", "hf://org/story-lora"); code != contract.ExitInvalidInput ||
		!strings.Contains(stderr, "--model") || !strings.Contains(stderr, "a PEFT adapter repository, not a model") {
		t.Errorf("generate --model on an adapter repository: exit %d, stderr %q; want exit %d naming --model", code, stderr, contract.ExitInvalidInput)
	}

	// dpo --reference-adapter hf://: the termination message records the adapter's commit and digest.
	dpoOut, term := filepath.Join(tmp, "dpo"), filepath.Join(tmp, "dpo.term")
	if code := runDPO([]string{"--reference", dir, "--reference-adapter", "hf://org/story-lora", "--data", demo, "--out", dpoOut,
		"--steps", "1", "--batch-size", "4", "--lora-rank", "2", "--termination-log", term}); code != contract.ExitOK {
		t.Fatalf("dpo --reference-adapter hf://: exit %d", code)
	}
	res := readResult(t, term)
	if res.SourceAdapterURI != "hf://org/story-lora" || res.SourceAdapterCommit != hub.Commit || res.SourceAdapterDigest != event["digest"] {
		t.Errorf("dpo result: source adapter %q commit %q digest %q, want hf://org/story-lora, %s, %v", res.SourceAdapterURI,
			res.SourceAdapterCommit, res.SourceAdapterDigest, hub.Commit, event["digest"])
	}

	for uri, want := range map[string]string{
		"hf://org/missing": "org/missing not found",
		"hf://org/stories": "a model repository, not an adapter",
		"hf://org/ia3":     `--adapter hf://org/ia3 (commit ` + hub.Commit + `): adapter `,
	} {
		code, _, stderr := generate("--model", dir, "--adapter", uri)
		if code != contract.ExitInvalidInput || !strings.Contains(stderr, "--adapter") || !strings.Contains(stderr, want) ||
			strings.Contains(stderr, hub.Token) {
			t.Errorf("generate --adapter %s: exit %d, stderr %q; want exit %d saying %q", uri, code, stderr, contract.ExitInvalidInput, want)
		}
	}
}
