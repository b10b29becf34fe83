package train

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gorgonia.org/tensor"

	"github.com/preftune/preftune/trainer/checkpoint"
	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/data"
	"github.com/preftune/preftune/trainer/hf"
	"github.com/preftune/preftune/trainer/model"
	"github.com/preftune/preftune/trainer/tokenizer"
)

// tokenizerFile is tokenizer.json (DESIGN.md).
type tokenizerFile struct {
	Type      string `json:"type"`
	VocabSize int    `json:"vocab_size"`
	BOS       int    `json:"bos"`
	EOS       int    `json:"eos"`
	PAD       int    `json:"pad"`
}

// modelFiles renders a model directory's content from the weights and the tokenizer: config.json and tensor
// names in Hugging Face's layout (model.Params.HFConfig; a from-scratch GPT is a GPT2LMHeadModel with
// "transformer."-prefixed tensors), so transformers loads the weights.
//
// srcDir is the model or checkpoint directory the run started from ("" for a model built from scratch): when it
// holds a Hugging Face tokenizer.json, that file and srcDir's other hf.TokenizerFiles (tokenizer_config.json,
// special_tokens_map.json, generation_config.json) are copied, so a checkpoint keeps the model's own tokenizer
// and loads as its source does.
func modelFiles(p *model.Params, tok tokenizer.Tokenizer, srcDir string) (checkpoint.Model, error) {
	m, err := modelMeta(p, tok, srcDir)
	if err != nil {
		return m, err
	}
	for _, t := range p.Tensors() {
		m.Tensors = append(m.Tensors, checkpoint.Tensor{Name: t.Name, Shape: t.Shape, Data: t.Data})
	}
	return m, nil
}

// modelMeta is modelFiles without the tensors: config.json, tokenizer.json and the source's tokenizer files.
func modelMeta(p *model.Params, tok tokenizer.Tokenizer, srcDir string) (checkpoint.Model, error) {
	hc, err := p.HFConfig()
	if err != nil {
		return checkpoint.Model{}, err
	}
	cfg, err := hc.Marshal()
	if err != nil {
		return checkpoint.Model{}, err
	}
	var m checkpoint.Model
	switch {
	case hasHFTokenizer(srcDir):
		// copied below
	case tok.Name() == tokenizer.ByteName:
		// A model built from scratch: the byte tokenizer as a Hugging Face tokenizer.json (the same ids through
		// transformers and our reader) and a tokenizer_config.json with its BOS/EOS/PAD, context and the built-in
		// chat template the rows were rendered with, so the directory loads like any pretrained model's.
		if m.Files, err = byteTokenizerFiles(p.ContextLength); err != nil {
			return checkpoint.Model{}, err
		}
		m.Tokenizer = tokenizer.ByteTokenizerJSON()
	default:
		return checkpoint.Model{}, fmt.Errorf("tokenizer %s has no tokenizer.json to write and no source directory", tok.Name())
	}
	m.Config = cfg
	if hasHFTokenizer(srcDir) {
		if m.Tokenizer, err = os.ReadFile(filepath.Join(srcDir, tokenizer.FileName)); err != nil {
			return checkpoint.Model{}, err
		}
		for _, name := range hf.TokenizerFiles {
			if name == tokenizer.FileName {
				continue
			}
			b, err := os.ReadFile(filepath.Join(srcDir, name))
			if os.IsNotExist(err) {
				continue
			}
			if err != nil {
				return checkpoint.Model{}, err
			}
			if m.Files == nil {
				m.Files = map[string][]byte{}
			}
			m.Files[name] = b
		}
	}
	return m, nil
}

// byteTokenizerFiles is the tokenizer_config.json of a from-scratch model (tokenizer.ByteTokenizerConfigJSON with
// data.BuiltinChatTemplate as chat_template), keyed by file name for checkpoint.Model.Files.
func byteTokenizerFiles(contextLength int) (map[string][]byte, error) {
	cfg := map[string]json.RawMessage{}
	if err := json.Unmarshal(tokenizer.ByteTokenizerConfigJSON(contextLength), &cfg); err != nil {
		return nil, err
	}
	tmpl, err := json.Marshal(data.BuiltinChatTemplate)
	if err != nil {
		return nil, err
	}
	cfg["chat_template"] = tmpl
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	return map[string][]byte{tokenizer.ConfigFileName: append(b, '\n')}, nil
}

// LoadModelDir reads a model directory (or a checkpoint directory) into float32 Params and its tokenizer, and
// returns the weights' digest ("sha256:<hex>", weightsDigest). A Hugging Face model directory (its
// tokenizer.json is a Hugging Face tokenizer: config.json, model.safetensors or shards, tokenizer.json,
// tokenizer_config.json) goes through model.Load and tokenizer.Load, so the model keeps its own tokenizer, BOS,
// EOS and PAD; the directories the trainer writes for from-scratch models (the byte tokenizer's tokenizer.json)
// and checkpoint directories go through checkpoint.LoadModel. The model's context length is its
// max_position_embeddings (n_positions for GPT-2).
func LoadModelDir(dir string) (*model.Params, tokenizer.Tokenizer, string, error) {
	if err := NotAModel(dir); err != nil {
		return nil, nil, "", err
	}
	if isPretrainedDir(dir) {
		return loadPretrainedDir(dir)
	}
	m, digest, err := checkpoint.LoadModel(dir)
	if err != nil {
		return nil, nil, "", err
	}
	p, tok, err := paramsOf(m, dir)
	return p, tok, digest, err
}

// NotAModel says why dir, given where a model is expected, holds something else that users give by mistake: a
// LoRA adapter (a run's adapter/ or a LoRA checkpoint: adapter_config.json), or a run's output directory (model/
// and adapter/ inside, no weights of its own). It returns nil otherwise, leaving other problems to the loader.
func NotAModel(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, model.AdapterConfigFile)); err == nil {
		return fmt.Errorf("%s holds a LoRA adapter (%s), not a model (a LoRA run's adapter/ or checkpoint): give its "+
			"base model, with this directory as reference.adapterURI (dpo --reference-adapter) or generate --adapter; to "+
			"train further from it, start from its run's merged model/", dir, model.AdapterConfigFile)
	}
	if _, err := os.Stat(filepath.Join(dir, checkpoint.ConfigFile)); err == nil {
		return nil
	}
	var inside []string
	for _, sub := range []string{"model", "adapter"} {
		if fi, err := os.Stat(filepath.Join(dir, sub)); err == nil && fi.IsDir() {
			inside = append(inside, filepath.Join(dir, sub))
		}
	}
	if len(inside) > 0 {
		return fmt.Errorf("%s is a run's output directory, not a model: it holds %s", dir, strings.Join(inside, " and "))
	}
	return nil
}

// hasHFTokenizer says whether dir holds a Hugging Face tokenizer.json: a pretrained model directory, a model
// directory the trainer wrote, or a checkpoint of either.
func hasHFTokenizer(dir string) bool {
	if dir == "" {
		return false
	}
	b, err := os.ReadFile(filepath.Join(dir, tokenizer.FileName))
	return err == nil && tokenizer.IsHFTokenizerJSON(b)
}

// isPretrainedDir says whether dir is a model directory (not a checkpoint directory) whose tokenizer.json is a
// Hugging Face tokenizer.
func isPretrainedDir(dir string) bool {
	if dir == "" {
		return false
	}
	if _, err := os.Stat(filepath.Join(dir, checkpoint.StateFile)); err == nil {
		return false
	}
	b, err := os.ReadFile(filepath.Join(dir, tokenizer.FileName))
	return err == nil && tokenizer.IsHFTokenizerJSON(b)
}

func loadPretrainedDir(dir string) (*model.Params, tokenizer.Tokenizer, string, error) {
	p, _, err := model.Load(dir, tensor.Float32, 0)
	if err != nil {
		return nil, nil, "", err
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return nil, nil, "", fmt.Errorf("model %s: %w", dir, err)
	}
	if tok.VocabSize() > p.VocabSize {
		return nil, nil, "", fmt.Errorf("model %s: %s has %d tokens, more than config.json's vocab_size %d", dir,
			tokenizer.FileName, tok.VocabSize(), p.VocabSize)
	}
	digest, err := weightsDigest(dir)
	if err != nil {
		return nil, nil, "", fmt.Errorf("model %s: %w", dir, err)
	}
	return p, tok, digest, nil
}

// weightsDigest is "sha256:<hex>" of a model directory's safetensors files read one after the other in name
// order (for a single model.safetensors, checkpoint.Digest of that file), streamed.
func weightsDigest(dir string) (string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	if err != nil {
		return "", err
	}
	if len(files) == 0 {
		return "", fmt.Errorf("no .safetensors file")
	}
	sort.Strings(files)
	h := sha256.New()
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return "", err
		}
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", err
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

func paramsOf(m checkpoint.Model, dir string) (*model.Params, tokenizer.Tokenizer, error) {
	var tok tokenizer.Tokenizer
	if tokenizer.IsHFTokenizerJSON(m.Tokenizer) {
		// A checkpoint of a pretrained model: its tokenizer files sit beside the weights (Model.Files).
		t, err := tokenizer.LoadDir(dir)
		if err != nil {
			return nil, nil, fmt.Errorf("model %s: %w", dir, err)
		}
		tok = t
	} else {
		var tf tokenizerFile
		if err := json.Unmarshal(m.Tokenizer, &tf); err != nil {
			return nil, nil, fmt.Errorf("%s/%s: %v", dir, checkpoint.TokenizerFile, err)
		}
		t, err := tokenizer.FromSpec(tf.Type, tf.VocabSize, tf.BOS, tf.EOS, tf.PAD, dir+"/"+checkpoint.TokenizerFile)
		if err != nil {
			return nil, nil, err
		}
		tok = t
	}
	where := dir + "/" + checkpoint.ConfigFile
	hc, err := hf.ParseConfig(m.Config)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", where, err)
	}
	if hc.VocabSize != tok.VocabSize() && (tok.Name() != tokenizer.HFName || tok.VocabSize() > hc.VocabSize) {
		return nil, nil, fmt.Errorf("%s: field vocab_size is %d, the tokenizer has %d", where, hc.VocabSize, tok.VocabSize())
	}
	ts := make([]model.Tensor, len(m.Tensors))
	for i, t := range m.Tensors {
		ts[i] = model.Tensor{Name: t.Name, Shape: t.Shape, Data: t.Data}
	}
	p, err := model.FromHFTensors(hc, 0, tensor.Float32, ts)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", dir, err)
	}
	return p, tok, nil
}

// describeModel fills the result's description of the model (for the run's status): its architecture as the
// saved config.json names it, its parameter count, and the starting model (URI as given, Hub commit, weights
// digest as loaded).
func (r *runner) describeModel(res *contract.Result, dir string) {
	res.Architecture = architectureOf(dir)
	if res.Architecture == "" {
		res.Architecture = architectureOf(r.sourceDir()) // an adapter run without a merged model/
	}
	res.ParameterCount = int64(r.policy.NumParams())
	if res.TrainableParameterCount == 0 {
		res.TrainableParameterCount = res.ParameterCount
	}
	switch {
	case r.cfg.Kind == contract.KindDPO && r.cfg.Reference != nil:
		res.SourceURI = r.cfg.Reference.ModelURI
	default:
		res.SourceURI = r.cfg.Model.From
	}
	if res.SourceURI != "" {
		res.SourceCommit, res.SourceDigest = r.sourceCommit, r.startDigest
	}
	if r.refAdapterDigest != "" {
		res.SourceAdapterURI, res.SourceAdapterCommit, res.SourceAdapterDigest = r.cfg.Reference.AdapterURI, r.refAdapterCommit, r.refAdapterDigest
	}
}

// modelFields describe the model loaded, for the "model" event (and the operator's status while the run trains):
// its parameter count and, when the starting model's config.json names it, its architecture.
func (r *runner) modelFields() map[string]any {
	f := map[string]any{"parameterCount": int64(r.policy.NumParams()), "trainableParameterCount": int64(r.policy.NumTrainable())}
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
