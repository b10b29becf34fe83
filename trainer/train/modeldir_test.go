package train

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/preftune/preftune/trainer/checkpoint"
	"github.com/preftune/preftune/trainer/data"
	"github.com/preftune/preftune/trainer/hf"
	"github.com/preftune/preftune/trainer/model"
	"github.com/preftune/preftune/trainer/tokenizer"
)

// TestModelDirIsHuggingFaceLayout: the final model of a from-scratch run is a GPT2LMHeadModel directory
// (config.json with transformers' names and the tokenizer's special ids, "transformer."-prefixed F32 tensors)
// that trainer/hf and model.Load read; a directory of the layout before (GPT-2 names without the prefix, a
// config.json without architectures) still loads, to the same weights.
func TestModelDirIsHuggingFaceLayout(t *testing.T) {
	tok := tokenizer.NewByte()
	cfg := model.Config{VocabSize: tok.VocabSize(), ContextLength: 32, Layers: 1, DModel: 16, Heads: 2,
		Tokens: model.TokenIDs{BOS: tok.BOS(), EOS: []int{tok.EOS()}, PAD: tok.PAD()}}
	p := model.Init(cfg, tensor.Float32, 3)
	dir := filepath.Join(t.TempDir(), "model")
	if _, err := saveModel(dir, p, tok, ""); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, checkpoint.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	hc, err := hf.ParseConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	if hc.Architecture != "GPT2LMHeadModel" || *hc.BOSTokenID != tok.BOS() || !slices.Equal(hc.EOSTokenIDs, []int{tok.EOS()}) ||
		*hc.PadTokenID != tok.PAD() || !hc.TieWordEmbeddings {
		t.Fatalf("config.json %s", raw)
	}
	q, _, err := model.Load(dir, tensor.Float32, 0)
	if err != nil {
		t.Fatal(err)
	}
	r, rtok, _, err := LoadModelDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The byte tokenizer is written as a Hugging Face tokenizer.json (the npm tokenizers check of that file is
	// trainer/tokenizer's TestHFMatchesReference) with a tokenizer_config.json holding the built-in chat template,
	// and reads back as a tokenizer giving Byte's ids.
	tc, err := tokenizer.ReadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if tc.ChatTemplate != data.BuiltinChatTemplate {
		t.Errorf("tokenizer_config.json chat_template %q, want the built-in template", tc.ChatTemplate)
	}
	if _, ok := rtok.(*tokenizer.Pretrained); !ok {
		t.Fatalf("the model's tokenizer loads as %T, want the Hugging Face reader's", rtok)
	}
	for _, text := range []string{"<|user|>\n76+9=\n<|assistant|>\n", "héllo wörld ✓", ""} {
		if got, want := rtok.Encode(text), tok.Encode(text); !slices.Equal(got, want) {
			t.Errorf("Encode(%q) = %v, the byte tokenizer gives %v", text, got, want)
		}
	}
	if rtok.BOS() != tok.BOS() || rtok.EOS() != tok.EOS() || rtok.PAD() != tok.PAD() {
		t.Errorf("BOS/EOS/PAD %d/%d/%d, want %d/%d/%d", rtok.BOS(), rtok.EOS(), rtok.PAD(), tok.BOS(), tok.EOS(), tok.PAD())
	}
	want := p.Tensors()
	for _, got := range [][]model.Tensor{q.Tensors(), r.Tensors()} {
		for i, w := range want {
			if got[i].Name != w.Name || !strings.HasPrefix(w.Name, "transformer.") || !slices.Equal(got[i].Data, w.Data) {
				t.Fatalf("tensor %s read back as %s", w.Name, got[i].Name)
			}
		}
	}

	// The layout before: unprefixed names, the old config.json and tokenizer.json, no tokenizer_config.json.
	m, _, err := checkpoint.LoadModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	m.Tokenizer = []byte(`{"type": "byte", "vocab_size": 259, "bos": 256, "eos": 257, "pad": 258}`)
	m.Files = nil
	for i := range m.Tensors {
		m.Tensors[i].Name = strings.TrimPrefix(m.Tensors[i].Name, "transformer.")
	}
	m.Config, _ = json.Marshal(map[string]any{"model_type": "gpt2", "vocab_size": tok.VocabSize(), "n_positions": 32,
		"n_embd": 16, "n_layer": 1, "n_head": 2, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
		"bos_token_id": tok.BOS(), "eos_token_id": tok.EOS(), "pad_token_id": tok.PAD(), "tie_word_embeddings": true,
		"preftune_tokenizer": "byte"})
	old := filepath.Join(t.TempDir(), "old")
	if _, err := checkpoint.SaveModel(old, m); err != nil {
		t.Fatal(err)
	}
	o, _, _, err := LoadModelDir(old)
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range want {
		if got := o.Tensors()[i]; got.Name != w.Name || !slices.Equal(got.Data, w.Data) {
			t.Fatalf("old layout: tensor %s read as %s", w.Name, got.Name)
		}
	}
}
