package crossframework

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/preftune/preftune/trainer/hf"
	"github.com/preftune/preftune/trainer/model"
	"github.com/preftune/preftune/trainer/nn"
	"github.com/preftune/preftune/trainer/safetensors"
)

const llamaRefScript = "llama_ref.py"

// llamaCase is one Llama-family checkpoint the trainer writes and llama_ref.py reads.
type llamaCase struct {
	name string
	cfg  model.Config
	arch string
	// shard > 0 saves in shards of at most that many bytes; bf16 rewrites the weights as BF16; config, when
	// set, rewrites config.json (to make an architecture HFConfig does not choose).
	shard  int64
	bf16   bool
	config func(string) string
}

var llama3Rope = &nn.RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 64}

// llamaCases cover GQA, a head_dim apart from hidden/heads, untied and tied heads, every bias, Qwen3's q/k
// norm, llama3 and linear rope scaling, shards and BF16 weights.
var llamaCases = []llamaCase{
	{name: "qwen3-gqa-untied-biases-qknorm-llama3", arch: "Qwen3ForCausalLM", cfg: model.Config{Family: model.Llama,
		VocabSize: 50, ContextLength: 32, Layers: 2, DModel: 32, Heads: 4, KVHeads: 2, HeadDim: 16, Intermediate: 48,
		NormEps: 1e-6, RopeTheta: 10000, RopeScaling: llama3Rope, QKVBias: true, OutputBias: true, QKNorm: true, Untied: true}},
	{name: "llama-mqa-untied-mlp-bias-llama3-sharded", arch: "LlamaForCausalLM", shard: 16 << 10, cfg: model.Config{
		Family: model.Llama, VocabSize: 50, ContextLength: 32, Layers: 2, DModel: 32, Heads: 4, KVHeads: 1, Intermediate: 40,
		NormEps: 1e-5, RopeTheta: 500000, RopeScaling: llama3Rope, QKVBias: true, OutputBias: true, MLPBias: true, Untied: true}},
	{name: "qwen2-tied-linear-rope-bf16", arch: "Qwen2ForCausalLM", bf16: true, cfg: model.Config{Family: model.Llama,
		VocabSize: 50, ContextLength: 32, Layers: 2, DModel: 32, Heads: 4, KVHeads: 2, Intermediate: 40, NormEps: 1e-6,
		RopeTheta: 1000, RopeScaling: &nn.RopeScaling{Type: "linear", Factor: 2}, QKVBias: true}},
	// Mistral with a sliding window longer than the context: attention is fully causal, as here.
	{name: "mistral-gqa-window-at-least-context", arch: "MistralForCausalLM", cfg: model.Config{Family: model.Llama,
		VocabSize: 50, ContextLength: 32, Layers: 2, DModel: 32, Heads: 4, KVHeads: 2, Intermediate: 40, NormEps: 1e-5,
		RopeTheta: 1000000}, config: func(s string) string {
		s = strings.Replace(s, `"LlamaForCausalLM"`, `"MistralForCausalLM"`, 1)
		return strings.Replace(s, `"model_type": "llama"`, `"model_type": "mistral", "sliding_window": 32`, 1)
	}},
}

// writeLlama saves a random, perturbed model of the case with model.Params.Save (BF16 cases then have their
// weights rounded and rewritten as BF16) and returns the directory.
func writeLlama(t *testing.T, c llamaCase) string {
	t.Helper()
	p := model.Init(c.cfg, tensor.Float32, 21)
	rng := rand.New(rand.NewPCG(22, 23))
	for _, name := range p.Names {
		std := 0.1
		if strings.Contains(name, "embed_tokens") || strings.Contains(name, "lm_head") {
			std = 0.5
		}
		vals, _ := p.Float32s(name)
		for i := range vals {
			vals[i] += float32(rng.NormFloat64() * std)
		}
	}
	dir := filepath.Join(t.TempDir(), c.name)
	res, err := p.Save(dir, hf.SaveOptions{ShardSize: c.shard})
	if err != nil {
		t.Fatal(err)
	}
	if c.shard > 0 && len(res.WeightFiles) < 2 {
		t.Fatalf("%s: %d weight files, want shards", c.name, len(res.WeightFiles))
	}
	if c.config != nil {
		path := filepath.Join(dir, hf.ConfigFile)
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(c.config(string(raw))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if c.bf16 {
		var st []safetensors.Tensor
		for _, w := range p.Tensors() {
			st = append(st, safetensors.Tensor{Name: w.Name, Shape: w.Shape, Data: w.Data, DType: safetensors.BF16})
		}
		raw, err := safetensors.Encode(st, map[string]string{"format": "pt"})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, hf.WeightsFile), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

type llamaRefOut struct {
	Architecture string               `json:"architecture"`
	Shape        []int                `json:"shape"`
	Logits       []float64            `json:"logits"`
	SeqLogp      []float64            `json:"seq_logp"`
	SeqTokens    []int                `json:"seq_tokens"`
	SFTLoss      float64              `json:"sft_loss"`
	SFTGrads     map[string][]float64 `json:"sft_grads"`
}

func runLlamaRef(t *testing.T, py, dir string, b model.Batch) llamaRefOut {
	t.Helper()
	in := refBatch{SFTGrads: true}
	for r := 0; r < b.B; r++ {
		lo, hi := r*b.T, (r+1)*b.T
		mask := make([]int, b.T)
		for i, v := range b.Mask[lo:hi] {
			mask[i] = int(v)
		}
		in.Inputs = append(in.Inputs, b.Inputs[lo:hi])
		in.Targets = append(in.Targets, b.Targets[lo:hi])
		in.Mask = append(in.Mask, mask)
	}
	buf, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "batch.json")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.ReadFile(llamaRefScript); err != nil { // in go test's cache key
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(py, llamaRefScript, "--dtype", "float64", dir, path)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", llamaRefScript, err, stderr.String())
	}
	var res llamaRefOut
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%s printed something that is not its JSON: %v", llamaRefScript, err)
	}
	return res
}

// llamaBatch has a full row, a row padded after 10 tokens and a row whose mask starts at position 3.
func llamaBatch(vocab int) model.Batch {
	const B, T = 3, 16
	rng := rand.New(rand.NewPCG(24, 25))
	b := model.Batch{B: B, T: T, N: B, Inputs: make([]int, B*T), Targets: make([]int, B*T), Mask: make([]float32, B*T)}
	for r, c := range []struct{ end, from int }{{T, 0}, {10, 0}, {T, 3}} {
		seq := make([]int, T+1)
		for i := range seq {
			seq[i] = 1 + rng.IntN(vocab-1)
		}
		for i := 0; i < c.end; i++ {
			b.Inputs[r*T+i], b.Targets[r*T+i] = seq[i], seq[i+1]
			if i >= c.from && (i+1 < c.end || c.end == T) {
				b.Mask[r*T+i] = 1
			}
		}
	}
	return b
}

// TestLlamaFamilyMatchesPyTorch writes Llama-family checkpoints with the trainer (random weights; GQA and MQA,
// untied and tied heads, q/k/v, o_proj and MLP biases, q/k norm, llama3 and linear rope scaling; one sharded,
// one BF16; a Mistral whose window covers the context), evaluates a padded batch with llama_ref.py in float64, and holds the model loaded from the same
// directory, in float64 (1e-9) and float32 (1e-4), to its logits, per-sequence log-probs, SFT loss and SFT
// gradients.
func TestLlamaFamilyMatchesPyTorch(t *testing.T) {
	py := findTorch(t)
	for _, lc := range llamaCases {
		t.Run(lc.name, func(t *testing.T) {
			dir := writeLlama(t, lc)
			b := llamaBatch(lc.cfg.VocabSize)
			ref := runLlamaRef(t, py, dir, b)
			if ref.Architecture != lc.arch {
				t.Fatalf("saved as %s, want %s", ref.Architecture, lc.arch)
			}
			if want := fmt.Sprint([]int{b.B, b.T, lc.cfg.VocabSize}); fmt.Sprint(ref.Shape) != want {
				t.Fatalf("llama_ref.py logits of shape %v, want %v", ref.Shape, want)
			}
			for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
				t.Run(dt.String(), func(t *testing.T) {
					c := &checker{t: t, tol: tolerances[dt].value, gradTol: tolerances[dt].grad}
					p, info, err := model.Load(dir, dt, 0)
					if err != nil {
						t.Fatal(err)
					}
					if lc.bf16 && info.SourceDTypes[safetensors.BF16] != len(p.Names) {
						t.Fatalf("dtypes %v, want all BF16", info.SourceDTypes)
					}
					logits, err := p.Logits(b)
					if err != nil {
						t.Fatal(err)
					}
					V := p.VocabSize
					for i, g := range logits {
						c.value(fmt.Sprintf("logits[row %d, pos %d, token %d]", i/(b.T*V), i/V%b.T, i%V), g, ref.Logits[i])
					}
					sums, counts, err := p.LogProbs(b)
					if err != nil {
						t.Fatal(err)
					}
					for r := range sums {
						c.value(fmt.Sprintf("seq logp[row %d]", r), sums[r], ref.SeqLogp[r])
						if counts[r] != ref.SeqTokens[r] {
							t.Errorf("row %d: %d masked tokens, PyTorch %d", r, counts[r], ref.SeqTokens[r])
						}
					}
					l, _, err := p.SFTStep(b)
					if err != nil {
						t.Fatal(err)
					}
					c.value("SFT loss", l, ref.SFTLoss)
					c.grads("SFT", p, ref.SFTGrads)
					c.report()
				})
			}
		})
	}
}
