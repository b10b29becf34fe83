package nn

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/preftune/preftune/trainer/safetensors"
)

// stories260K is a real pretrained Llama (Hugging Face layout) in the read-only shared folder beside the
// repository; see its README.md.
var stories260K = filepath.Join("..", "..", "..", "shared", "models", "stories260K")

// loadStories reads the checkpoint's tensors as float64 (float32 widened exactly), or skips the test when the
// shared folder is absent.
func loadStories(t *testing.T) map[string]*tensor.Dense {
	t.Helper()
	buf, err := os.ReadFile(filepath.Join(stories260K, "model.safetensors"))
	if err != nil {
		t.Skipf("stories260K not available at %s: %v", stories260K, err)
	}
	ts, _, err := safetensors.Decode(buf)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*tensor.Dense{}
	for _, v := range ts {
		if v.DType != safetensors.F32 {
			t.Fatalf("%s: dtype %v", v.Name, v.DType)
		}
		data := make([]float64, len(v.Data))
		for i, x := range v.Data {
			data[i] = float64(x)
		}
		out[v.Name] = tensor.New(tensor.WithShape(v.Shape...), tensor.WithBacking(data))
	}
	return out
}

// storiesLogits runs LlamaForCausalLM's forward (config.json of stories260K: 5 layers, hidden 64, 8 heads,
// 4 KV heads of head_dim 8, rms_norm_eps 1e-5, rope_theta 10000, tied head) built from this package's ops on
// rows of ids padded at the end, in the weights' dtype, and returns the logits [B·T, 512] and, through
// HeadLogProbs, the sum of the log-probabilities of each row's next ids.
func storiesLogits(t *testing.T, w map[string]*tensor.Dense, dt tensor.Dtype, rows [][]int, length int) ([]float64, []float64) {
	t.Helper()
	const layers, heads, kvHeads, eps = 5, 8, 4, 1e-5
	rot := Rotary{HeadDim: 8, Theta: 10000}
	b := len(rows)
	tk := NewTokens(b, length)
	for r, ids := range rows {
		copy(tk.Inputs[r*length:], ids)
		for i := 0; i+1 < len(ids); i++ {
			tk.Targets[r*length+i], tk.Mask[r*length+i] = ids[i+1], 1
		}
	}
	g := G.NewGraph()
	node := func(name string) *G.Node {
		v, ok := w[name]
		if !ok {
			t.Fatalf("no tensor %s", name)
		}
		if dt == tensor.Float32 {
			v = toF32(v)
		}
		return G.NodeFromAny(g, v, G.WithName(name))
	}
	must := func(n *G.Node, err error) *G.Node {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	wte := node("model.embed_tokens.weight")
	h := must(TokenEmbed(wte, tk))
	for l := 0; l < layers; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		x := must(RMSNorm(h, node(p+"input_layernorm.weight"), eps))
		q := must(LinearT(x, node(p+"self_attn.q_proj.weight"), nil))
		k := must(LinearT(x, node(p+"self_attn.k_proj.weight"), nil))
		v := must(LinearT(x, node(p+"self_attn.v_proj.weight"), nil))
		q = must(RoPE(q, b, length, heads, rot))
		k = must(RoPE(k, b, length, kvHeads, rot))
		a := must(GQAttention(q, k, v, b, length, heads, kvHeads))
		h = must(Add(h, must(LinearT(a, node(p+"self_attn.o_proj.weight"), nil))))
		x = must(RMSNorm(h, node(p+"post_attention_layernorm.weight"), eps))
		m := must(SwiGLU(must(LinearT(x, node(p+"mlp.gate_proj.weight"), nil)), must(LinearT(x, node(p+"mlp.up_proj.weight"), nil))))
		h = must(Add(h, must(LinearT(m, node(p+"mlp.down_proj.weight"), nil))))
	}
	h = must(RMSNorm(h, node("model.norm.weight"), eps))
	logits := must(MatMul(h, wte, false, true))
	lp := must(HeadLogProbs(h, wte, tk))
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	runOnce(t, vm)
	lps := make([]float64, b)
	for i, v := range values(lp) {
		lps[i/length] += v
	}
	return values(logits), lps
}

func values(n *G.Node) []float64 {
	switch d := n.Value().Data().(type) {
	case []float32:
		out := make([]float64, len(d))
		for i, v := range d {
			out[i] = float64(v)
		}
		return out
	default:
		return append([]float64(nil), d.([]float64)...)
	}
}

type golden struct {
	InputIDs   []int   `json:"input_ids"`
	LogProbSum float64 `json:"prompt_logprob_sum"`
	Positions  []struct {
		Top5 []struct {
			ID    int     `json:"id"`
			Logit float64 `json:"logit"`
		} `json:"top5"`
		LogSumExp   float64  `json:"logsumexp"`
		NextLogprob *float64 `json:"next_logprob"`
	} `json:"positions"`
	Greedy struct {
		IDs []int `json:"ids"`
	} `json:"greedy_from_bos"`
}

// loadGolden reads golden_logits.json (after loadStories has checked that the folder is there).
func loadGolden(t *testing.T) golden {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(stories260K, "golden_logits.json"))
	if err != nil {
		t.Fatal(err)
	}
	var gd golden
	if err := json.Unmarshal(raw, &gd); err != nil {
		t.Fatal(err)
	}
	return gd
}

// TestStories260KGoldenLogits runs the real pretrained Llama through RMSNorm, LinearT, RoPE, GQAttention,
// SwiGLU, TokenEmbed and HeadLogProbs and compares with the folder's golden logits and prompt log-prob (an
// independent float64 forward that follows transformers' LlamaForCausalLM): within 1e-9 in float64 and 1e-4
// in float32. A second row, shorter and padded at the end, must give the same logits on its real positions.
func TestStories260KGoldenLogits(t *testing.T) {
	w := loadStories(t)
	gd := loadGolden(t)
	const vocab = 512
	n := len(gd.InputIDs)
	rows := [][]int{gd.InputIDs, gd.InputIDs[:3]} // the second row is padded with id 0 after 3 tokens
	for _, c := range []struct {
		dt  tensor.Dtype
		tol float64
	}{{tensor.Float64, 1e-9}, {tensor.Float32, 1e-4}} {
		logits, lps := storiesLogits(t, w, c.dt, rows, n)
		if math.Abs(lps[0]-gd.LogProbSum) > c.tol {
			t.Errorf("%v: HeadLogProbs' prompt log-prob sum %.10g, want %.10g", c.dt, lps[0], gd.LogProbSum)
		}
		worst := 0.0
		for pos, want := range gd.Positions {
			row := logits[pos*vocab : (pos+1)*vocab]
			mx := math.Inf(-1)
			for _, v := range row {
				mx = max(mx, v)
			}
			var z float64
			for _, v := range row {
				z += math.Exp(v - mx)
			}
			lse := mx + math.Log(z)
			worst = max(worst, math.Abs(lse-want.LogSumExp))
			if math.Abs(lse-want.LogSumExp) > c.tol {
				t.Errorf("%v position %d: logsumexp %.10g, want %.10g", c.dt, pos, lse, want.LogSumExp)
			}
			for _, top := range want.Top5 {
				worst = max(worst, math.Abs(row[top.ID]-top.Logit))
				if math.Abs(row[top.ID]-top.Logit) > c.tol {
					t.Errorf("%v position %d id %d: logit %.10g, want %.10g", c.dt, pos, top.ID, row[top.ID], top.Logit)
				}
			}
			if pos < 3 {
				for j, v := range logits[(n+pos)*vocab : (n+pos+1)*vocab] {
					// BLAS may round rows at different offsets differently, hence a tolerance.
					if math.Abs(v-row[j]) > c.tol/100 {
						t.Fatalf("%v: padded row, position %d id %d: logit %v, unpadded row %v", c.dt, pos, j, v, row[j])
					}
				}
			}
		}
		t.Logf("%v: worst difference from the golden logits %.3g", c.dt, worst)
	}
}

// TestStories260KTeacherForcedGreedy feeds BOS and llama2.c's 200 greedy ids in one forward and checks that
// the argmax at every position is the next id, which is greedy decoding's sequence. In float32 a near-tie
// (top two within 1e-4 in float64) may flip; it is reported, not failed.
func TestStories260KTeacherForcedGreedy(t *testing.T) {
	w := loadStories(t)
	gd := loadGolden(t)
	const vocab = 512
	ids := append([]int{1}, gd.Greedy.IDs...)
	if len(ids) != 201 {
		t.Fatalf("%d greedy ids, want 200", len(gd.Greedy.IDs))
	}
	// argmax returns the best id and its margin over the second best.
	argmax := func(row []float64) (best int, gap float64) {
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		second := math.Inf(-1)
		for j, v := range row {
			if j != best {
				second = max(second, v)
			}
		}
		return best, row[best] - second
	}
	l64, _ := storiesLogits(t, w, tensor.Float64, [][]int{ids[:200]}, 200)
	l32, _ := storiesLogits(t, w, tensor.Float32, [][]int{ids[:200]}, 200)
	flips := 0
	for pos := 0; pos < 200; pos++ {
		best, gap := argmax(l64[pos*vocab : (pos+1)*vocab])
		if best != ids[pos+1] {
			t.Fatalf("float64 position %d: argmax %d, llama2.c's greedy id %d", pos, best, ids[pos+1])
		}
		best32, _ := argmax(l32[pos*vocab : (pos+1)*vocab])
		if best32 != best {
			if gap > 1e-4 {
				t.Errorf("float32 position %d: argmax %d, want %d (float64 margin %.3g)", pos, best32, best, gap)
			}
			flips++
			t.Logf("float32 position %d: near-tie flipped (float64 margin %.3g)", pos, gap)
		}
	}
	t.Logf("200 positions: float64 argmax matches all, float32 flips %d near-ties", flips)
}
