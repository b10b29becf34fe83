package hf

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func mustParse(t *testing.T, js string) *Config {
	t.Helper()
	c, err := ParseConfig([]byte(js))
	if err != nil {
		t.Fatalf("ParseConfig(%s): %v", js, err)
	}
	return c
}

// Configs shaped like the real ones on the Hub (sizes shrunk where it does not matter).
const (
	llama31 = `{"architectures":["LlamaForCausalLM"],"model_type":"llama","vocab_size":128256,"hidden_size":2048,
		"intermediate_size":8192,"num_hidden_layers":16,"num_attention_heads":32,"num_key_value_heads":8,"head_dim":64,
		"max_position_embeddings":131072,"rms_norm_eps":1e-05,"rope_theta":500000.0,"tie_word_embeddings":true,
		"rope_scaling":{"factor":32.0,"high_freq_factor":4.0,"low_freq_factor":1.0,"original_max_position_embeddings":8192,"rope_type":"llama3"},
		"bos_token_id":128000,"eos_token_id":[128001,128008,128009],"hidden_act":"silu","attention_bias":false,"mlp_bias":false,
		"torch_dtype":"bfloat16","initializer_range":0.02,"pretraining_tp":1}`
	mistral = `{"architectures":["MistralForCausalLM"],"model_type":"mistral","vocab_size":32000,"hidden_size":4096,
		"intermediate_size":14336,"num_hidden_layers":32,"num_attention_heads":32,"num_key_value_heads":8,
		"max_position_embeddings":32768,"rms_norm_eps":1e-05,"rope_theta":10000.0,"sliding_window":4096,
		"tie_word_embeddings":false,"bos_token_id":1,"eos_token_id":2,"torch_dtype":"bfloat16"}`
	qwen2 = `{"architectures":["Qwen2ForCausalLM"],"model_type":"qwen2","vocab_size":151936,"hidden_size":896,
		"intermediate_size":4864,"num_hidden_layers":24,"num_attention_heads":14,"num_key_value_heads":2,
		"max_position_embeddings":32768,"max_window_layers":21,"rms_norm_eps":1e-06,"rope_theta":1000000.0,
		"sliding_window":32768,"use_sliding_window":false,"tie_word_embeddings":true,"bos_token_id":151643,
		"eos_token_id":151645,"torch_dtype":"bfloat16","hidden_act":"silu"}`
	qwen3 = `{"architectures":["Qwen3ForCausalLM"],"model_type":"qwen3","vocab_size":151936,"hidden_size":1024,
		"intermediate_size":3072,"num_hidden_layers":28,"num_attention_heads":16,"num_key_value_heads":8,"head_dim":128,
		"max_position_embeddings":40960,"rms_norm_eps":1e-06,"rope_theta":1000000,"rope_scaling":null,
		"sliding_window":null,"use_sliding_window":false,"attention_bias":false,"tie_word_embeddings":true,
		"torch_dtype":"bfloat16","eos_token_id":151645,"bos_token_id":151643}`
	gpt2 = `{"architectures":["GPT2LMHeadModel"],"model_type":"gpt2","vocab_size":50257,"n_embd":768,"n_layer":12,
		"n_head":12,"n_inner":null,"n_positions":1024,"n_ctx":1024,"layer_norm_epsilon":1e-05,
		"activation_function":"gelu_new","bos_token_id":50256,"eos_token_id":50256,"resid_pdrop":0.1,
		"task_specific_params":{"text-generation":{"do_sample":true,"max_length":50}}}`
)

func TestParseArchitectures(t *testing.T) {
	l := mustParse(t, llama31)
	if l.Family != FamilyLlama || l.Architecture != "LlamaForCausalLM" || l.HeadDim != 64 || l.NumKVHeads != 8 ||
		l.RopeTheta != 500000 || !l.TieWordEmbeddings || l.QKVBias || l.MLPBias || l.NormEps != 1e-5 ||
		!slices.Equal(l.EOSTokenIDs, []int{128001, 128008, 128009}) || *l.BOSTokenID != 128000 || l.TorchDType != "bfloat16" ||
		l.MaxPositionEmbeddings != 131072 {
		t.Errorf("llama 3.1: %+v", l)
	}
	if want := (RopeScaling{Type: "llama3", Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8192}); l.RopeScaling == nil || *l.RopeScaling != want {
		t.Errorf("llama3 rope_scaling %+v", l.RopeScaling)
	}
	m := mustParse(t, mistral)
	if m.HeadDim != 128 || m.SlidingWindow != 4096 || m.TieWordEmbeddings || m.QKVBias || m.OutputBias {
		t.Errorf("mistral: %+v", m)
	}
	q2 := mustParse(t, qwen2)
	if !q2.QKVBias || q2.OutputBias || q2.SlidingWindow != 0 || q2.HeadDim != 64 || q2.NumKVHeads != 2 || q2.QKNorm {
		t.Errorf("qwen2: %+v", q2)
	}
	q3 := mustParse(t, qwen3)
	if !q3.QKNorm || q3.HeadDim != 128 || q3.HeadDim*q3.NumHeads == q3.HiddenSize || q3.QKVBias || q3.RopeScaling != nil {
		t.Errorf("qwen3: %+v", q3)
	}
	g := mustParse(t, gpt2)
	if g.Family != FamilyGPT2 || g.IntermediateSize != 3072 || g.HeadDim != 64 || g.NumKVHeads != 12 || g.Activation != "gelu_new" ||
		!g.TieWordEmbeddings || !g.QKVBias || !g.MLPBias || g.MaxPositionEmbeddings != 1024 {
		t.Errorf("gpt2: %+v", g)
	}
	// model_type alone chooses the architecture.
	if c := mustParse(t, `{"model_type":"qwen2","vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2}`); c.Architecture != "Qwen2ForCausalLM" {
		t.Errorf("model_type qwen2: %s", c.Architecture)
	}
}

func TestRopeScalingLinearAndParameters(t *testing.T) {
	base := `{"architectures":["LlamaForCausalLM"],"vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2,`
	c := mustParse(t, base+`"rope_scaling":{"type":"linear","factor":4.0}}`)
	if c.RopeScaling == nil || c.RopeScaling.Type != "linear" || c.RopeScaling.Factor != 4 {
		t.Errorf("linear: %+v", c.RopeScaling)
	}
	// transformers 5 writes rope_parameters holding rope_theta.
	c = mustParse(t, base+`"rope_parameters":{"rope_type":"default","rope_theta":500000.0}}`)
	if c.RopeScaling != nil || c.RopeTheta != 500000 {
		t.Errorf("rope_parameters: %+v theta %v", c.RopeScaling, c.RopeTheta)
	}
	_, err := ParseConfig([]byte(base + `"rope_scaling":{"rope_type":"yarn","factor":4.0}}`))
	var ue *UnsupportedError
	if !errors.As(err, &ue) || ue.Field != "rope_scaling" || !strings.Contains(err.Error(), "yarn") || ue.Reason() != "ModelUnsupported" {
		t.Errorf("yarn: %v", err)
	}
	_, err = ParseConfig([]byte(base + `"rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":4,"high_freq_factor":1,"original_max_position_embeddings":8192}}`))
	var ce *ConfigError
	if !errors.As(err, &ce) || !strings.Contains(ce.Field, "high_freq_factor") {
		t.Errorf("llama3 with low > high: %v", err)
	}
}

func TestUnsupportedArchitecture(t *testing.T) {
	_, err := ParseConfig([]byte(`{"architectures":["GemmaForCausalLM"],"model_type":"gemma","hidden_size":8}`))
	var ue *UnsupportedError
	if !errors.As(err, &ue) || ue.Architecture != "GemmaForCausalLM" || ue.Reason() != ReasonModelUnsupported {
		t.Fatalf("gemma: %v", err)
	}
	for _, a := range append([]string{"GemmaForCausalLM"}, Architectures...) {
		if !strings.Contains(err.Error(), a) {
			t.Errorf("message %q does not name %s", err, a)
		}
	}
	_, err = ParseConfig([]byte(`{"model_type":"bert"}`))
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "bert") {
		t.Errorf("bert: %v", err)
	}
	_, err = ParseConfig([]byte(`{"architectures":["LlamaForSequenceClassification"]}`))
	if !errors.As(err, &ue) {
		t.Errorf("sequence classification: %v", err)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	base := map[string]any{"architectures": []string{"LlamaForCausalLM"}, "vocab_size": 10, "hidden_size": 8, "intermediate_size": 16,
		"num_hidden_layers": 1, "num_attention_heads": 2}
	cases := []struct {
		change map[string]any
		field  string
	}{
		{map[string]any{"hidden_size": nil}, "hidden_size"},
		{map[string]any{"num_hidden_layers": 0}, "num_hidden_layers"},
		{map[string]any{"vocab_size": "ten"}, "vocab_size"},
		{map[string]any{"num_key_value_heads": 3}, "num_key_value_heads"},
		{map[string]any{"num_attention_heads": 3}, "num_attention_heads"},
		{map[string]any{"head_dim": 3}, "head_dim"},
		{map[string]any{"rms_norm_eps": -1}, "rms_norm_eps"},
		{map[string]any{"eos_token_id": 10}, "eos_token_id"},
		{map[string]any{"hidden_act": "gelu"}, "hidden_act"},
	}
	for _, c := range cases {
		m := map[string]any{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range c.change {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		js, _ := json.Marshal(m)
		_, err := ParseConfig(js)
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%v: %v, want an error naming %s", c.change, err, c.field)
		}
	}
	if _, err := ParseConfig([]byte(`[1]`)); err == nil {
		t.Error("a JSON array accepted")
	}
	_, err := ParseConfig([]byte(`{"architectures":["GPT2LMHeadModel"],"vocab_size":10,"n_embd":8,"n_layer":1,"n_head":2,"scale_attn_by_inverse_layer_idx":true}`))
	if err == nil || !strings.Contains(err.Error(), "scale_attn_by_inverse_layer_idx") {
		t.Errorf("GPT-2 variant: %v", err)
	}
}

func TestCheckContextSlidingWindow(t *testing.T) {
	m := mustParse(t, mistral)
	if err := m.CheckContext(4096); err != nil {
		t.Errorf("window 4096 at context 4096: %v", err)
	}
	err := m.CheckContext(4097)
	var ue *UnsupportedError
	if !errors.As(err, &ue) || ue.Field != "sliding_window" || !strings.Contains(err.Error(), "4096") || !strings.Contains(err.Error(), "4097") {
		t.Errorf("window 4096 at 4097: %v", err)
	}
	// Mistral v0.2+: sliding_window null.
	m2 := mustParse(t, strings.Replace(mistral, `"sliding_window":4096`, `"sliding_window":null`, 1))
	if err := m2.CheckContext(32768); err != nil || m2.SlidingWindow != 0 {
		t.Errorf("null window: %v", err)
	}
	// Absent, transformers' MistralConfig defaults it to 4096.
	m3 := mustParse(t, strings.Replace(mistral, `"sliding_window":4096,`, ``, 1))
	if m3.SlidingWindow != 4096 {
		t.Errorf("absent window: %d", m3.SlidingWindow)
	}
	// Qwen2 with use_sliding_window true and a short window.
	q := mustParse(t, strings.NewReplacer(`"use_sliding_window":false`, `"use_sliding_window":true`, `"sliding_window":32768`, `"sliding_window":1024`).Replace(qwen2))
	if q.SlidingWindow != 1024 || q.CheckContext(2048) == nil || q.CheckContext(1024) != nil {
		t.Errorf("qwen2 window %d", q.SlidingWindow)
	}
	if q0 := mustParse(t, qwen2); q0.CheckContext(1<<20) != nil {
		t.Error("qwen2 without use_sliding_window refused")
	}
	if g := mustParse(t, gpt2); g.CheckContext(1025) == nil || g.CheckContext(1024) != nil {
		t.Error("gpt2 context beyond n_positions")
	}
}

// TestMarshalRoundTrip: every field read comes back; modelled fields are rewritten only when they change.
func TestMarshalRoundTrip(t *testing.T) {
	for name, js := range map[string]string{"llama": llama31, "mistral": mistral, "qwen2": qwen2, "qwen3": qwen3, "gpt2": gpt2} {
		c := mustParse(t, js)
		out, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		var in, got map[string]any
		json.Unmarshal([]byte(js), &in)
		json.Unmarshal(out, &got)
		if got["torch_dtype"] != "float32" {
			t.Errorf("%s: torch_dtype %v", name, got["torch_dtype"])
		}
		in["torch_dtype"] = "float32"
		if !reflect.DeepEqual(in, got) {
			t.Errorf("%s: round trip\n in %v\ngot %v", name, in, got)
		}
		back, err := ParseConfig(out)
		if err != nil {
			t.Fatal(err)
		}
		back.raw, back.parsed, c.raw, c.parsed = nil, nil, nil, nil
		c.TorchDType = "float32"
		if !reflect.DeepEqual(back, c) {
			t.Errorf("%s: parsed again\n%+v\nwant %+v", name, back, c)
		}
	}
	// A change is written; GPT-2's names are used for GPT-2.
	g := mustParse(t, gpt2)
	g.VocabSize = 259
	g.EOSTokenIDs = []int{257}
	out, _ := g.Marshal()
	var got map[string]any
	json.Unmarshal(out, &got)
	if got["vocab_size"] != 259.0 || got["eos_token_id"] != 257.0 || got["n_inner"] != nil || got["resid_pdrop"] != 0.1 {
		t.Errorf("changed gpt2: %s", out)
	}
	l := mustParse(t, llama31)
	l.RopeScaling = nil
	out, _ = l.Marshal()
	got = nil
	json.Unmarshal(out, &got)
	if got["rope_scaling"] != nil || got["rope_theta"] != 500000.0 {
		t.Errorf("rope_scaling removed: %s", out)
	}
	// A Config built in code writes every modelled field.
	bos := 1
	fresh := &Config{Architecture: "LlamaForCausalLM", Family: FamilyLlama, VocabSize: 512, HiddenSize: 64, IntermediateSize: 172,
		NumLayers: 5, NumHeads: 8, NumKVHeads: 4, HeadDim: 8, MaxPositionEmbeddings: 512, NormEps: 1e-5, Activation: "silu",
		RopeTheta: 10000, TieWordEmbeddings: true, BOSTokenID: &bos, EOSTokenIDs: []int{2}}
	out, err := fresh.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseConfig(out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	back.raw, back.parsed = nil, nil
	fresh.ModelType, fresh.TorchDType = "llama", "float32"
	if !reflect.DeepEqual(back, fresh) {
		t.Errorf("fresh config: %+v\nwant %+v", back, fresh)
	}
	// A Mistral built in code without a window keeps none (an absent key would read as 4096).
	mis := *fresh
	mis.Architecture, mis.ModelType, mis.BOSTokenID, mis.EOSTokenIDs = "MistralForCausalLM", "", nil, nil
	out, _ = mis.Marshal()
	if back, err := ParseConfig(out); err != nil || back.SlidingWindow != 0 || back.Architecture != "MistralForCausalLM" {
		t.Errorf("mistral without a window: %v %s", err, out)
	}
	// The same for GPT-2 (a model trained from scratch written as GPT2LMHeadModel).
	eos := []int{257}
	g2 := &Config{Architecture: "GPT2LMHeadModel", Family: FamilyGPT2, VocabSize: 259, HiddenSize: 64, IntermediateSize: 256,
		NumLayers: 2, NumHeads: 4, NumKVHeads: 4, HeadDim: 16, MaxPositionEmbeddings: 128, NormEps: 1e-5, Activation: "gelu_new",
		QKVBias: true, OutputBias: true, MLPBias: true, TieWordEmbeddings: true, BOSTokenID: &bos, EOSTokenIDs: eos}
	out, err = g2.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err = ParseConfig(out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	back.raw, back.parsed = nil, nil
	g2.ModelType, g2.TorchDType = "gpt2", "float32"
	if !reflect.DeepEqual(back, g2) {
		t.Errorf("fresh GPT-2 config: %+v\nwant %+v", back, g2)
	}
}

func TestExpectedShapes(t *testing.T) {
	q3 := mustParse(t, qwen3)
	s := q3.ExpectedShapes()
	for name, want := range map[string][]int{
		"model.layers.0.self_attn.q_proj.weight":  {2048, 1024},
		"model.layers.0.self_attn.k_proj.weight":  {1024, 1024},
		"model.layers.0.self_attn.o_proj.weight":  {1024, 2048},
		"model.layers.27.self_attn.q_norm.weight": {128},
		"model.layers.27.mlp.down_proj.weight":    {1024, 3072},
	} {
		if !slices.Equal(s[name], want) {
			t.Errorf("qwen3 %s: %v, want %v", name, s[name], want)
		}
	}
	if _, ok := s["lm_head.weight"]; ok {
		t.Error("tied qwen3 has lm_head.weight")
	}
	// Qwen3-0.6B has 596,049,920 parameters with tied embeddings (0.44B without the embedding).
	if n := q3.NumParameters(); n != 596049920 {
		t.Errorf("qwen3-0.6B parameters %d", n)
	}
	q2 := mustParse(t, qwen2)
	if s := q2.ExpectedShapes(); !slices.Equal(s["model.layers.3.self_attn.k_proj.bias"], []int{128}) || s["model.layers.3.self_attn.o_proj.bias"] != nil {
		t.Errorf("qwen2 biases: %v %v", s["model.layers.3.self_attn.k_proj.bias"], s["model.layers.3.self_attn.o_proj.bias"])
	}
	// Qwen2.5-0.5B: 494,032,768 parameters.
	if n := q2.NumParameters(); n != 494032768 {
		t.Errorf("qwen2.5-0.5B parameters %d", n)
	}
	g := mustParse(t, gpt2)
	// GPT-2 small: 124,439,808 parameters.
	if n := g.NumParameters(); n != 124439808 {
		t.Errorf("gpt2 parameters %d", n)
	}
	if g.CanonicalName("h.0.attn.c_attn.weight") != "transformer.h.0.attn.c_attn.weight" || g.CanonicalName("lm_head.weight") != "lm_head.weight" {
		t.Error("gpt2 canonical names")
	}
	if !g.Ignorable("transformer.h.0.attn.bias") || !g.Ignorable("lm_head.weight") || g.Ignorable("transformer.h.0.attn.c_attn.bias") {
		t.Error("gpt2 ignorable")
	}
}
