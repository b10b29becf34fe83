package model

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/preftune/preftune/trainer/loss"
)

// randomizeAdapter gives B (and A) random values, as after some training, so that every gradient is non-trivial.
func randomizeAdapter(p *Params, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 3))
	for _, n := range p.lora.names {
		setAll(p.lora.values[n], func() float64 { return 0.3 * rng.NormFloat64() })
	}
}

// checkAdapterGradients compares the accumulated adapter gradients with central differences of f over every
// adapter element (float64).
func checkAdapterGradients(t *testing.T, p *Params, f func() float64) {
	t.Helper()
	const eps = 1e-5
	worst, k := 0.0, 0
	for _, n := range p.TrainableNames() {
		d := p.lora.values[n].Data().([]float64)
		g := p.lora.grads[n].Data().([]float64)
		for i := range d {
			orig := d[i]
			d[i] = orig + eps
			up := f()
			d[i] = orig - eps
			down := f()
			d[i] = orig
			num := (up - down) / (2 * eps)
			rel := math.Abs(g[i]-num) / math.Max(math.Abs(g[i])+math.Abs(num), 1e-4)
			worst = max(worst, rel)
			k++
			if rel > 1e-4 {
				t.Errorf("%s[%d]: analytic %.10g, numeric %.10g (relative error %.3g)", n, i, g[i], num, rel)
			}
		}
	}
	t.Logf("%d adapter values, worst relative error %.3g", k, worst)
}

func loraModels() map[string]Config { return map[string]Config{"llama": tinyLlama, "gpt2": tiny} }

// TestLoRAGradientsMatchFiniteDifferences: the gradients of A and B of every target, for the SFT loss and the
// DPO (+ RPO) loss, against float64 central differences; the base weights get no gradient buffers.
func TestLoRAGradientsMatchFiniteDifferences(t *testing.T) {
	for name, cfg := range loraModels() {
		t.Run(name+"/SFT", func(t *testing.T) {
			p := Init(cfg, tensor.Float64, 51)
			perturb(p, 52)
			if err := p.AddLoRA(LoRA{Rank: 2, Alpha: 3}, 53); err != nil {
				t.Fatal(err)
			}
			randomizeAdapter(p, 54)
			b := randomBatch(55, 2, 8, cfg.VocabSize)
			if _, _, err := p.SFTStep(b); err != nil {
				t.Fatal(err)
			}
			if p.Grads != nil {
				t.Fatal("an SFT step with an adapter allocated gradients for the base weights")
			}
			checkAdapterGradients(t, p, func() float64 {
				s, n, err := p.EvalSFT(b)
				if err != nil {
					t.Fatal(err)
				}
				return s / float64(n)
			})
		})
		t.Run(name+"/DPO", func(t *testing.T) {
			p := Init(cfg, tensor.Float64, 56)
			perturb(p, 57)
			if err := p.AddLoRA(LoRA{Rank: 2, Alpha: 4, Targets: TargetModules(cfg.Normalized().Family)[:2]}, 58); err != nil {
				t.Fatal(err)
			}
			randomizeAdapter(p, 59)
			b := randomBatch(60, 4, 8, cfg.VocabSize)
			b.N = 2
			ref, _, err := p.BaseLogProbs(b)
			if err != nil {
				t.Fatal(err)
			}
			dcfg := loss.DPOConfig{Beta: 0.5, LossType: loss.LossSigmoid, LabelSmoothing: 0.1}
			const alpha = 0.4
			if _, err := p.DPOStep(b, ref, dcfg, alpha); err != nil {
				t.Fatal(err)
			}
			if p.Grads != nil {
				t.Fatal("a DPO step with an adapter allocated gradients for the base weights")
			}
			checkAdapterGradients(t, p, func() float64 {
				pol, counts, err := p.LogProbs(b)
				if err != nil {
					t.Fatal(err)
				}
				res, _, _ := loss.DPOBatch(dcfg, pol[:2], pol[2:4], ref[:2], ref[2:4])
				nll, _ := loss.NLL(pol[:2], counts[:2])
				return res.Loss + alpha*nll
			})
		})
	}
}

// TestLoRAStartsAtTheReference: B = 0 at the start, so the policy's log-probs (adapter on, training graph)
// equal the reference's (adapter off) bit for bit and DPO's first loss is ln 2; the base weights do not move
// in a step.
func TestLoRAStartsAtTheReference(t *testing.T) {
	for name, cfg := range loraModels() {
		t.Run(name, func(t *testing.T) {
			p := Init(cfg, tensor.Float32, 61)
			before := p.Tensors()
			if err := p.AddLoRA(LoRA{Rank: 4, Alpha: 8, Dropout: 0.1}, 62); err != nil {
				t.Fatal(err)
			}
			b := randomBatch(63, 4, 8, cfg.VocabSize)
			b.N = 2
			ref, _, err := p.BaseLogProbs(b)
			if err != nil {
				t.Fatal(err)
			}
			pol, _, err := p.LogProbs(b)
			if err != nil {
				t.Fatal(err)
			}
			for i := range ref {
				if pol[i] != ref[i] {
					t.Fatalf("row %d: policy %v, reference %v", i, pol[i], ref[i])
				}
			}
			// Without dropout the DPO graph's policy log-probs are the reference's exactly too.
			q := Init(cfg, tensor.Float32, 61)
			if err := q.AddLoRA(LoRA{Rank: 4, Alpha: 8}, 62); err != nil {
				t.Fatal(err)
			}
			out, err := q.DPOStep(b, ref, loss.DPOConfig{Beta: 0.1, LossType: loss.LossSigmoid}, 0)
			if err != nil {
				t.Fatal(err)
			}
			if out.Loss != math.Ln2 {
				t.Fatalf("first DPO loss %v, want ln 2 = %v", out.Loss, math.Ln2)
			}
			for i, v := range out.Policy {
				if v != ref[i] {
					t.Fatalf("row %d: policy %v in the DPO graph, reference %v", i, v, ref[i])
				}
			}
			// A step changes the adapter only.
			for _, n := range q.TrainableNames() {
				v, g := q.Float32s(n)
				for i := range v {
					v[i] -= 0.1 * g[i]
				}
			}
			q.ZeroGrads()
			for i, t0 := range before {
				v := q.tensor(t0.Name)
				for j := range v.Data {
					if v.Data[j] != t0.Data[j] {
						t.Fatalf("base weight %s[%d] moved (%d)", t0.Name, j, i)
					}
				}
			}
			if q.Grads != nil {
				t.Fatal("base gradients allocated")
			}
		})
	}
}

// TestLoRAMerge: the merged model computes what base + adapter computes (float64), and merging removes the
// adapter.
func TestLoRAMerge(t *testing.T) {
	for name, cfg := range loraModels() {
		t.Run(name, func(t *testing.T) {
			p := Init(cfg, tensor.Float64, 71)
			if err := p.AddLoRA(LoRA{Rank: 3, Alpha: 5}, 72); err != nil {
				t.Fatal(err)
			}
			randomizeAdapter(p, 73)
			b := randomBatch(74, 2, 8, cfg.VocabSize)
			with, _, err := p.LogProbs(b)
			if err != nil {
				t.Fatal(err)
			}
			base, _, err := p.BaseLogProbs(b)
			if err != nil {
				t.Fatal(err)
			}
			p.MergeLoRA()
			if _, ok := p.LoRAConfig(); ok {
				t.Fatal("adapter still there after merging")
			}
			merged, _, err := p.LogProbs(b)
			if err != nil {
				t.Fatal(err)
			}
			for i := range with {
				if math.Abs(with[i]-merged[i]) > 1e-10*(1+math.Abs(with[i])) {
					t.Fatalf("row %d: base + adapter %v, merged %v", i, with[i], merged[i])
				}
				if math.Abs(with[i]-base[i]) < 1e-6 {
					t.Fatalf("row %d: the adapter changed nothing (%v)", i, with[i])
				}
			}
		})
	}
}

func TestLoRARefusesUnknownTargets(t *testing.T) {
	p := Init(tinyLlama, tensor.Float32, 1)
	err := p.AddLoRA(LoRA{Rank: 2, Alpha: 4, Targets: []string{"q_proj", "c_attn"}}, 1)
	var te *TargetError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), `"c_attn"`) || !strings.Contains(err.Error(), "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj") {
		t.Fatalf("error %v, want a TargetError naming c_attn and the known modules", err)
	}
	if err := p.AddLoRA(LoRA{Rank: 0, Alpha: 4}, 1); err == nil {
		t.Fatal("rank 0 accepted")
	}
	g := Init(tiny, tensor.Float32, 1)
	if err := g.AddLoRA(LoRA{Rank: 2, Alpha: 4, Targets: []string{"c_attn"}}, 1); err != nil {
		t.Fatal(err)
	}
	// c_attn of 2 layers: A [2, 16] and B [48, 2] each.
	if got, want := g.NumTrainable(), 2*(2*16+48*2); got != want {
		t.Fatalf("%d trainable values, want %d", got, want)
	}
}

// TestLoRADropoutIsSeeded: with dropout the training loss depends on the dropout seed and only on it.
func TestLoRADropoutIsSeeded(t *testing.T) {
	p := Init(tinyLlama, tensor.Float32, 81)
	if err := p.AddLoRA(LoRA{Rank: 2, Alpha: 4, Dropout: 0.5}, 82); err != nil {
		t.Fatal(err)
	}
	randomizeAdapter(p, 83)
	b := randomBatch(84, 2, 8, tinyLlama.VocabSize)
	lossAt := func(seed uint64) float64 {
		p.SetDropoutSeed(seed)
		l, _, err := p.SFTStep(b)
		if err != nil {
			t.Fatal(err)
		}
		p.ZeroGrads()
		return l
	}
	a, b2, c := lossAt(5), lossAt(5), lossAt(6)
	if a != b2 || a == c {
		t.Fatalf("losses %v, %v (same seed), %v (another seed)", a, b2, c)
	}
}

// TestAdapterSaveLoad: an adapter written in PEFT's layout loads back onto its base with the same tensors and
// configuration; the files name what PEFT names.
func TestAdapterSaveLoad(t *testing.T) {
	for name, cfg := range loraModels() {
		t.Run(name, func(t *testing.T) {
			p := Init(cfg, tensor.Float32, 91)
			if err := p.AddLoRA(LoRA{Rank: 2, Alpha: 3, Dropout: 0.05}, 92); err != nil {
				t.Fatal(err)
			}
			randomizeAdapter(p, 93)
			dir := t.TempDir()
			if _, err := p.SaveAdapter(dir, "file:///base"); err != nil {
				t.Fatal(err)
			}
			c, err := ReadAdapterConfig(dir)
			if err != nil {
				t.Fatal(err)
			}
			if c.PEFTType != "LORA" || c.R != 2 || c.LoRAAlpha != 3 || c.FanInFanOut != (name == "gpt2") || c.TaskType != "CAUSAL_LM" {
				t.Fatalf("adapter_config.json %+v", c)
			}
			q := Init(cfg, tensor.Float32, 91)
			if err := q.LoadAdapter(dir); err != nil {
				t.Fatal(err)
			}
			want, got := p.AdapterTensors(), q.AdapterTensors()
			if len(want) != len(got) {
				t.Fatalf("%d tensors back, want %d", len(got), len(want))
			}
			for i := range want {
				if want[i].Name != got[i].Name || !slicesEqualF(want[i].Data, got[i].Data) {
					t.Fatalf("tensor %s differs after the round trip", want[i].Name)
				}
			}
			first := want[0].Name
			if name == "llama" && first != "model.layers.0.self_attn.q_proj.lora_A.weight" ||
				name == "gpt2" && first != "transformer.h.0.attn.c_attn.lora_A.weight" {
				t.Fatalf("first adapter tensor %s", first)
			}
			// A model of another shape refuses it, naming the tensor.
			other := cfg
			other.DModel *= 2
			r := Init(other, tensor.Float32, 1)
			if err := r.LoadAdapter(dir); err == nil || !strings.Contains(err.Error(), "has shape") {
				t.Fatalf("loading onto another shape: %v", err)
			}
			// Another architecture: the targets are not its layers.
			for otherName, otherCfg := range loraModels() {
				if otherName == name {
					continue
				}
				if err := Init(otherCfg, tensor.Float32, 1).LoadAdapter(dir); err == nil || !strings.Contains(err.Error(), "an adapter for another architecture") {
					t.Errorf("loading onto %s: %v", otherName, err)
				}
			}
			// Fewer layers: the adapter names a module the model lacks, or, the other way round, lacks one.
			fewer := cfg
			fewer.Layers--
			if err := Init(fewer, tensor.Float32, 1).LoadAdapter(dir); err == nil || !strings.Contains(err.Error(), "which this model does not have") {
				t.Errorf("loading onto fewer layers: %v", err)
			}
			more := cfg
			more.Layers++
			if err := Init(more, tensor.Float32, 1).LoadAdapter(dir); err == nil || !strings.Contains(err.Error(), "is missing (an adapter for another base") {
				t.Errorf("loading onto more layers: %v", err)
			}
			// A directory that does not exist, and a run's directory whose adapter is in adapter/.
			if err := q.LoadAdapter(filepath.Join(dir, "nope")); err == nil || !strings.Contains(err.Error(), "no such directory") {
				t.Errorf("missing directory: %v", err)
			}
			run := t.TempDir()
			if err := os.Rename(dir, filepath.Join(run, "adapter")); err != nil {
				t.Fatal(err)
			}
			if err := Init(cfg, tensor.Float32, 1).LoadAdapter(run); err == nil || !strings.Contains(err.Error(), "the run's adapter is in "+filepath.Join(run, "adapter")) {
				t.Errorf("a run's directory: %v", err)
			}
		})
	}
}

func slicesEqualF(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
