// Command benchllama is the trainer's side of `make bench`'s Llama benchmark (hack/bench.sh, part "llama";
// test/crossframework/bench_llama.py drives it next to the PyTorch peer). It is a benchmark tool, not a product
// binary.
//
//	benchllama write DIR    writes a random Llama-family model (the shape from the flags) as a Hugging Face
//	                        directory: config.json and model.safetensors (F32), as the trainer writes models.
//	benchllama estimate DIR trainer/hf's memory estimate (bytes, one JSON line) of --kind, --batch, --context on
//	                        DIR's config.json, without loading the weights (the driver sizes the batch with it).
//	benchllama worker DIR   loads DIR as the trainer does (model.Load, float32), sets up the training step of
//	                        --kind sft|dpo (AdamW as trainer/train builds it, global-norm clip 1) on one random
//	                        batch of --batch rows × --context tokens (the first --prompt positions of each row masked
//	                        out, as a prompt), prints one JSON line ("ready": load time, parameter count,
//	                        trainer/hf's memory estimate for the plan) and then answers commands read from stdin,
//	                        one JSON line each:
//	                          step   one optimiser step (forward, backward, clip, AdamW), timed in wall and CPU seconds
//	                          head   the LM head and its log-softmax alone (nn.HeadLogProbs + the loss, forward and
//	                                 backward, on the step's masked-in rows), timed; run it after the steps, its
//	                                 buffers add to the process's memory
//	                          quit   exits
//
// DPO rows: the first half are the chosen responses, the second half the rejected ones of the same pairs; the
// reference log-probs come from the forward-only graph before the first step, as trainer/train computes them.
// Peak memory is measured by the driver from /proc/PID/status (VmHWM), not here.
//
// LoRA (--lora-rank > 0): issue 12's rows; the adapter on every projection (alpha 2 x rank, as the trainer's
// default), AdamW over the adapter only, and the memory estimate with the adapter's plan.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/preftune/preftune/trainer/hf"
	"github.com/preftune/preftune/trainer/loss"
	"github.com/preftune/preftune/trainer/model"
	"github.com/preftune/preftune/trainer/nn"
	"github.com/preftune/preftune/trainer/optim"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: benchllama write|worker DIR [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "write":
		err = write(os.Args[2], os.Args[3:])
	case "worker":
		err = worker(os.Args[2], os.Args[3:])
	case "estimate":
		err = estimate(os.Args[2], os.Args[3:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchllama %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// write draws the model (trainer/model's Llama initialisation, seed 1) and saves it.
func write(dir string, args []string) error {
	fs := flag.NewFlagSet("write", flag.ContinueOnError)
	c := model.Config{Family: model.Llama, NormEps: 1e-5, RopeTheta: 100000, Tokens: model.TokenIDs{BOS: 1, EOS: []int{2}, PAD: 2}}
	fs.IntVar(&c.Layers, "layers", 30, "num_hidden_layers")
	fs.IntVar(&c.DModel, "hidden", 576, "hidden_size")
	fs.IntVar(&c.Heads, "heads", 9, "num_attention_heads")
	fs.IntVar(&c.KVHeads, "kv-heads", 3, "num_key_value_heads")
	fs.IntVar(&c.Intermediate, "intermediate", 1536, "intermediate_size")
	fs.IntVar(&c.VocabSize, "vocab", 49152, "vocab_size")
	fs.IntVar(&c.ContextLength, "positions", 8192, "max_position_embeddings")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := c.Normalized().Validate(); err != nil {
		return err
	}
	p := model.Init(c, tensor.Float32, 1)
	_, err := p.Save(dir, hf.SaveOptions{})
	return err
}

type workerFlags struct {
	kind                   string
	batch, context, prompt int
	loraRank               int
	cpuProfile, memProfile string
}

func parseWorkerFlags(name string, args []string) (workerFlags, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	var f workerFlags
	fs.StringVar(&f.kind, "kind", "sft", "sft or dpo")
	fs.IntVar(&f.batch, "batch", 8, "rows per step (DPO: half chosen, half rejected)")
	fs.IntVar(&f.context, "context", 256, "tokens per row")
	fs.IntVar(&f.prompt, "prompt", 32, "masked-out positions at the start of each row")
	fs.IntVar(&f.loraRank, "lora-rank", 0, "LoRA rank (0: full fine-tuning)")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the steps after the first here (pprof)")
	fs.StringVar(&f.memProfile, "memprofile", "", "write a heap profile here after the steps (pprof)")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	switch {
	case f.kind != "sft" && f.kind != "dpo":
		return f, fmt.Errorf("--kind %q is not sft or dpo", f.kind)
	case f.batch < 1 || f.kind == "dpo" && f.batch%2 != 0:
		return f, fmt.Errorf("--batch %d: want >= 1, and even for DPO (chosen and rejected rows)", f.batch)
	case f.prompt < 0 || f.prompt >= f.context:
		return f, fmt.Errorf("--prompt %d must be in [0, --context %d)", f.prompt, f.context)
	}
	return f, nil
}

// plan is the trainer's memory plan of the step: DPO's rows are batch/2 pairs of 2 sequences.
func (f workerFlags) plan() hf.MemoryPlan {
	p := hf.MemoryPlan{BatchSize: f.batch, SequencesPerExample: 1, ContextLength: f.context}
	if f.kind == "dpo" {
		p.BatchSize, p.SequencesPerExample = f.batch/2, 2
	}
	if f.loraRank > 0 {
		p.LoRA = &hf.LoRAPlan{Rank: f.loraRank}
	}
	return p
}

func estimate(dir string, args []string) error {
	f, err := parseWorkerFlags("estimate", args)
	if err != nil {
		return err
	}
	md, err := hf.OpenModel(dir)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{"estimate_bytes": hf.EstimateMemory(md.Config, f.plan()).Total})
}

func worker(dir string, args []string) error {
	f, err := parseWorkerFlags("worker", args)
	if err != nil {
		return err
	}
	out := json.NewEncoder(os.Stdout)

	t0, cpu0 := time.Now(), cpuSeconds()
	p, _, err := model.Load(dir, tensor.Float32, f.context)
	if err != nil {
		return err
	}
	loadS, loadCPU := time.Since(t0).Seconds(), cpuSeconds()-cpu0
	md, err := hf.OpenModel(dir)
	if err != nil {
		return err
	}
	est := hf.EstimateMemory(md.Config, f.plan())

	if f.loraRank > 0 {
		// As trainer/train's setupAdapter: PEFT's initialisation on every projection, alpha 2 x rank, no dropout.
		if err := p.AddLoRA(model.LoRA{Rank: f.loraRank, Alpha: float64(2 * f.loraRank)}, 1); err != nil {
			return err
		}
	}
	// The optimiser as trainer/train's setup builds it: over the trainable tensors (the adapter's with LoRA).
	var params []optim.Param
	for _, name := range p.TrainableNames() {
		v, g := p.Float32s(name)
		params = append(params, optim.Param{Name: name, Shape: p.ShapeOf(name), Data: v, Grad: g})
	}
	opt, err := optim.NewAdamW(optim.DefaultAdamW(), params, nil)
	if err != nil {
		return err
	}
	p.ZeroGrads()
	batch := randomBatch(f, p.VocabSize)
	var ref []float64
	if f.kind == "dpo" {
		if ref, _, err = p.LogProbs(batch); err != nil {
			return err
		}
	}
	if err := out.Encode(map[string]any{"ready": true, "framework": "preftune", "blas": nn.BLASName,
		"gomaxprocs": runtime.GOMAXPROCS(0), "parameters": p.NumParams(), "trainable": p.NumTrainable(), "load_s": loadS, "load_cpu_s": loadCPU,
		"estimate_bytes": est.Total, "estimate": est}); err != nil {
		return err
	}

	in := bufio.NewScanner(os.Stdin)
	steps, profiling := 0, false
	stopProfiles := func() error {
		if profiling {
			pprof.StopCPUProfile()
			profiling = false
		}
		if path := f.memProfile; path != "" {
			f.memProfile = "" // once, before the head's buffers
			w, err := os.Create(path)
			if err != nil {
				return err
			}
			defer w.Close()
			runtime.GC() // the profile shows the heap as of the last collection
			return pprof.Lookup("heap").WriteTo(w, 0)
		}
		return nil
	}
	for in.Scan() {
		var reply map[string]any
		switch cmd := in.Text(); cmd {
		case "step":
			if steps++; steps == 2 && f.cpuProfile != "" {
				w, err := os.Create(f.cpuProfile)
				if err != nil {
					return err
				}
				defer w.Close()
				if err := pprof.StartCPUProfile(w); err != nil {
					return err
				}
				profiling = true
			}
			t0, c0 := time.Now(), cpuSeconds()
			var l float64
			if f.kind == "dpo" {
				o, err := p.DPOStep(batch, ref, loss.DPOConfig{Beta: 0.1}, 0)
				if err != nil {
					return err
				}
				l = o.Loss
			} else if l, _, err = p.SFTStep(batch); err != nil {
				return err
			}
			opt.ClipGradNorm(1)
			opt.Step(1e-5)
			reply = map[string]any{"step_s": time.Since(t0).Seconds(), "cpu_s": cpuSeconds() - c0, "loss": l}
		case "head":
			if err := stopProfiles(); err != nil {
				return err
			}
			s, err := headSeconds(p, batch, 3, f.loraRank > 0)
			if err != nil {
				return err
			}
			reply = map[string]any{"head_s": s}
		case "quit":
			return stopProfiles()
		default:
			return fmt.Errorf("unknown command %q", cmd)
		}
		if err := out.Encode(reply); err != nil {
			return err
		}
	}
	if err := in.Err(); err != nil {
		return err
	}
	return stopProfiles() // stdin closed: as quit
}

// randomBatch draws token ids uniformly (seed 1); positions before --prompt are masked out.
func randomBatch(f workerFlags, vocab int) model.Batch {
	rng := rand.New(rand.NewPCG(1, 2))
	n := f.batch * f.context
	b := model.Batch{B: f.batch, T: f.context, N: f.batch, Inputs: make([]int, n), Targets: make([]int, n), Mask: make([]float32, n)}
	if f.kind == "dpo" {
		b.N = f.batch / 2
	}
	for i := range b.Inputs {
		b.Inputs[i], b.Targets[i] = rng.IntN(vocab), rng.IntN(vocab)
		if i%f.context >= f.prompt {
			b.Mask[i] = 1
		}
	}
	return b
}

// headSeconds times the LM head as a step runs it: nn.HeadLogProbs (head weight: the model's tied embedding or
// lm_head) and the mean NLL over the batch's masked-in rows, forward and backward, on random hidden states; the
// median of n runs after one untimed run. With a frozen head (LoRA) only the hidden states' gradient is
// computed, as the step does.
func headSeconds(p *model.Params, b model.Batch, n int, frozen bool) (float64, error) {
	name := "model.embed_tokens.weight"
	if p.Untied {
		name = "lm_head.weight"
	}
	wv := p.Values[name]
	g := G.NewGraph()
	rng := rand.New(rand.NewPCG(3, 4))
	hv := tensor.New(tensor.WithShape(b.B*b.T, p.DModel), tensor.WithBacking(func() []float32 {
		s := make([]float32, b.B*b.T*p.DModel)
		for i := range s {
			s[i] = float32(rng.NormFloat64())
		}
		return s
	}()))
	h := G.NewTensor(g, tensor.Float32, 2, G.WithShape(hv.Shape()...), G.WithName("h"), G.WithValue(hv))
	w := G.NewTensor(g, tensor.Float32, 2, G.WithShape(wv.Shape()...), G.WithName("w"), G.WithValue(wv))
	tk := nn.NewTokens(b.B, b.T)
	if err := tk.Set(b.B, b.T, b.Inputs, b.Targets, b.Mask, p.VocabSize); err != nil {
		return 0, err
	}
	lp, err := nn.HeadLogProbs(h, w, tk)
	if err != nil {
		return 0, err
	}
	cost, err := nn.NLLMean(lp, tk)
	if err != nil {
		return 0, err
	}
	wrt := G.Nodes{h, w}
	if frozen {
		wrt = wrt[:1]
	}
	grads, err := nn.Grad(cost, wrt...)
	if err != nil {
		return 0, err
	}
	roots := append(G.Nodes{cost}, grads...)
	sub := g.ExactSubgraphRoots(roots...)
	nn.PlanBuffers(sub.AllNodes(), roots...)
	vm := G.NewTapeMachine(sub)
	defer vm.Close()
	times := make([]float64, 0, n)
	for i := -1; i < n; i++ {
		vm.Reset()
		t0 := time.Now()
		if err := vm.RunAll(); err != nil {
			return 0, err
		}
		if i >= 0 {
			times = append(times, time.Since(t0).Seconds())
		}
	}
	return median(times), nil
}

func median(x []float64) float64 {
	s := append([]float64(nil), x...)
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s[len(s)/2]
}

// cpuSeconds is the user + system CPU time this process has used.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
