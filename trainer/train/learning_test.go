package train

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/data"
	"github.com/preftune/preftune/trainer/demodata"
)

// checkRate is the share of prompts whose greedy completion by the model in dir satisfies demodata.Check.
func checkRate(t *testing.T, dir string, prompts []string) float64 {
	t.Helper()
	p, tok, _, err := LoadModelDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	ok := 0
	for _, pr := range prompts {
		text, err := Complete(p, tok, pr, 6, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		if demodata.Check(pr, text) {
			ok++
		}
	}
	return float64(ok) / float64(len(prompts))
}

// TestLearnsDemoData trains SFT then DPO on the synthetic addition data and checks that both learn: SFT lowers the
// eval loss; DPO raises the eval reward accuracy to 0.9 or more and makes greedy answers right more often.
//
// Difficulty 1 (single-digit sums) because a model this small (2 layers, width 64) gets about 1% of the default
// level-2 sums right after 300 SFT steps, far beyond a test's budget. SFT is kept short on purpose (about 30% right)
// so that there is room for DPO to show. DPO uses RPO (alpha 1): plain sigmoid DPO at this learning rate pushes the
// chosen answers' likelihood down along with the rejected ones (likelihood displacement) and greedy accuracy
// falls to 0.
func TestLearnsDemoData(t *testing.T) {
	dir := t.TempDir()
	rows, err := demodata.Config{Difficulty: 1}.Generate(1000, 1)
	if err != nil {
		t.Fatal(err)
	}
	dataPath := filepath.Join(dir, "demo.jsonl")
	f, err := os.Create(dataPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := demodata.Write(f, rows); err != nil {
		t.Fatal(err)
	}
	f.Close()

	sftCfg := tinySFT(dataPath, filepath.Join(dir, "sft"), 100)
	sftCfg.Model.Architecture = &contract.Architecture{Layers: 2, DModel: 64, Heads: 4, ContextLength: 16}
	sftCfg.Training.BatchSize = 32
	sftCfg.Training.LearningRate = 1e-2
	sftCfg.Training.WarmupSteps = 10
	sftCfg.Training.EvalEvery = 10
	// The run was tuned with cosine decay to 0 and 14 of the 100 prompts held out (the split then took every
	// prompt whose hash fell below the fraction; it now takes the lowest hashes up to the fraction of rows, so
	// 0.14 holds out the same 14 prompts).
	sftCfg.Training.MinLearningRateRatio = ptrTo(0.0)
	sftCfg.Dataset.EvalFraction = 0.14
	sft := mustRun(t, sftCfg)
	var evals []float64
	for _, m := range readMetrics(t, filepath.Join(dir, "sft")) {
		if l, ok := m["eval_loss"]; ok {
			evals = append(evals, l)
		}
	}
	t.Logf("SFT eval_loss by 10 steps: %.3f", evals)
	if uniform := math.Log(259); !(evals[len(evals)-1] < evals[0] && evals[len(evals)-1] < uniform/4) {
		t.Errorf("SFT did not lower the eval loss enough: %v (a uniform guess is %.2f)", evals, uniform)
	}

	dpoCfg := tinyDPO(dataPath, sft.ModelURI, filepath.Join(dir, "dpo"), 150)
	dpoCfg.Training.BatchSize = 32
	dpoCfg.Training.LearningRate = 3e-3
	dpoCfg.Training.WarmupSteps = 10
	dpoCfg.Training.EvalEvery = 50
	dpoCfg.Training.MinLearningRateRatio = ptrTo(0.0)
	dpoCfg.Dataset.EvalFraction = sftCfg.Dataset.EvalFraction
	dpoCfg.DPO.RPOAlpha = 1
	dpo := mustRun(t, dpoCfg)
	acc := dpo.Metrics["eval_rewards/accuracies"]

	// Every level-1 prompt, and the held-out ones alone.
	split, err := data.Split(rows, sftCfg.Dataset.EvalFraction, sftCfg.Dataset.Seed)
	if err != nil || split.By != data.SplitByPrompt {
		t.Fatalf("split by %q: %v", split.By, err)
	}
	evalPrompts := map[string]bool{}
	for _, r := range split.Eval {
		evalPrompts[r.Prompt] = true
	}
	var all, heldOut []string
	for a := range 10 {
		for b := range 10 {
			p := demodata.Prompt(a, b)
			all = append(all, p)
			if evalPrompts[p] {
				heldOut = append(heldOut, p)
			}
		}
	}
	sftAll, dpoAll := checkRate(t, filepath.Join(dir, "sft", "model"), all), checkRate(t, filepath.Join(dir, "dpo", "model"), all)
	sftHeld, dpoHeld := checkRate(t, filepath.Join(dir, "sft", "model"), heldOut), checkRate(t, filepath.Join(dir, "dpo", "model"), heldOut)
	t.Logf("DPO eval rewards/accuracies %.3f, eval rewards/chosen %.3f, margins %.3f", acc,
		dpo.Metrics["eval_rewards/chosen"], dpo.Metrics["eval_rewards/margins"])
	t.Logf("greedy answers right: SFT %.2f -> DPO %.2f on all 100 prompts; SFT %.2f -> DPO %.2f on the %d held-out prompts",
		sftAll, dpoAll, sftHeld, dpoHeld, len(heldOut))
	// These thresholds compare figures of one numeric path: `go test` builds the pure-Go trainer, whose arithmetic
	// is the same on every x86-64 CPU (gonum's and gorgonia's kernels have no run-time CPU dispatch, nothing calls
	// math.FMA, and Go's amd64 compiler does not fuse multiply-adds), so this test sees the same numbers on every
	// machine of this project; the OpenBLAS build, whose kernels differ by CPU, is the e2e's and the demo's, and
	// their thresholds carry the margin hack/spread.sh measured (hack/demo/learning.env).
	if acc < 0.9 {
		t.Errorf("DPO eval rewards/accuracies %.3f, want >= 0.9", acc)
	}
	if dpoAll < sftAll+0.2 {
		t.Errorf("greedy answers right: SFT %.2f, after DPO %.2f; want at least 0.2 more", sftAll, dpoAll)
	}
	if dpoHeld < sftHeld {
		t.Errorf("held-out prompts: SFT %.2f, after DPO %.2f; DPO made them worse", sftHeld, dpoHeld)
	}
	if len(dpo.Warnings) != 0 {
		t.Errorf("warnings: %v", dpo.Warnings)
	}
}
