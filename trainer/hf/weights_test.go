package hf

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/preftune/preftune/trainer/safetensors"
)

// stories260K is a real pretrained Llama in Hugging Face's layout, in the read-only shared folder beside the
// repository (see its README.md).
var stories260K = filepath.Join("..", "..", "..", "shared", "models", "stories260K")

// stories260KWeightsSHA256 is model.safetensors' sha256 from the folder's README.
const stories260KWeightsSHA256 = "407a7c581bdd66972383ce9ad24857713fb98786d06ea564a2fe9b34ebe77dfd"

func needStories(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(stories260K, WeightsFile)); err != nil {
		t.Skipf("stories260K not available at %s: %v", stories260K, err)
	}
}

func TestStories260KConfig(t *testing.T) {
	needStories(t)
	data, err := os.ReadFile(filepath.Join(stories260K, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	if c.Architecture != "LlamaForCausalLM" || c.Family != FamilyLlama || c.VocabSize != 512 || c.HiddenSize != 64 ||
		c.IntermediateSize != 172 || c.NumLayers != 5 || c.NumHeads != 8 || c.NumKVHeads != 4 || c.HeadDim != 8 ||
		c.MaxPositionEmbeddings != 512 || c.NormEps != 1e-5 || c.RopeTheta != 10000 || c.RopeScaling != nil ||
		!c.TieWordEmbeddings || c.QKVBias || c.OutputBias || c.MLPBias || c.QKNorm || c.SlidingWindow != 0 ||
		*c.BOSTokenID != 1 || !slices.Equal(c.EOSTokenIDs, []int{2}) || c.PadTokenID != nil {
		t.Errorf("stories260K config: %+v", c)
	}
	// README: 47 tensors and 260,032 parameters.
	if n := c.NumParameters(); n != 260032 {
		t.Errorf("parameters %d, want 260032", n)
	}
	if n := len(c.ExpectedShapes()); n != 47 {
		t.Errorf("%d expected tensors, want 47", n)
	}
}

// rawF32 reads one F32 tensor of a safetensors file by hand (header JSON and offsets), independently of the
// package's reader.
func rawF32(t *testing.T, path, name string) []float32 {
	t.Helper()
	buf, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := int(uint64(buf[0]) | uint64(buf[1])<<8 | uint64(buf[2])<<16 | uint64(buf[3])<<24)
	var h map[string]struct {
		DType   string `json:"dtype"`
		Offsets [2]int `json:"data_offsets"`
	}
	json.Unmarshal(buf[8:8+n], &h)
	e := h[name]
	if e.DType != "F32" {
		t.Fatalf("%s: dtype %q", name, e.DType)
	}
	data := buf[8+n+e.Offsets[0] : 8+n+e.Offsets[1]]
	out := make([]float32, len(data)/4)
	for i := range out {
		out[i] = math.Float32frombits(uint32(data[4*i]) | uint32(data[4*i+1])<<8 | uint32(data[4*i+2])<<16 | uint32(data[4*i+3])<<24)
	}
	return out
}

func TestStories260KLoad(t *testing.T) {
	needStories(t)
	m, err := LoadModel(stories260K)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Tensors) != 47 || m.SourceDTypes[safetensors.F32] != 47 || len(m.Ignored) != 0 {
		t.Fatalf("%d tensors, dtypes %v, ignored %v", len(m.Tensors), m.SourceDTypes, m.Ignored)
	}
	params := 0
	byName := map[string]safetensors.Tensor{}
	for _, tn := range m.Tensors {
		params += len(tn.Data)
		byName[tn.Name] = tn
	}
	if params != 260032 {
		t.Errorf("%d parameters", params)
	}
	for _, name := range []string{"model.embed_tokens.weight", "model.layers.4.self_attn.k_proj.weight", "model.norm.weight"} {
		if !slices.Equal(byName[name].Data, rawF32(t, filepath.Join(stories260K, WeightsFile), name)) {
			t.Errorf("%s differs from the file's bytes", name)
		}
	}
	if !slices.Equal(byName["model.layers.0.mlp.gate_proj.weight"].Shape, []int{172, 64}) {
		t.Errorf("gate_proj shape %v", byName["model.layers.0.mlp.gate_proj.weight"].Shape)
	}
	d, err := WeightsDigest(stories260K)
	if err != nil || d != "sha256:"+stories260KWeightsSHA256 {
		t.Errorf("digest %s, %v", d, err)
	}
}

func equalModels(t *testing.T, a, b *Model) {
	t.Helper()
	if len(a.Tensors) != len(b.Tensors) {
		t.Fatalf("%d tensors vs %d", len(a.Tensors), len(b.Tensors))
	}
	for i := range a.Tensors {
		x, y := a.Tensors[i], b.Tensors[i]
		if x.Name != y.Name || !slices.Equal(x.Shape, y.Shape) || len(x.Data) != len(y.Data) {
			t.Fatalf("tensor %d: %s %v vs %s %v", i, x.Name, x.Shape, y.Name, y.Shape)
		}
		for j := range x.Data {
			if math.Float32bits(x.Data[j]) != math.Float32bits(y.Data[j]) {
				t.Fatalf("%s[%d]: %v vs %v", x.Name, j, x.Data[j], y.Data[j])
			}
		}
	}
}

// TestStories260KRoundTrip: load → save → load gives identical tensors; the weights file is even byte-identical
// to the original (same layout rules), the config keeps every field, the tokenizer files are copied.
func TestStories260KRoundTrip(t *testing.T) {
	needStories(t)
	m, err := LoadModel(stories260K)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "model")
	res, err := SaveModel(out, m.Config, m.Tensors, SaveOptions{SourceDir: stories260K})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.WeightFiles, []string{WeightsFile}) || len(res.Copied) != 4 || !slices.Equal(res.Missing, []string{"chat_template.jinja"}) || res.TotalSize != 4*260032 {
		t.Errorf("result %+v", res)
	}
	if !slices.Equal(res.Files, []string{ConfigFile, GenerationConfigFile, WeightsFile, "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"}) {
		t.Errorf("files %v", res.Files)
	}
	if res.Digest != "sha256:"+stories260KWeightsSHA256 {
		t.Errorf("saved weights digest %s: not byte-identical to the original", res.Digest)
	}
	back, err := LoadModel(out)
	if err != nil {
		t.Fatal(err)
	}
	equalModels(t, m, back)
	for _, name := range TokenizerFiles {
		a, _ := os.ReadFile(filepath.Join(stories260K, name))
		b, _ := os.ReadFile(filepath.Join(out, name))
		if !bytes.Equal(a, b) {
			t.Errorf("%s not copied byte for byte", name)
		}
	}
	var in, got map[string]any
	raw, _ := os.ReadFile(filepath.Join(stories260K, ConfigFile))
	json.Unmarshal(raw, &in)
	raw, _ = os.ReadFile(filepath.Join(out, ConfigFile))
	json.Unmarshal(raw, &got)
	if !equalJSON(in, got) {
		t.Errorf("config.json changed:\n%v\n%v", in, got)
	}
	// Saving again over the directory replaces it.
	if _, err := SaveModel(out, back.Config, back.Tensors, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "tokenizer.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the replaced directory still has tokenizer.json: %v", err)
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func TestShardedWriteRead(t *testing.T) {
	needStories(t)
	m, err := LoadModel(stories260K)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "sharded")
	res, err := SaveModel(out, m.Config, m.Tensors, SaveOptions{ShardSize: 300_000, SourceDir: stories260K})
	if err != nil {
		t.Fatal(err)
	}
	// 1,040,128 bytes of tensors; the embedding (131,072 bytes) and each layer's matrices pack into 300 kB files.
	if len(res.WeightFiles) < 4 || res.WeightFiles[0] != "model-00001-of-"+res.WeightFiles[0][15:] {
		t.Fatalf("weight files %v", res.WeightFiles)
	}
	var index struct {
		Metadata  map[string]int64  `json:"metadata"`
		WeightMap map[string]string `json:"weight_map"`
	}
	raw, err := os.ReadFile(filepath.Join(out, WeightsIndexFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &index); err != nil || index.Metadata["total_size"] != 4*260032 || len(index.WeightMap) != 47 {
		t.Fatalf("index %s (%v)", raw, err)
	}
	if _, err := os.Stat(filepath.Join(out, WeightsFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("sharded output has %s", WeightsFile)
	}
	for _, f := range res.WeightFiles {
		st, _ := os.Stat(filepath.Join(out, f))
		h, err := readHeader(filepath.Join(out, f))
		if err != nil {
			t.Fatal(err)
		}
		start := st.Size()
		for _, e := range h.Tensors {
			start = min(start, e.Begin)
		}
		data := st.Size() - start
		if len(h.Tensors) > 1 && data > 300_000 {
			t.Errorf("%s holds %d bytes of tensors", f, data)
		}
	}
	back, err := LoadModel(out)
	if err != nil {
		t.Fatal(err)
	}
	equalModels(t, m, back)
	d, err := WeightsDigest(out)
	if err != nil || d != res.Digest {
		t.Errorf("digest of the directory %s, written %s (%v)", d, res.Digest, err)
	}
	// The digest is the sha256 of the shards' bytes concatenated in name order.
	h := sha256.New()
	for _, f := range res.WeightFiles {
		b, _ := os.ReadFile(filepath.Join(out, f))
		h.Write(b)
	}
	if d != "sha256:"+hex.EncodeToString(h.Sum(nil)) {
		t.Errorf("digest %s is not the concatenation's", d)
	}

	// An index that disagrees with its shards is refused, naming the tensor or file.
	var generic map[string]any
	json.Unmarshal(raw, &generic)
	wm := generic["weight_map"].(map[string]any)
	wm["model.norm.weight"] = res.WeightFiles[0]
	if res.WeightFiles[0] == index.WeightMap["model.norm.weight"] {
		wm["model.norm.weight"] = res.WeightFiles[1]
	}
	bad, _ := json.Marshal(generic)
	os.WriteFile(filepath.Join(out, WeightsIndexFile), bad, 0o644)
	if _, err := OpenWeights(out); err == nil || !strings.Contains(err.Error(), "model.norm.weight") {
		t.Errorf("index pointing elsewhere: %v", err)
	}
	os.WriteFile(filepath.Join(out, WeightsIndexFile), raw, 0o644)
	os.Remove(filepath.Join(out, res.WeightFiles[1]))
	if _, err := OpenWeights(out); err == nil || !strings.Contains(err.Error(), res.WeightFiles[1]) {
		t.Errorf("missing shard: %v", err)
	}
	wm["model.norm.weight"] = "../model.safetensors"
	bad, _ = json.Marshal(generic)
	os.WriteFile(filepath.Join(out, WeightsIndexFile), bad, 0o644)
	if _, err := OpenWeights(out); err == nil || !strings.Contains(err.Error(), "not a file name") {
		t.Errorf("shard outside the directory: %v", err)
	}
}

// writeAs writes the stories260K tensors into dir as dtype (one file, or shards with an index), with its config.
func writeAs(t *testing.T, m *Model, dir string, dtype safetensors.DType, shards int, edit func(ts []safetensors.Tensor)) {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	ts := make([]safetensors.Tensor, len(m.Tensors))
	for i, tn := range m.Tensors {
		tn.Data = slices.Clone(tn.Data)
		tn.DType = dtype
		ts[i] = tn
	}
	if edit != nil {
		edit(ts)
	}
	cfg, _ := os.ReadFile(filepath.Join(stories260K, ConfigFile))
	os.WriteFile(filepath.Join(dir, ConfigFile), bytes.Replace(cfg, []byte(`"float32"`), []byte(`"bfloat16"`), 1), 0o644)
	if shards <= 1 {
		f, _ := os.Create(filepath.Join(dir, WeightsFile))
		if _, err := safetensors.Write(f, ts, map[string]string{"format": "pt"}); err != nil {
			t.Fatal(err)
		}
		f.Close()
		return
	}
	wm := map[string]string{}
	per := (len(ts) + shards - 1) / shards
	for k := 0; k < shards; k++ {
		name := "model-0000" + string(rune('1'+k)) + "-of-0000" + string(rune('0'+shards)) + ".safetensors"
		part := ts[k*per : min(len(ts), (k+1)*per)]
		f, _ := os.Create(filepath.Join(dir, name))
		if _, err := safetensors.Write(f, part, map[string]string{"format": "pt"}); err != nil {
			t.Fatal(err)
		}
		f.Close()
		for _, tn := range part {
			wm[tn.Name] = name
		}
	}
	idx, _ := json.Marshal(map[string]any{"metadata": map[string]any{"total_size": 0}, "weight_map": wm})
	os.WriteFile(filepath.Join(dir, WeightsIndexFile), idx, 0o644)
}

// TestLoadBF16AndF16: a BF16 file and a sharded F16 checkpoint of stories260K, made here, load as the exact
// float32 widening of the rounded values.
func TestLoadBF16AndF16(t *testing.T) {
	needStories(t)
	m, err := LoadModel(stories260K)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		dtype  safetensors.DType
		shards int
		round  func(float32) float32
	}{
		{safetensors.BF16, 1, func(x float32) float32 { return safetensors.BF16ToFloat32(safetensors.Float32ToBF16(x)) }},
		{safetensors.F16, 3, func(x float32) float32 { return safetensors.F16ToFloat32(safetensors.Float32ToF16(x)) }},
	} {
		dir := filepath.Join(t.TempDir(), string(c.dtype))
		writeAs(t, m, dir, c.dtype, c.shards, nil)
		got, err := LoadModel(dir)
		if err != nil {
			t.Fatalf("%s: %v", c.dtype, err)
		}
		if got.SourceDTypes[c.dtype] != 47 || got.Config.TorchDType != "bfloat16" {
			t.Errorf("%s: dtypes %v, torch_dtype %s", c.dtype, got.SourceDTypes, got.Config.TorchDType)
		}
		changed := 0
		for i, tn := range got.Tensors {
			for j, x := range tn.Data {
				orig := m.Tensors[i].Data[j]
				if want := c.round(orig); math.Float32bits(x) != math.Float32bits(want) {
					t.Fatalf("%s %s[%d]: %v, want %v", c.dtype, tn.Name, j, x, want)
				}
				if x != orig {
					changed++
				}
			}
		}
		if changed == 0 {
			t.Errorf("%s: no value was rounded; the test does not exercise the conversion", c.dtype)
		}
		// Saved again, it is float32 and says so.
		out := filepath.Join(t.TempDir(), "f32")
		if _, err := SaveModel(out, got.Config, got.Tensors, SaveOptions{}); err != nil {
			t.Fatal(err)
		}
		back, err := LoadModel(out)
		if err != nil || back.SourceDTypes[safetensors.F32] != 47 || back.Config.TorchDType != "float32" {
			t.Fatalf("resaved %s: %v %v", c.dtype, err, back)
		}
		equalModels(t, got, back)
	}
}

func TestLoadRejectsNonFiniteAndWrongShapes(t *testing.T) {
	needStories(t)
	m, err := LoadModel(stories260K)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "nan")
	writeAs(t, m, dir, safetensors.BF16, 2, func(ts []safetensors.Tensor) {
		for i := range ts {
			if ts[i].Name == "model.layers.3.mlp.up_proj.weight" {
				ts[i].Data[100] = float32(math.Inf(1))
			}
		}
	})
	_, err = LoadModel(dir)
	var nf *safetensors.NonFiniteError
	var mu *ModelUnreadableError
	if !errors.As(err, &nf) || !errors.As(err, &mu) || nf.Tensor != "model.layers.3.mlp.up_proj.weight" || nf.Index != 100 ||
		!strings.Contains(err.Error(), "model.layers.3.mlp.up_proj.weight") || mu.Reason() != ReasonModelUnreadable {
		t.Errorf("Inf in up_proj: %v", err)
	}

	// A config that does not match the weights: every wrong tensor is named.
	dir = filepath.Join(t.TempDir(), "shapes")
	writeAs(t, m, dir, safetensors.F32, 1, func(ts []safetensors.Tensor) {})
	cfg, _ := os.ReadFile(filepath.Join(dir, ConfigFile))
	cfg = bytes.Replace(cfg, []byte(`"intermediate_size": 172`), []byte(`"intermediate_size": 128`), 1)
	cfg = bytes.Replace(cfg, []byte(`"num_hidden_layers": 5`), []byte(`"num_hidden_layers": 6`), 1)
	os.WriteFile(filepath.Join(dir, ConfigFile), cfg, 0o644)
	_, err = LoadModel(dir)
	var se *ShapeError
	if !errors.As(err, &se) || len(se.Mismatched) != 15 || len(se.Missing) != 9 ||
		!strings.Contains(err.Error(), "model.layers.0.mlp.down_proj.weight: shape [64 172] in the file, [64 128] expected") ||
		!strings.Contains(err.Error(), "model.layers.5.") {
		t.Errorf("wrong config: %v", err)
	}
	// An extra tensor is unexpected; a stored lm_head of a tied model is ignored and reported.
	dir = filepath.Join(t.TempDir(), "extra")
	writeAs(t, m, dir, safetensors.F32, 1, nil)
	extra := append(slices.Clone(m.Tensors),
		safetensors.Tensor{Name: "lm_head.weight", Shape: []int{512, 64}, Data: make([]float32, 512*64)},
		safetensors.Tensor{Name: "model.layers.0.self_attn.rotary_emb.inv_freq", Shape: []int{4}, Data: make([]float32, 4)})
	f, _ := os.Create(filepath.Join(dir, WeightsFile))
	safetensors.Write(f, extra, nil)
	f.Close()
	got, err := LoadModel(dir)
	if err != nil || !slices.Equal(got.Ignored, []string{"lm_head.weight", "model.layers.0.self_attn.rotary_emb.inv_freq"}) || len(got.Tensors) != 47 {
		t.Errorf("ignorable tensors: %v, %v", err, got)
	}
	f, _ = os.Create(filepath.Join(dir, WeightsFile))
	safetensors.Write(f, append(slices.Clone(m.Tensors), safetensors.Tensor{Name: "model.layers.0.mlp.extra", Shape: []int{2}, Data: []float32{1, 2}}), nil)
	f.Close()
	if _, err := LoadModel(dir); !errors.As(err, &se) || !strings.Contains(err.Error(), "model.layers.0.mlp.extra") {
		t.Errorf("unexpected tensor: %v", err)
	}
	// No weights at all.
	os.Remove(filepath.Join(dir, WeightsFile))
	os.WriteFile(filepath.Join(dir, "pytorch_model.bin"), []byte("x"), 0o644)
	if _, err := LoadModel(dir); err == nil || !strings.Contains(err.Error(), "pytorch_model.bin") {
		t.Errorf("pickle only: %v", err)
	}
}

func TestSaveModelChecksTensors(t *testing.T) {
	needStories(t)
	m, err := LoadModel(stories260K)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "m")
	if _, err := SaveModel(out, m.Config, m.Tensors[1:], SaveOptions{}); err == nil || !strings.Contains(err.Error(), m.Tensors[0].Name) {
		t.Errorf("missing tensor: %v", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed save left %s", out)
	}
}

// TestLoadAllocatesOneBuffer loads a 17.6M-parameter model in 3 shards (70 MB of F32) into preallocated destinations
// and measures what Load allocates: the 1 MiB read buffer and bookkeeping, never a copy of a shard or a tensor.
func TestLoadAllocatesOneBuffer(t *testing.T) {
	cfg := mustParse(t, `{"architectures":["LlamaForCausalLM"],"vocab_size":32000,"hidden_size":256,"intermediate_size":512,
		"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"tie_word_embeddings":false}`)
	shapes := cfg.ExpectedShapes()
	var ts []safetensors.Tensor
	seed := uint32(1)
	for name, shape := range shapes {
		data := make([]float32, numel(shape))
		for i := range data {
			seed = seed*1664525 + 1013904223
			data[i] = float32(int32(seed>>8)-1<<23) / (1 << 30)
		}
		ts = append(ts, safetensors.Tensor{Name: name, Shape: shape, Data: data})
	}
	dir := filepath.Join(t.TempDir(), "m")
	res, err := SaveModel(dir, cfg, ts, SaveOptions{ShardSize: 12 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.WeightFiles) < 3 || res.TotalSize < 64<<20 {
		t.Fatalf("%d files, %d bytes", len(res.WeightFiles), res.TotalSize)
	}
	w, err := OpenWeights(dir)
	if err != nil {
		t.Fatal(err)
	}
	dst := map[string][]float32{}
	for _, ti := range w.Tensors {
		dst[ti.Name] = make([]float32, numel(ti.Shape))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	skipped, err := w.Load(func(ti TensorInfo) ([]float32, error) { return dst[ti.Name], nil })
	runtime.ReadMemStats(&after)
	if err != nil || len(skipped) != 0 {
		t.Fatal(err, skipped)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("Load of %d bytes in %d files allocated %d bytes", res.TotalSize, len(res.WeightFiles), alloc)
	if alloc > 2<<20 {
		t.Errorf("Load allocated %d bytes for %d bytes of weights; want the 1 MiB buffer and little more", alloc, res.TotalSize)
	}
	for _, tn := range ts {
		if !slices.Equal(tn.Data, dst[tn.Name]) {
			t.Fatalf("%s differs", tn.Name)
		}
	}
}

// TestGPT2Directory: a GPT-2 file as GPT2Model writes it (no "transformer." prefix, with the causal-mask buffers
// attn.bias and attn.masked_bias, as openai-community/gpt2 has) loads under GPT2LMHeadModel's names, the buffers
// skipped and listed; saved, it has the prefix and no buffers, and loads back identical.
func TestGPT2Directory(t *testing.T) {
	cfgJSON := `{"architectures":["GPT2LMHeadModel"],"model_type":"gpt2","vocab_size":50,"n_embd":16,"n_layer":2,"n_head":4,
		"n_positions":32,"n_inner":null,"activation_function":"gelu_new","layer_norm_epsilon":1e-05,"bos_token_id":0,"eos_token_id":0}`
	cfg := mustParse(t, cfgJSON)
	dir := filepath.Join(t.TempDir(), "gpt2")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, ConfigFile), []byte(cfgJSON), 0o644)
	var ts []safetensors.Tensor
	v := float32(0)
	for name, shape := range cfg.ExpectedShapes() {
		data := make([]float32, numel(shape))
		for i := range data {
			v += 0.001
			data[i] = v
		}
		ts = append(ts, safetensors.Tensor{Name: strings.TrimPrefix(name, "transformer."), Shape: shape, Data: data, DType: safetensors.F16})
	}
	if len(ts) != 2+2*12+2 {
		t.Fatalf("%d GPT-2 tensors", len(ts))
	}
	if !slices.Equal(cfg.ExpectedShapes()["transformer.h.1.attn.c_attn.weight"], []int{16, 48}) || !slices.Equal(cfg.ExpectedShapes()["transformer.h.0.mlp.c_proj.weight"], []int{64, 16}) {
		t.Fatal("Conv1D shapes are not [in, out]")
	}
	for i := 0; i < 2; i++ {
		ts = append(ts,
			safetensors.Tensor{Name: fmt.Sprintf("h.%d.attn.bias", i), Shape: []int{1, 1, 32, 32}, Data: make([]float32, 32*32)},
			safetensors.Tensor{Name: fmt.Sprintf("h.%d.attn.masked_bias", i), Shape: []int{}, Data: []float32{-1e4}})
	}
	f, _ := os.Create(filepath.Join(dir, WeightsFile))
	if _, err := safetensors.Write(f, ts, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	m, err := LoadModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Tensors) != 28 || len(m.Ignored) != 4 || !strings.HasPrefix(m.Tensors[0].Name, "transformer.") || m.SourceDTypes[safetensors.F16] != 28 {
		t.Fatalf("%d tensors, ignored %v, first %s", len(m.Tensors), m.Ignored, m.Tensors[0].Name)
	}
	out := filepath.Join(t.TempDir(), "saved")
	if _, err := SaveModel(out, m.Config, m.Tensors, SaveOptions{SourceDir: dir}); err != nil {
		t.Fatal(err)
	}
	w, err := OpenWeights(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, ti := range w.Tensors {
		if !strings.HasPrefix(ti.Name, "transformer.") || strings.HasSuffix(ti.Name, ".attn.bias") || ti.DType != safetensors.F32 {
			t.Errorf("saved tensor %s %s", ti.Name, ti.DType)
		}
	}
	back, err := LoadModel(out)
	if err != nil {
		t.Fatal(err)
	}
	equalModels(t, m, back)
	var got map[string]any
	raw, _ := os.ReadFile(filepath.Join(out, ConfigFile))
	json.Unmarshal(raw, &got)
	if got["architectures"].([]any)[0] != "GPT2LMHeadModel" || got["torch_dtype"] != "float32" || got["n_inner"] != nil || got["n_embd"] != 16.0 {
		t.Errorf("saved GPT-2 config %s", raw)
	}
}

// TestLoadIntoCallerMemory: a model sized from OpenModel's config gets its own slices filled; a wrong-sized or
// missing destination is an error naming the tensor.
func TestLoadIntoCallerMemory(t *testing.T) {
	needStories(t)
	d, err := OpenModel(stories260K)
	if err != nil {
		t.Fatal(err)
	}
	params := map[string][]float32{}
	for name, shape := range d.Config.ExpectedShapes() {
		params[name] = make([]float32, numel(shape))
	}
	dtypes, err := d.LoadInto(func(name string, shape []int) ([]float32, error) { return params[name], nil })
	if err != nil || dtypes[safetensors.F32] != 47 {
		t.Fatalf("%v %v", dtypes, err)
	}
	if !slices.Equal(params["model.norm.weight"], rawF32(t, filepath.Join(stories260K, WeightsFile), "model.norm.weight")) {
		t.Error("model.norm.weight not filled with the file's values")
	}
	_, err = d.LoadInto(func(name string, shape []int) ([]float32, error) {
		if name == "model.layers.2.self_attn.v_proj.weight" {
			return make([]float32, 3), nil
		}
		return params[name], nil
	})
	if err == nil || !strings.Contains(err.Error(), "model.layers.2.self_attn.v_proj.weight") {
		t.Errorf("short destination: %v", err)
	}
	_, err = d.LoadInto(func(name string, shape []int) ([]float32, error) {
		if name == "model.embed_tokens.weight" {
			return nil, nil
		}
		return params[name], nil
	})
	if err == nil || !strings.Contains(err.Error(), "model.embed_tokens.weight") {
		t.Errorf("missing destination: %v", err)
	}
}
