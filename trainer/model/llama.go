package model

import (
	"fmt"
	"strings"

	G "gorgonia.org/gorgonia"

	"github.com/preftune/preftune/trainer/nn"
)

// The Llama family as Hugging Face's modeling_llama.py (and modeling_mistral/qwen2/qwen3.py) computes it, with
// its tensor names (D = DModel, I = Intermediate, H = Heads, K = KVHeads, d = HeadDim, V = VocabSize; weights
// [out, in] as torch.nn.Linear):
//
//	model.embed_tokens.weight [V, D]
//	model.layers.{i}.input_layernorm.weight [D]
//	model.layers.{i}.self_attn.q_proj.weight [H·d, D] (.bias [H·d] when QKVBias); k_proj, v_proj [K·d, D] (.bias [K·d])
//	model.layers.{i}.self_attn.q_norm.weight, k_norm.weight [d] when QKNorm (Qwen3)
//	model.layers.{i}.self_attn.o_proj.weight [D, H·d] (.bias [D] when OutputBias)
//	model.layers.{i}.post_attention_layernorm.weight [D]
//	model.layers.{i}.mlp.gate_proj.weight, up_proj.weight [I, D], down_proj.weight [D, I] (biases when MLPBias)
//	model.norm.weight [D]; lm_head.weight [V, D] only when Untied (otherwise the head is embed_tokens)
//
// Each layer: x += o_proj(attn(rope(qnorm(q_proj(n))), rope(knorm(k_proj(n))), v_proj(n))) with n =
// input_layernorm(x); x += down_proj(silu(gate_proj(m)) ∘ up_proj(m)) with m = post_attention_layernorm(x).
// RMSNorm with eps NormEps; rotary embeddings (rotate_half) from RopeTheta and RopeScaling on positions 0… of
// each row; causal grouped-query attention scaled by 1/√d. Initialisation as transformers' _init_weights with
// initializer_range 0.02: weights N(0, 0.02), biases 0, norm weights 1. A sliding window is not modelled:
// FromHF refuses one shorter than the context.
type llama struct{}

func init() { families[Llama] = llama{} }

func (llama) rotary(c Config) nn.Rotary {
	return nn.Rotary{HeadDim: c.HeadDim, Theta: c.RopeTheta, Scaling: c.RopeScaling}
}

func (l llama) validate(c Config) error {
	switch {
	case c.DModel < 1:
		return fmt.Errorf("model: dModel is %d, want >= 1", c.DModel)
	case c.KVHeads < 1 || c.Heads%c.KVHeads != 0:
		return fmt.Errorf("model: heads %d is not a multiple of kvHeads %d", c.Heads, c.KVHeads)
	case c.HeadDim < 1:
		return fmt.Errorf("model: headDim is %d, want >= 1", c.HeadDim)
	}
	return l.rotary(c).Validate()
}

func (llama) shapes(c Config) []ParamShape {
	D, I, V := c.DModel, c.Intermediate, c.VocabSize
	q, kv := c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
	s := []ParamShape{{"model.embed_tokens.weight", []int{V, D}}}
	for i := 0; i < c.Layers; i++ {
		p := fmt.Sprintf("model.layers.%d.", i)
		add := func(name string, shape ...int) { s = append(s, ParamShape{p + name, shape}) }
		add("input_layernorm.weight", D)
		add("self_attn.q_proj.weight", q, D)
		add("self_attn.k_proj.weight", kv, D)
		add("self_attn.v_proj.weight", kv, D)
		if c.QKVBias {
			add("self_attn.q_proj.bias", q)
			add("self_attn.k_proj.bias", kv)
			add("self_attn.v_proj.bias", kv)
		}
		if c.QKNorm {
			add("self_attn.q_norm.weight", c.HeadDim)
			add("self_attn.k_norm.weight", c.HeadDim)
		}
		add("self_attn.o_proj.weight", D, q)
		if c.OutputBias {
			add("self_attn.o_proj.bias", D)
		}
		add("post_attention_layernorm.weight", D)
		add("mlp.gate_proj.weight", I, D)
		add("mlp.up_proj.weight", I, D)
		add("mlp.down_proj.weight", D, I)
		if c.MLPBias {
			add("mlp.gate_proj.bias", I)
			add("mlp.up_proj.bias", I)
			add("mlp.down_proj.bias", D)
		}
	}
	s = append(s, ParamShape{"model.norm.weight", []int{D}})
	if c.Untied {
		s = append(s, ParamShape{"lm_head.weight", []int{V, D}})
	}
	return s
}

func (llama) initStd(c Config, name string) (float64, bool) {
	switch {
	case strings.HasSuffix(name, "norm.weight"):
		return 1, true
	case strings.HasSuffix(name, ".bias"):
		return 0, true
	}
	return 0.02, false
}

func (l llama) forward(c Config, w map[string]*G.Node, tk *nn.Tokens, lin linearFn) (*G.Node, *G.Node, error) {
	var err error
	must := func(n *G.Node, e error) *G.Node {
		if err == nil && e != nil {
			err = e
		}
		return n
	}
	// opt returns the weight when the config has it, else nil (LinearT without a bias).
	opt := func(name string, has bool) *G.Node {
		if !has {
			return nil
		}
		return w[name]
	}
	var attnOpts []nn.AttentionOption
	if !c.KeepAttentionProbs {
		attnOpts = append(attnOpts, nn.RecomputeProbs)
	}
	rot := l.rotary(c)
	b, t := tk.B, tk.T
	x := must(nn.TokenEmbed(w["model.embed_tokens.weight"], tk))
	for i := 0; i < c.Layers && err == nil; i++ {
		p := fmt.Sprintf("model.layers.%d.", i)
		n := must(nn.RMSNorm(x, w[p+"input_layernorm.weight"], c.NormEps))
		q := must(lin(p+"self_attn.q_proj", n, w[p+"self_attn.q_proj.weight"], opt(p+"self_attn.q_proj.bias", c.QKVBias)))
		k := must(lin(p+"self_attn.k_proj", n, w[p+"self_attn.k_proj.weight"], opt(p+"self_attn.k_proj.bias", c.QKVBias)))
		v := must(lin(p+"self_attn.v_proj", n, w[p+"self_attn.v_proj.weight"], opt(p+"self_attn.v_proj.bias", c.QKVBias)))
		if err != nil {
			break
		}
		if c.QKNorm {
			q = must(nn.RMSNorm(q, w[p+"self_attn.q_norm.weight"], c.NormEps))
			k = must(nn.RMSNorm(k, w[p+"self_attn.k_norm.weight"], c.NormEps))
		}
		q = must(nn.RoPE(q, b, t, c.Heads, rot))
		k = must(nn.RoPE(k, b, t, c.KVHeads, rot))
		if err != nil {
			break
		}
		a := must(nn.GQAttention(q, k, v, b, t, c.Heads, c.KVHeads, attnOpts...))
		x = must(nn.Add(x, must(lin(p+"self_attn.o_proj", a, w[p+"self_attn.o_proj.weight"], opt(p+"self_attn.o_proj.bias", c.OutputBias)))))
		m := must(nn.RMSNorm(x, w[p+"post_attention_layernorm.weight"], c.NormEps))
		gate := must(lin(p+"mlp.gate_proj", m, w[p+"mlp.gate_proj.weight"], opt(p+"mlp.gate_proj.bias", c.MLPBias)))
		up := must(lin(p+"mlp.up_proj", m, w[p+"mlp.up_proj.weight"], opt(p+"mlp.up_proj.bias", c.MLPBias)))
		if err != nil {
			break
		}
		f := must(nn.SwiGLU(gate, up))
		x = must(nn.Add(x, must(lin(p+"mlp.down_proj", f, w[p+"mlp.down_proj.weight"], opt(p+"mlp.down_proj.bias", c.MLPBias)))))
	}
	if err != nil {
		return nil, nil, err
	}
	h := must(nn.RMSNorm(x, w["model.norm.weight"], c.NormEps))
	head := w["model.embed_tokens.weight"]
	if c.Untied {
		head = w["lm_head.weight"]
	}
	return h, head, err
}

// fusedHead is true: the vocabulary of pretrained models (32k–150k) makes [B·T, V] tensors the largest of a
// step, and nn.HeadLogProbs multiplies only the masked-in rows.
func (llama) fusedHead() bool { return true }
