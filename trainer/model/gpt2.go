package model

import (
	"fmt"
	"math"
	"strings"

	G "gorgonia.org/gorgonia"

	"github.com/preftune/preftune/trainer/nn"
)

// GPT-2 as Hugging Face's GPT2LMHeadModel (modeling_gpt2.py) computes it, with its tensor names:
//
//	transformer.wte.weight [V, D], transformer.wpe.weight [P, D] (P = MaxPositions)
//	transformer.h.{i}.ln_1.{weight,bias} [D]
//	transformer.h.{i}.attn.c_attn.{weight [D, 3D], bias [3D]}   q | k | v, head h in columns h·hd … (h+1)·hd of each
//	transformer.h.{i}.attn.c_proj.{weight [D, D], bias [D]}
//	transformer.h.{i}.ln_2.{weight,bias} [D]
//	transformer.h.{i}.mlp.c_fc.{weight [D, I], bias [I]}, transformer.h.{i}.mlp.c_proj.{weight [I, D], bias [D]}
//	transformer.ln_f.{weight,bias} [D]; lm_head.weight [V, D] only when Untied (otherwise the head is wte)
//
// Linear layers are Conv1D: y = x·W + b with W [in, out]. Blocks: x += attn(ln_1(x)); x += mlp(ln_2(x)), with
// LayerNorm (biased variance, eps NormEps), causal multi-head attention scaled by 1/√hd and the tanh GELU
// (gelu_new). Initialisation: weights N(0, 0.02), c_proj weights N(0, 0.02/√(2·layers)), biases 0, LayerNorm 1.
type gpt2 struct{}

func init() { families[GPT2] = gpt2{} }

func (gpt2) validate(c Config) error {
	switch {
	case c.DModel < 1 || c.DModel%c.Heads != 0:
		return fmt.Errorf("model: dModel is %d, want a positive multiple of heads (%d)", c.DModel, c.Heads)
	case c.KVHeads != c.Heads || c.HeadDim != c.DModel/c.Heads:
		return fmt.Errorf("model: GPT-2 has %d heads of %d: kvHeads %d and headDim %d do not fit", c.Heads, c.DModel/c.Heads, c.KVHeads, c.HeadDim)
	case c.MaxPositions < c.ContextLength:
		return fmt.Errorf("model: contextLength %d exceeds GPT-2's %d learned positions (n_positions)", c.ContextLength, c.MaxPositions)
	case c.NormEps != nn.LayerNormEps:
		return fmt.Errorf("model: GPT-2's layer_norm_epsilon is %v; the trainer's LayerNorm uses %v", c.NormEps, nn.LayerNormEps)
	case c.QKVBias || c.OutputBias || c.MLPBias || c.QKNorm || c.RopeScaling != nil || c.RopeTheta != 0:
		return fmt.Errorf("model: bias flags, q/k norm and rotary settings belong to the Llama family, not GPT-2")
	}
	return nil
}

func (gpt2) shapes(c Config) []ParamShape {
	d, v, in := c.DModel, c.VocabSize, c.Intermediate
	s := []ParamShape{{"transformer.wte.weight", []int{v, d}}, {"transformer.wpe.weight", []int{c.MaxPositions, d}}}
	for i := 0; i < c.Layers; i++ {
		p := fmt.Sprintf("transformer.h.%d.", i)
		s = append(s,
			ParamShape{p + "ln_1.weight", []int{d}},
			ParamShape{p + "ln_1.bias", []int{d}},
			ParamShape{p + "attn.c_attn.weight", []int{d, 3 * d}},
			ParamShape{p + "attn.c_attn.bias", []int{3 * d}},
			ParamShape{p + "attn.c_proj.weight", []int{d, d}},
			ParamShape{p + "attn.c_proj.bias", []int{d}},
			ParamShape{p + "ln_2.weight", []int{d}},
			ParamShape{p + "ln_2.bias", []int{d}},
			ParamShape{p + "mlp.c_fc.weight", []int{d, in}},
			ParamShape{p + "mlp.c_fc.bias", []int{in}},
			ParamShape{p + "mlp.c_proj.weight", []int{in, d}},
			ParamShape{p + "mlp.c_proj.bias", []int{d}},
		)
	}
	s = append(s, ParamShape{"transformer.ln_f.weight", []int{d}}, ParamShape{"transformer.ln_f.bias", []int{d}})
	if c.Untied {
		s = append(s, ParamShape{"lm_head.weight", []int{v, d}})
	}
	return s
}

func (gpt2) initStd(c Config, name string) (float64, bool) {
	switch {
	case strings.Contains(name, "ln_") && strings.HasSuffix(name, ".weight"):
		return 1, true
	case strings.HasSuffix(name, ".bias"):
		return 0, true
	case strings.HasSuffix(name, "c_proj.weight"):
		return 0.02 / math.Sqrt(2*float64(c.Layers)), false
	}
	return 0.02, false
}

func (gpt2) forward(c Config, w map[string]*G.Node, tk *nn.Tokens, lin linearFn) (*G.Node, *G.Node, error) {
	var err error
	must := func(n *G.Node, e error) *G.Node {
		if err == nil && e != nil {
			err = e
		}
		return n
	}
	x := must(nn.Embed(w["transformer.wte.weight"], w["transformer.wpe.weight"], tk))
	for i := 0; i < c.Layers && err == nil; i++ {
		pre := fmt.Sprintf("transformer.h.%d.", i)
		h := must(nn.LayerNorm(x, w[pre+"ln_1.weight"], w[pre+"ln_1.bias"]))
		qkv := must(lin(pre+"attn.c_attn", h, w[pre+"attn.c_attn.weight"], w[pre+"attn.c_attn.bias"]))
		if err != nil {
			break
		}
		a := must(nn.Attention(qkv, tk.B, tk.T, c.Heads))
		a = must(lin(pre+"attn.c_proj", a, w[pre+"attn.c_proj.weight"], w[pre+"attn.c_proj.bias"]))
		x = must(nn.Add(x, a))
		h = must(nn.LayerNorm(x, w[pre+"ln_2.weight"], w[pre+"ln_2.bias"]))
		f := must(lin(pre+"mlp.c_fc", h, w[pre+"mlp.c_fc.weight"], w[pre+"mlp.c_fc.bias"]))
		f = must(nn.GELU(f))
		f = must(lin(pre+"mlp.c_proj", f, w[pre+"mlp.c_proj.weight"], w[pre+"mlp.c_proj.bias"]))
		x = must(nn.Add(x, f))
	}
	if err != nil {
		return nil, nil, err
	}
	h := must(nn.LayerNorm(x, w["transformer.ln_f.weight"], w["transformer.ln_f.bias"]))
	head := w["transformer.wte.weight"]
	if c.Untied {
		head = w["lm_head.weight"]
	}
	return h, head, err
}

// fusedHead is false: GPT-2 keeps MatMul + TargetLogProbs, so that models trained from scratch compute bit for
// bit what they did before the Llama family came.
func (gpt2) fusedHead() bool { return false }
