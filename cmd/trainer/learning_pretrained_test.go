package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/data"
	"github.com/preftune/preftune/trainer/model"
	"github.com/preftune/preftune/trainer/storydata"
	"github.com/preftune/preftune/trainer/tokenizer"
	"github.com/preftune/preftune/trainer/train"
)

// The settings of the pretrained learning run (docs/learning-pretrained.md has the figures they give).
const (
	learnRows      = 600 // rows of each training file
	learnHeldOut   = 100 // held-out prompts for the rule's rate and the story loss
	learnSFTSteps  = 40
	learnDPOSteps  = 30
	learnBatchSize = 16
)

// Learning rates: SFT at 1e-3 raised the story loss by up to 0.23 nats/token (seeds 2 and 3) and DPO at 1e-3
// by up to 0.8 more; at 5e-4 both stay below the base model's (docs/learning-pretrained.md).
const learnSFTLR, learnDPOLR = "5e-4", "5e-4"

// TestLearnsPretrained fine-tunes stories260K, a real pretrained Llama, through the CLI's sft and dpo on the
// project's story data (trainer/storydata) and measures the rule (the continuation's first word is the friend's
// name) on held-out prompts, greedily, for the base model, after SFT and after DPO, and the loss per token on
// held-out plain story text.
//
// SFT trains on storydata.Stories (the openings continued as stories go: the friend is the subject 1 time in 7),
// so it learns the text without the preference; DPO (with RPO's NLL term, alpha 1, as the demo) trains on
// storydata.Generate's pairs against the SFT model. The test asserts that DPO raises the rule's rate well above
// SFT's, that the eval reward accuracy is high, and that the story loss stays within a bound of the base model's.
//
// One seed runs by default (60 to 100 s on 2 loaded cores); PREFTUNE_LEARNING_SEEDS=1,2,3 runs others (the
// figures in docs/learning-pretrained.md come from those three). -short skips it.
func TestLearnsPretrained(t *testing.T) {
	dir := storiesDir(t)
	if testing.Short() {
		t.Skip("-short: SFT then DPO on stories260K takes one to two minutes")
	}
	seeds := learningSeeds(t)
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) { learnPretrained(t, dir, seed) })
	}
}

func learnPretrained(t *testing.T, dir string, seed uint64) {
	tmp := t.TempDir()
	storiesFile, prefsFile, heldOut := writeStoryData(t, tmp, seed)

	seedFlag := strconv.FormatUint(seed, 10)
	sftOut, dpoOut := filepath.Join(tmp, "sft"), filepath.Join(tmp, "dpo")
	if code := runSFT([]string{"--from", dir, "--data", storiesFile, "--out", sftOut, "--steps", strconv.Itoa(learnSFTSteps),
		"--batch-size", strconv.Itoa(learnBatchSize), "--lr", learnSFTLR, "--seed", seedFlag, "--split-seed", seedFlag}); code != contract.ExitOK {
		t.Fatalf("sft exit %d", code)
	}
	if code := runDPO([]string{"--reference", filepath.Join(sftOut, "model"), "--data", prefsFile, "--out", dpoOut,
		"--steps", strconv.Itoa(learnDPOSteps), "--batch-size", strconv.Itoa(learnBatchSize), "--lr", learnDPOLR, "--beta", "0.1",
		"--rpo-alpha", "1", "--seed", seedFlag, "--split-seed", seedFlag}); code != contract.ExitOK {
		t.Fatalf("dpo exit %d", code)
	}
	last := lastMetrics(t, dpoOut)
	acc := last["eval_rewards/accuracies"]

	measure := func(modelDir string) figures {
		p, tok, _, err := train.LoadModelDir(modelDir)
		if err != nil {
			t.Fatal(err)
		}
		return figures{ruleRate(t, p, tok, heldOut), storyLoss(t, p, tok, heldOut)}
	}
	base, sft, dpo := measure(dir), measure(filepath.Join(sftOut, "model")), measure(filepath.Join(dpoOut, "model"))
	t.Logf("seed %d: rule rate on %d held-out prompts (greedy): base %.2f, SFT %.2f, DPO %.2f; eval reward accuracy %.3f, "+
		"eval margin %.3f; story loss (nats/token): base %.3f, SFT %.3f, DPO %.3f", seed, len(heldOut), base.rate, sft.rate,
		dpo.rate, acc, last["eval_rewards/margins"], base.storyLoss, sft.storyLoss, dpo.storyLoss)

	checkLearning(t, "", base, sft, dpo, acc)
}

// figures are one model's measurements in a learning test: its rule rate and its story loss (nats/token).
type figures struct{ rate, storyLoss float64 }

// checkLearning asserts what a learning test shows (kind is "" or "LoRA " in the messages): the base rarely meets
// the rule, DPO raises its rate at least 0.5 above SFT's, eval reward accuracy is at least 0.9, and the story
// text's loss after DPO is at most 0.2 nats/token above the base's (fine-tuning on these openings lowers it; DPO
// must not wreck the language model).
func checkLearning(t *testing.T, kind string, base, sft, dpo figures, acc float64) {
	t.Helper()
	if base.rate > 0.4 {
		t.Errorf("the base model meets the rule on %.2f of the held-out prompts: the rule should be one it rarely meets", base.rate)
	}
	if dpo.rate < sft.rate+0.5 {
		t.Errorf("rule rate after %sSFT %.2f, after %sDPO %.2f: want DPO at least 0.5 higher", kind, sft.rate, kind, dpo.rate)
	}
	if acc < 0.9 {
		t.Errorf("%sDPO eval rewards/accuracies %.3f, want >= 0.9", kind, acc)
	}
	if !(dpo.storyLoss <= base.storyLoss+0.2) {
		t.Errorf("story loss after %sDPO %.3f nats/token, base %.3f: more than 0.2 higher", kind, dpo.storyLoss, base.storyLoss)
	}
}

// learningSeeds are the seeds of a learning test: 1, or PREFTUNE_LEARNING_SEEDS (comma-separated).
func learningSeeds(t *testing.T) []uint64 {
	t.Helper()
	s := os.Getenv("PREFTUNE_LEARNING_SEEDS")
	if s == "" {
		return []uint64{1}
	}
	var seeds []uint64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
		if err != nil {
			t.Fatalf("PREFTUNE_LEARNING_SEEDS=%q: %v", s, err)
		}
		seeds = append(seeds, v)
	}
	return seeds
}

// writeStoryData writes the learning runs' data into dir: learnRows SFT rows (storydata's Stories) and learnRows
// preference pairs (storydata.Generate) from seed, and returns their files and learnHeldOut held-out openings drawn
// with seed + 1000, none of them in either file.
func writeStoryData(t *testing.T, dir string, seed uint64) (storiesFile, prefsFile string, heldOut []data.Row) {
	t.Helper()
	stories := storydata.Config{}.Stories(learnRows, seed)
	prefs := storydata.Generate(learnRows, seed)
	write := func(name string, rows []data.Row) string {
		path := filepath.Join(dir, name)
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := storydata.Write(f, rows); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		return path
	}
	storiesFile, prefsFile = write("stories.jsonl", stories), write("prefs.jsonl", prefs)
	seen := map[string]bool{}
	for _, r := range append(stories, prefs...) {
		seen[r.Prompt] = true
	}
	heldOut, err := storydata.Config{}.HeldOut(learnHeldOut, seed+1000, seen)
	if err != nil {
		t.Fatal(err)
	}
	return storiesFile, prefsFile, heldOut
}

// ruleRate is the share of rows whose prompt the model continues greedily (8 new tokens at most; a name is one to five of stories260K's tokens) so that
// storydata.Check holds.
func ruleRate(t *testing.T, p *model.Params, tok tokenizer.Tokenizer, rows []data.Row) float64 {
	t.Helper()
	ok := 0
	for _, r := range rows {
		text, err := train.Complete(p, tok, r.Prompt, 8, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		if storydata.Check(r.Prompt, text) {
			ok++
		}
	}
	return float64(ok) / float64(len(rows))
}

// storyLoss is the mean negative log-likelihood per token (nats; EOS included) of the rows' plain story text
// (storydata.Story), each text a whole sequence after BOS.
func storyLoss(t *testing.T, p *model.Params, tok tokenizer.Tokenizer, rows []data.Row) float64 {
	t.Helper()
	var sum float64
	var n int
	const batch = 16
	for i := 0; i < len(rows); i += batch {
		var ex []data.Example
		for _, r := range rows[i:min(i+batch, len(rows))] {
			ex = append(ex, data.Example{Chosen: data.Encode(tok, "", storydata.Story(r), p.ContextLength)})
		}
		s, k, err := p.EvalSFT(data.MakeBatch(tok, ex, contract.KindSFT, batch, p.ContextLength).Model())
		if err != nil {
			t.Fatal(err)
		}
		sum, n = sum+s, n+k
	}
	return sum / float64(n)
}

// lastMetrics merges out/metrics.jsonl's lines, later values over earlier ones.
func lastMetrics(t *testing.T, out string) map[string]float64 {
	t.Helper()
	f, err := os.Open(filepath.Join(out, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	last := map[string]float64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		for k, v := range m {
			if f, ok := v.(float64); ok {
				last[k] = f
			}
		}
	}
	return last
}
