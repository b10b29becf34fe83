package hf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// MemoryPlan is the shape of a full fine-tuning step, for EstimateMemory.
type MemoryPlan struct {
	// BatchSize is the number of examples in one micro-batch (the batch that is forwarded at once; gradient
	// accumulation does not add to it).
	BatchSize int
	// SequencesPerExample is 1 for SFT and 2 for DPO (chosen and rejected are forwarded together).
	SequencesPerExample int
	// ContextLength is the padded sequence length in tokens (the longest bucket).
	ContextLength int
	// ReferenceWeights adds a second float32 copy of the weights (a DPO reference model held during training).
	ReferenceWeights bool
	// LoRA, when set, is the adapter the run trains on frozen weights: gradients and AdamW state are the
	// adapter's only (LoRAParameters), and its activations are added.
	LoRA *LoRAPlan
}

// LoRAPlan is an adapter for the memory estimate: its rank, target module names (empty: all projections) and
// whether it has dropout.
type LoRAPlan struct {
	Rank    int
	Targets []string
	Dropout bool
}

// loraTargets lists each target module's (in, out) features per layer, for the adapter's parameter count and
// activations: Llama's q/k/v/o/gate/up/down_proj, GPT-2's c_attn, c_proj (attention's and the MLP's), c_fc.
func loraTargets(c *Config, targets []string) [][2]int64 {
	D, I := int64(c.HiddenSize), int64(c.IntermediateSize)
	q, kv := int64(c.NumHeads*c.HeadDim), int64(c.NumKVHeads*c.HeadDim)
	type mod struct {
		name    string
		in, out int64
	}
	mods := []mod{{"q_proj", D, q}, {"k_proj", D, kv}, {"v_proj", D, kv}, {"o_proj", q, D}, {"gate_proj", D, I},
		{"up_proj", D, I}, {"down_proj", I, D}}
	if c.Family == FamilyGPT2 {
		mods = []mod{{"c_attn", D, 3 * D}, {"c_proj", D, D}, {"c_fc", D, I}, {"c_proj", I, D}}
	}
	var out [][2]int64
	for _, m := range mods {
		if len(targets) == 0 || slices.Contains(targets, m.name) {
			out = append(out, [2]int64{m.in, m.out})
		}
	}
	return out
}

// LoRAParameters is the number of an adapter's parameters on the model: rank × (in + out) per target and layer.
func LoRAParameters(c *Config, l LoRAPlan) int64 {
	var n int64
	for _, io := range loraTargets(c, l.Targets) {
		n += int64(l.Rank) * (io[0] + io[1])
	}
	return n * int64(c.NumLayers)
}

// MemoryEstimate is the peak memory of full fine-tuning with AdamW in float32, in bytes.
type MemoryEstimate struct {
	Parameters int64
	// Weights, Gradients: 4 bytes per parameter each. OptimizerState: AdamW's two moments, 8 bytes per parameter.
	Weights, Gradients, OptimizerState int64
	// Reference: the reference model's weights when MemoryPlan.ReferenceWeights (4 bytes per parameter).
	Reference int64
	// GraphGradients: the compiled graph's own gradient buffers, which the trainer keeps beside Gradients (the
	// optimiser's), 4 bytes per trainable parameter. EmbeddingScratch: with a tied head trained in full, two more
	// [vocab × hidden] float32 buffers (the head's and the lookup's gradients before they are summed). Both were
	// found by measuring: without them the estimate was 0.87 of the peak RSS make bench measured at SmolLM2-135M's
	// shape, batch 8 × 256.
	GraphGradients, EmbeddingScratch int64
	// Activations kept for the backward pass: per layer and token, the float32 values the backward pass reads
	// (see EstimateMemory), plus one more layer's worth for the gradients in flight.
	Activations int64
	// Logits: the vocabulary-sized tensors, tokens × vocab float32 for the Llama family's fused head (its
	// probabilities, turned into their gradient in place), × 3 for GPT-2's (logits, log-softmax, gradient).
	Logits int64
	// Overhead: 256 MiB (Go runtime, compiled graphs, data, BLAS buffers) plus 5% of everything above, a margin:
	// at SmolLM2-135M's shape and 4 × 256 tokens the parts above came within 1% of the peak RSS of make bench's
	// worker (hack/benchllama, model load and steps), for full fine-tuning (3.95 GiB) and LoRA rank 16 (1.84 GiB)
	// alike.
	Overhead int64
	Total    int64
}

// BytesPerParameterFullFineTune is the rule of thumb for full fine-tuning with AdamW in float32: weights 4,
// gradients 4, two moments 8, before activations and logits (which grow with batch × context).
const BytesPerParameterFullFineTune = 16

// EstimateMemory estimates the peak memory of one training step (the arithmetic follows the usual accounting of
// e.g. Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models", for float32,
// counting what this trainer keeps). A training graph's buffers are planned (trainer/nn's PlanBuffers): a value
// is held from the op that makes it until the last op that reads it, so the peak, at the start of the backward
// pass, is the values the backward pass reads plus the gradients in flight. With N = sequences × context tokens,
// D = hidden, q = heads·head_dim, kv = kv_heads·head_dim, I = intermediate, per layer and token those values
// are, for FamilyLlama, 4D (the layer's input, the residual sum after attention, the two RMSNorm outputs) + 2q
// (the rotated queries, the attention output) + 2kv (the rotated keys, the values) + 3I (gate, up, their SwiGLU
// product), with Qwen3's q/k norm q + kv more (the norms' inputs); the attention probabilities are recomputed in
// the backward pass (nn.RecomputeProbs). For FamilyGPT2 8D (input, ln_1 output, q/k/v, attention output,
// residual sum, ln_2 output) + 2I (c_fc output, GELU output) plus the attention probabilities, heads × context
// per token. One more layer's worth stands for the gradients in flight, and 2D per token outside the layers (the
// final norm's output and the head's copy of the masked-in rows).
func EstimateMemory(c *Config, p MemoryPlan) MemoryEstimate {
	e := MemoryEstimate{Parameters: c.NumParameters()}
	e.Weights = 4 * e.Parameters
	e.Gradients = 4 * e.Parameters
	e.OptimizerState = 8 * e.Parameters
	if p.LoRA != nil {
		a := LoRAParameters(c, *p.LoRA)
		e.Weights += 4 * a
		e.Gradients = 4 * a
		e.OptimizerState = 8 * a
	} else if c.TieWordEmbeddings {
		e.EmbeddingScratch = 2 * 4 * int64(c.VocabSize) * int64(c.HiddenSize)
	}
	e.GraphGradients = e.Gradients
	if p.ReferenceWeights {
		e.Reference = 4 * e.Parameters
	}
	seqs := int64(max(p.BatchSize, 0)) * int64(max(p.SequencesPerExample, 1))
	tokens := seqs * int64(max(p.ContextLength, 0))
	D, I := int64(c.HiddenSize), int64(c.IntermediateSize)
	q, kv := int64(c.NumHeads*c.HeadDim), int64(c.NumKVHeads*c.HeadDim)
	var perToken int64
	if c.Family == FamilyGPT2 {
		perToken = 8*D + 2*I + int64(c.NumHeads)*int64(p.ContextLength)
	} else {
		perToken = 4*D + 2*q + 2*kv + 3*I
		if c.QKNorm {
			perToken += q + kv
		}
	}
	if p.LoRA != nil {
		// Per target (nn.LoRALinear, which replaces the layer's product): the rank-wide product kept for the
		// backward pass and two rank-wide scratch products of the backward ops; with dropout, the dropped input
		// and a scratch of its size.
		for _, io := range loraTargets(c, p.LoRA.Targets) {
			perToken += 3 * int64(p.LoRA.Rank)
			if p.LoRA.Dropout {
				perToken += 2 * io[0]
			}
		}
	}
	perLayer := 4 * tokens * perToken
	e.Activations = perLayer*int64(c.NumLayers+1) + 4*tokens*2*D
	// The Llama family's head (nn.HeadLogProbs) keeps one [tokens × vocab] buffer, probabilities turned into
	// their gradient in place; GPT-2's keeps logits, softmax and their gradient.
	e.Logits = 4 * tokens * int64(c.VocabSize)
	if c.Family == FamilyGPT2 {
		e.Logits *= 3
	}
	sum := e.Weights + e.Gradients + e.GraphGradients + e.EmbeddingScratch + e.OptimizerState + e.Reference +
		e.Activations + e.Logits
	e.Overhead = 256<<20 + sum/20
	e.Total = sum + e.Overhead
	return e
}

// MemoryError is a container memory limit below the estimated peak. Reason is "InsufficientMemory"; a run
// failing with it must exit with contract.ExitInvalidInput before loading the model.
type MemoryError struct {
	Estimate MemoryEstimate
	Plan     MemoryPlan
	// Limit in bytes and the file it was read from.
	Limit       int64
	LimitSource string
	// FitsBatchSize is the largest batch size below Plan.BatchSize whose estimate fits (0: none does);
	// FitsEstimate its estimated peak.
	FitsBatchSize int
	FitsEstimate  int64
}

// ReasonInsufficientMemory is the termination reason of a MemoryError.
const ReasonInsufficientMemory = "InsufficientMemory"

// Reason is "InsufficientMemory".
func (e *MemoryError) Reason() string { return ReasonInsufficientMemory }

func (e *MemoryError) Error() string {
	s := e.Estimate
	what := "full fine-tuning of " + millions(s.Parameters) + " parameters"
	if l := e.Plan.LoRA; l != nil {
		what = fmt.Sprintf("LoRA rank %d on %s parameters", l.Rank, millions(s.Parameters))
	}
	msg := fmt.Sprintf("estimated peak memory %s for %s (weights %s, gradients %s and the graph's copy %s, AdamW moments %s",
		gib(s.Total), what, gib(s.Weights), gib(s.Gradients), gib(s.GraphGradients), gib(s.OptimizerState))
	if s.EmbeddingScratch > 0 {
		msg += fmt.Sprintf(", tied embedding gradients %s", gib(s.EmbeddingScratch))
	}
	if s.Reference > 0 {
		msg += fmt.Sprintf(", reference model %s", gib(s.Reference))
	}
	msg += fmt.Sprintf(", activations %s and vocabulary-sized logits %s for batch %d × %d sequence(s) × context %d, overhead %s) exceeds the container's memory limit of %s (%s)",
		gib(s.Activations), gib(s.Logits), e.Plan.BatchSize, max(e.Plan.SequencesPerExample, 1), e.Plan.ContextLength, gib(s.Overhead), gib(e.Limit), e.LimitSource)
	if e.FitsBatchSize > 0 {
		msg += fmt.Sprintf("; batch size %d would fit (estimated %s; gradient accumulation keeps the effective batch)", e.FitsBatchSize, gib(e.FitsEstimate))
	} else {
		hint := " (a parameter-efficient method such as LoRA, or a smaller context, would be needed)"
		if e.Plan.LoRA != nil {
			hint = " (a smaller context, or fewer adapter targets, would be needed)"
		}
		msg += "; even batch size 1 does not fit: the weights, gradients and optimiser state alone need " +
			gib(s.Weights+s.Gradients+s.GraphGradients+s.EmbeddingScratch+s.OptimizerState+s.Reference) + hint
	}
	return msg + fmt.Sprintf("; or raise the memory limit to at least %s", gib(s.Total))
}

// gib writes a size in GiB, or in MiB below 1 GiB (a small model's parts would all read 0.00 GiB).
func gib(b int64) string {
	if b < 1<<30 {
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	}
	return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
}

func millions(n int64) string {
	if n >= 1e6 {
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	}
	return strconv.FormatInt(n, 10)
}

// CheckMemory estimates the plan's peak and compares it with limit (bytes; 0 or less: no limit, nothing to
// check). Above the limit it returns a *MemoryError naming the figures and the largest batch size that fits.
func CheckMemory(c *Config, p MemoryPlan, limit int64, limitSource string) (MemoryEstimate, error) {
	est := EstimateMemory(c, p)
	if limit <= 0 || est.Total <= limit {
		return est, nil
	}
	e := &MemoryError{Estimate: est, Plan: p, Limit: limit, LimitSource: limitSource}
	for b := p.BatchSize - 1; b >= 1; b-- {
		q := p
		q.BatchSize = b
		if t := EstimateMemory(c, q).Total; t <= limit {
			e.FitsBatchSize, e.FitsEstimate = b, t
			break
		}
	}
	return est, e
}

// CgroupRoot is where the container's cgroup filesystem is mounted.
const CgroupRoot = "/sys/fs/cgroup"

// unlimitedV1 is the smallest value cgroup v1 reports for "no limit" (PAGE_COUNTER_MAX pages, rounded: the
// kernel prints 9223372036854771712 on 4 KiB pages); any value at or above 2^62 is taken as no limit.
const unlimitedV1 = int64(1) << 62

// ReadMemoryLimit reads the container's memory limit under root (CgroupRoot in production): cgroup v2's
// root/memory.max ("max" is no limit), else cgroup v1's root/memory/memory.limit_in_bytes (2^62 or more is no
// limit). It returns the limit in bytes (0 when there is none or no file exists) and the file it came from; a
// file that exists but cannot be parsed is an error naming it.
func ReadMemoryLimit(root string) (int64, string, error) {
	v2 := filepath.Join(root, "memory.max")
	data, err := os.ReadFile(v2)
	switch {
	case err == nil:
		s := strings.TrimSpace(string(data))
		if s == "max" {
			return 0, v2, nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return 0, v2, fmt.Errorf("%s: %q is neither \"max\" nor a byte count", v2, s)
		}
		return n, v2, nil
	case !errors.Is(err, os.ErrNotExist):
		return 0, v2, err
	}
	v1 := filepath.Join(root, "memory", "memory.limit_in_bytes")
	data, err = os.ReadFile(v1)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return 0, "", nil
	case err != nil:
		return 0, v1, err
	}
	s := strings.TrimSpace(string(data))
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		// Values above int64 cannot occur in v1, but "-1" style or garbage must not pass silently.
		return 0, v1, fmt.Errorf("%s: %q is not a byte count", v1, s)
	}
	if n < 0 || n >= unlimitedV1 {
		return 0, v1, nil
	}
	return n, v1, nil
}
