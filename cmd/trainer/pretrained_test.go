package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/model"
	"github.com/preftune/preftune/trainer/tokenizer"
	"github.com/preftune/preftune/trainer/train"
)

// stories260K is a real pretrained Llama (../shared/models/stories260K/README.md).
const stories260K = "../../../shared/models/stories260K"

func storiesDir(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(stories260K, "model.safetensors")); err != nil {
		t.Skipf("%s is absent (../shared is the project's read-only test data beside the repository): %v", stories260K, err)
	}
	return stories260K
}

// TestGeneratePretrained: generate's path (LoadModelDir, the model's own tokenizer, BOS, stop tokens) decodes
// greedily from BOS what llama2.c does (expected_greedy_200.ids; the first 30 tokens).
func TestGeneratePretrained(t *testing.T) {
	dir := storiesDir(t)
	raw, err := os.ReadFile(filepath.Join(dir, "expected_greedy_200.ids"))
	if err != nil {
		t.Fatal(err)
	}
	var want []int
	for _, f := range strings.Fields(string(raw))[:30] {
		id, err := strconv.Atoi(f)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
	}
	p, tok, _, err := train.LoadModelDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Name() != tokenizer.HFName || tok.BOS() != 1 || tok.EOS() != 2 {
		t.Fatalf("tokenizer %s BOS %d EOS %d, want huggingface 1 2", tok.Name(), tok.BOS(), tok.EOS())
	}
	in := train.PromptIDs(tok, "")
	ids, err := p.Generate(in, 30, 0, nil, tok.EOS())
	if err != nil {
		t.Fatal(err)
	}
	if len(in) != 1 || in[0] != 1 || len(ids) != 30 {
		t.Fatalf("prompt %v, %d ids", in, len(ids))
	}
	for i := range want {
		if ids[i] != want[i] {
			t.Fatalf("greedy id %d is %d, want %d (got %v)", i, ids[i], want[i], ids)
		}
	}
	// Through generate's JSON-lines path: the completion is the text of those ids, the start of the README's text.
	g := generator{p: p, tok: tok, maxNew: 30}
	var out bytes.Buffer
	if err := g.file(strings.NewReader(`{"prompt": ""}`+"\n"), &out, "prompts"); err != nil {
		t.Fatal(err)
	}
	var row struct{ Completion string }
	if err := json.Unmarshal(out.Bytes(), &row); err != nil {
		t.Fatal(err)
	}
	text, _ := os.ReadFile(filepath.Join(dir, "expected_greedy_200.txt"))
	if row.Completion != tok.Decode(want) || len(row.Completion) < 60 || !strings.HasPrefix(string(text), row.Completion) {
		t.Fatalf("completion %q is not the start of expected_greedy_200.txt %q", row.Completion, string(text)[:80])
	}
}

// TestSFTThenDPOPretrained fine-tunes stories260K through the CLI: sft --from the Hugging Face directory writes
// model/ in that layout (model.Load and tokenizer.Load read it back), and dpo --reference that model starts at
// loss ln 2 (policy == reference).
func TestSFTThenDPOPretrained(t *testing.T) {
	dir := storiesDir(t)
	tmp := t.TempDir()
	demo := filepath.Join(tmp, "demo.jsonl")
	if code := demoData([]string{"--out", demo, "--n", "64", "--seed", "3"}, &bytes.Buffer{}, &bytes.Buffer{}); code != 0 {
		t.Fatalf("demo-data exit %d", code)
	}
	sftOut := filepath.Join(tmp, "sft")
	if code := runSFT([]string{"--from", dir, "--data", demo, "--out", sftOut, "--steps", "3", "--batch-size", "4"}); code != contract.ExitOK {
		t.Fatalf("sft exit %d", code)
	}
	md := filepath.Join(sftOut, "model")
	for _, f := range []string{"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"} {
		if _, err := os.Stat(filepath.Join(md, f)); err != nil {
			t.Errorf("model/%s: %v", f, err)
		}
	}
	p, _, err := model.Load(md, tensor.Float32, 0)
	if err != nil {
		t.Fatalf("model.Load(model/): %v", err)
	}
	src, _, err := model.Load(dir, tensor.Float32, 0)
	if err != nil {
		t.Fatal(err)
	}
	if p.Family != model.Llama || p.NumParams() != src.NumParams() {
		t.Errorf("saved model: family %v, %d parameters; source %d", p.Family, p.NumParams(), src.NumParams())
	}
	a, _ := p.Float32s("model.embed_tokens.weight")
	b, _ := src.Float32s("model.embed_tokens.weight")
	same := len(a) == len(b)
	for i := 0; same && i < len(a); i++ {
		same = a[i] == b[i]
	}
	if same {
		t.Errorf("model.embed_tokens.weight did not change in 3 SFT steps")
	}
	tok, err := tokenizer.Load(md)
	if err != nil || tok.Name() != tokenizer.HFName || tok.BOS() != 1 {
		t.Fatalf("tokenizer.Load(model/): %v %v", tok, err)
	}

	// The last checkpoint holds the same model with the source's tokenizer files, and loads the same way.
	cp, ctok, _, err := train.LoadModelDir(filepath.Join(sftOut, "checkpoints", "step-00000003"))
	if err != nil {
		t.Fatalf("LoadModelDir(checkpoint): %v", err)
	}
	if ctok.Name() != tokenizer.HFName || ctok.BOS() != 1 || ctok.EOS() != 2 {
		t.Errorf("checkpoint tokenizer %s BOS %d EOS %d", ctok.Name(), ctok.BOS(), ctok.EOS())
	}
	for _, name := range p.Names {
		x, _ := p.Float32s(name)
		y, _ := cp.Float32s(name)
		for i := range x {
			if x[i] != y[i] {
				t.Fatalf("checkpoint tensor %s[%d] = %g, model/ has %g", name, i, y[i], x[i])
			}
		}
	}

	// On story text, the kind stories260K was trained on, the first step's loss is far below a uniform guess
	// over 512 tokens (ln 512 = 6.24): weights and tokenizer line up.
	story := filepath.Join(tmp, "story.jsonl")
	var rows strings.Builder
	for i := 0; i < 4; i++ {
		rows.WriteString(`{"prompt": "Once upon a time, there was a little girl named Lily.", "completion": " She loved to play outside in the park."}` + "\n")
		rows.WriteString(`{"prompt": "One day, she saw a big, red ball.", "completion": " She wanted to play with it, but it was too high."}` + "\n")
	}
	if err := os.WriteFile(story, []byte(rows.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	storyOut := filepath.Join(tmp, "story")
	if code := runSFT([]string{"--from", dir, "--data", story, "--out", storyOut, "--steps", "1", "--batch-size", "4"}); code != contract.ExitOK {
		t.Fatalf("sft on story text: exit %d", code)
	}
	if ls := lossesOf(t, storyOut); len(ls) != 1 || ls[0] > 4 {
		t.Errorf("SFT losses on story text %v, want one step below 4 nats per token", ls)
	}
	// --context is the model's own: refused with --from.
	if code := runSFT([]string{"--from", dir, "--data", story, "--out", filepath.Join(tmp, "ctx"), "--steps", "1", "--context", "1024"}); code != contract.ExitUsage {
		t.Errorf("sft --from --context 1024: exit %d, want %d", code, contract.ExitUsage)
	}

	dpoOut := filepath.Join(tmp, "dpo")
	if code := runDPO([]string{"--reference", md, "--data", demo, "--out", dpoOut, "--steps", "2", "--batch-size", "4"}); code != contract.ExitOK {
		t.Fatalf("dpo exit %d", code)
	}
	losses := lossesOf(t, dpoOut)
	if len(losses) != 2 || math.Abs(losses[0]-math.Ln2) > 1e-5 {
		t.Fatalf("DPO training losses %v, want 2 steps starting at ln 2 = %.6f", losses, math.Ln2)
	}
	if _, err := os.Stat(filepath.Join(dpoOut, "model", "tokenizer_config.json")); err != nil {
		t.Errorf("DPO model/: %v", err)
	}
}

// lossesOf returns the training losses of out/metrics.jsonl, by step.
func lossesOf(t *testing.T, out string) []float64 {
	t.Helper()
	f, err := os.Open(filepath.Join(out, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var losses []float64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		if l, ok := m["loss"].(float64); ok {
			losses = append(losses, l)
		}
	}
	return losses
}
