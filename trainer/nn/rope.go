package nn

import (
	"fmt"
	"math"
	"sync"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Rotary configures rotary position embeddings (RoPE; Su et al. 2021, "RoFormer", arXiv:2104.09864) as
// Hugging Face's Llama, Mistral and Qwen models apply them.
type Rotary struct {
	// HeadDim is the rotated size of each head (config.json's head_dim, or hidden_size/num_attention_heads
	// when absent); it must be even.
	HeadDim int
	// Theta is config.json's rope_theta, the base of the frequencies (10000 for Llama 2, 500000 for Llama 3).
	Theta float64
	// Scaling is config.json's rope_scaling; nil (or Type "default") for none.
	Scaling *RopeScaling
}

// RopeScaling is config.json's rope_scaling for the two types supported, with Hugging Face's field names.
type RopeScaling struct {
	// Type is rope_type (older configs: type): "default", "linear" or "llama3". Others (dynamic, yarn,
	// longrope, …) are refused.
	Type string
	// Factor divides the frequencies ("linear": all of them; "llama3": the low ones). Must be positive.
	Factor float64
	// LowFreqFactor, HighFreqFactor and OriginalMaxPositionEmbeddings are llama3's low_freq_factor,
	// high_freq_factor and original_max_position_embeddings: wavelengths (in positions) above
	// original/low are divided by Factor, those below original/high are kept, those between are blended.
	LowFreqFactor, HighFreqFactor float64
	OriginalMaxPositionEmbeddings int
}

// Validate checks the configuration, naming the config.json field at fault.
func (r Rotary) Validate() error {
	if r.HeadDim <= 0 || r.HeadDim%2 != 0 {
		return fmt.Errorf("nn.Rotary: head_dim %d must be positive and even", r.HeadDim)
	}
	if !(r.Theta > 0) || math.IsInf(r.Theta, 0) {
		return fmt.Errorf("nn.Rotary: rope_theta %v must be positive and finite", r.Theta)
	}
	s := r.Scaling
	if s == nil {
		return nil
	}
	switch s.Type {
	case "", "default":
		return nil
	case "linear", "llama3":
	default:
		return fmt.Errorf("nn.Rotary: rope_scaling.rope_type %q is not supported (want default, linear or llama3)", s.Type)
	}
	if !(s.Factor > 0) || math.IsInf(s.Factor, 0) {
		return fmt.Errorf("nn.Rotary: rope_scaling.factor %v must be positive and finite", s.Factor)
	}
	if s.Type == "llama3" {
		if !(s.LowFreqFactor > 0) {
			return fmt.Errorf("nn.Rotary: rope_scaling.low_freq_factor %v must be positive", s.LowFreqFactor)
		}
		if !(s.HighFreqFactor > s.LowFreqFactor) || math.IsInf(s.HighFreqFactor, 0) {
			return fmt.Errorf("nn.Rotary: rope_scaling.high_freq_factor %v must be finite and above low_freq_factor %v",
				s.HighFreqFactor, s.LowFreqFactor)
		}
		if s.OriginalMaxPositionEmbeddings <= 0 {
			return fmt.Errorf("nn.Rotary: rope_scaling.original_max_position_embeddings %d must be positive",
				s.OriginalMaxPositionEmbeddings)
		}
	}
	return nil
}

// InvFreq returns the HeadDim/2 inverse frequencies (radians per position) in float64, after scaling: the
// inv_freq of transformers' _compute_default_rope_parameters, then of _compute_linear_scaling_rope_parameters
// or _compute_llama3_parameters. The op computes them in its element type, float32 for training as
// transformers does.
func (r Rotary) InvFreq() ([]float64, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return invFreq[float64](r), nil
}

// invFreq computes the inverse frequencies in T: θ^(−2i/d), then the scaling.
func invFreq[T float](r Rotary) []T {
	half := r.HeadDim / 2
	inv := make([]T, half)
	for i := range inv {
		e := T(2*i) / T(r.HeadDim)
		inv[i] = 1 / T(math.Pow(float64(T(r.Theta)), float64(e)))
	}
	s := r.Scaling
	if s == nil {
		return inv
	}
	factor := T(s.Factor)
	switch s.Type {
	case "linear":
		for i := range inv {
			inv[i] /= factor
		}
	case "llama3":
		old := T(s.OriginalMaxPositionEmbeddings)
		low, high := T(s.LowFreqFactor), T(s.HighFreqFactor)
		lowWavelen, highWavelen := old/low, old/high
		for i, f := range inv {
			wavelen := T(2*math.Pi) / f
			switch {
			case wavelen < highWavelen: // high frequencies: kept
			case wavelen > lowWavelen: // low frequencies: interpolated by the factor
				inv[i] = f / factor
			default: // in between: a smooth blend of the two
				smooth := (old/wavelen - low) / (high - low)
				inv[i] = (1-smooth)*f/factor + smooth*f
			}
		}
	}
	return inv
}

// rotaryTable holds cos and sin of position·inv_freq for positions 0..T−1, [T, HeadDim/2] each.
type rotaryTable[T float] struct{ cos, sin []T }

func newRotaryTable[T float](r Rotary, length int) rotaryTable[T] {
	inv := invFreq[T](r)
	half := len(inv)
	tb := rotaryTable[T]{cos: make([]T, length*half), sin: make([]T, length*half)}
	for p := 0; p < length; p++ {
		for i, f := range inv {
			a := T(p) * f // in T, as transformers computes position·inv_freq in float32
			tb.cos[p*half+i] = T(math.Cos(float64(a)))
			tb.sin[p*half+i] = T(math.Sin(float64(a)))
		}
	}
	return tb
}

// RoPE rotates the heads of x [B·T, heads·HeadDim] (rows in batch-major order, head h in columns
// h·HeadDim … (h+1)·HeadDim) by their position, in Hugging Face's rotate_half convention (the two halves of
// a head, not interleaved pairs, form the rotated pairs): for i < d/2, with a = p·inv_freq[i],
//
//	y[i]     = x[i]·cos a − x[i+d/2]·sin a
//	y[i+d/2] = x[i+d/2]·cos a + x[i]·sin a
//
// Position ids start at 0 on every row (p = row position), as for right-padded batches without a
// position_ids input. Apply it to q (heads = num_attention_heads) and k (num_key_value_heads) after their
// projections (and Qwen3's q/k norm). Its gradient is the inverse rotation. Errors: an invalid Rotary (naming
// the config field) or x not of that shape.
func RoPE(x *G.Node, batch, length, heads int, r Rotary) (*G.Node, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if batch <= 0 || length <= 0 || heads <= 0 {
		return nil, fmt.Errorf("nn.RoPE: batch %d, length %d and heads %d must be positive", batch, length, heads)
	}
	t := rotaryTables(r, length)
	return ropeApply(x, batch, length, heads, r.HeadDim, t.f32, t.f64, false)
}

// rotaryKey identifies a table: every layer's q and k of a graph share one.
type rotaryKey struct {
	r      Rotary
	s      RopeScaling
	length int
}

type rotaryPair struct {
	f32 rotaryTable[float32]
	f64 rotaryTable[float64]
}

var rotaryMemo = struct {
	sync.Mutex
	m map[rotaryKey]*rotaryPair
}{m: map[rotaryKey]*rotaryPair{}}

// rotaryTables returns the (read-only) tables of r for positions 0..length−1, computed once per configuration.
func rotaryTables(r Rotary, length int) *rotaryPair {
	k := rotaryKey{r: r, length: length}
	if r.Scaling != nil {
		k.s = *r.Scaling
		k.r.Scaling = nil
	}
	rotaryMemo.Lock()
	defer rotaryMemo.Unlock()
	if t, ok := rotaryMemo.m[k]; ok {
		return t
	}
	t := &rotaryPair{f32: newRotaryTable[float32](r, length), f64: newRotaryTable[float64](r, length)}
	rotaryMemo.m[k] = t
	return t
}

func ropeApply(x *G.Node, batch, length, heads, hd int, t32 rotaryTable[float32], t64 rotaryTable[float64], inverse bool) (*G.Node, error) {
	name := "RoPE"
	if inverse {
		name = "RoPEGrad"
	}
	s := spec{
		name: name,
		sig:  []int{2, 2},
		shape: func(in []tensor.Shape) (tensor.Shape, error) {
			if x := in[0]; x.Dims() != 2 || x[0] != batch*length || x[1] != heads*hd {
				return nil, fmt.Errorf("x must be [%d, %d·%d], got %v", batch*length, heads, hd, x)
			}
			return in[0].Clone(), nil
		},
		f32: ropeKernel(t32, length, heads, hd, inverse),
		f64: ropeKernel(t64, length, heads, hd, inverse),
	}
	if !inverse {
		s.grad = func(_ G.Nodes, _, grad *G.Node) (G.Nodes, error) {
			dx, err := ropeApply(grad, batch, length, heads, hd, t32, t64, true)
			if err != nil {
				return nil, err
			}
			return G.Nodes{dx}, nil
		}
	}
	return apply(s, x)
}

// ropeKernel rotates every head of every row; inverse rotates by −a (the gradient: the transposed rotation).
func ropeKernel[T float](tb rotaryTable[T], length, heads, hd int, inverse bool) func(*call[T]) error {
	half := hd / 2
	return func(c *call[T]) error {
		x, y := c.in[0], c.out
		ld := heads * hd
		forRange(len(x)/ld, ld, func(lo, hi int) {
			for n := lo; n < hi; n++ {
				p := n % length
				cs, sn := tb.cos[p*half:(p+1)*half], tb.sin[p*half:(p+1)*half]
				for h := 0; h < heads; h++ {
					off := n*ld + h*hd
					x1, x2 := x[off:off+half], x[off+half:off+hd]
					y1, y2 := y[off:off+half], y[off+half:off+hd]
					if inverse {
						for i, a := range x1 {
							b := x2[i]
							y1[i] = a*cs[i] + b*sn[i]
							y2[i] = b*cs[i] - a*sn[i]
						}
						continue
					}
					for i, a := range x1 {
						b := x2[i]
						y1[i] = a*cs[i] - b*sn[i]
						y2[i] = b*cs[i] + a*sn[i]
					}
				}
			}
		})
		return nil
	}
}
