package model

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/preftune/preftune/trainer/hf"
	"github.com/preftune/preftune/trainer/loss"
	"github.com/preftune/preftune/trainer/nn"
	"github.com/preftune/preftune/trainer/safetensors"
)

// tinyLlama has every feature of the family at once: GQA (4 query heads over 2 key/value heads), head_dim 8
// apart from hidden/heads, q/k/v, o_proj and MLP biases, Qwen3's q/k norm, an untied head and llama3 rope
// scaling whose three bands (kept, blended, scaled) all hold some of the 4 frequencies (wavelengths 6.3, 63,
// 628 and 6283 positions against 16 and 64).
var tinyLlama = Config{Family: Llama, VocabSize: 41, ContextLength: 8, Layers: 2, DModel: 16, Heads: 4, KVHeads: 2,
	HeadDim: 8, Intermediate: 24, NormEps: 1e-5, RopeTheta: 10000,
	RopeScaling: &nn.RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 64},
	QKVBias:     true, OutputBias: true, MLPBias: true, QKNorm: true, Untied: true}

func TestLlamaShapesAreHuggingFaces(t *testing.T) {
	// Without MLP biases the config is a Qwen3 with attention_bias; its Hugging Face table must be ours.
	c := tinyLlama
	c.MLPBias = false
	p := Init(c, tensor.Float32, 1)
	hc, err := p.HFConfig()
	if err != nil {
		t.Fatal(err)
	}
	if hc.Architecture != "Qwen3ForCausalLM" {
		t.Fatalf("architecture %s, want Qwen3ForCausalLM", hc.Architecture)
	}
	want := hc.ExpectedShapes()
	if len(want) != len(p.Names) {
		t.Fatalf("%d weights, Hugging Face's table has %d", len(p.Names), len(want))
	}
	for _, s := range c.Shapes() {
		if !slices.Equal(want[s.Name], s.Shape) {
			t.Errorf("%s: shape %v, Hugging Face's %v", s.Name, s.Shape, want[s.Name])
		}
	}
	if int64(p.NumParams()) != hc.NumParameters() {
		t.Errorf("%d parameters, Hugging Face's count %d", p.NumParams(), hc.NumParameters())
	}
}

func TestLlamaSFTGradientsMatchFiniteDifferences(t *testing.T) {
	p := Init(tinyLlama, tensor.Float64, 41)
	perturb(p, 42)
	b := randomBatch(43, 2, 8, tinyLlama.VocabSize)
	if _, _, err := p.SFTStep(b); err != nil {
		t.Fatal(err)
	}
	checkModelGradients(t, p, func() float64 {
		s, n, err := p.EvalSFT(b)
		if err != nil {
			t.Fatal(err)
		}
		return s / float64(n)
	})
}

// TestLlamaDPOGradientsMatchFiniteDifferences checks the DPO (+ RPO) loss's gradient through the model graph,
// i.e. the gradient of a function of the per-sequence log-prob sums.
func TestLlamaDPOGradientsMatchFiniteDifferences(t *testing.T) {
	p := Init(tinyLlama, tensor.Float64, 44)
	perturb(p, 45)
	b := randomBatch(46, 4, 8, tinyLlama.VocabSize)
	b.N = 2
	ref, _, err := p.LogProbs(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ref {
		ref[i] += 0.3 * float64(i%3-1)
	}
	cfg := loss.DPOConfig{Beta: 0.5, LossType: loss.LossSigmoid, LabelSmoothing: 0.1}
	const alpha = 0.4
	if _, err := p.DPOStep(b, ref, cfg, alpha); err != nil {
		t.Fatal(err)
	}
	checkModelGradients(t, p, func() float64 {
		pol, counts, err := p.LogProbs(b)
		if err != nil {
			t.Fatal(err)
		}
		res, _, _ := loss.DPOBatch(cfg, pol[:2], pol[2:4], ref[:2], ref[2:4])
		nll, _ := loss.NLL(pol[:2], counts[:2])
		return res.Loss + alpha*nll
	})
}

func TestLlamaFloat32AgreesAndRecomputeIsExact(t *testing.T) {
	keep := tinyLlama
	keep.KeepAttentionProbs = true
	p64 := Init(keep, tensor.Float64, 47)
	perturb(p64, 48)
	p32 := p64.Convert(tensor.Float32)
	c := tinyLlama // recomputing the probabilities
	r32, err := FromTensors(c, tensor.Float32, p32.Tensors())
	if err != nil {
		t.Fatal(err)
	}
	b := randomBatch(49, 3, 8, tinyLlama.VocabSize)
	l64, _, err := p64.SFTStep(b)
	if err != nil {
		t.Fatal(err)
	}
	l32, _, err := p32.SFTStep(b)
	if err != nil {
		t.Fatal(err)
	}
	lr, _, err := r32.SFTStep(b)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(l64-l32) > 1e-5*l64 {
		t.Fatalf("float64 loss %v, float32 %v", l64, l32)
	}
	if lr != l32 {
		t.Fatalf("loss %v with the attention probabilities kept, %v recomputed", l32, lr)
	}
	g64, g32, gr := flat(p64, true), flat(p32, true), flat(r32, true)
	scale := 0.0
	for _, v := range g64 {
		scale = max(scale, math.Abs(v))
	}
	for i := range g64 {
		if math.Abs(g64[i]-g32[i]) > 1e-4*scale {
			t.Fatalf("gradient %d: float64 %v, float32 %v (largest %v)", i, g64[i], g32[i], scale)
		}
		if gr[i] != g32[i] {
			t.Fatalf("gradient %d: %v with probabilities kept, %v recomputed", i, g32[i], gr[i])
		}
	}
}

// TestLlamaLogitsAgreeWithLogProbs checks the forward graph (full logits) against the fused head of the
// training graphs, and that padding after a row's end changes nothing before it.
func TestLlamaLogitsAgreeWithLogProbs(t *testing.T) {
	p := Init(tinyLlama, tensor.Float64, 50)
	perturb(p, 51)
	b := randomBatch(52, 2, 8, tinyLlama.VocabSize)
	logits, err := p.Logits(b)
	if err != nil {
		t.Fatal(err)
	}
	sums, _, err := p.LogProbs(b)
	if err != nil {
		t.Fatal(err)
	}
	V := tinyLlama.VocabSize
	for r := 0; r < b.B; r++ {
		var want float64
		for i := 0; i < b.T; i++ {
			n := r*b.T + i
			if b.Mask[n] == 0 {
				continue
			}
			row := logits[n*V : (n+1)*V]
			want += row[b.Targets[n]] - logSumExp(row)
		}
		if math.Abs(want-sums[r]) > 1e-10 {
			t.Fatalf("row %d: log-prob sum %v from the logits, %v from LogProbs", r, want, sums[r])
		}
	}
}

func logSumExp(row []float64) float64 {
	mx := math.Inf(-1)
	for _, v := range row {
		mx = max(mx, v)
	}
	var z float64
	for _, v := range row {
		z += math.Exp(v - mx)
	}
	return mx + math.Log(z)
}

func TestLlamaLearnsAndGenerates(t *testing.T) {
	c := tinyLlama
	c.VocabSize, c.ContextLength = 12, 32
	p := Init(c, tensor.Float32, 53)
	pattern := []int{1, 2, 3, 4, 5, 6, 7}
	seq := make([]int, 33)
	for i := range seq {
		seq[i] = pattern[i%len(pattern)]
	}
	b := Batch{B: 1, T: 32, N: 1, Inputs: seq[:32], Targets: seq[1:], Mask: make([]float32, 32)}
	for i := range b.Mask {
		b.Mask[i] = 1
	}
	var l float64
	for step := 0; step < 150; step++ {
		var err error
		if l, _, err = p.SFTStep(b); err != nil {
			t.Fatal(err)
		}
		adamLike(p, step)
	}
	if l > 0.1 {
		t.Fatalf("loss after training %v, want < 0.1", l)
	}
	out, err := p.Generate([]int{3, 4, 5}, 40, 0, nil, 9, 7)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0] != 6 {
		t.Fatalf("greedy continuation %v, want [6] then the stop token 7", out)
	}
}

// writeModel saves p as a Hugging Face directory and returns it.
func writeModel(t *testing.T, p *Params, opts hf.SaveOptions) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "model")
	if _, err := p.Save(dir, opts); err != nil {
		t.Fatal(err)
	}
	return dir
}

func sameTensors(t *testing.T, a, b *Params) {
	t.Helper()
	if !slices.Equal(a.Names, b.Names) {
		t.Fatalf("names %v and %v", a.Names, b.Names)
	}
	for _, n := range a.Names {
		x, y := a.tensor(n), b.tensor(n)
		if !slices.Equal(x.Shape, y.Shape) || !slices.Equal(x.Data, y.Data) {
			t.Fatalf("%s differs after the round trip", n)
		}
	}
}

// TestLlamaSaveLoadRoundTrip saves random Llama-family models (one per architecture the flags select) and
// loads them back: same config, same tensors bit for bit, in one file and in shards.
func TestLlamaSaveLoadRoundTrip(t *testing.T) {
	qwen2 := tinyLlama
	qwen2.OutputBias, qwen2.MLPBias, qwen2.QKNorm, qwen2.RopeScaling = false, false, false, nil
	llama := tinyLlama
	llama.QKNorm = false
	qwen3 := tinyLlama
	qwen3.MLPBias = false
	for _, c := range []struct {
		cfg  Config
		arch string
	}{{llama, "LlamaForCausalLM"}, {qwen2, "Qwen2ForCausalLM"}, {qwen3, "Qwen3ForCausalLM"}} {
		p := Init(c.cfg, tensor.Float32, 54)
		perturb32(p, 55)
		for _, shard := range []int64{0, 4096} {
			dir := writeModel(t, p, hf.SaveOptions{ShardSize: shard})
			q, info, err := Load(dir, tensor.Float32, 8)
			if err != nil {
				t.Fatalf("%s: %v", c.arch, err)
			}
			if q.source.Architecture != c.arch {
				t.Fatalf("saved as %s, want %s", q.source.Architecture, c.arch)
			}
			want := p.Config
			got := q.Config
			if got.RopeScaling != nil && want.RopeScaling != nil && *got.RopeScaling == *want.RopeScaling {
				got.RopeScaling = want.RopeScaling
			}
			if !configEqual(got, want) {
				t.Fatalf("%s: config %+v after the round trip, want %+v", c.arch, got, want)
			}
			sameTensors(t, p, q)
			files, _, err := hf.WeightFiles(dir)
			if err != nil {
				t.Fatal(err)
			}
			if (shard > 0) != (len(files) > 1) || info.SourceDTypes[safetensors.F32] != len(p.Names) {
				t.Fatalf("%s shard size %d: files %v, dtypes %v", c.arch, shard, files, info.SourceDTypes)
			}
		}
	}
	bad := tinyLlama // MLP biases with q/k norm: no Hugging Face architecture has both
	if _, err := Init(bad, tensor.Float32, 1).HFConfig(); err == nil || !strings.Contains(err.Error(), "no Hugging Face architecture") {
		t.Fatalf("q/k norm with MLP biases: %v", err)
	}
}

func configEqual(a, b Config) bool {
	return a.Family == b.Family && a.VocabSize == b.VocabSize && a.ContextLength == b.ContextLength &&
		a.MaxPositions == b.MaxPositions && a.Layers == b.Layers && a.DModel == b.DModel && a.Heads == b.Heads &&
		a.KVHeads == b.KVHeads && a.HeadDim == b.HeadDim && a.Intermediate == b.Intermediate && a.NormEps == b.NormEps &&
		a.RopeTheta == b.RopeTheta && a.RopeScaling == b.RopeScaling && a.QKVBias == b.QKVBias &&
		a.OutputBias == b.OutputBias && a.MLPBias == b.MLPBias && a.QKNorm == b.QKNorm && a.Untied == b.Untied &&
		a.Tokens.BOS == b.Tokens.BOS && a.Tokens.PAD == b.Tokens.PAD && slices.Equal(a.Tokens.EOS, b.Tokens.EOS)
}

// perturb32 moves float32 weights off their initial values (norm weights and biases included).
func perturb32(p *Params, seed uint64) {
	q := p.Convert(tensor.Float64)
	perturb(q, seed)
	for _, n := range p.Names {
		v, _ := p.Float32s(n)
		copy(v, q.tensor(n).Data)
	}
}

// TestLoadBF16 loads a checkpoint whose weights are BF16 (as most on the Hub): every value is widened exactly.
func TestLoadBF16(t *testing.T) {
	p := Init(tinyLlama.withQwen3(), tensor.Float32, 56)
	perturb32(p, 57)
	dir := writeModel(t, p, hf.SaveOptions{})
	ts := p.Tensors()
	var st []safetensors.Tensor
	for _, w := range ts {
		for i, v := range w.Data {
			w.Data[i] = safetensors.BF16ToFloat32(safetensors.Float32ToBF16(v))
		}
		st = append(st, safetensors.Tensor{Name: w.Name, Shape: w.Shape, Data: w.Data, DType: safetensors.BF16})
	}
	raw, err := safetensors.Encode(st, map[string]string{"format": "pt"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, hf.WeightsFile), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	q, info, err := Load(dir, tensor.Float32, 0)
	if err != nil {
		t.Fatal(err)
	}
	if info.SourceDTypes[safetensors.BF16] != len(ts) {
		t.Fatalf("dtypes %v, want %d BF16", info.SourceDTypes, len(ts))
	}
	for _, w := range ts {
		if !slices.Equal(q.tensor(w.Name).Data, w.Data) {
			t.Fatalf("%s: BF16 values not widened exactly", w.Name)
		}
	}
}

func (c Config) withQwen3() Config {
	c.MLPBias = false
	return c
}

// TestSlidingWindowShorterThanContextRefused: a Mistral whose sliding window is shorter than the context would
// attend differently from full causal attention, so it is refused naming the field; a context within the
// window loads.
func TestSlidingWindowShorterThanContextRefused(t *testing.T) {
	c := tinyLlama
	c.QKVBias, c.OutputBias, c.MLPBias, c.QKNorm, c.ContextLength = false, false, false, false, 64
	dir := writeModel(t, Init(c, tensor.Float32, 58), hf.SaveOptions{})
	cfgPath := filepath.Join(dir, hf.ConfigFile)
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(raw), `"LlamaForCausalLM"`, `"MistralForCausalLM"`, 1)
	s = strings.Replace(s, `"model_type": "llama"`, `"model_type": "mistral", "sliding_window": 16`, 1)
	if err := os.WriteFile(cfgPath, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, ctx := range []int{32, 0} {
		_, _, err := Load(dir, tensor.Float32, ctx)
		var ue *hf.UnsupportedError
		if !errors.As(err, &ue) || ue.Field != "sliding_window" || ue.Reason() != hf.ReasonModelUnsupported ||
			!strings.Contains(err.Error(), "16") {
			t.Fatalf("context %d: error %v, want ModelUnsupported naming sliding_window 16", ctx, err)
		}
		t.Logf("context %d: %v", ctx, err)
	}
	p, _, err := Load(dir, tensor.Float32, 16)
	if err != nil {
		t.Fatalf("context 16 = the window: %v", err)
	}
	if p.source.Architecture != "MistralForCausalLM" || p.ContextLength != 16 {
		t.Fatalf("loaded %s with context %d", p.source.Architecture, p.ContextLength)
	}
	if _, _, err := p.SFTStep(randomBatch(59, 1, 16, c.VocabSize)); err != nil {
		t.Fatal(err)
	}
}
