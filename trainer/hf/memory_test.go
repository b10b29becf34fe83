package hf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// smolLM2 is SmolLM2-135M's config (the benchmark's shape).
const smolLM2 = `{"architectures":["LlamaForCausalLM"],"model_type":"llama","vocab_size":49152,"hidden_size":576,
	"intermediate_size":1536,"num_hidden_layers":30,"num_attention_heads":9,"num_key_value_heads":3,
	"max_position_embeddings":8192,"rms_norm_eps":1e-05,"rope_theta":100000,"tie_word_embeddings":true}`

func TestEstimateMemory(t *testing.T) {
	c := mustParse(t, smolLM2)
	sft := EstimateMemory(c, MemoryPlan{BatchSize: 8, SequencesPerExample: 1, ContextLength: 256})
	// SmolLM2-135M has 134,515,008 parameters.
	if sft.Parameters != 134515008 || sft.Weights+sft.Gradients+sft.OptimizerState != BytesPerParameterFullFineTune*134515008 || sft.Reference != 0 {
		t.Fatalf("%+v", sft)
	}
	// By hand: 2048 tokens; per layer and token 4·576 + 2·576 + 2·192 + 3·1536 = 8,448 values (the attention
	// probabilities are recomputed, not kept).
	tokens := int64(8 * 256)
	perToken := int64(4*576 + 2*576 + 2*192 + 3*1536)
	if want := 4*tokens*perToken*31 + 4*tokens*2*576; sft.Activations != want {
		t.Errorf("activations %d, want %d", sft.Activations, want)
	}
	if want := 4 * tokens * 49152; sft.Logits != want { // 0.375 GiB: the fused head's one [2048 × 49152] float32 buffer
		t.Errorf("logits %d, want %d", sft.Logits, want)
	}
	if sft.GraphGradients != sft.Gradients || sft.EmbeddingScratch != 8*49152*576 {
		t.Errorf("graph gradients %d, embedding scratch %d", sft.GraphGradients, sft.EmbeddingScratch)
	}
	if sft.Total != sft.Weights+sft.Gradients+sft.GraphGradients+sft.EmbeddingScratch+sft.OptimizerState+sft.Activations+sft.Logits+sft.Overhead || sft.Overhead < 256<<20 {
		t.Errorf("total %+v", sft)
	}
	t.Logf("SmolLM2-135M SFT batch 8 × 256: %s (activations %s, logits %s)", gib(sft.Total), gib(sft.Activations), gib(sft.Logits))
	// DPO forwards two sequences per example: activations and logits double; a held reference adds 4 B/param.
	dpo := EstimateMemory(c, MemoryPlan{BatchSize: 8, SequencesPerExample: 2, ContextLength: 256, ReferenceWeights: true})
	if dpo.Activations != 2*sft.Activations || dpo.Logits != 2*sft.Logits || dpo.Reference != 4*134515008 {
		t.Errorf("dpo %+v", dpo)
	}
	// Monotonic in the batch and the context.
	prev := int64(0)
	for b := 1; b <= 16; b *= 2 {
		e := EstimateMemory(c, MemoryPlan{BatchSize: b, SequencesPerExample: 1, ContextLength: 256})
		if e.Total <= prev {
			t.Errorf("batch %d: %d not above %d", b, e.Total, prev)
		}
		prev = e.Total
	}
	if EstimateMemory(c, MemoryPlan{BatchSize: 8, ContextLength: 512}).Total <= sft.Total {
		t.Error("a longer context does not cost more")
	}
}

func TestCheckMemory(t *testing.T) {
	c := mustParse(t, smolLM2)
	plan := MemoryPlan{BatchSize: 8, SequencesPerExample: 2, ContextLength: 256}
	full := EstimateMemory(c, plan)
	if _, err := CheckMemory(c, plan, 0, ""); err != nil {
		t.Errorf("no limit: %v", err)
	}
	if _, err := CheckMemory(c, plan, full.Total, "memory.max"); err != nil {
		t.Errorf("limit equal to the estimate: %v", err)
	}
	limit := full.Total * 6 / 10
	_, err := CheckMemory(c, plan, limit, "/sys/fs/cgroup/memory.max")
	var me *MemoryError
	if !errors.As(err, &me) || me.Reason() != "InsufficientMemory" || me.FitsBatchSize < 1 || me.FitsBatchSize >= 8 {
		t.Fatalf("60%% of the estimate: %v", err)
	}
	fits := plan
	fits.BatchSize = me.FitsBatchSize
	over := plan
	over.BatchSize = me.FitsBatchSize + 1
	if EstimateMemory(c, fits).Total > limit || EstimateMemory(c, over).Total <= limit {
		t.Errorf("batch %d is not the largest that fits", me.FitsBatchSize)
	}
	for _, s := range []string{gib(full.Total), gib(limit), "/sys/fs/cgroup/memory.max", fmt.Sprintf("batch size %d would fit", me.FitsBatchSize), "134.5M", "AdamW"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("message lacks %q: %s", s, err)
		}
	}
	// Below the fixed state, no batch fits.
	_, err = CheckMemory(c, plan, 1<<30, "memory.limit_in_bytes")
	if !errors.As(err, &me) || me.FitsBatchSize != 0 || !strings.Contains(err.Error(), "even batch size 1 does not fit") ||
		!strings.Contains(err.Error(), "for full fine-tuning of 134.5M parameters") || !strings.Contains(err.Error(), "such as LoRA") {
		t.Errorf("1 GiB: %v", err)
	}
	// With an adapter the message says LoRA, and does not suggest it; parts below 1 GiB read in MiB.
	plan.LoRA = &LoRAPlan{Rank: 16}
	_, err = CheckMemory(c, plan, 256<<20, "memory.max")
	if msg := fmt.Sprint(err); !strings.Contains(msg, "for LoRA rank 16 on 134.5M parameters") || strings.Contains(msg, "such as LoRA") ||
		!strings.Contains(msg, "MiB") || strings.Contains(msg, "0.00 GiB") {
		t.Errorf("LoRA, 256 MiB: %v", err)
	}
}

func TestReadMemoryLimit(t *testing.T) {
	write := func(t *testing.T, root, rel, content string) {
		p := filepath.Join(root, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name   string
		files  map[string]string
		limit  int64
		source string
		err    string
	}{
		{"v2 limit", map[string]string{"memory.max": "4294967296\n"}, 4 << 30, "memory.max", ""},
		{"v2 max", map[string]string{"memory.max": "max\n"}, 0, "memory.max", ""},
		{"v1 limit", map[string]string{"memory/memory.limit_in_bytes": "2147483648\n"}, 2 << 30, "memory/memory.limit_in_bytes", ""},
		{"v1 unlimited", map[string]string{"memory/memory.limit_in_bytes": "9223372036854771712\n"}, 0, "memory/memory.limit_in_bytes", ""},
		{"v2 preferred", map[string]string{"memory.max": "1073741824", "memory/memory.limit_in_bytes": "2147483648"}, 1 << 30, "memory.max", ""},
		{"none", map[string]string{}, 0, "", ""},
		{"v2 garbage", map[string]string{"memory.max": "lots"}, 0, "", "memory.max"},
		{"v1 garbage", map[string]string{"memory/memory.limit_in_bytes": "12k"}, 0, "", "memory.limit_in_bytes"},
	}
	for _, c := range cases {
		root := t.TempDir()
		for rel, content := range c.files {
			write(t, root, rel, content)
		}
		limit, source, err := ReadMemoryLimit(root)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: %v, want an error naming %s", c.name, err, c.err)
			}
			continue
		}
		wantSource := ""
		if c.source != "" {
			wantSource = filepath.Join(root, c.source)
		}
		if err != nil || limit != c.limit || source != wantSource {
			t.Errorf("%s: %d %q %v, want %d %q", c.name, limit, source, err, c.limit, wantSource)
		}
	}
}

// TestEstimateMemoryLoRA: with an adapter, gradients and AdamW state are the adapter's (rank × (in + out) per
// target and layer), the weights gain the adapter, and the adapter's activations are added.
func TestEstimateMemoryLoRA(t *testing.T) {
	c := mustParse(t, smolLM2)
	plan := MemoryPlan{BatchSize: 8, SequencesPerExample: 1, ContextLength: 256}
	full := EstimateMemory(c, plan)
	plan.LoRA = &LoRAPlan{Rank: 16}
	lora := EstimateMemory(c, plan)
	// Per layer: q (576+576) + k, v (576+192 each) + o (576+576) + gate, up (576+1536 each) + down (1536+576).
	perLayer := int64(16 * ((576 + 576) + 2*(576+192) + (576 + 576) + 2*(576+1536) + (1536 + 576)))
	if a := LoRAParameters(c, *plan.LoRA); a != 30*perLayer {
		t.Fatalf("adapter parameters %d, want %d", a, 30*perLayer)
	}
	if lora.Gradients != 4*30*perLayer || lora.OptimizerState != 8*30*perLayer || lora.Weights != full.Weights+4*30*perLayer {
		t.Errorf("lora %+v", lora)
	}
	if lora.Activations <= full.Activations || lora.Total >= full.Total {
		t.Errorf("LoRA total %d (activations %d), full %d (activations %d)", lora.Total, lora.Activations, full.Total, full.Activations)
	}
	only := LoRAParameters(c, LoRAPlan{Rank: 16, Targets: []string{"q_proj", "v_proj"}})
	if only != 30*16*((576+576)+(576+192)) {
		t.Errorf("q_proj, v_proj adapter: %d parameters", only)
	}
	t.Logf("SmolLM2-135M SFT batch 8 × 256: full fine-tuning %s, LoRA rank 16 on all projections %s (%d adapter parameters)",
		gib(full.Total), gib(lora.Total), 30*perLayer)
}
