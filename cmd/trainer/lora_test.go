package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/model"
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
