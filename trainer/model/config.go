package model

import (
	"fmt"
	"slices"
	"strings"

	G "gorgonia.org/gorgonia"

	"github.com/preftune/preftune/trainer/nn"
)

// Family is a block structure; each has one file in this package (gpt2.go, llama.go) holding its parameter
// table, its initialisation and its forward pass.
type Family string

const (
	// GPT2 is GPT-2 (Hugging Face's GPT2LMHeadModel): learned positions, pre-LayerNorm blocks, multi-head
	// attention over a fused c_attn, GELU (tanh form) MLP, Conv1D weights [in, out]. The zero Family is GPT2,
	// the architecture of models trained from scratch.
	GPT2 Family = "gpt2"
	// Llama is the Llama family (Hugging Face's LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM,
	// Qwen3ForCausalLM): rotary positions, pre-RMSNorm blocks, grouped-query attention, SwiGLU MLP,
	// torch.nn.Linear weights [out, in]; the architectures differ only in Config's flags.
	Llama Family = "llama"
)

// Config is the architecture in the trainer's own terms. FromHF maps a checkpoint's config.json into it and
// HFConfig maps it back; model code reads only these fields. A Config literal with only the five GPT-2 sizes
// (VocabSize, ContextLength, Layers, DModel, Heads) is the from-scratch GPT: every other field takes its
// GPT-2 default (see Normalized).
type Config struct {
	Family Family
	// VocabSize is vocab_size. ContextLength is the longest sequence a graph is built for (the training
	// context); MaxPositions is the size of GPT-2's position table (n_positions, ContextLength when 0) and,
	// for the Llama family, max_position_embeddings (kept for config.json only).
	VocabSize, ContextLength, MaxPositions int
	// Layers is num_hidden_layers (n_layer); DModel hidden_size (n_embd); Heads num_attention_heads (n_head).
	Layers, DModel, Heads int
	// KVHeads is num_key_value_heads (Heads when 0); HeadDim is head_dim (DModel/Heads when 0); Intermediate
	// is intermediate_size (GPT-2's n_inner, 4·DModel when 0).
	KVHeads, HeadDim, Intermediate int
	// NormEps is rms_norm_eps (Llama) or layer_norm_epsilon (GPT-2); 1e-5 when 0.
	NormEps float64
	// RopeTheta is rope_theta (10000 when 0) and RopeScaling rope_scaling (nil: none); Llama family only.
	RopeTheta   float64
	RopeScaling *nn.RopeScaling
	// QKVBias: q/k/v projections have biases (Qwen2, Llama's attention_bias); OutputBias: o_proj has one
	// (attention_bias); MLPBias: gate/up/down_proj have them (mlp_bias); QKNorm: Qwen3's per-head q_norm and
	// k_norm. Llama family only (GPT-2 always has every bias and no q/k norm).
	QKVBias, OutputBias, MLPBias, QKNorm bool
	// Untied: the LM head is its own lm_head.weight [V, D] (tie_word_embeddings false); otherwise it is the
	// token embedding.
	Untied bool
	// KeepAttentionProbs keeps the attention probabilities [B, heads, T, T] of every layer between the forward
	// and backward passes. By default (false) only two numbers per query row are kept and the backward pass
	// recomputes the scores block by block (nn.RecomputeProbs), as FlashAttention does: the same results bit for
	// bit, 2-3% more CPU time per step, and B·heads·T² fewer floats per layer (0.26 GiB over SmolLM2-135M's 30
	// layers at 4 × 256 tokens). Llama family only (GPT-2's attention keeps them). Graphs read it when they are
	// built, so on a loaded model set it before the first step (or after ReleaseGraphs).
	KeepAttentionProbs bool
	// Tokens are the special token ids config.json names (bos_token_id, eos_token_id, pad_token_id).
	Tokens TokenIDs
}

// TokenIDs are a model's special tokens, -1 when it has none. EOS may hold several ids (Llama 3 lists
// <|end_of_text|> and <|eot_id|>); generation stops at any of them.
type TokenIDs struct {
	BOS int
	EOS []int
	PAD int
}

// Normalized fills the fields left 0 with their defaults: Family GPT2, MaxPositions = ContextLength (GPT-2),
// KVHeads = Heads, HeadDim = DModel/Heads, Intermediate = 4·DModel (GPT-2), NormEps 1e-5, RopeTheta 10000
// (Llama). A zero TokenIDs (no BOS, EOS or PAD set) becomes "none" (-1).
func (c Config) Normalized() Config {
	if c.Family == "" {
		c.Family = GPT2
	}
	if c.MaxPositions == 0 {
		c.MaxPositions = c.ContextLength
	}
	if c.KVHeads == 0 {
		c.KVHeads = c.Heads
	}
	if c.HeadDim == 0 && c.Heads > 0 {
		c.HeadDim = c.DModel / c.Heads
	}
	if c.Intermediate == 0 {
		c.Intermediate = 4 * c.DModel
	}
	if c.NormEps == 0 {
		c.NormEps = 1e-5
	}
	if c.RopeTheta == 0 && c.Family == Llama {
		c.RopeTheta = 10000
	}
	if c.Tokens.BOS == 0 && c.Tokens.EOS == nil && c.Tokens.PAD == 0 {
		c.Tokens = TokenIDs{BOS: -1, PAD: -1}
	}
	return c
}

// Validate reports the first field that cannot make a model (after Normalized).
func (c Config) Validate() error {
	c = c.Normalized()
	f, err := familyOf(c.Family)
	if err != nil {
		return err
	}
	switch {
	case c.VocabSize < 1:
		return fmt.Errorf("model: vocabSize is %d, want >= 1", c.VocabSize)
	case c.ContextLength < 1:
		return fmt.Errorf("model: contextLength is %d, want >= 1", c.ContextLength)
	case c.Layers < 1:
		return fmt.Errorf("model: layers is %d, want >= 1", c.Layers)
	case c.Heads < 1:
		return fmt.Errorf("model: heads is %d, want >= 1", c.Heads)
	case c.Intermediate < 1:
		return fmt.Errorf("model: intermediate is %d, want >= 1", c.Intermediate)
	case !(c.NormEps > 0):
		return fmt.Errorf("model: normEps is %v, want > 0", c.NormEps)
	}
	for _, id := range append([]int{c.Tokens.BOS, c.Tokens.PAD}, c.Tokens.EOS...) {
		if id < -1 || id >= c.VocabSize {
			return fmt.Errorf("model: special token id %d outside the vocabulary [0, %d)", id, c.VocabSize)
		}
	}
	return f.validate(c)
}

// ParamShape is one weight's name and shape.
type ParamShape struct {
	Name  string
	Shape []int
}

// Shapes lists the weights in their stable order with the checkpoint's names (Hugging Face's, as
// save_pretrained writes them): the family's table (gpt2.go, llama.go). It panics on an unknown family.
func (c Config) Shapes() []ParamShape {
	c = c.Normalized()
	f, err := familyOf(c.Family)
	if err != nil {
		panic(err)
	}
	return f.shapes(c)
}

// family is what one architecture file supplies.
type family interface {
	// validate checks the family's own fields.
	validate(c Config) error
	// shapes is the ordered parameter table.
	shapes(c Config) []ParamShape
	// initStd is the standard deviation of the normal initialisation of a weight, or its constant value
	// when constant is true (norm weights 1, biases 0).
	initStd(c Config, name string) (std float64, constant bool)
	// forward builds the decoder on the graph's weights and tokens and returns the final hidden states
	// [B·T, D] and the LM head's weight [V, D]. Every adapter-targetable linear layer is built by lin, which
	// adds a LoRA adapter where the module has one.
	forward(c Config, w map[string]*G.Node, tk *nn.Tokens, lin linearFn) (h, head *G.Node, err error)
	// fusedHead: the log-probs come from nn.HeadLogProbs (only masked-in rows multiplied by the head);
	// otherwise from the whole logits (MatMul + TargetLogProbs).
	fusedHead() bool
}

// linearFn builds the linear layer named module (its Hugging Face module path, e.g. model.layers.0.mlp.up_proj)
// on input x with weight w and bias b (nil: none): nn.LinearT (nn.Linear for GPT-2's Conv1D weights), or
// nn.LoRALinear where the module has an adapter.
type linearFn func(module string, x, w, b *G.Node) (*G.Node, error)

var families = map[Family]family{}

func familyOf(f Family) (family, error) {
	if f == "" {
		f = GPT2
	}
	fam, ok := families[f]
	if !ok {
		var names []string
		for name := range families {
			names = append(names, string(name))
		}
		slices.Sort(names)
		return nil, fmt.Errorf("model: family %q is not supported (supported: %s)", f, strings.Join(names, ", "))
	}
	return fam, nil
}
