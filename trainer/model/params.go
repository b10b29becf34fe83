package model

import (
	"fmt"
	"math/rand/v2"

	"gorgonia.org/tensor"

	"github.com/preftune/preftune/trainer/hf"
)

// Params are the weights of a model and their gradients, keyed by the checkpoint's (Hugging Face's) names.
type Params struct {
	// Config is normalized (every default filled in).
	Config
	Dtype tensor.Dtype
	// Names lists the weights in Config.Shapes order.
	Names  []string
	Values map[string]*tensor.Dense
	// Grads are allocated on first need (a training step, Float32s or Gradients), so a model that only runs
	// forward (generation, reference log-probs) holds its weights once.
	Grads map[string]*tensor.Dense

	graphs map[graphKey]*graph
	fam    family
	// source is the config.json the weights were loaded from (nil for a model built in code); HFConfig
	// writes it back with its unknown fields.
	source *hf.Config
	// lora is the adapter (AddLoRA), nil without one: the base weights are then frozen.
	lora *adapter
}

// Tensor is one named weight in float32, as checkpoints hold it.
type Tensor struct {
	Name  string
	Shape []int
	Data  []float32
}

func newParams(cfg Config, dt tensor.Dtype) (*Params, error) {
	cfg = cfg.Normalized()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	fam, err := familyOf(cfg.Family)
	if err != nil {
		return nil, err
	}
	if dt != tensor.Float32 && dt != tensor.Float64 {
		return nil, fmt.Errorf("model: dtype %v, want float32 or float64", dt)
	}
	p := &Params{Config: cfg, Dtype: dt, Values: map[string]*tensor.Dense{},
		graphs: map[graphKey]*graph{}, fam: fam}
	for _, s := range cfg.Shapes() {
		p.Names = append(p.Names, s.Name)
		p.Values[s.Name] = tensor.New(tensor.Of(dt), tensor.WithShape(s.Shape...))
	}
	return p, nil
}

// Init returns the family's initialisation, drawn weight by weight in Names order from one PCG stream: GPT-2's
// (weights N(0, 0.02), c_proj weights N(0, 0.02/√(2·layers)), biases 0, LayerNorm weights 1) or the Llama
// family's (weights N(0, 0.02), biases 0, RMSNorm weights 1). The same seed gives the same weights. It panics
// on an invalid config or dtype (check cfg.Validate first when the config comes from a user).
func Init(cfg Config, dt tensor.Dtype, seed uint64) *Params {
	p, err := newParams(cfg, dt)
	if err != nil {
		panic(err)
	}
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	for _, name := range p.Names {
		std, constant := p.fam.initStd(p.Config, name)
		fill := func() float64 { return rng.NormFloat64() * std }
		if constant {
			fill = func() float64 { return std }
		}
		setAll(p.Values[name], fill)
	}
	return p
}

func setAll(t *tensor.Dense, f func() float64) {
	switch d := t.Data().(type) {
	case []float32:
		for i := range d {
			d[i] = float32(f())
		}
	case []float64:
		for i := range d {
			d[i] = f()
		}
	}
}

// FromTensors builds Params of dtype dt from float32 weights (a loaded checkpoint): every weight of cfg must be
// there with its shape, and nothing else, and every value must be finite (CheckFinite).
func FromTensors(cfg Config, dt tensor.Dtype, ts []Tensor) (*Params, error) {
	p, err := newParams(cfg, dt)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, t := range ts {
		v, ok := p.Values[t.Name]
		if !ok {
			return nil, fmt.Errorf("model: tensor %q is not a weight of this architecture", t.Name)
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("model: tensor %q given twice", t.Name)
		}
		seen[t.Name] = true
		if !v.Shape().Eq(tensor.Shape(t.Shape)) {
			return nil, fmt.Errorf("model: tensor %q has shape %v, want %v", t.Name, t.Shape, v.Shape())
		}
		if len(t.Data) != v.Shape().TotalSize() {
			return nil, fmt.Errorf("model: tensor %q has %d values for shape %v", t.Name, len(t.Data), t.Shape)
		}
		if err := CheckFinite(t.Name, t.Data); err != nil {
			return nil, err
		}
		i := 0
		setAll(v, func() float64 { i++; return float64(t.Data[i-1]) })
	}
	for _, n := range p.Names {
		if !seen[n] {
			return nil, fmt.Errorf("model: tensor %q is missing", n)
		}
	}
	return p, nil
}

// Tensors copies the weights out in float32, in Names order (the base weights only, without an adapter).
func (p *Params) Tensors() []Tensor {
	out := make([]Tensor, 0, len(p.Names))
	for _, n := range p.Names {
		out = append(out, p.tensor(n))
	}
	return out
}

// tensor copies one weight out in float32.
func (p *Params) tensor(n string) Tensor { return denseTensor(n, p.Values[n]) }

// Convert returns a copy of the weights in dtype dt, with zero gradients and no graphs (and no adapter: merge
// one first to keep it).
func (p *Params) Convert(dt tensor.Dtype) *Params {
	q, err := newParams(p.Config, dt)
	if err != nil {
		panic(err)
	}
	q.source = p.source
	for _, n := range p.Names {
		src := p.Values[n]
		i := 0
		setAll(q.Values[n], func() float64 { i++; return at(src, i-1) })
	}
	return q
}

func at(t *tensor.Dense, i int) float64 {
	switch d := t.Data().(type) {
	case []float32:
		return float64(d[i])
	case []float64:
		return d[i]
	}
	panic("model: unsupported dtype")
}

// Float32s returns the raw value and gradient slices of a float32 weight, shared with the graphs: in-place
// updates (the optimiser's) take effect at the next step. It panics on an unknown name or a float64 model.
func (p *Params) Float32s(name string) (values, grads []float32) {
	if p.lora != nil {
		if v, ok := p.lora.values[name]; ok {
			if p.Dtype != tensor.Float32 {
				panic(fmt.Sprintf("model: Float32s on a %v model", p.Dtype))
			}
			return v.Data().([]float32), p.lora.gradients(p.Dtype)[name].Data().([]float32)
		}
	}
	v, ok := p.Values[name]
	if !ok {
		panic(fmt.Sprintf("model: no weight %q", name))
	}
	if p.Dtype != tensor.Float32 {
		panic(fmt.Sprintf("model: Float32s on a %v model", p.Dtype))
	}
	return v.Data().([]float32), p.Gradients()[name].Data().([]float32)
}

// Gradients returns Grads, allocating zero gradients for every weight the first time.
func (p *Params) Gradients() map[string]*tensor.Dense {
	if p.Grads == nil {
		p.Grads = make(map[string]*tensor.Dense, len(p.Names))
		for _, n := range p.Names {
			v := p.Values[n]
			p.Grads[n] = tensor.New(tensor.Of(p.Dtype), tensor.WithShape(v.Shape()...))
		}
	}
	return p.Grads
}

// ZeroGrads sets every gradient to 0 (the adapter's too).
func (p *Params) ZeroGrads() {
	if p.lora != nil {
		for _, g := range p.lora.grads {
			switch d := g.Data().(type) {
			case []float32:
				clear(d)
			case []float64:
				clear(d)
			}
		}
	}
	for _, g := range p.Grads {
		switch d := g.Data().(type) {
		case []float32:
			clear(d)
		case []float64:
			clear(d)
		}
	}
}

// NumParams counts the weights' elements.
func (p *Params) NumParams() int {
	n := 0
	for _, v := range p.Values {
		n += v.Shape().TotalSize()
	}
	return n
}
