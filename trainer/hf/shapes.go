package hf

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// ExpectedShapes is the name → shape table of the parameters a model of this config has, with Hugging Face's
// names as save_pretrained writes them:
//
// FamilyLlama (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM), D = HiddenSize,
// I = IntermediateSize, H = NumHeads, K = NumKVHeads, d = HeadDim, V = VocabSize, weights [out, in]:
// model.embed_tokens.weight [V, D]; per layer i model.layers.{i}.: input_layernorm.weight [D],
// self_attn.{q_proj [H·d, D], k_proj [K·d, D], v_proj [K·d, D], o_proj [D, H·d]}.weight, biases of q/k/v
// ([H·d], [K·d], [K·d]) when QKVBias and of o_proj [D] when OutputBias, self_attn.{q_norm,k_norm}.weight [d]
// when QKNorm, post_attention_layernorm.weight [D], mlp.{gate_proj [I, D], up_proj [I, D], down_proj [D, I]}.weight
// and their biases ([I], [I], [D]) when MLPBias; model.norm.weight [D]; lm_head.weight [V, D] unless tied.
//
// FamilyGPT2 (GPT2LMHeadModel), P = MaxPositionEmbeddings, Conv1D weights [in, out]: transformer.wte.weight
// [V, D], transformer.wpe.weight [P, D]; per layer transformer.h.{i}.: ln_1.{weight,bias} [D],
// attn.c_attn.weight [D, 3D], attn.c_attn.bias [3D], attn.c_proj.weight [D, D], attn.c_proj.bias [D],
// ln_2.{weight,bias} [D], mlp.c_fc.weight [D, I], mlp.c_fc.bias [I], mlp.c_proj.weight [I, D], mlp.c_proj.bias [D];
// transformer.ln_f.{weight,bias} [D]; lm_head.weight [V, D] unless tied.
func (c *Config) ExpectedShapes() map[string][]int {
	m := map[string][]int{}
	D, I, V := c.HiddenSize, c.IntermediateSize, c.VocabSize
	if c.Family == FamilyGPT2 {
		m["transformer.wte.weight"] = []int{V, D}
		m["transformer.wpe.weight"] = []int{c.MaxPositionEmbeddings, D}
		for i := 0; i < c.NumLayers; i++ {
			p := fmt.Sprintf("transformer.h.%d.", i)
			m[p+"ln_1.weight"], m[p+"ln_1.bias"] = []int{D}, []int{D}
			m[p+"attn.c_attn.weight"], m[p+"attn.c_attn.bias"] = []int{D, 3 * D}, []int{3 * D}
			m[p+"attn.c_proj.weight"], m[p+"attn.c_proj.bias"] = []int{D, D}, []int{D}
			m[p+"ln_2.weight"], m[p+"ln_2.bias"] = []int{D}, []int{D}
			m[p+"mlp.c_fc.weight"], m[p+"mlp.c_fc.bias"] = []int{D, I}, []int{I}
			m[p+"mlp.c_proj.weight"], m[p+"mlp.c_proj.bias"] = []int{I, D}, []int{D}
		}
		m["transformer.ln_f.weight"], m["transformer.ln_f.bias"] = []int{D}, []int{D}
	} else {
		q, kv := c.NumHeads*c.HeadDim, c.NumKVHeads*c.HeadDim
		m["model.embed_tokens.weight"] = []int{V, D}
		for i := 0; i < c.NumLayers; i++ {
			p := fmt.Sprintf("model.layers.%d.", i)
			m[p+"input_layernorm.weight"] = []int{D}
			m[p+"post_attention_layernorm.weight"] = []int{D}
			m[p+"self_attn.q_proj.weight"] = []int{q, D}
			m[p+"self_attn.k_proj.weight"] = []int{kv, D}
			m[p+"self_attn.v_proj.weight"] = []int{kv, D}
			m[p+"self_attn.o_proj.weight"] = []int{D, q}
			if c.QKVBias {
				m[p+"self_attn.q_proj.bias"] = []int{q}
				m[p+"self_attn.k_proj.bias"] = []int{kv}
				m[p+"self_attn.v_proj.bias"] = []int{kv}
			}
			if c.OutputBias {
				m[p+"self_attn.o_proj.bias"] = []int{D}
			}
			if c.QKNorm {
				m[p+"self_attn.q_norm.weight"] = []int{c.HeadDim}
				m[p+"self_attn.k_norm.weight"] = []int{c.HeadDim}
			}
			m[p+"mlp.gate_proj.weight"] = []int{I, D}
			m[p+"mlp.up_proj.weight"] = []int{I, D}
			m[p+"mlp.down_proj.weight"] = []int{D, I}
			if c.MLPBias {
				m[p+"mlp.gate_proj.bias"] = []int{I}
				m[p+"mlp.up_proj.bias"] = []int{I}
				m[p+"mlp.down_proj.bias"] = []int{D}
			}
		}
		m["model.norm.weight"] = []int{D}
	}
	if !c.TieWordEmbeddings {
		m["lm_head.weight"] = []int{V, D}
	}
	return m
}

// NumParameters is the number of trainable parameters (tied embeddings counted once).
func (c *Config) NumParameters() int64 {
	var n int64
	for _, s := range c.ExpectedShapes() {
		k := int64(1)
		for _, d := range s {
			k *= int64(d)
		}
		n += k
	}
	return n
}

// CanonicalName maps a tensor name as found in a file to the name ExpectedShapes uses. GPT-2 files saved from
// GPT2Model (openai-community/gpt2 on the Hub is one) lack the "transformer." prefix; transformers adds it when
// loading, and so does this.
func (c *Config) CanonicalName(name string) string {
	if c.Family == FamilyGPT2 && !strings.HasPrefix(name, "transformer.") && !strings.HasPrefix(name, "lm_head.") {
		return "transformer." + name
	}
	return name
}

// Ignorable reports whether a tensor found in a file is not a parameter and is skipped on load (each skip is
// reported): GPT-2's causal-mask buffers (attn.bias, attn.masked_bias), rotary inv_freq buffers of older Llama
// files, and lm_head.weight when the embeddings are tied (transformers ties it to the embedding and ignores the
// stored copy).
func (c *Config) Ignorable(name string) bool {
	switch {
	case c.Family == FamilyGPT2 && (strings.HasSuffix(name, ".attn.bias") || strings.HasSuffix(name, ".attn.masked_bias")):
		return true
	case strings.HasSuffix(name, ".rotary_emb.inv_freq"):
		return true
	case c.TieWordEmbeddings && name == "lm_head.weight":
		return true
	}
	return false
}

// ShapeError lists every tensor that does not match the expected table. Reason is "ModelUnreadable".
type ShapeError struct {
	Missing    []string
	Unexpected []string
	// Mismatched: "name: shape [a b] in the file, [c d] expected".
	Mismatched []string
}

// Reason is "ModelUnreadable".
func (e *ShapeError) Reason() string { return ReasonModelUnreadable }

func (e *ShapeError) Error() string {
	var parts []string
	list := func(what string, names []string) {
		if len(names) == 0 {
			return
		}
		shown := names
		more := ""
		if len(shown) > 8 {
			shown, more = shown[:8], fmt.Sprintf(" and %d more", len(names)-8)
		}
		parts = append(parts, fmt.Sprintf("%d %s: %s%s", len(names), what, strings.Join(shown, "; "), more))
	}
	list("tensors with the wrong shape", e.Mismatched)
	list("tensors missing", e.Missing)
	list("unexpected tensors", e.Unexpected)
	return "weights do not match config.json: " + strings.Join(parts, "; ")
}

// CheckShapes compares the tensors of a file (names already canonical) with the expected name → shape table
// (ExpectedShapes, or a model family's own). Tensors for which ignorable returns true are skipped and returned;
// any missing, unexpected or mis-shaped tensor makes a *ShapeError naming all of them.
func CheckShapes(have []TensorInfo, want map[string][]int, ignorable func(name string) bool) (ignored []string, err error) {
	e := &ShapeError{}
	seen := map[string]bool{}
	for _, t := range have {
		w, ok := want[t.Name]
		switch {
		case !ok && ignorable != nil && ignorable(t.Name):
			ignored = append(ignored, t.Name)
		case !ok:
			e.Unexpected = append(e.Unexpected, fmt.Sprintf("%s %v", t.Name, t.Shape))
		case !slices.Equal(w, t.Shape):
			e.Mismatched = append(e.Mismatched, fmt.Sprintf("%s: shape %v in the file, %v expected", t.Name, t.Shape, w))
		}
		seen[t.Name] = true
	}
	for name, s := range want {
		if !seen[name] {
			e.Missing = append(e.Missing, fmt.Sprintf("%s %v", name, s))
		}
	}
	sort.Strings(e.Missing)
	sort.Strings(e.Unexpected)
	sort.Strings(e.Mismatched)
	if len(e.Missing)+len(e.Unexpected)+len(e.Mismatched) > 0 {
		return ignored, e
	}
	return ignored, nil
}
