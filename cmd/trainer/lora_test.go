package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/data"
	"github.com/preftune/preftune/trainer/model"
	"github.com/preftune/preftune/trainer/tokenizer"
	"github.com/preftune/preftune/trainer/train"
)

func readResult(t *testing.T, path string) *contract.Result {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var msg contract.TerminationMessage
	if err := json.Unmarshal(raw, &msg); err != nil || msg.Result == nil {
		t.Fatalf("termination message %s: %v", raw, err)
	}
	return msg.Result
}

// TestLoRAPretrained: sft --lora-rank on stories260K writes adapter/ (PEFT's layout) and the merged model/;
// generate --model BASE --adapter DIR runs on it, and base + adapter merged is model/ bit for bit; dpo
// --reference BASE --reference-adapter DIR --lora-rank --merged-model=false starts at ln 2 and writes adapter/
// only; an unknown --lora-targets name is refused before training.
func TestLoRAPretrained(t *testing.T) {
	dir := storiesDir(t)
	tmp := t.TempDir()
	demo := filepath.Join(tmp, "demo.jsonl")
	if code := demoData([]string{"--out", demo, "--n", "64", "--seed", "5"}, &bytes.Buffer{}, &bytes.Buffer{}); code != 0 {
		t.Fatalf("demo-data exit %d", code)
	}
	sftOut, term := filepath.Join(tmp, "sft"), filepath.Join(tmp, "sft.term")
	if code := runSFT([]string{"--from", dir, "--data", demo, "--out", sftOut, "--steps", "3", "--batch-size", "4",
		"--lora-rank", "8", "--lora-dropout", "0.05", "--lr", "1e-2", "--termination-log", term}); code != contract.ExitOK {
		t.Fatalf("sft exit %d", code)
	}
	res := readResult(t, term)
	// stories260K: 5 layers of dim 64, 8 heads over 4 KV heads (k/v 32 wide), hidden 172; rank 8 on all 7 projections.
	perLayer := 8 * ((64 + 64) + 2*(64+32) + (64 + 64) + 2*(64+172) + (172 + 64))
	if res.TrainableParameterCount != int64(5*perLayer) || res.ParameterCount <= res.TrainableParameterCount {
		t.Errorf("trainable %d of %d, want %d trainable", res.TrainableParameterCount, res.ParameterCount, 5*perLayer)
	}
	t.Logf("stories260K, rank 8 on all projections: %d trainable of %d parameters (%.1f%%); AdamW state %d bytes (full fine-tuning: %d)",
		res.TrainableParameterCount, res.ParameterCount, 100*float64(res.TrainableParameterCount)/float64(res.ParameterCount),
		8*res.TrainableParameterCount, 8*res.ParameterCount)
	adapter := filepath.Join(sftOut, "adapter")
	if res.AdapterURI != "file://"+adapter || res.ModelURI != "file://"+filepath.Join(sftOut, "model") {
		t.Errorf("adapter %s, model %s", res.AdapterURI, res.ModelURI)
	}

	// Base + adapter, merged at load, is the merged model/ the run wrote.
	base, _, _, err := train.LoadModelDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := base.LoadAdapter(adapter); err != nil {
		t.Fatal(err)
	}
	base.MergeLoRA()
	merged, _, _, err := train.LoadModelDir(filepath.Join(sftOut, "model"))
	if err != nil {
		t.Fatal(err)
	}
	changed := 0
	src, _, _, _ := train.LoadModelDir(dir)
	for _, n := range merged.Names {
		x, _ := base.Float32s(n)
		y, _ := merged.Float32s(n)
		z, _ := src.Float32s(n)
		for i := range x {
			if x[i] != y[i] {
				t.Fatalf("%s[%d]: base + adapter %g, model/ %g", n, i, x[i], y[i])
			}
			if y[i] != z[i] {
				changed++
			}
		}
	}
	if changed == 0 {
		t.Fatal("the merged model equals the base: the adapter learnt nothing")
	}
	if code := runGenerate([]string{"--model", dir, "--adapter", adapter, "--prompt", "Once upon a time", "--max-new", "8"}); code != contract.ExitOK {
		t.Errorf("generate --adapter exit %d", code)
	}
	// The run's last checkpoint holds the same adapter (under the model's names, in model.safetensors): generate
	// takes it as --adapter too and completes the same way.
	complete := func(adapterDir string) (int, string) {
		var code int
		out := captureStdout(t, func() {
			code = runGenerate([]string{"--model", dir, "--adapter", adapterDir, "--prompt", "Once upon a time", "--max-new", "8"})
		})
		return code, out
	}
	_, fromAdapter := complete(adapter)
	if code, fromCheckpoint := complete(filepath.Join(sftOut, "checkpoints", "step-00000003")); code != contract.ExitOK || fromCheckpoint != fromAdapter {
		t.Errorf("generate --adapter <checkpoint>: exit %d, %q; with adapter/: %q", code, fromCheckpoint, fromAdapter)
	}
	// An adapter, or a run's output directory, where a model is expected: the message says what it is.
	for _, c := range []struct{ model, want string }{
		{adapter, "holds a LoRA adapter"}, {sftOut, "is a run's output directory, not a model: it holds " + filepath.Join(sftOut, "model")},
	} {
		var code int
		stderr := captureStderr(t, func() { code = runGenerate([]string{"--model", c.model, "--prompt", "x"}) })
		if code != contract.ExitInvalidInput || !strings.Contains(stderr, c.want) {
			t.Errorf("generate --model %s: exit %d, stderr %q; want %q", c.model, code, stderr, c.want)
		}
	}
	if code := runGenerate([]string{"--model", dir, "--adapter", tmp, "--prompt", "x"}); code != contract.ExitInvalidInput {
		t.Errorf("generate --adapter on a directory without adapter_config.json: exit %d", code)
	}

	dpoOut, dterm := filepath.Join(tmp, "dpo"), filepath.Join(tmp, "dpo.term")
	if code := runDPO([]string{"--reference", dir, "--reference-adapter", adapter, "--data", demo, "--out", dpoOut,
		"--steps", "2", "--batch-size", "4", "--lora-rank", "4", "--lora-targets", "q_proj,v_proj", "--merged-model=false",
		"--termination-log", dterm}); code != contract.ExitOK {
		t.Fatalf("dpo exit %d", code)
	}
	if l := lossesOf(t, dpoOut); len(l) != 2 || l[0] != math.Ln2 {
		t.Errorf("LoRA DPO losses %v, want 2 steps starting at ln 2 exactly", l)
	}
	dres := readResult(t, dterm)
	// The DPO adapter was trained on the base with the SFT adapter merged: the result says to stack them, and
	// generate --adapter SFT --adapter DPO on the base completes as the DPO adapter on the SFT's merged model.
	if !warningsHave(dres.Warnings, "apply that adapter first") {
		t.Errorf("dpo warnings %q: want the lineage note", dres.Warnings)
	}
	stacked := captureStdout(t, func() {
		runGenerate([]string{"--model", dir, "--adapter", adapter, "--adapter", filepath.Join(dpoOut, "adapter"), "--prompt", "Once upon a time", "--max-new", "8"})
	})
	onMerged := captureStdout(t, func() {
		runGenerate([]string{"--model", filepath.Join(sftOut, "model"), "--adapter", filepath.Join(dpoOut, "adapter"), "--prompt", "Once upon a time", "--max-new", "8"})
	})
	if stacked == "" || stacked != onMerged {
		t.Errorf("stacked adapters: %q; DPO adapter on the SFT's merged model: %q", stacked, onMerged)
	}
	// The DPO adapter's directory records it (adapter_lineage.json), and generate warns when it comes alone.
	if l, ok, err := model.ReadAdapterLineage(filepath.Join(dpoOut, "adapter")); err != nil || !ok || len(l.AppliesAfter) != 1 || l.AppliesAfter[0] != adapter {
		t.Errorf("lineage %+v %v %v, want it to name %s", l, ok, err, adapter)
	}
	alone := captureStderr(t, func() {
		runGenerate([]string{"--model", dir, "--adapter", filepath.Join(dpoOut, "adapter"), "--prompt", "x", "--max-new", "2"})
	})
	if !strings.Contains(alone, "was trained on top of "+adapter) {
		t.Errorf("generate with the DPO adapter alone: stderr %q, want the lineage warning", alone)
	}
	if both := captureStderr(t, func() {
		runGenerate([]string{"--model", dir, "--adapter", adapter, "--adapter", filepath.Join(dpoOut, "adapter"), "--prompt", "x", "--max-new", "2"})
	}); strings.Contains(both, "trained on top of") {
		t.Errorf("generate with both adapters: stderr %q, want no warning", both)
	}
	if dres.ModelURI != "" || dres.AdapterURI == "" || dres.TrainableParameterCount != int64(5*4*((64+64)+(64+32))) {
		t.Errorf("dpo result: model %q, adapter %q, trainable %d", dres.ModelURI, dres.AdapterURI, dres.TrainableParameterCount)
	}
	if _, err := os.Stat(filepath.Join(dpoOut, "model")); !os.IsNotExist(err) {
		t.Errorf("--merged-model=false wrote model/ (%v)", err)
	}
	c, err := model.ReadAdapterConfig(filepath.Join(dpoOut, "adapter"))
	if err != nil || c.R != 4 || c.LoRAAlpha != 8 || c.BaseModelNameOrPath != dir {
		t.Errorf("dpo adapter_config.json %+v, %v", c, err)
	}

	if code := runSFT([]string{"--from", dir, "--data", demo, "--out", filepath.Join(tmp, "bad"), "--steps", "1",
		"--lora-rank", "4", "--lora-targets", "q_proj,c_attn"}); code != contract.ExitInvalidInput {
		t.Errorf("unknown --lora-targets: exit %d, want %d", code, contract.ExitInvalidInput)
	}
}

// chatPrefRows are conversational preference rows (TRL's conversational format: prompt, chosen and rejected are
// message lists).
const chatPrefRows = `{"prompt": [{"role": "user", "content": "Who was in the park?"}], "chosen": [{"role": "assistant", "content": "A little girl named Lily."}], "rejected": [{"role": "assistant", "content": "Nobody."}]}
{"prompt": [{"role": "user", "content": "What did she see?"}], "chosen": [{"role": "assistant", "content": "She saw a big, red ball."}], "rejected": [{"role": "assistant", "content": "A ball."}]}
{"prompt": [{"role": "user", "content": "Was it high?"}], "chosen": [{"role": "assistant", "content": "Yes, it was too high."}], "rejected": [{"role": "assistant", "content": "No."}]}
{"prompt": [{"role": "user", "content": "What did she do?"}], "chosen": [{"role": "assistant", "content": "She asked her mom for help."}], "rejected": [{"role": "assistant", "content": "She sat."}]}
`

// TestLoRAAdapterKeepsChatTemplate: an adapter-only SFT run (--merged-model=false) with an override template
// (--chat-template) writes the base's tokenizer files into adapter/ with that template in tokenizer_config.json (as
// PEFT's save_pretrained does given the tokenizer); a DPO run on it (--reference BASE --reference-adapter DIR, no
// --chat-template) renders its rows with the adapter's template, not the base's (stories260K has none: the
// built-in one), and records it in its own adapter/ and model/.
func TestLoRAAdapterKeepsChatTemplate(t *testing.T) {
	dir := storiesDir(t)
	tmp := t.TempDir()
	tmplFile := writeFile(t, "llama2.jinja", llama2Template)
	tok, err := tokenizer.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	sftOut := filepath.Join(tmp, "sft")
	if code, rec := recordRun(t, runSFT, "--from", dir, "--data", writeFile(t, "chat.jsonl", chatRows), "--out", sftOut,
		"--steps", "1", "--batch-size", "2", "--eval-fraction", "0", "--chat-template", tmplFile, "--lora-rank", "4",
		"--merged-model=false"); code != contract.ExitOK {
		t.Fatalf("sft exit %d (events %v)", code, rec.events)
	}
	adapter := filepath.Join(sftOut, "adapter")
	if _, err := os.Stat(filepath.Join(sftOut, "model")); !os.IsNotExist(err) {
		t.Fatalf("--merged-model=false wrote model/ (%v)", err)
	}
	c, err := tokenizer.ReadConfig(adapter)
	if err != nil || c.ChatTemplate != llama2Template || c.BOSToken != "<s>" {
		t.Fatalf("adapter/tokenizer_config.json: %v template %q bos %q", err, c.ChatTemplate, c.BOSToken)
	}
	if at, err := tokenizer.LoadDir(adapter); err != nil || at.VocabSize() != tok.VocabSize() {
		t.Fatalf("adapter/tokenizer.json: %v", err)
	}

	dpoOut := filepath.Join(tmp, "dpo")
	code, rec := recordRun(t, runDPO, "--reference", dir, "--reference-adapter", adapter, "--data", writeFile(t, "prefs.jsonl", chatPrefRows),
		"--out", dpoOut, "--steps", "1", "--batch-size", "2", "--eval-fraction", "0", "--lora-rank", "4")
	if code != contract.ExitOK {
		t.Fatalf("dpo exit %d (events %v)", code, rec.events)
	}
	if tr := rec.events["truncation"]; tr["chatTemplate"] != data.TemplateModel {
		t.Errorf("truncation event %v: want the template from the reference adapter's directory (origin %q)", tr, data.TemplateModel)
	}
	ex := rec.events["example"]
	ids := intsOf(t, ex["chosenTokens"])
	if prompt := tok.Decode(ids[:ex["chosenResponseStart"].(int)]); !strings.Contains(prompt, "[INST]") || strings.Contains(prompt, "<|user|>") {
		t.Errorf("DPO rendered the prompt as %q: want the SFT run's template ([INST] ... [/INST]), not the built-in one", prompt)
	}
	for _, d := range []string{filepath.Join(dpoOut, "adapter"), filepath.Join(dpoOut, "model")} {
		if c, err := tokenizer.ReadConfig(d); err != nil || c.ChatTemplate != llama2Template {
			t.Errorf("%s/tokenizer_config.json: %v template %q, want the SFT run's", d, err, c.ChatTemplate)
		}
	}
}
