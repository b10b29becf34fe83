package hf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
)

// Architectures the trainer supports, as config.json's "architectures" names them, and the model_type of each.
var Architectures = []string{"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM", "GPT2LMHeadModel"}

var modelTypes = map[string]string{
	"LlamaForCausalLM":   "llama",
	"MistralForCausalLM": "mistral",
	"Qwen2ForCausalLM":   "qwen2",
	"Qwen3ForCausalLM":   "qwen3",
	"GPT2LMHeadModel":    "gpt2",
}

// Family is the block structure shared by several architectures.
type Family string

const (
	// FamilyLlama: pre-RMSNorm decoder, rotary positions, grouped-query attention, SwiGLU MLP; Llama, Mistral,
	// Qwen2 and Qwen3 differ only in the flags of Config (biases, q/k norm, sliding window).
	FamilyLlama Family = "llama"
	// FamilyGPT2: pre-LayerNorm decoder, learned positions, multi-head attention, GELU MLP, Conv1D weights [in, out].
	FamilyGPT2 Family = "gpt2"
)

// RopeScaling is config.json's rope_scaling (or, in newer transformers, rope_parameters) when its type is not
// "default". Type is "linear" (positions divided by Factor) or "llama3" (Llama 3.1's frequency-dependent
// scaling: wavelengths above OriginalMaxPositionEmbeddings/LowFreqFactor divided by Factor, those below
// OriginalMaxPositionEmbeddings/HighFreqFactor kept, a smooth blend between; transformers'
// _compute_llama3_parameters).
type RopeScaling struct {
	Type                          string
	Factor                        float64
	LowFreqFactor                 float64
	HighFreqFactor                float64
	OriginalMaxPositionEmbeddings int
}

// Config is a model's config.json mapped into one family-neutral description (the role of candle's Config):
// every architecture in Architectures parses into it, and model code reads only these fields. Unknown fields are
// kept and written back by Marshal.
type Config struct {
	// Architecture is one of Architectures; ModelType its model_type.
	Architecture string
	ModelType    string
	Family       Family

	VocabSize        int // vocab_size
	HiddenSize       int // hidden_size; GPT-2: n_embd
	IntermediateSize int // intermediate_size; GPT-2: n_inner (4·n_embd when null)
	NumLayers        int // num_hidden_layers; GPT-2: n_layer
	NumHeads         int // num_attention_heads; GPT-2: n_head
	NumKVHeads       int // num_key_value_heads (NumHeads when absent); GPT-2: NumHeads
	HeadDim          int // head_dim (HiddenSize/NumHeads when absent)
	// MaxPositionEmbeddings is max_position_embeddings; GPT-2: n_positions (the size of wpe).
	MaxPositionEmbeddings int
	// NormEps is rms_norm_eps (RMSNorm, FamilyLlama) or layer_norm_epsilon (LayerNorm, FamilyGPT2).
	NormEps float64
	// Activation is hidden_act (FamilyLlama: "silu") or activation_function (FamilyGPT2: "gelu_new",
	// "gelu_pytorch_tanh" (the same tanh form) or "gelu" (the erf form)).
	Activation string
	// RopeTheta is the rotary base (rope_theta); 0 for FamilyGPT2.
	RopeTheta   float64
	RopeScaling *RopeScaling
	// QKVBias: q_proj, k_proj and v_proj have biases (Llama and Qwen3: attention_bias; Qwen2: always).
	// OutputBias: o_proj has one (Llama and Qwen3: attention_bias). MLPBias: gate/up/down_proj have biases
	// (Llama: mlp_bias). FamilyGPT2 always has all biases.
	QKVBias    bool
	OutputBias bool
	MLPBias    bool
	// QKNorm: per-head RMSNorm of queries and keys over HeadDim before the rotation (Qwen3: q_norm, k_norm).
	QKNorm bool
	// TieWordEmbeddings: the LM head is the token embedding (no lm_head.weight in the file).
	TieWordEmbeddings bool
	// SlidingWindow is the attention window in tokens when one applies (Mistral's sliding_window, Qwen's when
	// use_sliding_window is true); 0 when attention is fully causal. See CheckContext.
	SlidingWindow int
	// Token ids from config.json (nil / empty when absent); eos_token_id may be a list (Llama 3).
	BOSTokenID  *int
	EOSTokenIDs []int
	PadTokenID  *int
	// TorchDType is the torch_dtype (or dtype) the file declares, e.g. "bfloat16"; informational.
	TorchDType string

	raw    map[string]json.RawMessage // every field as read, for Marshal
	parsed *Config                    // the values as parsed (nil for a Config built in code)
}

// UnsupportedError is a model the trainer cannot train: an architecture outside Architectures, or a feature of a
// supported one that the trainer does not implement (a rope_scaling type, a sliding window shorter than the
// context). Its Reason is "ModelUnsupported"; a run failing with it must exit with contract.ExitInvalidInput.
type UnsupportedError struct {
	// Architecture found in config.json ("" when none was given).
	Architecture string
	// Field of config.json at fault, when one is ("architectures" for an unknown architecture).
	Field string
	// Detail says what is not supported.
	Detail string
}

// ReasonModelUnsupported is the termination reason of an UnsupportedError.
const ReasonModelUnsupported = "ModelUnsupported"

// Reason is "ModelUnsupported".
func (e *UnsupportedError) Reason() string { return ReasonModelUnsupported }

func (e *UnsupportedError) Error() string {
	if e.Field == "architectures" {
		return fmt.Sprintf("model architecture %q is not supported (supported: %s)", e.Architecture, strings.Join(Architectures, ", "))
	}
	return fmt.Sprintf("model %s: config.json field %q: %s", e.Architecture, e.Field, e.Detail)
}

// ConfigError is a config.json that is malformed or inconsistent: a missing or non-positive size, a field of the
// wrong type, heads that do not divide. Reason is "ModelUnreadable".
type ConfigError struct {
	Field  string
	Detail string
}

// ReasonModelUnreadable is the termination reason of a ConfigError or of weights that do not load.
const ReasonModelUnreadable = "ModelUnreadable"

// Reason is "ModelUnreadable".
func (e *ConfigError) Reason() string { return ReasonModelUnreadable }

func (e *ConfigError) Error() string {
	return fmt.Sprintf("config.json field %q: %s", e.Field, e.Detail)
}

// ParseConfig reads config.json. The architecture is architectures[0] when the list is present, else the one
// whose model_type matches; anything outside Architectures is an *UnsupportedError naming it. Sizes (vocab,
// hidden, intermediate, layers, heads) are required; other fields take transformers' defaults for the
// architecture when absent (num_key_value_heads = heads, head_dim = hidden/heads, rms_norm_eps, rope_theta 10000,
// max_position_embeddings, tie_word_embeddings). Errors are *ConfigError or *UnsupportedError naming the field.
func ParseConfig(data []byte) (*Config, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, &ConfigError{Field: "", Detail: fmt.Sprintf("not a JSON object: %v", err)}
	}
	if raw == nil {
		return nil, &ConfigError{Field: "", Detail: "not a JSON object"}
	}
	r := reader{raw: raw}
	c := &Config{raw: raw}
	var archs []string
	r.get("architectures", &archs)
	r.get("model_type", &c.ModelType)
	if r.err != nil {
		return nil, r.err
	}
	switch {
	case len(archs) > 0:
		c.Architecture = archs[0]
	default:
		for a, mt := range modelTypes {
			if mt == c.ModelType {
				c.Architecture = a
			}
		}
		if c.Architecture == "" {
			found := c.ModelType
			if found == "" {
				found = "(no architectures and no model_type)"
			} else {
				found = "model_type " + found
			}
			return nil, &UnsupportedError{Architecture: found, Field: "architectures"}
		}
	}
	mt, ok := modelTypes[c.Architecture]
	if !ok {
		return nil, &UnsupportedError{Architecture: c.Architecture, Field: "architectures"}
	}
	if c.ModelType == "" {
		c.ModelType = mt
	}
	if !r.has("torch_dtype") {
		r.get("dtype", &c.TorchDType)
	} else {
		r.get("torch_dtype", &c.TorchDType)
	}
	if mt == "gpt2" {
		c.parseGPT2(&r)
	} else {
		c.parseLlama(&r, mt)
	}
	if r.err != nil {
		return nil, r.err
	}
	var bos, pad *int
	r.get("bos_token_id", &bos)
	r.get("pad_token_id", &pad)
	c.BOSTokenID, c.PadTokenID = bos, pad
	if r.has("eos_token_id") && string(raw["eos_token_id"]) != "null" {
		var one int
		if err := json.Unmarshal(raw["eos_token_id"], &one); err == nil {
			c.EOSTokenIDs = []int{one}
		} else if err := json.Unmarshal(raw["eos_token_id"], &c.EOSTokenIDs); err != nil {
			return nil, &ConfigError{Field: "eos_token_id", Detail: "must be an integer or a list of integers"}
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	snap := *c
	snap.raw, snap.parsed = nil, nil
	c.parsed = &snap
	return c, nil
}

// reader pulls typed fields out of the raw map, keeping the first error (naming the field).
type reader struct {
	raw map[string]json.RawMessage
	err error
}

func (r *reader) has(key string) bool { _, ok := r.raw[key]; return ok }

// get decodes key into dst when present and not null; it reports whether it did.
func (r *reader) get(key string, dst any) bool {
	v, ok := r.raw[key]
	if !ok || r.err != nil || string(v) == "null" {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(v))
	if err := dec.Decode(dst); err != nil {
		// An integral float such as 64.0 is accepted for an int field (some converters write them).
		if ip, isInt := dst.(*int); isInt {
			var f float64
			if json.Unmarshal(v, &f) == nil && f == math.Trunc(f) && math.Abs(f) < 1<<31 {
				*ip = int(f)
				return true
			}
		}
		r.err = &ConfigError{Field: key, Detail: fmt.Sprintf("has the wrong type: %s", v)}
		return false
	}
	return true
}

// required decodes a positive integer size.
func (r *reader) required(key string, dst *int) {
	if r.err != nil {
		return
	}
	if !r.get(key, dst) {
		if r.err == nil {
			r.err = &ConfigError{Field: key, Detail: "is missing"}
		}
		return
	}
	if *dst <= 0 {
		r.err = &ConfigError{Field: key, Detail: fmt.Sprintf("is %d, must be positive", *dst)}
	}
}

func (c *Config) parseGPT2(r *reader) {
	c.Family = FamilyGPT2
	r.required("vocab_size", &c.VocabSize)
	r.required("n_embd", &c.HiddenSize)
	r.required("n_layer", &c.NumLayers)
	r.required("n_head", &c.NumHeads)
	c.MaxPositionEmbeddings = 1024
	r.get("n_positions", &c.MaxPositionEmbeddings)
	c.IntermediateSize = 4 * c.HiddenSize
	r.get("n_inner", &c.IntermediateSize)
	c.NormEps = 1e-5
	r.get("layer_norm_epsilon", &c.NormEps)
	c.Activation = "gelu_new"
	r.get("activation_function", &c.Activation)
	c.TieWordEmbeddings = true
	r.get("tie_word_embeddings", &c.TieWordEmbeddings)
	c.NumKVHeads = c.NumHeads
	if c.NumHeads > 0 && c.HiddenSize%c.NumHeads != 0 && r.err == nil {
		r.err = &ConfigError{Field: "n_head", Detail: fmt.Sprintf("%d does not divide n_embd %d", c.NumHeads, c.HiddenSize)}
	}
	if c.NumHeads > 0 {
		c.HeadDim = c.HiddenSize / c.NumHeads
	}
	c.QKVBias, c.OutputBias, c.MLPBias = true, true, true
	// Variants of GPT-2's attention that change its arithmetic.
	scale := true
	r.get("scale_attn_weights", &scale)
	byLayer, upcast := false, false
	r.get("scale_attn_by_inverse_layer_idx", &byLayer)
	r.get("reorder_and_upcast_attn", &upcast)
	switch {
	case r.err != nil:
	case !scale:
		r.err = &UnsupportedError{Architecture: c.Architecture, Field: "scale_attn_weights", Detail: "false is not supported (attention is scaled by 1/sqrt(head_dim))"}
	case byLayer:
		r.err = &UnsupportedError{Architecture: c.Architecture, Field: "scale_attn_by_inverse_layer_idx", Detail: "true is not supported"}
	}
	switch c.Activation {
	case "gelu_new", "gelu_pytorch_tanh", "gelu":
	default:
		if r.err == nil {
			r.err = &UnsupportedError{Architecture: c.Architecture, Field: "activation_function", Detail: fmt.Sprintf("%q is not supported (supported: gelu_new, gelu_pytorch_tanh, gelu)", c.Activation)}
		}
	}
}

func (c *Config) parseLlama(r *reader, mt string) {
	c.Family = FamilyLlama
	r.required("vocab_size", &c.VocabSize)
	r.required("hidden_size", &c.HiddenSize)
	r.required("intermediate_size", &c.IntermediateSize)
	r.required("num_hidden_layers", &c.NumLayers)
	r.required("num_attention_heads", &c.NumHeads)
	if r.err != nil {
		return
	}
	c.NumKVHeads = c.NumHeads
	r.get("num_key_value_heads", &c.NumKVHeads)
	if !r.get("head_dim", &c.HeadDim) {
		if c.HiddenSize%c.NumHeads != 0 && r.err == nil {
			r.err = &ConfigError{Field: "num_attention_heads", Detail: fmt.Sprintf("%d does not divide hidden_size %d and head_dim is not given", c.NumHeads, c.HiddenSize)}
		}
		c.HeadDim = c.HiddenSize / c.NumHeads
	}
	// transformers' defaults per architecture.
	c.MaxPositionEmbeddings = map[string]int{"llama": 2048, "mistral": 4096 * 32, "qwen2": 32768, "qwen3": 32768}[mt]
	r.get("max_position_embeddings", &c.MaxPositionEmbeddings)
	c.NormEps = 1e-6
	r.get("rms_norm_eps", &c.NormEps)
	c.Activation = "silu"
	r.get("hidden_act", &c.Activation)
	r.get("tie_word_embeddings", &c.TieWordEmbeddings)
	switch mt {
	case "llama":
		var attnBias bool
		r.get("attention_bias", &attnBias)
		c.QKVBias, c.OutputBias = attnBias, attnBias
		r.get("mlp_bias", &c.MLPBias)
	case "qwen3":
		var attnBias bool
		r.get("attention_bias", &attnBias)
		c.QKVBias, c.OutputBias = attnBias, attnBias
		c.QKNorm = true
	case "qwen2":
		c.QKVBias = true
	}
	// Sliding windows: Mistral's applies whenever sliding_window is set; Qwen's only with use_sliding_window.
	var window int
	switch mt {
	case "mistral":
		if !r.has("sliding_window") {
			window = 4096 // MistralConfig's default when the key is absent
		}
		r.get("sliding_window", &window)
	case "qwen2", "qwen3":
		var use bool
		r.get("use_sliding_window", &use)
		if use {
			r.get("sliding_window", &window)
		}
	}
	c.SlidingWindow = window
	c.parseRope(r)
	if r.err != nil {
		return
	}
	switch {
	case c.NumKVHeads <= 0:
		r.err = &ConfigError{Field: "num_key_value_heads", Detail: fmt.Sprintf("is %d, must be positive", c.NumKVHeads)}
	case c.NumHeads%c.NumKVHeads != 0:
		r.err = &ConfigError{Field: "num_key_value_heads", Detail: fmt.Sprintf("%d does not divide num_attention_heads %d", c.NumKVHeads, c.NumHeads)}
	case c.HeadDim <= 0 || c.HeadDim%2 != 0:
		r.err = &ConfigError{Field: "head_dim", Detail: fmt.Sprintf("is %d, must be positive and even (rotary pairs)", c.HeadDim)}
	case c.Activation != "silu":
		r.err = &UnsupportedError{Architecture: c.Architecture, Field: "hidden_act", Detail: fmt.Sprintf("%q is not supported (supported: silu)", c.Activation)}
	case c.SlidingWindow < 0:
		r.err = &ConfigError{Field: "sliding_window", Detail: fmt.Sprintf("is %d", c.SlidingWindow)}
	}
}

// parseRope reads rope_theta and rope_scaling, or transformers 5's rope_parameters holding both.
func (c *Config) parseRope(r *reader) {
	c.RopeTheta = 10000
	r.get("rope_theta", &c.RopeTheta)
	field := "rope_scaling"
	var scaling map[string]json.RawMessage
	if r.has("rope_parameters") {
		field = "rope_parameters"
	}
	if !r.get(field, &scaling) || r.err != nil {
		return
	}
	sr := reader{raw: scaling}
	sr.get("rope_theta", &c.RopeTheta)
	typ := ""
	if !sr.get("rope_type", &typ) {
		sr.get("type", &typ)
	}
	s := &RopeScaling{Type: typ}
	sr.get("factor", &s.Factor)
	sr.get("low_freq_factor", &s.LowFreqFactor)
	sr.get("high_freq_factor", &s.HighFreqFactor)
	sr.get("original_max_position_embeddings", &s.OriginalMaxPositionEmbeddings)
	if sr.err != nil {
		ce := sr.err.(*ConfigError)
		r.err = &ConfigError{Field: field + "." + ce.Field, Detail: ce.Detail}
		return
	}
	switch typ {
	case "default", "":
		if typ == "" && field == "rope_scaling" {
			r.err = &ConfigError{Field: "rope_scaling", Detail: "has no rope_type (or type)"}
		}
		return
	case "linear":
		if !(s.Factor > 0) {
			r.err = &ConfigError{Field: field + ".factor", Detail: fmt.Sprintf("is %v, must be positive", s.Factor)}
			return
		}
	case "llama3":
		switch {
		case !(s.Factor > 0):
			r.err = &ConfigError{Field: field + ".factor", Detail: fmt.Sprintf("is %v, must be positive", s.Factor)}
		case !(s.LowFreqFactor > 0) || !(s.HighFreqFactor > s.LowFreqFactor):
			r.err = &ConfigError{Field: field + ".high_freq_factor", Detail: fmt.Sprintf("low_freq_factor %v and high_freq_factor %v must satisfy 0 < low < high", s.LowFreqFactor, s.HighFreqFactor)}
		case s.OriginalMaxPositionEmbeddings <= 0:
			r.err = &ConfigError{Field: field + ".original_max_position_embeddings", Detail: "must be positive"}
		}
		if r.err != nil {
			return
		}
	default:
		r.err = &UnsupportedError{Architecture: c.Architecture, Field: field, Detail: fmt.Sprintf("rope type %q is not supported (supported: default, linear, llama3)", typ)}
		return
	}
	c.RopeScaling = s
}

func (c *Config) validate() error {
	switch {
	case c.MaxPositionEmbeddings <= 0:
		return &ConfigError{Field: c.key("max_position_embeddings"), Detail: fmt.Sprintf("is %d, must be positive", c.MaxPositionEmbeddings)}
	case !(c.NormEps > 0):
		return &ConfigError{Field: c.key("rms_norm_eps"), Detail: fmt.Sprintf("is %v, must be positive", c.NormEps)}
	case c.IntermediateSize <= 0:
		return &ConfigError{Field: c.key("intermediate_size"), Detail: fmt.Sprintf("is %d, must be positive", c.IntermediateSize)}
	case c.Family == FamilyLlama && !(c.RopeTheta > 0):
		return &ConfigError{Field: "rope_theta", Detail: fmt.Sprintf("is %v, must be positive", c.RopeTheta)}
	}
	for _, id := range append(append([]int{}, c.EOSTokenIDs...), deref(c.BOSTokenID), deref(c.PadTokenID)) {
		if id < 0 || id >= c.VocabSize {
			return &ConfigError{Field: "bos_token_id/eos_token_id/pad_token_id", Detail: fmt.Sprintf("id %d is outside the vocabulary (vocab_size %d)", id, c.VocabSize)}
		}
	}
	return nil
}

func deref(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

// key is the config.json name of a Llama-style field in this config's family.
func (c *Config) key(llamaKey string) string {
	if c.Family != FamilyGPT2 {
		return llamaKey
	}
	return map[string]string{
		"vocab_size": "vocab_size", "hidden_size": "n_embd", "intermediate_size": "n_inner", "num_hidden_layers": "n_layer",
		"num_attention_heads": "n_head", "max_position_embeddings": "n_positions", "rms_norm_eps": "layer_norm_epsilon",
		"hidden_act": "activation_function", "tie_word_embeddings": "tie_word_embeddings",
	}[llamaKey]
}

// CheckContext says whether the model can train at contextLength tokens: a sliding window shorter than the
// context is an *UnsupportedError (attention is fully causal here; a window at least the context length changes
// nothing), and so is a context beyond GPT-2's learned positions (n_positions).
func (c *Config) CheckContext(contextLength int) error {
	if c.SlidingWindow > 0 && c.SlidingWindow < contextLength {
		return &UnsupportedError{Architecture: c.Architecture, Field: "sliding_window", Detail: fmt.Sprintf(
			"attention window %d is shorter than the context length %d; sliding-window attention is not supported, use a context length of at most %d",
			c.SlidingWindow, contextLength, c.SlidingWindow)}
	}
	if c.Family == FamilyGPT2 && contextLength > c.MaxPositionEmbeddings {
		return &UnsupportedError{Architecture: c.Architecture, Field: "n_positions", Detail: fmt.Sprintf(
			"the context length %d exceeds the %d learned positions", contextLength, c.MaxPositionEmbeddings)}
	}
	return nil
}

// field is one config.json key that Config models, for Marshal.
type field struct {
	key string
	get func(c *Config) any
}

func llamaFields(mt string) []field {
	fs := []field{
		{"vocab_size", func(c *Config) any { return c.VocabSize }},
		{"hidden_size", func(c *Config) any { return c.HiddenSize }},
		{"intermediate_size", func(c *Config) any { return c.IntermediateSize }},
		{"num_hidden_layers", func(c *Config) any { return c.NumLayers }},
		{"num_attention_heads", func(c *Config) any { return c.NumHeads }},
		{"num_key_value_heads", func(c *Config) any { return c.NumKVHeads }},
		{"head_dim", func(c *Config) any { return c.HeadDim }},
		{"max_position_embeddings", func(c *Config) any { return c.MaxPositionEmbeddings }},
		{"rms_norm_eps", func(c *Config) any { return c.NormEps }},
		{"hidden_act", func(c *Config) any { return c.Activation }},
		{"tie_word_embeddings", func(c *Config) any { return c.TieWordEmbeddings }},
	}
	switch mt {
	case "llama":
		fs = append(fs, field{"attention_bias", func(c *Config) any { return c.QKVBias }}, field{"mlp_bias", func(c *Config) any { return c.MLPBias }})
	case "qwen3":
		fs = append(fs, field{"attention_bias", func(c *Config) any { return c.QKVBias }})
	}
	switch mt {
	case "mistral":
		fs = append(fs, field{"sliding_window", func(c *Config) any {
			if c.SlidingWindow == 0 {
				return nil
			}
			return c.SlidingWindow
		}})
	case "qwen2", "qwen3":
		fs = append(fs, field{"use_sliding_window", func(c *Config) any { return c.SlidingWindow > 0 }})
		fs = append(fs, field{"sliding_window", func(c *Config) any {
			if c.SlidingWindow == 0 {
				return nil // left as it was: without use_sliding_window it is not used
			}
			return c.SlidingWindow
		}})
	}
	return fs
}

var gpt2Fields = []field{
	{"vocab_size", func(c *Config) any { return c.VocabSize }},
	{"n_embd", func(c *Config) any { return c.HiddenSize }},
	{"n_inner", func(c *Config) any { return c.IntermediateSize }},
	{"n_layer", func(c *Config) any { return c.NumLayers }},
	{"n_head", func(c *Config) any { return c.NumHeads }},
	{"n_positions", func(c *Config) any { return c.MaxPositionEmbeddings }},
	{"layer_norm_epsilon", func(c *Config) any { return c.NormEps }},
	{"activation_function", func(c *Config) any { return c.Activation }},
	{"tie_word_embeddings", func(c *Config) any { return c.TieWordEmbeddings }},
}

var tokenFields = []field{
	{"bos_token_id", func(c *Config) any { return c.BOSTokenID }},
	{"pad_token_id", func(c *Config) any { return c.PadTokenID }},
	{"eos_token_id", func(c *Config) any {
		switch len(c.EOSTokenIDs) {
		case 0:
			return nil
		case 1:
			return c.EOSTokenIDs[0]
		}
		return c.EOSTokenIDs
	}},
}

// Marshal renders config.json for a model trained from this one: every field read is written back (unknown
// ones unchanged), "architectures" is [Architecture], "model_type" ModelType and "torch_dtype" "float32" (the
// weights are written F32; "dtype" too when the file had it). A field Config models is rewritten only when its
// value changed since ParseConfig; for a Config built in code (a literal) every modelled field is
// written. Keys are sorted and indented by two spaces, as save_pretrained writes them.
func (c *Config) Marshal() ([]byte, error) {
	if _, ok := modelTypes[c.Architecture]; !ok {
		return nil, &UnsupportedError{Architecture: c.Architecture, Field: "architectures"}
	}
	out := make(map[string]any, len(c.raw)+8)
	for k, v := range c.raw {
		out[k] = v
	}
	out["architectures"] = []string{c.Architecture}
	mt := c.ModelType
	if mt == "" {
		mt = modelTypes[c.Architecture]
	}
	out["model_type"] = mt
	out["torch_dtype"] = "float32"
	if _, ok := c.raw["dtype"]; ok {
		out["dtype"] = "float32"
	}
	fs := gpt2Fields
	if c.Family != FamilyGPT2 {
		fs = llamaFields(mt)
	}
	fs = append(append([]field{}, fs...), tokenFields...)
	for _, f := range fs {
		v := f.get(c)
		if c.parsed != nil && reflect.DeepEqual(v, f.get(c.parsed)) {
			continue
		}
		if v == nil || (reflect.ValueOf(v).Kind() == reflect.Pointer && reflect.ValueOf(v).IsNil()) {
			out[f.key] = nil // explicit null: an absent key may mean a default (Mistral's sliding_window is 4096)
			continue
		}
		out[f.key] = v
	}
	if c.Family != FamilyGPT2 && (c.parsed == nil || !reflect.DeepEqual(c.RopeScaling, c.parsed.RopeScaling) || c.RopeTheta != c.parsed.RopeTheta) {
		c.marshalRope(out)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// marshalRope writes rope_theta and rope_scaling, into rope_parameters when the file used that form.
func (c *Config) marshalRope(out map[string]any) {
	scaling := map[string]any(nil)
	if s := c.RopeScaling; s != nil {
		scaling = map[string]any{"rope_type": s.Type, "factor": s.Factor}
		if s.Type == "llama3" {
			scaling["low_freq_factor"] = s.LowFreqFactor
			scaling["high_freq_factor"] = s.HighFreqFactor
			scaling["original_max_position_embeddings"] = s.OriginalMaxPositionEmbeddings
		}
	}
	if _, ok := c.raw["rope_parameters"]; ok {
		if scaling == nil {
			scaling = map[string]any{"rope_type": "default"}
		}
		scaling["rope_theta"] = c.RopeTheta
		out["rope_parameters"] = scaling
		return
	}
	out["rope_theta"] = c.RopeTheta
	out["rope_scaling"] = scaling
}
