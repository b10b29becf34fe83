package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/train"
)

// The settings of the LoRA learning run: TestLearnsPretrained's data, steps and batch size, with an adapter on every
// attention and MLP projection (docs/learning-pretrained.md has the figures and what they were chosen from).
const (
	loraLearnRank  = "8"
	loraLearnAlpha = "16"
	loraLearnSFTLR = "5e-4"
	loraLearnDPOLR = "2e-3"
)

// TestLoRALearnsPretrained is TestLearnsPretrained with LoRA: the same data (trainer/storydata: SFT on the story
// openings continued as stories go, DPO with RPO's NLL term, alpha 1, on the preference pairs), the same rule
// (storydata.Check: the continuation's first word is the friend's name) on the same held-out openings, the same
// steps and batch size; but SFT trains an adapter on the frozen stories260K (sft --lora-rank), and DPO trains a new
// adapter with the SFT adapter merged into its reference and starting weights (dpo --reference BASE
// --reference-adapter SFT/adapter --lora-rank). Asserted per seed, as the full test does: the base model's rate at
// most 0.4, DPO's rate at least 0.5 above SFT's, DPO's eval reward accuracy at least 0.9, and the story loss after
// DPO at most 0.2 nats/token above the base model's.
//
// One seed runs by default; PREFTUNE_LEARNING_SEEDS=1,2,3 runs others. -short skips it.
func TestLoRALearnsPretrained(t *testing.T) {
	dir := storiesDir(t)
	if testing.Short() {
		t.Skip("-short: LoRA SFT then LoRA DPO on stories260K takes about a minute")
	}
	for _, seed := range learningSeeds(t) {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) { loraLearnPretrained(t, dir, seed) })
	}
}

func loraLearnPretrained(t *testing.T, dir string, seed uint64) {
	tmp := t.TempDir()
	storiesFile, prefsFile, heldOut := writeStoryData(t, tmp, seed)
	rank, alpha, sftLR, dpoLR := loraLearnRank, loraLearnAlpha, loraLearnSFTLR, loraLearnDPOLR
	// Only for choosing the settings (docs/learning-pretrained.md); the test's figures come from the constants.
	for env, v := range map[string]*string{"PREFTUNE_LORA_RANK": &rank, "PREFTUNE_LORA_ALPHA": &alpha,
		"PREFTUNE_LORA_SFT_LR": &sftLR, "PREFTUNE_LORA_DPO_LR": &dpoLR} {
		if s := os.Getenv(env); s != "" {
			*v = s
		}
	}

	seedFlag := strconv.FormatUint(seed, 10)
	lora := []string{"--lora-rank", rank, "--lora-alpha", alpha, "--batch-size", strconv.Itoa(learnBatchSize),
		"--seed", seedFlag, "--split-seed", seedFlag}
	sftOut, dpoOut := filepath.Join(tmp, "sft"), filepath.Join(tmp, "dpo")
	sftTerm, dpoTerm := filepath.Join(tmp, "sft.term"), filepath.Join(tmp, "dpo.term")
	if code := runSFT(append([]string{"--from", dir, "--data", storiesFile, "--out", sftOut, "--steps", strconv.Itoa(learnSFTSteps),
		"--lr", sftLR, "--termination-log", sftTerm}, lora...)); code != contract.ExitOK {
		t.Fatalf("sft exit %d", code)
	}
	sftAdapter := filepath.Join(sftOut, "adapter")
	if code := runDPO(append([]string{"--reference", dir, "--reference-adapter", sftAdapter, "--data", prefsFile, "--out", dpoOut,
		"--steps", strconv.Itoa(learnDPOSteps), "--lr", dpoLR, "--beta", "0.1", "--rpo-alpha", "1", "--termination-log", dpoTerm},
		lora...)); code != contract.ExitOK {
		t.Fatalf("dpo exit %d", code)
	}
	sftRes, dpoRes := readResult(t, sftTerm), readResult(t, dpoTerm)
	for _, r := range []*contract.Result{sftRes, dpoRes} {
		if r.TrainableParameterCount <= 0 || r.TrainableParameterCount >= r.ParameterCount {
			t.Errorf("%s: trainable %d of %d parameters: want an adapter", r.ModelURI, r.TrainableParameterCount, r.ParameterCount)
		}
	}
	last := lastMetrics(t, dpoOut)
	acc := last["eval_rewards/accuracies"]

	measure := func(modelDir, adapter string) figures {
		p, tok, _, err := train.LoadModelDir(modelDir)
		if err != nil {
			t.Fatal(err)
		}
		if adapter != "" {
			if err := p.LoadAdapter(adapter); err != nil {
				t.Fatal(err)
			}
			p.MergeLoRA()
		}
		return figures{ruleRate(t, p, tok, heldOut), storyLoss(t, p, tok, heldOut)}
	}
	// SFT: the base with the adapter the run wrote; DPO: the merged model/ (SFT adapter and DPO adapter merged).
	base, sft, dpo := measure(dir, ""), measure(dir, sftAdapter), measure(filepath.Join(dpoOut, "model"), "")
	t.Logf("seed %d, LoRA rank %s alpha %s (%d of %d parameters trained), lr SFT %s DPO %s: rule rate on %d held-out prompts "+
		"(greedy): base %.2f, SFT %.2f, DPO %.2f; eval reward accuracy %.3f, eval margin %.3f; story loss (nats/token): "+
		"base %.3f, SFT %.3f, DPO %.3f", seed, rank, alpha, sftRes.TrainableParameterCount, sftRes.ParameterCount, sftLR, dpoLR,
		len(heldOut), base.rate, sft.rate, dpo.rate, acc, last["eval_rewards/margins"], base.storyLoss, sft.storyLoss, dpo.storyLoss)

	checkLearning(t, "LoRA ", base, sft, dpo, acc)
}
