package nn

import (
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// randDense returns a float64 tensor of the shape with N(0, scale) entries.
func randDense(rng *rand.Rand, scale float64, shape ...int) *tensor.Dense {
	t := tensor.New(tensor.Of(tensor.Float64), tensor.WithShape(shape...))
	for i := range f64s(t) {
		f64s(t)[i] = rng.NormFloat64() * scale
	}
	return t
}

// toF32 copies a float64 tensor into a float32 one.
func toF32(t *tensor.Dense) *tensor.Dense {
	out := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(t.Shape().Clone()...))
	for i, v := range f64s(t) {
		f32s(out)[i] = float32(v)
	}
	return out
}

type builder func(g *G.ExprGraph, in []*G.Node) (*G.Node, error)

// graphFor builds build(inputs) and a scalar cost: the output itself when it is a scalar, otherwise
// Σ out ∘ R for a fixed random R, so that every output element's gradient matters.
func graphFor(t *testing.T, build builder, inputs []*tensor.Dense, seed uint64, withCost bool) (*G.ExprGraph, []*G.Node, *G.Node, *G.Node) {
	t.Helper()
	g := G.NewGraph()
	nodes := make([]*G.Node, len(inputs))
	for i, v := range inputs {
		nodes[i] = G.NodeFromAny(g, v, G.WithName(string(rune('a'+i))))
	}
	out, err := build(g, nodes)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	cost := out
	// The cost's product may overwrite out's buffer in place, so forward checks build no cost.
	if !out.IsScalar() && withCost {
		r := randDense(rand.New(rand.NewPCG(seed, 99)), 1, out.Shape()...)
		if out.Dtype() == tensor.Float32 {
			r = toF32(r)
		}
		rn := G.NodeFromAny(g, r, G.WithName("R"))
		var err error
		if cost, err = weightedSum(out, rn); err != nil {
			t.Fatalf("cost: %v", err)
		}
	}
	return g, nodes, out, cost
}

// weightedSum is Σ x∘r as an op of this package (so that Grad differentiates the whole graph), with the
// gradient g·r for x; r is a constant.
func weightedSum(x, r *G.Node) (*G.Node, error) {
	return apply(spec{
		name:  "WeightedSum",
		sig:   []int{x.Dims(), x.Dims(), dimsScalar},
		shape: scalarShape,
		f32: func(c *call[float32]) error {
			var s float64
			for i, v := range c.in[0] {
				s += float64(v) * float64(c.in[1][i])
			}
			c.scalar = s
			return nil
		},
		f64: func(c *call[float64]) error {
			var s float64
			for i, v := range c.in[0] {
				s += v * c.in[1][i]
			}
			c.scalar = s
			return nil
		},
		grad: func(inputs G.Nodes, _, grad *G.Node) (G.Nodes, error) {
			scaled := func(c *call[float64]) error {
				g, err := c.scalarIn(1)
				for i, v := range c.in[0] {
					c.out[i] = g * v
				}
				return err
			}
			dx, err := apply(spec{
				name:  "WeightedSumGrad",
				sig:   []int{x.Dims(), dimsScalar, x.Dims()},
				shape: sameShape(0),
				reads: []int{0},
				f32: func(c *call[float32]) error {
					g, err := c.scalarIn(1)
					for i, v := range c.in[0] {
						c.out[i] = float32(g) * v
					}
					return err
				},
				f64: scaled,
			}, inputs[1], grad)
			return G.Nodes{dx, nil}, err
		},
	}, x, r)
}

func scalarValue(t *testing.T, n *G.Node) float64 {
	t.Helper()
	v, err := scalar(n.Op(), n.Value())
	if err != nil {
		t.Fatalf("cost value: %v", err)
	}
	return v
}

func runOnce(t *testing.T, vm G.VM) {
	t.Helper()
	vm.Reset()
	if err := vm.RunAll(); err != nil {
		t.Fatalf("run: %v", err)
	}
}

// checkGradients compares the symbolic gradient of every element of every input in wrt with central finite
// differences, in float64. The error measure is |a−n| / max(|a|+|n|, 1e-6).
func checkGradients(t *testing.T, build builder, inputs []*tensor.Dense, wrt []int, tol float64) {
	t.Helper()
	vm, cost, analytic := gradRun(t, build, inputs, wrt)
	defer vm.Close()
	const eps = 1e-5
	worst := 0.0
	for i, w := range wrt {
		data := f64s(inputs[w])
		for j := range data {
			orig := data[j]
			data[j] = orig + eps
			runOnce(t, vm)
			up := scalarValue(t, cost)
			data[j] = orig - eps
			runOnce(t, vm)
			down := scalarValue(t, cost)
			data[j] = orig
			num := (up - down) / (2 * eps)
			a := analytic[i][j]
			rel := math.Abs(a-num) / math.Max(math.Abs(a)+math.Abs(num), 1e-4)
			worst = max(worst, rel)
			if rel > tol {
				t.Errorf("input %d element %d: analytic %.10g, numeric %.10g (relative error %.3g)", w, j, a, num, rel)
			}
		}
	}
	t.Logf("worst relative error %.3g", worst)
}

// gradRun builds build(inputs), its cost (see graphFor) and the cost's gradients with respect to inputs wrt,
// runs it once and returns the machine (for further runs), the cost and the gradients as float64.
func gradRun(t *testing.T, build builder, inputs []*tensor.Dense, wrt []int) (G.VM, *G.Node, [][]float64) {
	t.Helper()
	g, nodes, _, cost := graphFor(t, build, inputs, 7, true)
	wrtNodes := make([]*G.Node, len(wrt))
	for i, w := range wrt {
		wrtNodes[i] = nodes[w]
	}
	grads, err := Grad(cost, wrtNodes...)
	if err != nil {
		t.Fatalf("grad: %v", err)
	}
	// The graph runs as the trainer's do: only what the cost and the gradients need, on planned buffers.
	roots := append(G.Nodes{cost}, grads...)
	sub := g.ExactSubgraphRoots(roots...)
	PlanBuffers(sub.AllNodes(), roots...)
	vm := G.NewTapeMachine(sub)
	runOnce(t, vm)
	out := make([][]float64, len(wrt))
	for i, gn := range grads {
		switch d := gn.Value().Data().(type) {
		case []float32:
			for _, v := range d {
				out[i] = append(out[i], float64(v))
			}
		case []float64:
			out[i] = append(out[i], d...)
		}
	}
	return vm, cost, out
}

// forward runs build once on inputs and returns the output's values as float64.
func forward(t *testing.T, build builder, inputs []*tensor.Dense) []float64 {
	t.Helper()
	g, _, out, _ := graphFor(t, build, inputs, 7, false)
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	runOnce(t, vm)
	switch v := out.Value().(type) {
	case *tensor.Dense:
		if v.Dtype() == tensor.Float32 {
			res := make([]float64, v.Shape().TotalSize())
			for i, x := range f32s(v) {
				res[i] = float64(x)
			}
			return res
		}
		return append([]float64(nil), f64s(v)...)
	default:
		return []float64{scalarValue(t, out)}
	}
}

// checkForward compares the op's float64 and float32 outputs with a reference computed in plain Go.
func checkForward(t *testing.T, build builder, inputs []*tensor.Dense, want []float64) {
	t.Helper()
	got := forward(t, build, inputs)
	if len(got) != len(want) {
		t.Fatalf("float64: %d outputs, want %d", len(got), len(want))
	}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-9*(1+math.Abs(want[i])) {
			t.Fatalf("float64 output %d = %.12g, want %.12g", i, got[i], want[i])
		}
	}
	in32 := make([]*tensor.Dense, len(inputs))
	for i, v := range inputs {
		in32[i] = toF32(v)
	}
	got32 := forward(t, build, in32)
	for i := range want {
		if math.Abs(got32[i]-want[i]) > 1e-4*(1+math.Abs(want[i])) {
			t.Fatalf("float32 output %d = %.8g, want %.8g", i, got32[i], want[i])
		}
	}
}
