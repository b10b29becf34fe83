package model

import (
	"fmt"
	"slices"

	"gorgonia.org/tensor"

	"github.com/preftune/preftune/trainer/hf"
	"github.com/preftune/preftune/trainer/safetensors"
)

// LoadInfo says what Load found besides the weights.
type LoadInfo struct {
	// Ignored are the tensors of the files that are not parameters and were skipped (GPT-2's attention-mask
	// buffers, rotary inv_freq, a stored copy of a tied lm_head), by their names in the file.
	Ignored []string
	// SourceDTypes counts the tensors loaded by their dtype in the files, e.g. {"BF16": 47}; BF16 and F16 are
	// widened exactly to float32.
	SourceDTypes map[safetensors.DType]int
}

// Load reads a Hugging Face model directory (config.json, model.safetensors or shards with
// model.safetensors.index.json) into Params of dtype dt for sequences of up to contextLength tokens (0: the
// checkpoint's max_position_embeddings / n_positions). The config goes through FromHF; tensor names and shapes
// are checked against it before any data is read (hf.OpenModel), and float32 weights are then streamed straight
// into the parameters, one tensor at a time (no second copy of the model is held). Errors are trainer/hf's typed
// errors (Reason() ModelUnsupported or ModelUnreadable), wrapped with the directory.
func Load(dir string, dt tensor.Dtype, contextLength int) (*Params, LoadInfo, error) {
	md, err := hf.OpenModel(dir)
	if err != nil {
		return nil, LoadInfo{}, err
	}
	cfg, err := FromHF(md.Config, contextLength)
	if err != nil {
		return nil, LoadInfo{}, fmt.Errorf("model %s: %w", dir, err)
	}
	p, err := newParams(cfg, dt)
	if err != nil {
		return nil, LoadInfo{}, fmt.Errorf("model %s: %w", dir, err)
	}
	p.source = md.Config
	wide := map[string][]float32{} // float64 models: each tensor read as float32, widened afterwards
	dtypes, err := md.LoadInto(func(name string, shape []int) ([]float32, error) {
		v, ok := p.Values[name]
		if !ok {
			return nil, fmt.Errorf("%s is not a parameter of the %s model", name, cfg.Family)
		}
		if !slices.Equal([]int(v.Shape()), shape) {
			return nil, fmt.Errorf("%s has shape %v, the model %v", name, shape, v.Shape())
		}
		if d, ok := v.Data().([]float32); ok {
			return d, nil
		}
		wide[name] = make([]float32, v.Shape().TotalSize())
		return wide[name], nil
	})
	if err != nil {
		return nil, LoadInfo{}, err
	}
	for name, src := range wide {
		i := 0
		setAll(p.Values[name], func() float64 { i++; return float64(src[i-1]) })
	}
	return p, LoadInfo{Ignored: md.Ignored, SourceDTypes: dtypes}, nil
}

// Save writes the model as a Hugging Face model directory (hf.SaveModel): config.json from HFConfig (same
// architecture as loaded, torch_dtype float32), the weights as F32 safetensors under the checkpoint's names
// (sharded past opts.ShardSize) and the tokenizer files of opts.SourceDir. float32 weights are streamed from the
// parameters without a copy.
func (p *Params) Save(dir string, opts hf.SaveOptions) (*hf.SaveResult, error) {
	hc, err := p.HFConfig()
	if err != nil {
		return nil, err
	}
	ts := make([]safetensors.Tensor, 0, len(p.Names))
	for _, n := range p.Names {
		v := p.Values[n]
		t := safetensors.Tensor{Name: n, Shape: append([]int(nil), v.Shape()...)}
		if d, ok := v.Data().([]float32); ok {
			t.Data = d
		} else {
			t.Data = p.tensor(n).Data
		}
		ts = append(ts, t)
	}
	return hf.SaveModel(dir, hc, ts, opts)
}

// FromHFTensors builds Params of dtype dt from a config.json (hf.ParseConfig) and float32 tensors read from the
// weights file that goes with it (a trainer checkpoint's model.safetensors): names are mapped by
// hc.CanonicalName (GPT-2 files without the "transformer." prefix, as GPT2Model and trainers before the Hugging
// Face layout wrote them), non-parameters (hc.Ignorable) are skipped, and then every parameter must be there
// with its shape, as FromTensors checks. The config is kept for HFConfig.
func FromHFTensors(hc *hf.Config, contextLength int, dt tensor.Dtype, ts []Tensor) (*Params, error) {
	cfg, err := FromHF(hc, contextLength)
	if err != nil {
		return nil, err
	}
	params := make([]Tensor, 0, len(ts))
	for _, t := range ts {
		t.Name = hc.CanonicalName(t.Name)
		if hc.Ignorable(t.Name) {
			continue
		}
		params = append(params, t)
	}
	p, err := FromTensors(cfg, dt, params)
	if err != nil {
		return nil, err
	}
	p.source = hc
	return p, nil
}
