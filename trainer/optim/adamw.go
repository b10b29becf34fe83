package optim

import (
	"fmt"
	"math"
)

// Param is one trainable tensor: its values and the gradient the model accumulated for them (same length).
// The slices are used in place: Step writes Data and zeroes Grad.
type Param struct {
	Name  string
	Shape []int
	Data  []float32
	Grad  []float32
}

// AdamWConfig holds AdamW's hyperparameters; the learning rate comes per step from the schedule.
type AdamWConfig struct {
	Beta1, Beta2, Eps float64
	// WeightDecay is decoupled (AdamW): p ← p·(1 − lr·wd) before the Adam step, on decayed parameters only.
	WeightDecay float64
}

// DefaultAdamW is PyTorch's and TRL's default: β = (0.9, 0.999), ε = 1e-8, no weight decay.
func DefaultAdamW() AdamWConfig { return AdamWConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8} }

// Validate reports the first unusable field.
func (c AdamWConfig) Validate() error {
	bad := func(x float64) bool { return math.IsNaN(x) || math.IsInf(x, 0) }
	switch {
	case bad(c.Beta1) || c.Beta1 < 0 || c.Beta1 >= 1:
		return fmt.Errorf("adamw: beta1 must be in [0, 1), got %v", c.Beta1)
	case bad(c.Beta2) || c.Beta2 < 0 || c.Beta2 >= 1:
		return fmt.Errorf("adamw: beta2 must be in [0, 1), got %v", c.Beta2)
	case bad(c.Eps) || c.Eps <= 0:
		return fmt.Errorf("adamw: eps must be > 0, got %v", c.Eps)
	case bad(c.WeightDecay) || c.WeightDecay < 0:
		return fmt.Errorf("adamw: weightDecay must be >= 0, got %v", c.WeightDecay)
	}
	return nil
}

// DecayPredicate says whether weight decay applies to a parameter.
type DecayPredicate func(name string, shape []int) bool

// DecayMatrices decays parameters of two or more dimensions (linear weights, embeddings) and spares biases and
// LayerNorm gains and shifts, which are 1-D: the usual GPT-2 / Hugging Face split.
func DecayMatrices(_ string, shape []int) bool { return len(shape) >= 2 }

// AdamW is the optimiser. Its moments are float32 like the weights (they are saved as F32 in checkpoints);
// each element's arithmetic is done in float64 and rounded once.
type AdamW struct {
	cfg    AdamWConfig
	params []Param
	decay  []bool
	m, v   [][]float32
	step   int
}

// NewAdamW makes an optimiser over params; decay nil means DecayMatrices. Names must be unique and non-empty,
// and each Data and Grad must have the length its Shape gives.
func NewAdamW(cfg AdamWConfig, params []Param, decay DecayPredicate) (*AdamW, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if decay == nil {
		decay = DecayMatrices
	}
	o := &AdamW{cfg: cfg, params: params, decay: make([]bool, len(params)),
		m: make([][]float32, len(params)), v: make([][]float32, len(params))}
	seen := make(map[string]bool, len(params))
	for i, p := range params {
		if p.Name == "" {
			return nil, fmt.Errorf("adamw: parameter %d has no name", i)
		}
		if seen[p.Name] {
			return nil, fmt.Errorf("adamw: parameter %q appears twice", p.Name)
		}
		seen[p.Name] = true
		n := 1
		for _, d := range p.Shape {
			if d <= 0 {
				return nil, fmt.Errorf("adamw: parameter %q has shape %v with a non-positive dimension", p.Name, p.Shape)
			}
			n *= d
		}
		if len(p.Data) != n || len(p.Grad) != n {
			return nil, fmt.Errorf("adamw: parameter %q of shape %v (%d elements) has %d values and %d gradients",
				p.Name, p.Shape, n, len(p.Data), len(p.Grad))
		}
		o.decay[i] = decay(p.Name, p.Shape)
		o.m[i] = make([]float32, n)
		o.v[i] = make([]float32, n)
	}
	return o, nil
}

// Params returns the parameters the optimiser updates (the same slices, not copies).
func (o *AdamW) Params() []Param { return o.params }

// Steps is the number of updates done so far (PyTorch's state "step").
func (o *AdamW) Steps() int { return o.step }

// Decayed reports whether weight decay applies to parameter i.
func (o *AdamW) Decayed(i int) bool { return o.decay[i] }

// Step applies one AdamW update with learning rate lr to every parameter, then zeroes the gradients (the model's
// graphs accumulate into them, which is also how gradient accumulation works). The update is PyTorch's AdamW:
//
//	p ← p·(1 − lr·wd);  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
//	p ← p − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε)
func (o *AdamW) Step(lr float64) {
	o.step++
	t := float64(o.step)
	b1, b2, eps := o.cfg.Beta1, o.cfg.Beta2, o.cfg.Eps
	stepSize := lr / (1 - math.Pow(b1, t))
	sqrtBC2 := math.Sqrt(1 - math.Pow(b2, t))
	for i, p := range o.params {
		shrink := 1.0
		if o.decay[i] {
			shrink = 1 - lr*o.cfg.WeightDecay
		}
		data := p.Data
		// Reslicing to len(data) lets the compiler drop the bounds checks in the loop.
		m, v, grad := o.m[i][:len(data)], o.v[i][:len(data)], p.Grad[:len(data)]
		for j := range data {
			g := float64(grad[j])
			mj := b1*float64(m[j]) + (1-b1)*g
			vj := b2*float64(v[j]) + (1-b2)*g*g
			m[j], v[j] = float32(mj), float32(vj)
			data[j] = float32(float64(data[j])*shrink - stepSize*mj/(math.Sqrt(vj)/sqrtBC2+eps))
			grad[j] = 0
		}
	}
}

// ZeroGrad clears every gradient without updating (e.g. after a skipped step with a non-finite gradient norm).
func (o *AdamW) ZeroGrad() {
	for _, p := range o.params {
		clear(p.Grad)
	}
}

// ScaleGrad multiplies every gradient by s, e.g. 1/k after accumulating k micro-batches of mean losses.
func (o *AdamW) ScaleGrad(s float32) {
	for _, p := range o.params {
		for j := range p.Grad {
			p.Grad[j] *= s
		}
	}
}

// ClipGradNorm clips all gradients together to global L2 norm maxNorm and returns the norm before clipping.
// See ClipGlobalNorm.
func (o *AdamW) ClipGradNorm(maxNorm float64) float64 {
	grads := make([][]float32, len(o.params))
	for i, p := range o.params {
		grads[i] = p.Grad
	}
	return ClipGlobalNorm(grads, maxNorm)
}
