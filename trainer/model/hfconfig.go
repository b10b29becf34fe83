package model

import (
	"fmt"

	"github.com/preftune/preftune/trainer/hf"
	"github.com/preftune/preftune/trainer/nn"
)

// This file is the one place where a checkpoint's config.json (trainer/hf's Config) meets the model's Config,
// both ways, in the manner of candle's `Config::into_config`.

// FromHF maps a parsed config.json into the model's Config for training or running at contextLength tokens
// (0: the checkpoint's max_position_embeddings / n_positions). What the model cannot compute is an
// *hf.UnsupportedError naming the config.json field: a sliding window shorter than the context (Mistral, Qwen
// with use_sliding_window), a context past GPT-2's learned positions, GPT-2's erf GELU ("gelu") or a
// layer_norm_epsilon other than 1e-5.
func FromHF(hc *hf.Config, contextLength int) (Config, error) {
	if contextLength == 0 {
		contextLength = hc.MaxPositionEmbeddings
	}
	if err := hc.CheckContext(contextLength); err != nil {
		return Config{}, err
	}
	c := Config{
		VocabSize: hc.VocabSize, ContextLength: contextLength, MaxPositions: hc.MaxPositionEmbeddings,
		Layers: hc.NumLayers, DModel: hc.HiddenSize, Heads: hc.NumHeads, KVHeads: hc.NumKVHeads, HeadDim: hc.HeadDim,
		Intermediate: hc.IntermediateSize, NormEps: hc.NormEps, Untied: !hc.TieWordEmbeddings,
		// EOS is never nil here, so that Normalized does not read ids 0 as "none set".
		Tokens: TokenIDs{BOS: -1, PAD: -1, EOS: append([]int{}, hc.EOSTokenIDs...)},
	}
	if hc.BOSTokenID != nil {
		c.Tokens.BOS = *hc.BOSTokenID
	}
	if hc.PadTokenID != nil {
		c.Tokens.PAD = *hc.PadTokenID
	}
	unsupported := func(field, format string, args ...any) error {
		return &hf.UnsupportedError{Architecture: hc.Architecture, Field: field, Detail: fmt.Sprintf(format, args...)}
	}
	switch hc.Family {
	case hf.FamilyGPT2:
		c.Family = GPT2
		switch {
		case hc.Activation == "gelu":
			return Config{}, unsupported("activation_function", `"gelu" (the erf form) is not supported; the trainer's GELU is the tanh form (gelu_new, gelu_pytorch_tanh)`)
		case hc.NormEps != nn.LayerNormEps:
			return Config{}, unsupported("layer_norm_epsilon", "%v is not supported (the trainer's LayerNorm uses %v)", hc.NormEps, nn.LayerNormEps)
		}
	case hf.FamilyLlama:
		c.Family = Llama
		c.RopeTheta = hc.RopeTheta
		if s := hc.RopeScaling; s != nil {
			c.RopeScaling = &nn.RopeScaling{Type: s.Type, Factor: s.Factor, LowFreqFactor: s.LowFreqFactor,
				HighFreqFactor: s.HighFreqFactor, OriginalMaxPositionEmbeddings: s.OriginalMaxPositionEmbeddings}
		}
		c.QKVBias, c.OutputBias, c.MLPBias, c.QKNorm = hc.QKVBias, hc.OutputBias, hc.MLPBias, hc.QKNorm
	default:
		return Config{}, unsupported("architectures", "family %q has no model", hc.Family)
	}
	c = c.Normalized()
	if err := c.Validate(); err != nil {
		return Config{}, &hf.ConfigError{Field: "", Detail: err.Error()}
	}
	return c, nil
}

// HFConfig is the model's config.json: the one it was loaded from, unknown fields and all, when there is one;
// otherwise one built from Config: GPT2LMHeadModel for GPT-2; for the Llama family the architecture whose flags
// fit (Qwen3ForCausalLM with q/k norm, Qwen2ForCausalLM with q/k/v biases only, else LlamaForCausalLM with
// attention_bias and mlp_bias). A combination no architecture has (q/k norm with MLP biases, q/k/v biases
// without o_proj's and with MLP ones) is an error.
func (p *Params) HFConfig() (*hf.Config, error) {
	if p.source != nil {
		c := *p.source
		return &c, nil
	}
	c := p.Config
	hc := &hf.Config{
		VocabSize: c.VocabSize, HiddenSize: c.DModel, IntermediateSize: c.Intermediate, NumLayers: c.Layers,
		NumHeads: c.Heads, NumKVHeads: c.KVHeads, HeadDim: c.HeadDim, MaxPositionEmbeddings: c.MaxPositions,
		NormEps: c.NormEps, TieWordEmbeddings: !c.Untied, TorchDType: "float32",
		EOSTokenIDs: append([]int(nil), c.Tokens.EOS...),
	}
	if c.Tokens.BOS >= 0 {
		bos := c.Tokens.BOS
		hc.BOSTokenID = &bos
	}
	if c.Tokens.PAD >= 0 {
		pad := c.Tokens.PAD
		hc.PadTokenID = &pad
	}
	switch c.Family {
	case GPT2:
		hc.Architecture, hc.ModelType, hc.Family, hc.Activation = "GPT2LMHeadModel", "gpt2", hf.FamilyGPT2, "gelu_new"
		hc.QKVBias, hc.OutputBias, hc.MLPBias = true, true, true
		return hc, nil
	case Llama:
		hc.Family, hc.Activation, hc.RopeTheta = hf.FamilyLlama, "silu", c.RopeTheta
		if s := c.RopeScaling; s != nil && s.Type != "" && s.Type != "default" {
			hc.RopeScaling = &hf.RopeScaling{Type: s.Type, Factor: s.Factor, LowFreqFactor: s.LowFreqFactor,
				HighFreqFactor: s.HighFreqFactor, OriginalMaxPositionEmbeddings: s.OriginalMaxPositionEmbeddings}
		}
		hc.QKVBias, hc.OutputBias, hc.MLPBias, hc.QKNorm = c.QKVBias, c.OutputBias, c.MLPBias, c.QKNorm
		switch {
		case c.QKNorm && !c.MLPBias && c.QKVBias == c.OutputBias:
			hc.Architecture, hc.ModelType = "Qwen3ForCausalLM", "qwen3"
		case c.QKVBias && !c.OutputBias && !c.MLPBias && !c.QKNorm:
			hc.Architecture, hc.ModelType = "Qwen2ForCausalLM", "qwen2"
		case !c.QKNorm && c.QKVBias == c.OutputBias:
			hc.Architecture, hc.ModelType = "LlamaForCausalLM", "llama"
		default:
			return nil, fmt.Errorf("model: no Hugging Face architecture has q/k/v biases %v, o_proj bias %v, MLP biases %v and q/k norm %v together",
				c.QKVBias, c.OutputBias, c.MLPBias, c.QKNorm)
		}
		return hc, nil
	}
	return nil, fmt.Errorf("model: family %q has no Hugging Face config", c.Family)
}
