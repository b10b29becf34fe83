package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/model"
	"github.com/preftune/preftune/trainer/train"
)

// friendRows is this test's own preference data for a TinyStories model: an opening names a character and a
// friend; the preferred next sentence has the friend as its subject, the rejected one the character (or a
// pronoun), which is what stories260K writes by habit. friendRule checks a continuation: its first word is the
// friend's name. Held-out prompts use name pairs the training rows never pair (heldOut true).
type friendRow struct {
	Prompt, Chosen, Rejected, Friend string
}

var (
	friendGirls = []string{"Lily", "Sue", "Anna", "Mia", "Lucy", "Amy"}
	friendBoys  = []string{"Tom", "Ben", "Tim", "Sam", "Max", "Jack"}
	friendDid   = []string{"went to the park.", "found a big box.", "saw a little bird.", "had a new toy.",
		"made a big cake.", "saw a big tree.", "went to the beach.", "found a red ball."}
)

func friendData(n int, seed uint64, heldOut bool) []friendRow {
	rng := rand.New(rand.NewPCG(seed, 12))
	var rows []friendRow
	for len(rows) < n {
		girl := rng.IntN(2) == 0
		hero, friend := friendBoys[rng.IntN(6)], friendGirls[rng.IntN(6)]
		pron, kind := "He", "boy"
		if girl {
			hero, friend, pron, kind = friend, hero, "She", "girl"
		}
		// The held-out split: name pairs whose lengths sum to a multiple of 3.
		if (len(hero)+len(friend))%3 == 0 != heldOut {
			continue
		}
		did := friendDid[rng.IntN(len(friendDid))]
		prompt := fmt.Sprintf("Once upon a time, there was a little %s named %s. %s had a friend named %s. One day,", kind, hero, pron, friend)
		rejected := hero + " " + did
		if rng.IntN(2) == 0 {
			rejected = strings.ToLower(pron) + " " + did
		}
		rows = append(rows, friendRow{Prompt: prompt, Chosen: friend + " " + did, Rejected: rejected, Friend: friend})
	}
	return rows
}

// friendRule: the continuation's first word is the friend's name.
func friendRule(r friendRow, completion string) bool {
	f := strings.Fields(completion)
	return len(f) > 0 && strings.Trim(f[0], ".,!?") == r.Friend
}

func writeJSONL(t *testing.T, path string, rows []map[string]string) {
	t.Helper()
	var b strings.Builder
	for _, r := range rows {
		line, _ := json.Marshal(r)
		b.Write(line)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// storyNLL is the model's mean NLL per token on plain TinyStories-like text (not the preference data).
func storyNLL(t *testing.T, dir string) float64 {
	t.Helper()
	p, tok, _, err := train.LoadModelDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	var n int
	for _, text := range []string{
		"Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big red ball.",
		"Tom and his mom went to the store. They bought some apples and a big cake. Tom was very happy.",
		"The sun was hot and the sky was blue. A little bird sat on a tree and sang a happy song.",
	} {
		ids := train.PromptIDs(tok, text)
		T := len(ids) - 1
		b := model.Batch{B: 1, T: T, N: 1, Inputs: ids[:T], Targets: ids[1:], Mask: make([]float32, T)}
		for i := range b.Mask {
			b.Mask[i] = 1
		}
		s, k, err := p.EvalSFT(b)
		if err != nil {
			t.Fatal(err)
		}
		sum += s
		n += k
	}
	return sum / float64(n)
}

func friendRate(t *testing.T, base, adapter string, rows []friendRow) float64 {
	t.Helper()
	p, tok, _, err := train.LoadModelDir(base)
	if err != nil {
		t.Fatal(err)
	}
	if adapter != "" {
		if err := p.LoadAdapter(adapter); err != nil {
			t.Fatal(err)
		}
		p.MergeLoRA()
	}
	ok := 0
	for _, r := range rows {
		text, err := train.Complete(p, tok, r.Prompt, 4, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		if friendRule(r, text) {
			ok++
		}
	}
	return float64(ok) / float64(len(rows))
}

// TestLoRALearnsOnStories260K: LoRA SFT on story text (the friend as subject in a fifth of the rows, as stories
// go), then LoRA DPO on the preference pairs with the SFT adapter merged into the reference, on stories260K
// through the CLI. The rule's greedy rate on held-out prompts must rise measurably under DPO, DPO's eval reward
// accuracy must be well above chance, and the NLL on plain story text must not collapse. Measured (2026-11-30):
// rule rate base 0.57, after LoRA SFT 0.17, after LoRA DPO 0.93; eval reward accuracy 1.00; story NLL per token
// 0.996, 1.329, 1.539.
func TestLoRALearnsOnStories260K(t *testing.T) {
	dir := storiesDir(t)
	tmp := t.TempDir()
	pairs, held := friendData(160, 1, false), friendData(30, 2, true)
	var sftRows, dpoRows []map[string]string
	rng := rand.New(rand.NewPCG(3, 4))
	for _, r := range pairs {
		c := r.Rejected
		if rng.IntN(5) == 0 {
			c = r.Chosen
		}
		sftRows = append(sftRows, map[string]string{"prompt": r.Prompt, "completion": c})
		dpoRows = append(dpoRows, map[string]string{"prompt": r.Prompt, "chosen": r.Chosen, "rejected": r.Rejected})
	}
	sftData, dpoData := filepath.Join(tmp, "sft.jsonl"), filepath.Join(tmp, "dpo.jsonl")
	writeJSONL(t, sftData, sftRows)
	writeJSONL(t, dpoData, dpoRows)

	base := friendRate(t, dir, "", held)
	sftOut := filepath.Join(tmp, "sft")
	if code := runSFT([]string{"--from", dir, "--data", sftData, "--out", sftOut, "--steps", "30", "--batch-size", "8",
		"--lora-rank", "8", "--lr", "2e-3"}); code != contract.ExitOK {
		t.Fatalf("sft exit %d", code)
	}
	sft := friendRate(t, dir, filepath.Join(sftOut, "adapter"), held)
	dpoOut, term := filepath.Join(tmp, "dpo"), filepath.Join(tmp, "dpo.term")
	if code := runDPO([]string{"--reference", dir, "--reference-adapter", filepath.Join(sftOut, "adapter"), "--data", dpoData,
		"--out", dpoOut, "--steps", "40", "--batch-size", "8", "--lora-rank", "8", "--lr", "2e-3", "--beta", "0.1",
		"--rpo-alpha", "0.5", "--termination-log", term}); code != contract.ExitOK {
		t.Fatalf("dpo exit %d", code)
	}
	res := readResult(t, term)
	dpo := friendRate(t, filepath.Join(dpoOut, "model"), "", held)
	acc := res.Metrics["eval_rewards/accuracies"]
	nllBase, nllSFT, nllDPO := storyNLL(t, dir), storyNLL(t, filepath.Join(sftOut, "model")), storyNLL(t, filepath.Join(dpoOut, "model"))
	t.Logf("rule rate on %d held-out prompts: base %.2f, after LoRA SFT %.2f, after LoRA DPO %.2f; eval reward accuracy %.2f; "+
		"NLL per token on plain story text: base %.3f, after LoRA SFT %.3f, after LoRA DPO %.3f", len(held), base, sft, dpo, acc, nllBase, nllSFT, nllDPO)
	if dpo < sft+0.3 || acc < 0.8 {
		t.Errorf("LoRA DPO did not move the rule: %.2f -> %.2f (eval reward accuracy %.2f)", sft, dpo, acc)
	}
	// SFT on 160 near-identical openings costs some story-text likelihood; DPO must not add much to it, and the
	// result stays far from a collapsed model (a uniform guess is ln 512 = 6.24 nats).
	if nllDPO > nllSFT+0.5 || nllDPO > nllBase+1 {
		t.Errorf("story text NLL %.3f (base) -> %.3f (SFT) -> %.3f (DPO): the model's language modelling collapsed", nllBase, nllSFT, nllDPO)
	}
}
