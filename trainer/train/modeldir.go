package train

import (
	"encoding/json"
	"fmt"

	"gorgonia.org/tensor"

	"github.com/preftune/preftune/trainer/checkpoint"
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
func modelFiles(p *model.Params, tok tokenizer.Tokenizer) (checkpoint.Model, error) {
	hc, err := p.HFConfig()
	if err != nil {
		return checkpoint.Model{}, err
	}
	cfg, err := hc.Marshal()
	if err != nil {
		return checkpoint.Model{}, err
	}
	tk, err := json.MarshalIndent(tokenizerFile{Type: tok.Name(), VocabSize: tok.VocabSize(), BOS: tok.BOS(),
		EOS: tok.EOS(), PAD: tok.PAD()}, "", "  ")
	if err != nil {
		return checkpoint.Model{}, err
	}
	m := checkpoint.Model{Config: cfg, Tokenizer: append(tk, '\n')}
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
	where := dir + "/" + checkpoint.ConfigFile
	hc, err := hf.ParseConfig(m.Config)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", where, err)
	}
	if hc.VocabSize != tok.VocabSize() {
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
