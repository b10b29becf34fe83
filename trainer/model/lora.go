package model

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/preftune/preftune/trainer/nn"
)

// LoRA is a low-rank adapter's configuration (Hu et al. 2021, arXiv:2106.09685; PEFT's LoraConfig): each target
// linear layer W gets A [Rank, in] and B [out, Rank] and computes W·x + (Alpha/Rank)·B·A·dropout(x). Targets are
// module names as Hugging Face calls them (TargetModules lists each family's); empty means all of them.
type LoRA struct {
	Rank    int
	Alpha   float64
	Dropout float64
	Targets []string
}

// Scaling is Alpha/Rank, PEFT's scaling.
func (l LoRA) Scaling() float64 { return l.Alpha / float64(l.Rank) }

// TargetModules are the linear layers an adapter can target in each family, by their Hugging Face module names:
// the attention and MLP projections.
func TargetModules(f Family) []string {
	if f == Llama {
		return []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
	}
	return []string{"c_attn", "c_proj", "c_fc"}
}

// TargetError is an adapter naming a module the architecture does not have (or another unusable setting); the
// trainer refuses it before training.
type TargetError struct{ Msg string }

func (e *TargetError) Error() string { return e.Msg }

// LoRA suffixes of the adapter's tensor names: module + LoRASuffixA is lora_A.weight, as PEFT names them (its
// files prefix every name with PEFTPrefix).
const (
	LoRASuffixA = ".lora_A.weight"
	LoRASuffixB = ".lora_B.weight"
	// PEFTPrefix starts every tensor name of adapter_model.safetensors (PeftModel's base_model.model.).
	PEFTPrefix = "base_model.model."
)

// adapter is the LoRA state of Params.
type adapter struct {
	cfg LoRA
	// modules are the targeted modules' full names (e.g. model.layers.0.self_attn.q_proj), in Names order.
	modules []string
	// names are the adapter's tensors: for each module, its lora_A then its lora_B.
	names  []string
	values map[string]*tensor.Dense
	grads  map[string]*tensor.Dense
	// in and out are each module's features (Conv1D weights [in, out], Linear weights [out, in]).
	in, out map[string]int
	// seed is the dropout randomness of the training graphs (SetDropoutSeed).
	seed nn.DropoutSeed
	// stream numbers each module's dropout.
	stream map[string]uint64
}

// targetModules resolves the configured names to the model's module paths and checks them.
func (p *Params) targetModules(cfg LoRA) ([]string, error) {
	known := TargetModules(p.Family)
	targets := cfg.Targets
	if len(targets) == 0 {
		targets = known
	}
	for _, t := range targets {
		if !slices.Contains(known, t) {
			return nil, &TargetError{fmt.Sprintf("adapter.targetModules: %q is not a linear layer of the %s architecture "+
				"(known: %s)", t, p.Family, strings.Join(known, ", "))}
		}
	}
	var mods []string
	for _, n := range p.Names {
		mod, ok := strings.CutSuffix(n, ".weight")
		if !ok || p.Values[n].Dims() != 2 {
			continue
		}
		leaf := mod[strings.LastIndex(mod, ".")+1:]
		if slices.Contains(targets, leaf) {
			mods = append(mods, mod)
		}
	}
	return mods, nil
}

// AddLoRA puts a fresh adapter on the model: for every target, A drawn as PEFT initialises it
// (torch.nn.init.kaiming_uniform_ with a = √5: uniform in ±1/√in) from a PCG stream of seed, in module order,
// and B = 0, so the model computes exactly what it did before. From then on the base weights are frozen: the
// training steps compute gradients for the adapter only (TrainableNames), and Params.Grads is never allocated.
// Errors: a *TargetError for an unknown target module; a rank below 1, a non-positive alpha or a dropout outside
// [0, 1) are errors too.
func (p *Params) AddLoRA(cfg LoRA, seed uint64) error {
	switch {
	case p.lora != nil:
		return fmt.Errorf("model: the model already has an adapter (merge it first)")
	case cfg.Rank < 1:
		return &TargetError{fmt.Sprintf("adapter.rank is %d, want >= 1", cfg.Rank)}
	case !(cfg.Alpha > 0) || math.IsInf(cfg.Alpha, 0):
		return &TargetError{fmt.Sprintf("adapter.alpha is %v, want > 0", cfg.Alpha)}
	case !(cfg.Dropout >= 0 && cfg.Dropout < 1):
		return &TargetError{fmt.Sprintf("adapter.dropout is %v, want 0 <= dropout < 1", cfg.Dropout)}
	}
	mods, err := p.targetModules(cfg)
	if err != nil {
		return err
	}
	a := &adapter{cfg: cfg, modules: mods, values: map[string]*tensor.Dense{}, in: map[string]int{},
		out: map[string]int{}, stream: map[string]uint64{}}
	rng := rand.New(rand.NewPCG(seed, 0x4c6f5241))
	for i, m := range mods {
		sh := p.Values[m+".weight"].Shape()
		in, out := sh[1], sh[0]
		if p.Family == GPT2 {
			in, out = sh[0], sh[1] // Conv1D: [in, out]
		}
		a.in[m], a.out[m], a.stream[m] = in, out, uint64(i)
		av := tensor.New(tensor.Of(p.Dtype), tensor.WithShape(cfg.Rank, in))
		bound := 1 / math.Sqrt(float64(in))
		setAll(av, func() float64 { return (2*rng.Float64() - 1) * bound })
		a.values[m+LoRASuffixA] = av
		a.values[m+LoRASuffixB] = tensor.New(tensor.Of(p.Dtype), tensor.WithShape(out, cfg.Rank))
		a.names = append(a.names, m+LoRASuffixA, m+LoRASuffixB)
	}
	p.ReleaseGraphs()
	p.Grads = nil
	p.lora = a
	return nil
}

// LoRAConfig returns the adapter's configuration and whether the model has one.
func (p *Params) LoRAConfig() (LoRA, bool) {
	if p.lora == nil {
		return LoRA{}, false
	}
	return p.lora.cfg, true
}

// LoRAModules lists the targeted modules' full names (e.g. model.layers.0.self_attn.q_proj) in order.
func (p *Params) LoRAModules() []string {
	if p.lora == nil {
		return nil
	}
	return slices.Clone(p.lora.modules)
}

// TrainableNames are the tensors the training steps compute gradients for: the adapter's (each module's lora_A
// then lora_B) when the model has one, else every weight (Names).
func (p *Params) TrainableNames() []string {
	if p.lora != nil {
		return slices.Clone(p.lora.names)
	}
	return slices.Clone(p.Names)
}

// NumTrainable counts the trainable tensors' elements.
func (p *Params) NumTrainable() int {
	if p.lora == nil {
		return p.NumParams()
	}
	n := 0
	for _, v := range p.lora.values {
		n += v.Shape().TotalSize()
	}
	return n
}

// AdapterTensors copies the adapter out in float32 under its names (module + LoRASuffixA/B), in
// TrainableNames order; nil without an adapter.
func (p *Params) AdapterTensors() []Tensor {
	if p.lora == nil {
		return nil
	}
	out := make([]Tensor, 0, len(p.lora.names))
	for _, n := range p.lora.names {
		out = append(out, denseTensor(n, p.lora.values[n]))
	}
	return out
}

// SetAdapterTensors replaces the adapter's values with ts (every adapter tensor, by name, with its shape;
// finite).
func (p *Params) SetAdapterTensors(ts []Tensor) error {
	if p.lora == nil {
		return fmt.Errorf("model: no adapter to load tensors into")
	}
	seen := map[string]bool{}
	for _, t := range ts {
		v, ok := p.lora.values[t.Name]
		if !ok {
			module := strings.TrimSuffix(strings.TrimSuffix(t.Name, LoRASuffixA), LoRASuffixB)
			if _, has := p.Values[module+".weight"]; !has && module != t.Name {
				return fmt.Errorf("model: adapter tensor %q is for module %s, which this model does not have (%d layers): "+
					"the adapter was trained on another base", t.Name, module, p.Layers)
			}
			return fmt.Errorf("model: adapter tensor %q is not one of this adapter's (targets %s)", t.Name,
				strings.Join(p.lora.moduleLeaves(), ", "))
		}
		if !v.Shape().Eq(tensor.Shape(t.Shape)) || len(t.Data) != v.Shape().TotalSize() {
			return fmt.Errorf("model: adapter tensor %q has shape %v, want %v", t.Name, t.Shape, v.Shape())
		}
		if err := CheckFinite(t.Name, t.Data); err != nil {
			return err
		}
		seen[t.Name] = true
	}
	for _, n := range p.lora.names {
		if !seen[n] {
			return fmt.Errorf("model: adapter tensor %q is missing (an adapter for another base, with fewer layers or "+
				"other target modules, or a damaged file)", n)
		}
	}
	for _, t := range ts {
		i := 0
		setAll(p.lora.values[t.Name], func() float64 { i++; return float64(t.Data[i-1]) })
	}
	return nil
}

func (a *adapter) moduleLeaves() []string {
	var out []string
	for _, m := range a.modules {
		leaf := m[strings.LastIndex(m, ".")+1:]
		if !slices.Contains(out, leaf) {
			out = append(out, leaf)
		}
	}
	return out
}

// SetDropoutSeed sets the seed of the adapter's dropout masks for the next training steps (each module draws
// from PCG(seed, its index)); the trainer derives it from the run's seed, the step and the micro-batch, so a
// resumed run draws the same masks. No-op without an adapter.
func (p *Params) SetDropoutSeed(seed uint64) {
	if p.lora != nil {
		p.lora.seed.Seed = seed
	}
}

// MergeLoRA adds each target's update into its base weight, W ← W + (Alpha/Rank)·B·A (transposed for GPT-2's
// Conv1D [in, out] weights, as PEFT's fan_in_fan_out merge does), each element computed in float64 and rounded
// once, and removes the adapter: the model is then a plain model again (full fine-tuning if trained further).
func (p *Params) MergeLoRA() {
	a := p.lora
	if a == nil {
		return
	}
	s := a.cfg.Scaling()
	r := a.cfg.Rank
	for _, m := range a.modules {
		w := p.Values[m+".weight"]
		av, bv := floats64(a.values[m+LoRASuffixA]), floats64(a.values[m+LoRASuffixB])
		in, out := a.in[m], a.out[m]
		row := make([]float64, in)
		for o := 0; o < out; o++ {
			clear(row)
			for k := 0; k < r; k++ {
				c := s * bv[o*r+k]
				for i, x := range av[k*in : (k+1)*in] {
					row[i] += c * x
				}
			}
			// Row o of B·A is row o of W [out, in], or column o of a Conv1D W [in, out].
			for i, d := range row {
				idx := o*in + i
				if p.Family == GPT2 {
					idx = i*out + o
				}
				setAt(w, idx, at(w, idx)+d)
			}
		}
	}
	p.ReleaseGraphs()
	p.lora = nil
}

// floats64 copies a tensor's values as float64.
func floats64(t *tensor.Dense) []float64 {
	out := make([]float64, t.Shape().TotalSize())
	for i := range out {
		out[i] = at(t, i)
	}
	return out
}

func setAt(t *tensor.Dense, i int, v float64) {
	switch d := t.Data().(type) {
	case []float32:
		d[i] = float32(v)
	case []float64:
		d[i] = v
	}
}

// denseTensor copies a tensor out in float32.
func denseTensor(n string, v *tensor.Dense) Tensor {
	t := Tensor{Name: n, Shape: append([]int(nil), v.Shape()...), Data: make([]float32, v.Shape().TotalSize())}
	switch d := v.Data().(type) {
	case []float32:
		copy(t.Data, d)
	case []float64:
		for i, x := range d {
			t.Data[i] = float32(x)
		}
	}
	return t
}

// adapterGrads returns the adapter's gradients, allocating zeros the first time.
func (a *adapter) gradients(dt tensor.Dtype) map[string]*tensor.Dense {
	if a.grads == nil {
		a.grads = make(map[string]*tensor.Dense, len(a.names))
		for _, n := range a.names {
			a.grads[n] = tensor.New(tensor.Of(dt), tensor.WithShape(a.values[n].Shape()...))
		}
	}
	return a.grads
}

// graph puts the adapter's tensors on g and returns them (in names order, the nodes to differentiate) and the
// linear layer builder: nn.LoRALinear on the targets, base elsewhere; training graphs apply the adapter's dropout.
func (a *adapter) graph(g *G.ExprGraph, dt tensor.Dtype, training, conv bool, base linearFn) (G.Nodes, linearFn) {
	nodes := map[string]*G.Node{}
	var wrt G.Nodes
	for _, n := range a.names {
		v := a.values[n]
		node := G.NewTensor(g, dt, v.Dims(), G.WithShape(v.Shape()...), G.WithName(n), G.WithValue(v))
		nodes[n] = node
		wrt = append(wrt, node)
	}
	var seed *nn.DropoutSeed
	if training && a.cfg.Dropout > 0 {
		seed = &a.seed
	}
	return wrt, func(module string, x, w, b *G.Node) (*G.Node, error) {
		an, ok := nodes[module+LoRASuffixA]
		if !ok {
			return base(module, x, w, b)
		}
		if x == nil || w == nil {
			return nil, nil // a failed op before: its error is the one reported
		}
		return nn.LoRALinear(x, w, b, an, nodes[module+LoRASuffixB], conv, a.cfg.Scaling(), a.cfg.Dropout, seed, a.stream[module])
	}
}

// ShapeOf is the shape of a weight or adapter tensor; it panics on an unknown name.
func (p *Params) ShapeOf(name string) []int {
	if p.lora != nil {
		if v, ok := p.lora.values[name]; ok {
			return append([]int(nil), v.Shape()...)
		}
	}
	v, ok := p.Values[name]
	if !ok {
		panic(fmt.Sprintf("model: no weight %q", name))
	}
	return append([]int(nil), v.Shape()...)
}

// BaseDigest is "sha256:<hex>" over the base weights (names, shapes and float32 values in Names order), for a
// model that has no weights file to name it by (one built in code).
func (p *Params) BaseDigest() string {
	h := sha256.New()
	for _, n := range p.Names {
		t := p.tensor(n)
		fmt.Fprintf(h, "%s%v;", n, t.Shape)
		buf := make([]byte, 4*len(t.Data))
		for i, v := range t.Data {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
		}
		h.Write(buf)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
