package crossframework

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"gorgonia.org/tensor"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/demodata"
	"github.com/preftune/preftune/trainer/model"
	"github.com/preftune/preftune/trainer/train"
)

const loraRefScript = "lora_ref.py"

// stories260K is a real pretrained Llama (../shared/models/stories260K/README.md).
const stories260K = "../../../shared/models/stories260K"

type loraRefOut struct {
	Shape        []int     `json:"shape"`
	Logits       []float64 `json:"logits"`
	Targets      int       `json:"targets"`
	MergedLogits []float64 `json:"merged_logits"`
	MergedDiff   float64   `json:"merged_weight_diff"`
	MergedScale  float64   `json:"merged_weight_scale"`
}

func runLoRARef(t *testing.T, py, base, adapter, merged string, b model.Batch) loraRefOut {
	t.Helper()
	var in refBatch
	for r := 0; r < b.B; r++ {
		in.Inputs = append(in.Inputs, b.Inputs[r*b.T:(r+1)*b.T])
	}
	buf, _ := json.Marshal(in)
	path := filepath.Join(t.TempDir(), "batch.json")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.ReadFile(loraRefScript); err != nil { // in go test's cache key
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(py, loraRefScript, "--dtype", "float64", "--merged", merged, base, adapter, path)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", loraRefScript, err, stderr.String())
	}
	var res loraRefOut
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%s printed something that is not its JSON: %v", loraRefScript, err)
	}
	return res
}

// trainLoRA runs a few LoRA SFT steps from base (a model directory) with a large learning rate, so that every B
// is far from zero, and returns the run's adapter/ and merged model/ directories.
func trainLoRA(t *testing.T, base string) (adapter, merged string) {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "demo.jsonl")
	f, err := os.Create(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := demodata.Write(f, demodata.Generate(40, 9)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	rc := contract.RunConfig{APIVersion: contract.APIVersion, Kind: contract.KindSFT,
		Dataset:  contract.DatasetConfig{URI: data},
		Model:    contract.ModelConfig{From: base},
		Adapter:  &contract.AdapterConfig{Rank: 4, Alpha: 6, Dropout: 0.1},
		Training: contract.TrainingConfig{MaxSteps: 3, BatchSize: 4, LearningRate: 2e-2, Seed: 3},
		Output:   contract.OutputConfig{URI: filepath.Join(dir, "out")}}
	cfg, err := train.NewConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	res, err := train.Run(context.Background(), cfg, train.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("LoRA run: %d trainable of %d parameters", res.TrainableParameterCount, res.ParameterCount)
	return filepath.Join(dir, "out", "adapter"), filepath.Join(dir, "out", "model")
}

// fromScratchBase trains a small byte-level GPT-2 for a few steps and returns its model/ (GPT2LMHeadModel with
// the byte tokenizer).
func fromScratchBase(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "demo.jsonl")
	f, err := os.Create(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := demodata.Write(f, demodata.Generate(40, 8)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	rc := contract.RunConfig{APIVersion: contract.APIVersion, Kind: contract.KindSFT,
		Dataset:  contract.DatasetConfig{URI: data},
		Model:    contract.ModelConfig{Architecture: &contract.Architecture{Layers: 2, DModel: 32, Heads: 4, ContextLength: 32}},
		Training: contract.TrainingConfig{MaxSteps: 2, BatchSize: 4, LearningRate: 1e-2, Seed: 2},
		Output:   contract.OutputConfig{URI: filepath.Join(dir, "out")}}
	cfg, err := train.NewConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := train.Run(context.Background(), cfg, train.Options{}); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "out", "model")
}

// TestLoRAAdapterMatchesPyTorch: the adapter files a LoRA run wrote (trained, B far from zero), applied by
// lora_ref.py as PEFT does (W + (alpha/r)·B·A on each target; transposed for GPT-2's Conv1D), give the logits
// the trainer computes with the adapter on its base (float64 1e-9, float32 1e-4), and the merged model/ the run
// wrote is base + adapter: its weights within float32 rounding of PyTorch's merge and its logits within 1e-4.
// Cases: stories260K (a real Llama; all 7 projections) and a byte-level GPT-2 trained from scratch (c_attn,
// c_proj, c_fc).
func TestLoRAAdapterMatchesPyTorch(t *testing.T) {
	py := findTorch(t)
	cases := map[string]func(t *testing.T) string{
		"llama-stories260K": func(t *testing.T) string {
			if _, err := os.Stat(filepath.Join(stories260K, "model.safetensors")); err != nil {
				t.Skipf("%s is absent (../shared is the project's read-only test data beside the repository): %v", stories260K, err)
			}
			return stories260K
		},
		"gpt2-byte": fromScratchBase,
	}
	for name, baseOf := range cases {
		t.Run(name, func(t *testing.T) {
			base := baseOf(t)
			adapter, merged := trainLoRA(t, base)
			p0, _, err := model.Load(base, tensor.Float64, 0)
			if err != nil {
				t.Fatal(err)
			}
			b := llamaBatch(p0.VocabSize)
			ref := runLoRARef(t, py, base, adapter, merged, b)
			if want := fmt.Sprint([]int{b.B, b.T, p0.VocabSize}); fmt.Sprint(ref.Shape) != want {
				t.Fatalf("lora_ref.py logits of shape %v, want %v", ref.Shape, want)
			}
			wantTargets := 4 * p0.Layers // c_attn, attn.c_proj, c_fc, mlp.c_proj
			if p0.Family == model.Llama {
				wantTargets = 7 * p0.Layers
			}
			if ref.Targets != wantTargets {
				t.Fatalf("lora_ref.py applied %d targets, want %d", ref.Targets, wantTargets)
			}
			// The adapter matters: base and adapted logits differ well beyond the tolerances.
			baseLogits, err := p0.Logits(b)
			if err != nil {
				t.Fatal(err)
			}
			moved := 0.0
			for i, v := range baseLogits {
				moved = max(moved, math.Abs(v-ref.Logits[i]))
			}
			if moved < 1e-2 {
				t.Fatalf("the adapter moves the logits by at most %.3g: B is too close to zero for this check", moved)
			}
			for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
				t.Run(dt.String()+"/adapter", func(t *testing.T) {
					c := &checker{t: t, tol: tolerances[dt].value}
					p, _, err := model.Load(base, dt, 0)
					if err != nil {
						t.Fatal(err)
					}
					if err := p.LoadAdapter(adapter); err != nil {
						t.Fatal(err)
					}
					logits, err := p.Logits(b)
					if err != nil {
						t.Fatal(err)
					}
					for i, g := range logits {
						c.value(fmt.Sprintf("logits[%d] with the adapter", i), g, ref.Logits[i])
					}
					c.report()
				})
			}
			t.Run("merged", func(t *testing.T) {
				c := &checker{t: t, tol: tolerances[tensor.Float32].value}
				if ref.MergedDiff > 1e-6*math.Max(1, ref.MergedScale) {
					t.Errorf("merged model/ weights differ from base + (alpha/r)·B·A by up to %.3g (largest weight %.3g)", ref.MergedDiff, ref.MergedScale)
				}
				p, _, err := model.Load(merged, tensor.Float32, 0)
				if err != nil {
					t.Fatal(err)
				}
				logits, err := p.Logits(b)
				if err != nil {
					t.Fatal(err)
				}
				for i, g := range logits {
					c.value(fmt.Sprintf("merged logits[%d] (trainer)", i), g, ref.Logits[i])
					c.value(fmt.Sprintf("merged logits[%d] (PyTorch on model/)", i), ref.MergedLogits[i], ref.Logits[i])
				}
				c.report()
				t.Logf("merged weights within %.3g of PyTorch's merge; the adapter moves the logits by up to %.3g", ref.MergedDiff, moved)
			})
		})
	}
}
