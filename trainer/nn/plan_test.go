package nn

import (
	"flag"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestMain runs the package's tests with poisoned arena buffers (PoisonBuffers): every planned buffer is NaN
// until its op writes it, so the gradient checks (which run on planned buffers, gradRun) fail on an op that
// leaves elements unwritten or reads a buffer after its last planned reader. Benchmarks run without it.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		PoisonBuffers(true)
	}
	os.Exit(m.Run())
}

// stack builds two pre-norm decoder layers (attention and SwiGLU MLP, the residual stream read by a norm and a
// sum) and the fused head's mean NLL on float32 inputs: x [B·T, D] and the weights, in weightNames' order.
const stackB, stackT, stackD, stackH, stackKV, stackHD, stackI, stackV = 2, 5, 8, 4, 2, 2, 12, 11

var stackShapes = [][]int{{stackB * stackT, stackD},
	{stackD}, {stackH * stackHD, stackD}, {stackKV * stackHD, stackD}, {stackKV * stackHD, stackD},
	{stackD, stackH * stackHD}, {stackD}, {stackI, stackD}, {stackI, stackD}, {stackD, stackI},
	{stackD}, {stackV, stackD}}

func buildStack(t *testing.T, g *G.ExprGraph, n []*G.Node, tk *Tokens) *G.Node {
	t.Helper()
	must := func(x *G.Node, err error) *G.Node {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	rot := Rotary{HeadDim: stackHD, Theta: 100}
	x := n[0]
	for layer := 0; layer < 2; layer++ {
		h := must(RMSNorm(x, n[1], 1e-6))
		q := must(RoPE(must(LinearT(h, n[2], nil)), stackB, stackT, stackH, rot))
		k := must(RoPE(must(LinearT(h, n[3], nil)), stackB, stackT, stackKV, rot))
		v := must(LinearT(h, n[4], nil))
		x = must(Add(x, must(LinearT(must(GQAttention(q, k, v, stackB, stackT, stackH, stackKV, RecomputeProbs)), n[5], nil))))
		m := must(RMSNorm(x, n[6], 1e-6))
		x = must(Add(x, must(LinearT(must(SwiGLU(must(LinearT(m, n[7], nil)), must(LinearT(m, n[8], nil)))), n[9], nil))))
	}
	lp := must(HeadLogProbs(must(RMSNorm(x, n[10], 1e-6)), n[11], tk))
	return must(NLLMean(lp, tk))
}

// stackRun builds the stack on fresh nodes, differentiates it (nn's Grad on planned buffers, or gorgonia's on
// buffers of their own), runs it twice and returns the loss, the gradients and the arena (nil unplanned).
func stackRun(t *testing.T, planned bool) (float64, [][]float32, *Arena) {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 6))
	tk := NewTokens(stackB, stackT)
	for i := range tk.Mask {
		tk.Inputs[i], tk.Targets[i] = rng.IntN(stackV), rng.IntN(stackV)
		if i%stackT >= 1 { // the first position of each row is a masked-out prompt
			tk.Mask[i] = 1
		}
	}
	g := G.NewGraph()
	nodes := make([]*G.Node, len(stackShapes))
	for i, s := range stackShapes {
		v := toF32(randDense(rng, 0.5, s...))
		if len(s) == 1 {
			for j := range f32s(v) {
				f32s(v)[j] += 1
			}
		}
		nodes[i] = G.NodeFromAny(g, v, G.WithName(string(rune('a'+i))))
	}
	loss := buildStack(t, g, nodes, tk)
	var grads G.Nodes
	var err error
	var arena *Arena
	vm := G.VM(nil)
	if planned {
		if grads, err = Grad(loss, nodes...); err != nil {
			t.Fatal(err)
		}
		roots := append(G.Nodes{loss}, grads...)
		sub := g.ExactSubgraphRoots(roots...)
		arena = PlanBuffers(sub.AllNodes(), roots...)
		vm = G.NewTapeMachine(sub)
	} else {
		if grads, err = G.Grad(loss, nodes...); err != nil {
			t.Fatal(err)
		}
		vm = G.NewTapeMachine(g)
	}
	defer vm.Close()
	var first []float32
	var out [][]float32
	for run := 0; run < 2; run++ {
		runOnce(t, vm)
		out = out[:0]
		for _, gn := range grads {
			out = append(out, append([]float32(nil), f32s(gn.Value().(*tensor.Dense))...))
		}
		// The second run must repeat the first exactly: no state left from one run leaks into the next.
		if run == 0 {
			for _, o := range out {
				first = append(first, o...)
			}
		} else {
			k := 0
			for _, o := range out {
				for _, v := range o {
					if v != first[k] {
						t.Fatalf("planned=%v: gradient element %d is %v on the second run, %v on the first", planned, k, v, first[k])
					}
					k++
				}
			}
		}
	}
	return scalarValue(t, loss), out, arena
}

// TestGradAndPlannedBuffers: nn's Grad on planned (and poisoned) buffers gives gorgonia's Grad's loss and
// gradients bit for bit on a two-layer stack, while the arena allocates less than the buffers it replaces and
// its live peak stays within what it allocated.
func TestGradAndPlannedBuffers(t *testing.T) {
	wantLoss, want, _ := stackRun(t, false)
	loss, got, arena := stackRun(t, true)
	if loss != wantLoss {
		t.Fatalf("loss %v planned, %v with gorgonia's Grad", loss, wantLoss)
	}
	for i := range want {
		for j := range want[i] {
			if got[i][j] != want[i][j] {
				t.Fatalf("gradient of input %d element %d: %v planned, %v with gorgonia's Grad", i, j, got[i][j], want[i][j])
			}
		}
	}
	t.Log(arena)
	if arena.Peak > arena.Allocated || arena.Allocated >= arena.Unplanned/2 || arena.Live != 0 {
		t.Errorf("%v, %d bytes still taken after the run: want the peak within the allocation, the allocation "+
			"below half the unplanned buffers and nothing taken", arena, arena.Live)
	}
}

func TestGradErrors(t *testing.T) {
	g := G.NewGraph()
	x := G.NewMatrix(g, tensor.Float64, G.WithShape(2, 3), G.WithName("x"), G.WithInit(G.Ones()))
	w := G.NewMatrix(g, tensor.Float64, G.WithShape(4, 3), G.WithName("w"), G.WithInit(G.Ones()))
	unused := G.NewMatrix(g, tensor.Float64, G.WithShape(4, 3), G.WithName("unused"), G.WithInit(G.Ones()))
	y, err := LinearT(x, w, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := G.NewMatrix(g, tensor.Float64, G.WithShape(2, 4), G.WithName("r"), G.WithInit(G.Ones()))
	loss, err := weightedSum(y, r)
	if err != nil {
		t.Fatal(err)
	}
	foreign := G.Must(G.Sum(G.Must(G.Square(y))))
	for _, c := range []struct {
		loss *G.Node
		wrt  []*G.Node
		want string
	}{
		{y, []*G.Node{w}, "not a scalar"},
		{loss, []*G.Node{y}, "not an input node"},
		{loss, []*G.Node{w, unused}, "unused"},
		{foreign, []*G.Node{w}, "not an nn op"},
	} {
		if _, err := Grad(c.loss, c.wrt...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Grad(%v, %v): %v, want an error containing %q", c.loss, c.wrt, err, c.want)
		}
	}
	if got, err := Grad(loss, w, x); err != nil || len(got) != 2 {
		t.Errorf("Grad(loss, w, x) = %v, %v", got, err)
	}
}
