package nn

import (
	"math"

	G "gorgonia.org/gorgonia"
)

// GELU is GPT-2's tanh approximation (gelu_new): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
func GELU(x *G.Node) (*G.Node, error) {
	// exps holds e^(−2u) of the last float32 run, so that the backward pass needs no exponential.
	exps := new(cache)
	return apply(spec{
		name:  "GELU",
		sig:   []int{dimsAny, dimsAny},
		shape: sameShape(0),
		f32: func(c *call[float32]) error {
			geluForward32(c.in[0], c.out, sized[float32](exps, 0, len(c.in[0])))
			return nil
		},
		f64: func(c *call[float64]) error {
			geluForward(c.in[0], c.out)
			return nil
		},
		grad: func(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
			// g·gelu'(x). In float32 it reads the exponentials its forward op kept; its second input (the
			// forward output) orders it after that run.
			dx, err := apply(spec{
				name:  "GELUGrad",
				sig:   []int{dimsAny, dimsAny, dimsAny, dimsAny},
				shape: sameShape(0),
				reads: []int{0, 2},
				f32: func(c *call[float32]) error {
					e, err := kept[float32](exps, 0, len(c.in[0]))
					if err != nil {
						return err
					}
					geluBackward32(c.in[0], c.in[2], e, c.out)
					return nil
				},
				f64: func(c *call[float64]) error {
					geluBackward(c.in[0], c.in[2], c.out)
					return nil
				},
			}, inputs[0], output, grad)
			if err != nil {
				return nil, err
			}
			return G.Nodes{dx}, nil
		},
	}, x)
}

var geluC = math.Sqrt(2 / math.Pi)

const geluA = 0.044715

func geluForward[T float](x, y []T) {
	forRange(len(x), 1, func(lo, hi int) {
		for i, v := range x[lo:hi] {
			f := float64(v)
			y[lo+i] = T(0.5 * f * (1 + math.Tanh(geluC*(f+geluA*f*f*f))))
		}
	})
}

func geluBackward[T float](x, g, dx []T) {
	forRange(len(x), 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			f := float64(x[i])
			t := math.Tanh(geluC * (f + geluA*f*f*f))
			d := 0.5*(1+t) + 0.5*f*(1-t*t)*geluC*(1+3*geluA*f*f)
			dx[i] = T(float64(g[i]) * d)
		}
	})
}

// geluForward32 and geluBackward32 are the float32 (training) versions. They use 0.5·(1 + tanh u) = σ(2u), so
// that one exponential e = e^(−2u) per element does: gelu = x·σ(2u), gelu' = σ(2u) + 2x·σ(2u)(1−σ(2u))·u',
// with σ(2u) = 1/(1+e) and 1−σ(2u) = e·σ(2u) (which keeps its precision where σ is close to 1).
func geluForward32(x, y, exps []float32) {
	const c, a = float32(0.7978845608028654), float32(geluA)
	forRange(len(x), 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			f := x[i]
			e := exp32(-2 * c * (f + a*f*f*f))
			exps[i] = e
			y[i] = f / (1 + e)
		}
	})
}

func geluBackward32(x, g, exps, dx []float32) {
	const c, a = float32(0.7978845608028654), float32(geluA)
	forRange(len(x), 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			f, e := x[i], exps[i]
			s := 1 / (1 + e)
			dx[i] = g[i] * (s + 2*f*s*(e*s)*c*(1+3*a*f*f))
		}
	})
}
