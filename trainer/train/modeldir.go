package train

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"gorgonia.org/tensor"

	"github.com/preftune/preftune/trainer/checkpoint"
	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/model"
	"github.com/preftune/preftune/trainer/tokenizer"
)

// hfConfig is config.json as DESIGN.md specifies it: GPT-2's keys, so a GPT-2 implementation loads the weights.
type hfConfig struct {
	ModelType         string  `json:"model_type"`
	VocabSize         int     `json:"vocab_size"`
	NPositions        int     `json:"n_positions"`
	NEmbd             int     `json:"n_embd"`
	NLayer            int     `json:"n_layer"`
	NHead             int     `json:"n_head"`
	Activation        string  `json:"activation_function"`
	LayerNormEpsilon  float64 `json:"layer_norm_epsilon"`
	BOS               int     `json:"bos_token_id"`
	EOS               int     `json:"eos_token_id"`
	PAD               int     `json:"pad_token_id"`
	TieWordEmbeddings bool    `json:"tie_word_embeddings"`
	PreftuneTokenizer string  `json:"preftune_tokenizer"`
}

// tokenizerFile is tokenizer.json (DESIGN.md).
type tokenizerFile struct {
	Type      string `json:"type"`
	VocabSize int    `json:"vocab_size"`
	BOS       int    `json:"bos"`
	EOS       int    `json:"eos"`
	PAD       int    `json:"pad"`
}

// modelFiles renders a model directory's content from the weights and the tokenizer.
func modelFiles(p *model.Params, tok tokenizer.Tokenizer) (checkpoint.Model, error) {
	cfg, err := json.MarshalIndent(hfConfig{
		ModelType: "gpt2", VocabSize: p.VocabSize, NPositions: p.ContextLength, NEmbd: p.DModel, NLayer: p.Layers,
		NHead: p.Heads, Activation: "gelu_new", LayerNormEpsilon: 1e-5, BOS: tok.BOS(), EOS: tok.EOS(),
		PAD: tok.PAD(), TieWordEmbeddings: true, PreftuneTokenizer: tok.Name(),
	}, "", "  ")
	if err != nil {
		return checkpoint.Model{}, err
	}
	tk, err := json.MarshalIndent(tokenizerFile{Type: tok.Name(), VocabSize: tok.VocabSize(), BOS: tok.BOS(),
		EOS: tok.EOS(), PAD: tok.PAD()}, "", "  ")
	if err != nil {
		return checkpoint.Model{}, err
	}
	m := checkpoint.Model{Config: append(cfg, '\n'), Tokenizer: append(tk, '\n')}
	for _, t := range p.Tensors() {
		m.Tensors = append(m.Tensors, checkpoint.Tensor{Name: t.Name, Shape: t.Shape, Data: t.Data})
	}
	return m, nil
}

// LoadModelDir reads a model directory (or a checkpoint directory) into float32 Params and its tokenizer.
func LoadModelDir(dir string) (*model.Params, tokenizer.Tokenizer, string, error) {
	m, digest, err := checkpoint.LoadModel(dir)
	if err != nil {
		return nil, nil, "", err
	}
	p, tok, err := paramsOf(m, dir)
	return p, tok, digest, err
}

func paramsOf(m checkpoint.Model, dir string) (*model.Params, tokenizer.Tokenizer, error) {
	var tf tokenizerFile
	if err := json.Unmarshal(m.Tokenizer, &tf); err != nil {
		return nil, nil, fmt.Errorf("%s/%s: %v", dir, checkpoint.TokenizerFile, err)
	}
	tok, err := tokenizer.FromSpec(tf.Type, tf.VocabSize, tf.BOS, tf.EOS, tf.PAD, dir+"/"+checkpoint.TokenizerFile)
	if err != nil {
		return nil, nil, err
	}
	var hc hfConfig
	where := dir + "/" + checkpoint.ConfigFile
	if err := json.Unmarshal(m.Config, &hc); err != nil {
		return nil, nil, fmt.Errorf("%s: %v", where, err)
	}
	switch {
	case hc.ModelType != "gpt2":
		return nil, nil, fmt.Errorf("%s: field model_type is %q, want gpt2", where, hc.ModelType)
	case hc.Activation != "gelu_new":
		return nil, nil, fmt.Errorf("%s: field activation_function is %q, want gelu_new", where, hc.Activation)
	case !hc.TieWordEmbeddings:
		return nil, nil, fmt.Errorf("%s: field tie_word_embeddings is false, this trainer ties the LM head", where)
	case hc.VocabSize != tok.VocabSize():
		return nil, nil, fmt.Errorf("%s: field vocab_size is %d, the tokenizer has %d", where, hc.VocabSize, tok.VocabSize())
	}
	cfg := model.Config{VocabSize: hc.VocabSize, ContextLength: hc.NPositions, Layers: hc.NLayer, DModel: hc.NEmbd, Heads: hc.NHead}
	if err := cfg.Validate(); err != nil {
		return nil, nil, fmt.Errorf("%s: %v", where, err)
	}
	ts := make([]model.Tensor, len(m.Tensors))
	for i, t := range m.Tensors {
		ts[i] = model.Tensor{Name: t.Name, Shape: t.Shape, Data: t.Data}
	}
	p, err := model.FromTensors(cfg, tensor.Float32, ts)
	if err != nil {
		return nil, nil, fmt.Errorf("%s/%s: %v", dir, checkpoint.ModelFile, err)
	}
	return p, tok, nil
}

// describeModel fills the result's description of the model (for the run's status): its architecture as the
// saved config.json names it, its parameter count, and the starting model (URI as given, Hub commit, weights
// digest as loaded).
func (r *runner) describeModel(res *contract.Result, dir string) {
	res.Architecture = architectureOf(dir)
	res.ParameterCount = int64(r.policy.NumParams())
	switch {
	case r.cfg.Kind == contract.KindDPO && r.cfg.Reference != nil:
		res.SourceURI = r.cfg.Reference.ModelURI
	default:
		res.SourceURI = r.cfg.Model.From
	}
	if res.SourceURI != "" {
		res.SourceCommit, res.SourceDigest = r.sourceCommit, r.startDigest
	}
}

// modelFields describe the model loaded, for the "model" event (and the operator's status while the run trains):
// its parameter count and, when the starting model's config.json names it, its architecture.
func (r *runner) modelFields() map[string]any {
	f := map[string]any{"parameterCount": int64(r.policy.NumParams())}
	src := r.cfg.FromDir
	if r.cfg.Kind == contract.KindDPO {
		src = r.cfg.ReferenceDir
	}
	if a := architectureOf(src); src != "" && a != "" {
		f["architecture"] = a
	}
	return f
}

// architectureOf reads the architecture from a model directory's config.json: its "architectures" entry as
// transformers writes it, else the class transformers' AutoModelForCausalLM maps its model_type to ("" when
// neither says).
func architectureOf(dir string) string {
	raw, err := os.ReadFile(filepath.Join(dir, checkpoint.ConfigFile))
	if err != nil {
		return ""
	}
	var c struct {
		Architectures []string `json:"architectures"`
		ModelType     string   `json:"model_type"`
	}
	if json.Unmarshal(raw, &c) != nil {
		return ""
	}
	if len(c.Architectures) > 0 {
		return c.Architectures[0]
	}
	return map[string]string{
		"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM",
		"qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM",
	}[c.ModelType]
}
