package optim

import (
	"math/rand/v2"
	"testing"
)

// gpt2Params is about 1M parameters shaped like a small GPT-2 (d128).
func gpt2Params(b *testing.B) []Param {
	rng := rand.New(rand.NewPCG(1, 2))
	var params []Param
	add := func(name string, shape ...int) {
		n := 1
		for _, d := range shape {
			n *= d
		}
		p := Param{Name: name, Shape: shape, Data: make([]float32, n), Grad: make([]float32, n)}
		for j := range p.Data {
			p.Data[j] = float32(rng.NormFloat64() * 0.02)
		}
		params = append(params, p)
	}
	add("wte.weight", 259, 128)
	add("wpe.weight", 256, 128)
	for i := range 5 {
		add(string(rune('a'+i))+".c_attn.weight", 128, 384)
		add(string(rune('a'+i))+".c_attn.bias", 384)
		add(string(rune('a'+i))+".c_fc.weight", 128, 512)
		add(string(rune('a'+i))+".c_proj.weight", 512, 128)
		add(string(rune('a'+i))+".ln.weight", 128)
	}
	return params
}

// BenchmarkAdamWStep1M measures one AdamW update over about 1M parameters.
func BenchmarkAdamWStep1M(b *testing.B) {
	params := gpt2Params(b)
	total := 0
	for _, p := range params {
		total += len(p.Data)
	}
	opt, err := NewAdamW(AdamWConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01}, params, nil)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		b.StopTimer() // Step zeroes the gradients: give it realistic ones each time, untimed
		for _, p := range params {
			for j := range p.Grad {
				p.Grad[j] = float32(j%17-8) * 1e-3
			}
		}
		b.StartTimer()
		opt.Step(1e-3)
	}
	b.ReportMetric(float64(total), "params")
}

// BenchmarkClipGradNorm1M measures global-norm clipping (norm, then scaling) over about 1M gradients.
func BenchmarkClipGradNorm1M(b *testing.B) {
	params := gpt2Params(b)
	opt, err := NewAdamW(DefaultAdamW(), params, nil)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		for _, p := range params {
			for j := range p.Grad {
				p.Grad[j] = 1e-2
			}
		}
		opt.ClipGradNorm(1) // the norm is about 10: every step scales
	}
}
