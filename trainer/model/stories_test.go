package model

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/preftune/preftune/trainer/hf"
)

// stories260K is a real pretrained Llama in Hugging Face's layout in the read-only shared folder beside the
// repository (its README.md describes it and the golden data).
var stories260K = filepath.Join("..", "..", "..", "shared", "models", "stories260K")

// loadStories loads stories260K through the model's own path (Load: config.json → FromHF → streamed weights),
// or skips the test when the shared folder is absent.
func loadStories(t *testing.T, dt tensor.Dtype) *Params {
	t.Helper()
	if _, err := os.Stat(filepath.Join(stories260K, hf.ConfigFile)); err != nil {
		t.Skipf("stories260K not available at %s: %v", stories260K, err)
	}
	p, _, err := Load(stories260K, dt, 0)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type storiesGolden struct {
	InputIDs   []int   `json:"input_ids"`
	LogProbSum float64 `json:"prompt_logprob_sum"`
	Positions  []struct {
		Top5 []struct {
			ID    int     `json:"id"`
			Logit float64 `json:"logit"`
		} `json:"top5"`
		LogSumExp float64 `json:"logsumexp"`
	} `json:"positions"`
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestStories260KGoldenLogits: the model loaded from the directory reproduces golden_logits.json (an
// independent float64 forward following transformers' LlamaForCausalLM): every top-5 logit and logsumexp
// within 1e-9 in float64 and 1e-4 in float32, and the prompt's log-prob sum through the training graphs' fused
// head too.
func TestStories260KGoldenLogits(t *testing.T) {
	for _, c := range []struct {
		dt  tensor.Dtype
		tol float64
	}{{tensor.Float64, 1e-9}, {tensor.Float32, 1e-4}} {
		p := loadStories(t, c.dt)
		var gd storiesGolden
		readJSON(t, filepath.Join(stories260K, "golden_logits.json"), &gd)
		n, V := len(gd.InputIDs), p.VocabSize
		if p.Family != Llama || p.Tokens.BOS != 1 || len(p.Tokens.EOS) != 1 || p.Tokens.EOS[0] != 2 || p.ContextLength != 512 {
			t.Fatalf("loaded config %+v", p.Config)
		}
		b := Batch{B: 1, T: n, N: 1, Inputs: gd.InputIDs, Targets: make([]int, n), Mask: make([]float32, n)}
		for i := 0; i+1 < n; i++ {
			b.Targets[i], b.Mask[i] = gd.InputIDs[i+1], 1
		}
		logits, err := p.Logits(b)
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for pos, want := range gd.Positions {
			row := logits[pos*V : (pos+1)*V]
			d := math.Abs(logSumExp(row) - want.LogSumExp)
			for _, top := range want.Top5 {
				d = max(d, math.Abs(row[top.ID]-top.Logit))
			}
			if d > c.tol {
				t.Errorf("%v position %d: differs from the golden logits by %.3g", c.dt, pos, d)
			}
			worst = max(worst, d)
		}
		sums, _, err := p.LogProbs(b)
		if err != nil {
			t.Fatal(err)
		}
		if p.Grads != nil {
			t.Errorf("forward-only use allocated %d gradients", len(p.Grads))
		}
		if d := math.Abs(sums[0] - gd.LogProbSum); d > c.tol {
			t.Errorf("%v: prompt log-prob sum %.10g, golden %.10g", c.dt, sums[0], gd.LogProbSum)
		}
		t.Logf("%v: worst difference from the golden logits %.3g, prompt log-prob sum %.10g (golden %.10g)", c.dt, worst, sums[0], gd.LogProbSum)
	}
}

// TestStories260KGreedy decodes 200 tokens greedily from BOS with the model's EOS as the stop id and expects
// llama2.c's expected_greedy_200.ids. float64 must match all 200. In float32 a near-tie may flip (the README
// measures float32 forwards within 1.2e-5 of float64): a difference is accepted only where float64's top two
// logits, given the expected prefix, are within 1e-4, and is reported with the position.
func TestStories260KGreedy(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(stories260K, "expected_greedy_200.ids"))
	if err != nil {
		t.Skipf("stories260K not available at %s: %v", stories260K, err)
	}
	var want []int
	for _, f := range strings.Fields(string(raw)) {
		id, err := strconv.Atoi(f)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
	}
	if len(want) != 200 {
		t.Fatalf("%d expected ids, want 200", len(want))
	}
	p64 := loadStories(t, tensor.Float64)
	got, err := p64.Generate([]int{p64.Tokens.BOS}, 200, 0, nil, p64.Tokens.EOS...)
	if err != nil {
		t.Fatal(err)
	}
	if !slicesEqual(got, want) {
		t.Fatalf("float64 greedy ids differ at %d: %v", firstDiff(got, want), got)
	}
	p32 := p64.Convert(tensor.Float32)
	got, err = p32.Generate([]int{p32.Tokens.BOS}, 200, 0, nil, p32.Tokens.EOS...)
	if err != nil {
		t.Fatal(err)
	}
	if i := firstDiff(got, want); i >= 0 {
		prefix := append([]int{p64.Tokens.BOS}, want[:i]...)
		b := Batch{B: 1, T: len(prefix), N: 1, Inputs: prefix, Targets: make([]int, len(prefix)), Mask: make([]float32, len(prefix))}
		logits, err := p64.Logits(b)
		if err != nil {
			t.Fatal(err)
		}
		row := logits[(len(prefix)-1)*p64.VocabSize : len(prefix)*p64.VocabSize]
		gap := row[want[i]] - row[got[i]]
		if gap > 1e-4 {
			t.Fatalf("float32 greedy id %d is %d, want %d: float64 prefers it by %.3g, not a near-tie", i, got[i], want[i], gap)
		}
		t.Logf("float32 greedy decoding flips a near-tie at position %d (%d instead of %d, float64 margin %.3g)", i, got[i], want[i], gap)
		return
	}
	t.Logf("float32 and float64 greedy decoding both reproduce the 200 ids")
}

func slicesEqual(a, b []int) bool { return firstDiff(a, b) < 0 }

// firstDiff is the first index where a and b differ (or one ends), -1 when they are equal.
func firstDiff(a, b []int) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// TestStories260KRoundTrip: load → save → load gives identical tensors and config, and the saved weights file
// is byte for byte the original (same names, order, dtype, header), with the tokenizer files copied.
func TestStories260KRoundTrip(t *testing.T) {
	p := loadStories(t, tensor.Float32)
	dir := filepath.Join(t.TempDir(), "out")
	res, err := p.Save(dir, hf.SaveOptions{SourceDir: stories260K})
	if err != nil {
		t.Fatal(err)
	}
	q, _, err := Load(dir, tensor.Float32, 0)
	if err != nil {
		t.Fatal(err)
	}
	sameTensors(t, p, q)
	if !configEqual(p.Config, q.Config) {
		t.Fatalf("config %+v after the round trip, want %+v", q.Config, p.Config)
	}
	a, _ := os.ReadFile(filepath.Join(stories260K, hf.WeightsFile))
	b, _ := os.ReadFile(filepath.Join(dir, hf.WeightsFile))
	if !bytes.Equal(a, b) {
		t.Fatalf("model.safetensors differs from the original (%d and %d bytes)", len(a), len(b))
	}
	// stories260K keeps its files the older way: no chat_template.jinja, every other tokenizer file.
	if len(res.Copied) != len(hf.TokenizerFiles)-1 || !slices.Equal(res.Missing, []string{"chat_template.jinja"}) {
		t.Fatalf("copied %v, missing %v", res.Copied, res.Missing)
	}
}
