package nn

import (
	"fmt"
	"math"
	"math/rand/v2"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// A LoRA adapter (Hu et al. 2021, arXiv:2106.09685; PEFT's lora.Linear): a target linear layer computes
// base(x) + scale·B·A·dropout(x). LoRALinear does it in one op; Scale and Dropout compose the same from LinearT
// and Add (the tests hold both to one plain-Go reference).

// Scale computes s·x for a tensor of any shape; its gradient is s·g.
func Scale(x *G.Node, s float64) (*G.Node, error) {
	if math.IsNaN(s) || math.IsInf(s, 0) {
		return nil, fmt.Errorf("nn.Scale: factor %v is not finite", s)
	}
	return apply(spec{
		name:  "Scale",
		sig:   []int{dimsAny, dimsAny},
		shape: sameShape(0),
		f32:   scaleKernel[float32](s),
		f64:   scaleKernel[float64](s),
		grad: func(_ G.Nodes, _, grad *G.Node) (G.Nodes, error) {
			g, err := Scale(grad, s)
			return G.Nodes{g}, err
		},
	}, x)
}

func scaleKernel[T float](s float64) func(*call[T]) error {
	return func(c *call[T]) error {
		x, y, f := c.in[0], c.out, T(s)
		for i, v := range x {
			y[i] = f * v
		}
		return nil
	}
}

// DropoutSeed is the randomness of a graph's Dropout ops: its owner sets Seed before each run, and each op
// draws its mask from PCG(Seed, stream) with its own stream, so a run is reproducible from (Seed, stream)
// alone (a resumed run redraws the masks it would have drawn).
type DropoutSeed struct{ Seed uint64 }

// Dropout is inverted dropout (torch.nn.Dropout in training mode): y = x ∘ m / (1 − p) with m_i ~
// Bernoulli(1 − p), a fresh mask at every run drawn element by element (row-major) from PCG(seed.Seed, stream):
// element i is dropped when the i-th Float64 draw is below p. The same draws in float32 and float64. The
// gradient applies the same mask to g. p must be in [0, 1).
func Dropout(x *G.Node, p float64, seed *DropoutSeed, stream uint64) (*G.Node, error) {
	if !(p >= 0 && p < 1) {
		return nil, fmt.Errorf("nn.Dropout: probability %v, want 0 <= p < 1", p)
	}
	if seed == nil {
		return nil, fmt.Errorf("nn.Dropout: no seed")
	}
	st := &dropoutState{p: p, seed: seed, stream: stream}
	return apply(spec{
		name:  "Dropout",
		sig:   []int{dimsAny, dimsAny},
		shape: sameShape(0),
		f32:   dropoutKernel[float32](st),
		f64:   dropoutKernel[float64](st),
		grad: func(_ G.Nodes, output, grad *G.Node) (G.Nodes, error) {
			// output is an input only to run after the forward op, whose mask this one reads.
			g, err := apply(spec{
				name:  "DropoutGrad",
				sig:   []int{dimsAny, dimsAny, dimsAny},
				shape: sameShape(0),
				reads: []int{0},
				f32:   dropoutGradKernel[float32](st),
				f64:   dropoutGradKernel[float64](st),
			}, grad, output)
			return G.Nodes{g}, err
		},
	}, x)
}

// dropoutState is the mask of the last forward run, which the backward op reuses.
type dropoutState struct {
	p      float64
	seed   *DropoutSeed
	stream uint64
	keep   []bool
}

func (st *dropoutState) draw(n int) {
	if len(st.keep) != n {
		st.keep = make([]bool, n)
	}
	rng := rand.New(rand.NewPCG(st.seed.Seed, st.stream))
	for i := range st.keep {
		st.keep[i] = rng.Float64() >= st.p
	}
}

func dropoutKernel[T float](st *dropoutState) func(*call[T]) error {
	return func(c *call[T]) error {
		x, y := c.in[0], c.out
		st.draw(len(x))
		inv := T(1 / (1 - st.p))
		for i, v := range x {
			if st.keep[i] {
				y[i] = v * inv
			} else {
				y[i] = 0
			}
		}
		return nil
	}
}

func dropoutGradKernel[T float](st *dropoutState) func(*call[T]) error {
	return func(c *call[T]) error {
		g, dx := c.in[0], c.out
		if len(st.keep) != len(g) {
			return fmt.Errorf("forward pass has not run")
		}
		inv := T(1 / (1 - st.p))
		for i, v := range g {
			if st.keep[i] {
				dx[i] = v * inv
			} else {
				dx[i] = 0
			}
		}
		return nil
	}
}

// LoRALinear is a linear layer with a LoRA adapter in one op:
//
//	y = x·Wᵀ + b + scale · (dropout(x)·Aᵀ)·Bᵀ      (conv1D: x·W + b + …, GPT-2's Conv1D weights W [in, out])
//
// with x [N, in], W [out, in] (torch.nn.Linear) or [in, out] (conv1D), b [out] or nil, A [r, in] and B [out, r]
// (PEFT's lora_A.weight and lora_B.weight, the same layouts for Conv1D targets), as PEFT's lora.Linear computes
// it (Hu et al. 2021, arXiv:2106.09685). Dropout (p > 0 and seed non-nil: training graphs) is inverted dropout on
// the adapter's input only, drawn as Dropout draws it. The op keeps only the [N, r] product dropout(x)·Aᵀ (and,
// with dropout, the dropped input) for its backward pass, so an adapter adds no [N, out] tensor to a graph. The
// gradients: dx = g·W (Wᵀ for conv1D) + scale·((g·B)·A)∘mask/(1−p); dA = scale·(g·B)ᵀ·dropout(x); dB =
// scale·gᵀ·(dropout(x)·Aᵀ); dW and db as LinearT's (a graph that freezes W leaves dW out).
func LoRALinear(x, w, b, a, bm *G.Node, conv1D bool, scale, p float64, seed *DropoutSeed, stream uint64) (*G.Node, error) {
	if math.IsNaN(scale) || math.IsInf(scale, 0) {
		return nil, fmt.Errorf("nn.LoRALinear: scale %v is not finite", scale)
	}
	if !(p >= 0 && p < 1) {
		return nil, fmt.Errorf("nn.LoRALinear: dropout %v, want 0 <= p < 1", p)
	}
	st := &loraState{conv: conv1D, scale: scale}
	if p > 0 && seed != nil {
		st.drop = &dropoutState{p: p, seed: seed, stream: stream}
	}
	s := spec{
		name: "LoRALinear",
		shape: func(in []tensor.Shape) (tensor.Shape, error) {
			x, w, a, bm := in[0], in[1], in[2], in[3]
			out, fin := w[0], w[1]
			if conv1D {
				out, fin = w[1], w[0]
			}
			if x.Dims() != 2 || w.Dims() != 2 || a.Dims() != 2 || bm.Dims() != 2 || x[1] != fin || a[1] != fin ||
				bm[0] != out || bm[1] != a[0] || (len(in) == 5 && in[4].TotalSize() != out) {
				return nil, fmt.Errorf("shapes x %v, W %v, lora_A %v, lora_B %v (and bias) do not fit a LoRA linear layer "+
					"(conv1D %v)", x, w, a, bm, conv1D)
			}
			return tensor.Shape{x[0], out}, nil
		},
		f32: loraForward[float32](st),
		f64: loraForward[float64](st),
		grad: func(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
			return loraGrad(st, inputs, output, grad)
		},
	}
	if b == nil {
		s.sig = []int{2, 2, 2, 2, 2}
		return apply(s, x, w, a, bm)
	}
	s.sig = []int{2, 2, 2, 2, 1, 2}
	return apply(s, x, w, a, bm, b)
}

// loraState is what LoRALinear's forward run leaves for its backward ops.
type loraState struct {
	conv  bool
	scale float64
	drop  *dropoutState // nil: no dropout
	// slots: 0 u = dropout(x)·Aᵀ [N, r]; 1 dropout(x) [N, in] (with dropout); 2 and 3 scratch of the backward ops.
	c cache
}

func (st *loraState) dims(shapes []tensor.Shape) (n, in, out, r int) {
	n, in, r = shapes[0][0], shapes[0][1], shapes[2][0]
	out = shapes[1][0]
	if st.conv {
		out = shapes[1][1]
	}
	return
}

func loraForward[T float](st *loraState) func(*call[T]) error {
	return func(c *call[T]) error {
		n, in, out, r := st.dims(c.shapes)
		x, w, a, bm, y := c.in[0], c.in[1], c.in[2], c.in[3], c.out
		// The base product by the code of Linear and LinearT, so that a zero B gives their output bit for bit.
		var b []T
		if len(c.in) == 5 {
			b = c.in[4]
		}
		switch {
		case st.conv && b != nil:
			linearForward(x, w, b, y, n, in, out)
		case st.conv:
			gemm(false, false, n, out, in, 1, x, in, w, out, 0, y, out)
		case b != nil:
			forRange(n, out*in/8, func(lo, hi int) {
				for r := lo; r < hi; r++ {
					copy(y[r*out:(r+1)*out], b)
				}
				gemmSerial(false, true, hi-lo, out, in, 1, x[lo*in:], in, w, in, 1, y[lo*out:], out)
			})
		default:
			gemm(false, true, n, out, in, 1, x, in, w, in, 0, y, out)
		}
		xd := x
		if st.drop != nil {
			st.drop.draw(len(x))
			xd = sized[T](&st.c, 1, len(x))
			inv := T(1 / (1 - st.drop.p))
			for i, v := range x {
				if st.drop.keep[i] {
					xd[i] = v * inv
				} else {
					xd[i] = 0
				}
			}
		}
		u := sized[T](&st.c, 0, n*r)
		gemm(false, true, n, r, in, 1, xd, in, a, in, 0, u, r)
		gemm(false, true, n, out, r, T(st.scale), u, r, bm, r, 1, y, out)
		return nil
	}
}

// loraGrad builds the backward ops; each reads the forward run's state and takes the forward output as its last
// input so that it runs after it.
func loraGrad(st *loraState, inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	x, w, a, bm := inputs[0], inputs[1], inputs[2], inputs[3]
	back := func(name string, shape func([]tensor.Shape) (tensor.Shape, error), f32 func(*call[float32]) error,
		f64 func(*call[float64]) error, in ...*G.Node) (*G.Node, error) {
		sig := make([]int, len(in)+2)
		for i := range sig {
			sig[i] = 2
		}
		reads := make([]int, len(in))
		for i := range reads {
			reads[i] = i
		}
		return apply(spec{name: name, sig: sig, shape: shape, reads: reads, f32: f32, f64: f64}, append(in, output)...)
	}
	dx, err := back("LoRALinearGradX", sameShape(4), loraGradX[float32](st), loraGradX[float64](st), grad, w, a, bm, x)
	if err != nil {
		return nil, err
	}
	da, err := back("LoRALinearGradA", sameShape(3), loraGradA[float32](st), loraGradA[float64](st), grad, x, bm, a)
	if err != nil {
		return nil, err
	}
	db, err := back("LoRALinearGradB", sameShape(1), loraGradB[float32](st), loraGradB[float64](st), grad, bm)
	if err != nil {
		return nil, err
	}
	var dw *G.Node
	if st.conv {
		dw, err = MatMul(x, grad, true, false)
	} else {
		dw, err = MatMul(grad, x, true, false)
	}
	if err != nil {
		return nil, err
	}
	out := G.Nodes{dx, dw, da, db}
	if len(inputs) == 5 {
		dbias, err := ColSum(grad)
		if err != nil {
			return nil, err
		}
		out = append(out, dbias)
	}
	return out, nil
}

// loraGradX: dx = g·W (g·Wᵀ for conv1D) + scale·((g·B)·A)∘mask/(1−p). Inputs g, W, A, B, x (x for its shape).
func loraGradX[T float](st *loraState) func(*call[T]) error {
	return func(c *call[T]) error {
		g, w, a, bm, dx := c.in[0], c.in[1], c.in[2], c.in[3], c.out
		n, in := c.shapes[4][0], c.shapes[4][1]
		out, r := c.shapes[0][1], c.shapes[2][0]
		if st.conv {
			gemm(false, true, n, in, out, 1, g, out, w, out, 0, dx, in)
		} else {
			gemm(false, false, n, in, out, 1, g, out, w, in, 0, dx, in)
		}
		t := sized[T](&st.c, 2, n*r)
		gemm(false, false, n, r, out, 1, g, out, bm, r, 0, t, r)
		if st.drop == nil {
			gemm(false, false, n, in, r, T(st.scale), t, r, a, in, 1, dx, in)
			return nil
		}
		if len(st.drop.keep) != n*in {
			return fmt.Errorf("forward pass has not run")
		}
		ta := sized[T](&st.c, 3, n*in)
		gemm(false, false, n, in, r, T(st.scale/(1-st.drop.p)), t, r, a, in, 0, ta, in)
		for i, v := range ta {
			if st.drop.keep[i] {
				dx[i] += v
			}
		}
		return nil
	}
}

// loraGradA: dA = scale·(g·B)ᵀ·dropout(x). Inputs g, x, B, A (A for its shape).
func loraGradA[T float](st *loraState) func(*call[T]) error {
	return func(c *call[T]) error {
		g, x, bm, da := c.in[0], c.in[1], c.in[2], c.out
		n, in := c.shapes[1][0], c.shapes[1][1]
		out, r := c.shapes[0][1], c.shapes[3][0]
		t := sized[T](&st.c, 2, n*r)
		gemm(false, false, n, r, out, 1, g, out, bm, r, 0, t, r)
		xd := x
		if st.drop != nil {
			var err error
			if xd, err = kept[T](&st.c, 1, n*in); err != nil {
				return err
			}
		}
		gemm(true, false, r, in, n, T(st.scale), t, r, xd, in, 0, da, in)
		return nil
	}
}

// loraGradB: dB = scale·gᵀ·u with u = dropout(x)·Aᵀ from the forward run. Inputs g, B (B for its shape).
func loraGradB[T float](st *loraState) func(*call[T]) error {
	return func(c *call[T]) error {
		g, db := c.in[0], c.out
		n, out, r := c.shapes[0][0], c.shapes[0][1], c.shapes[1][1]
		u, err := kept[T](&st.c, 0, n*r)
		if err != nil {
			return err
		}
		gemm(true, false, out, r, n, T(st.scale), g, out, u, r, 0, db, r)
		return nil
	}
}
