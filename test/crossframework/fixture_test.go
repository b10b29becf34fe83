package crossframework

import (
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/data"
	"github.com/preftune/preftune/trainer/hf"
	"github.com/preftune/preftune/trainer/model"
	"github.com/preftune/preftune/trainer/tokenizer"
	"gorgonia.org/tensor"
)

// tinyConfig is small enough for seconds, yet has several layers and heads, and a context longer than the
// batches' bucket (so wpe rows past it must be ignored).
var tinyConfig = model.Config{VocabSize: tokenizer.ByteVocabSize, ContextLength: 64, Layers: 2, DModel: 32, Heads: 4}

// gpt2Cases are the GPT-2 shapes checked against gpt2_ref.py: the demo's (tied head, MLP 4·n_embd) and one with
// an untied lm_head.weight and n_inner apart from 4·n_embd (both allowed by Hugging Face's GPT2Config).
var gpt2Cases = []struct {
	name string
	cfg  model.Config
}{
	{"tied", tinyConfig},
	{"untied-n_inner-48", func() model.Config { c := tinyConfig; c.Untied, c.Intermediate = true, 48; return c }()},
}

// writeTinyModel writes a model directory in Hugging Face's layout (GPT2LMHeadModel, model.Params.Save) and
// returns its path. The weights start from model.Init and are then perturbed, so that biases, LayerNorm gains
// and a peaked output distribution are all exercised (GPT-2's initialisation leaves biases 0 and LayerNorm at 1,
// which would hide their mistakes).
func writeTinyModel(t *testing.T, cfg model.Config) string {
	t.Helper()
	p := model.Init(cfg, tensor.Float32, 11)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, name := range p.Names {
		std := 0.1
		if strings.HasPrefix(name, "transformer.wte") || strings.HasPrefix(name, "transformer.wpe") {
			std = 0.3
		}
		vals, _ := p.Float32s(name)
		for i := range vals {
			vals[i] += float32(rng.NormFloat64() * std)
		}
	}
	dir := filepath.Join(t.TempDir(), "model")
	if _, err := p.Save(dir, hf.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// loadTinyModel reads the directory back (model.Load) into Params of dtype dt: the Go side computes from
// exactly the float32 values the Python side reads.
func loadTinyModel(t *testing.T, dir string, dt tensor.Dtype) *model.Params {
	t.Helper()
	p, _, err := model.Load(dir, dt, 0)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// pairs are preference rows of different lengths: one is cut by truncation to the context, and the DPO batch
// has room for one more pair, so it ends in an all-padding pair (N < B/2).
var pairs = []data.Row{
	{Prompt: "Question: what is 2+2?\nAnswer:", Chosen: " 4", Rejected: " five, I think"},
	{Prompt: "Say hello.", Chosen: " Hello!", Rejected: " no"},
	{Prompt: "Name a colour that is often used for the sky in children's drawings, please:", Chosen: " blue",
		Rejected: " the colour of the grass, which is green and not at all what you asked for"},
}

// dpoBatch is a DPO batch of 4 pair slots holding the 3 pairs (B = 8, N = 3), in a bucket of 32 positions.
func dpoBatch() data.Batch {
	tok := tokenizer.NewByte()
	ex := data.EncodeRows(tok, pairs, 32, true)
	return data.MakeBatch(tok, ex, contract.KindDPO, 4, tinyConfig.ContextLength)
}

// refInputs turns a batch into gpt2_ref.py's rows.
func refInputs(b data.Batch) refBatch {
	var rb refBatch
	for r := 0; r < b.B; r++ {
		in, tg, m := b.Row(r)
		mask := make([]int, b.T)
		for i, v := range m {
			mask[i] = int(v)
		}
		rb.Inputs = append(rb.Inputs, append([]int(nil), in...))
		rb.Targets = append(rb.Targets, append([]int(nil), tg...))
		rb.Mask = append(rb.Mask, mask)
	}
	return rb
}
