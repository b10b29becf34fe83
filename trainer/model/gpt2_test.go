package model

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/preftune/preftune/trainer/hf"
	"github.com/preftune/preftune/trainer/safetensors"
)

// TestGPT2SavesInHuggingFaceLayout: a from-scratch GPT is written as GPT2LMHeadModel (config.json with
// transformers' field names, "transformer."-prefixed tensors, tied head) and loads back identically.
func TestGPT2SavesInHuggingFaceLayout(t *testing.T) {
	cfg := tiny
	cfg.Tokens = TokenIDs{BOS: 34, EOS: []int{35}, PAD: 36}
	p := Init(cfg, tensor.Float32, 60)
	dir := writeModel(t, p, hf.SaveOptions{})
	var c map[string]any
	raw, err := os.ReadFile(filepath.Join(dir, hf.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"model_type": "gpt2", "n_embd": 16.0, "n_layer": 2.0, "n_head": 2.0,
		"n_positions": 8.0, "vocab_size": 37.0, "activation_function": "gelu_new", "tie_word_embeddings": true,
		"bos_token_id": 34.0, "eos_token_id": 35.0, "pad_token_id": 36.0, "torch_dtype": "float32"} {
		if c[k] != want {
			t.Errorf("config.json %s = %v, want %v", k, c[k], want)
		}
	}
	if a, _ := c["architectures"].([]any); len(a) != 1 || a[0] != "GPT2LMHeadModel" {
		t.Errorf("architectures %v", c["architectures"])
	}
	w, err := hf.OpenWeights(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, ti := range w.Tensors {
		if !strings.HasPrefix(ti.Name, "transformer.") {
			t.Errorf("tensor %s has no transformer. prefix", ti.Name)
		}
	}
	q, _, err := Load(dir, tensor.Float32, 0)
	if err != nil {
		t.Fatal(err)
	}
	sameTensors(t, p, q)
	if !configEqual(p.Config, q.Config) {
		t.Fatalf("config %+v after the round trip, want %+v", q.Config, p.Config)
	}
}

// TestGPT2ReadsFilesWithoutPrefix: GPT-2 files with GPT2Model's names (no "transformer." prefix), which is how
// this trainer wrote models before the Hugging Face layout, load under the canonical names and compute the same.
func TestGPT2ReadsFilesWithoutPrefix(t *testing.T) {
	p := Init(tiny, tensor.Float32, 61)
	dir := writeModel(t, p, hf.SaveOptions{})
	var st []safetensors.Tensor
	for _, w := range p.Tensors() {
		st = append(st, safetensors.Tensor{Name: strings.TrimPrefix(w.Name, "transformer."), Shape: w.Shape, Data: w.Data})
	}
	raw, err := safetensors.Encode(st, map[string]string{"format": "pt"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, hf.WeightsFile), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	old := `{"model_type": "gpt2", "vocab_size": 37, "n_positions": 8, "n_embd": 16, "n_layer": 2, "n_head": 2,
		"activation_function": "gelu_new", "layer_norm_epsilon": 1e-5, "tie_word_embeddings": true, "preftune_tokenizer": "byte"}`
	if err := os.WriteFile(filepath.Join(dir, hf.ConfigFile), []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	q, _, err := Load(dir, tensor.Float32, 0)
	if err != nil {
		t.Fatal(err)
	}
	sameTensors(t, p, q)
	hc, err := hf.ParseConfig([]byte(old))
	if err != nil {
		t.Fatal(err)
	}
	r, err := FromHFTensors(hc, 0, tensor.Float32, tensorsNamed(st))
	if err != nil {
		t.Fatal(err)
	}
	sameTensors(t, p, r)
}

func tensorsNamed(st []safetensors.Tensor) []Tensor {
	out := make([]Tensor, len(st))
	for i, s := range st {
		out[i] = Tensor{Name: s.Name, Shape: s.Shape, Data: s.Data}
	}
	return out
}

// TestGPT2UnsupportedVariantsRefused: what the GPT-2 model does not compute is refused naming the field.
func TestGPT2UnsupportedVariantsRefused(t *testing.T) {
	base := `{"architectures": ["GPT2LMHeadModel"], "vocab_size": 37, "n_positions": 8, "n_embd": 16, "n_layer": 2, "n_head": 2`
	for field, cfg := range map[string]string{
		"activation_function": base + `, "activation_function": "gelu"}`,
		"layer_norm_epsilon":  base + `, "layer_norm_epsilon": 1e-6}`,
		"n_positions":         base + `}`, // context 16 asked below
	} {
		hc, err := hf.ParseConfig([]byte(cfg))
		if err != nil {
			t.Fatal(err)
		}
		ctx := 0
		if field == "n_positions" {
			ctx = 16
		}
		_, err = FromHF(hc, ctx)
		var ue *hf.UnsupportedError
		if !errors.As(err, &ue) || ue.Field != field {
			t.Errorf("%s: error %v, want ModelUnsupported naming it", field, err)
		}
	}
	// Token id 0 for BOS and PAD, no EOS: kept as given, not taken for "none set".
	hc, err := hf.ParseConfig([]byte(base + `, "bos_token_id": 0, "pad_token_id": 0}`))
	if err != nil {
		t.Fatal(err)
	}
	if c, err := FromHF(hc, 0); err != nil || c.Tokens.BOS != 0 || c.Tokens.PAD != 0 || len(c.Tokens.EOS) != 0 {
		t.Fatalf("tokens %+v, %v; want BOS 0, PAD 0, no EOS", c.Tokens, err)
	}
	// An untied GPT-2 (tie_word_embeddings false) has lm_head.weight and uses it.
	hc, err = hf.ParseConfig([]byte(base + `, "tie_word_embeddings": false}`))
	if err != nil {
		t.Fatal(err)
	}
	c, err := FromHF(hc, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := Init(c, tensor.Float64, 62)
	if !slices.Contains(p.Names, "lm_head.weight") {
		t.Fatalf("untied GPT-2 has no lm_head.weight: %v", p.Names)
	}
	perturb(p, 63)
	b := randomBatch(64, 2, 8, c.VocabSize)
	if _, _, err := p.SFTStep(b); err != nil {
		t.Fatal(err)
	}
	if g := flat(p, true); g[len(g)-1] == 0 {
		t.Fatal("no gradient reached lm_head.weight")
	}
}
