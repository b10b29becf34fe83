package nn

import (
	"fmt"
	"math"
	"unsafe"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Buffer planning. Without a plan every op keeps its own output buffer for the life of its graph, so a training
// graph holds every activation, every activation gradient and every scratch product at once: at SmolLM2-135M's
// shape and 4 × 256 tokens, about 3 GiB, half of it gradients that are dead a moment after they are made. A plan
// (PlanBuffers) gives the ops of one graph a shared Arena instead: an op takes a buffer of its output's size
// when it runs, and the buffer goes back to the arena as soon as the last op that reads it has run, so that
// the next op of that size reuses it. What a graph holds is then the largest set of buffers alive at once (in
// a training step: the activations the backward pass reads, plus a layer's worth of gradients) instead of the
// sum of all. This is reference counting over a fixed graph, the same idea as PyTorch's autograd freeing a
// saved tensor after its last use, done here with the counts known when the graph is built.
//
// The counts come from the graph's edges, so they hold whatever order the machine runs the ops in. Inputs an op
// only takes to run after another op (spec.reads) do not count: their buffers may be reused before that op runs.
// An op's math must therefore write every element of its output (op.go's contract since buffers were kept
// across runs) and never read an input outside spec.reads; the tests check the first by handing out buffers
// filled with NaN.

// planned is an op's part in a buffer plan; the zero value (no plan) keeps the op's own buffer.
type planned struct {
	arena *Arena
	// pinned outputs are read after a run (losses, log-probs, gradients): they keep their own buffer.
	pinned bool
	// readers counts the (op, input) pairs of the plan whose math reads this op's output; left counts them down
	// during a run, and at zero the buffer goes back to the arena.
	readers, left int
	// producers are the planned, unpinned ops whose outputs this op's math reads, once per such input.
	producers []*fusedOp
	// held is true while the op's output buffer is taken from the arena.
	held bool
}

// Arena is the shared output memory of one planned graph. It is not safe for concurrent runs (a graph runs one
// op at a time).
type Arena struct {
	free32 map[int][][]float32
	free64 map[int][][]float64
	// Allocated is the bytes the arena has allocated (and holds); Live the bytes of buffers currently taken and
	// Peak the largest Live seen; Unplanned the bytes the same buffers would take without the plan (the sum of
	// every planned, unpinned op's output).
	Allocated, Live, Peak, Unplanned int64
}

// poisonBuffers fills every buffer the arena hands out with NaN (tests: an op that leaves an element
// unwritten, or reads an input its spec does not list, then shows NaNs instead of silently reading stale data).
var poisonBuffers bool

// PlanBuffers plans the output buffers of the ops among nodes, which must be every node the machine will run
// (a compiled graph's nodes, e.g. ExprGraph.ExactSubgraphRoots(...).AllNodes()); keep lists the nodes read after
// a run, which keep buffers of their own. Nodes that are not this package's ops are left alone, and so are the
// outputs they read (they are never returned to the arena). Planning a graph again replaces its plan.
func PlanBuffers(nodes G.Nodes, keep ...*G.Node) *Arena {
	a := &Arena{free32: map[int][][]float32{}, free64: map[int][][]float64{}}
	for _, n := range nodes {
		if op := fusedOf(n); op != nil {
			op.planned = planned{arena: a}
		}
	}
	// Pinned first: the outputs read after a run, and any output a foreign op reads (at any time).
	for _, n := range keep {
		if op := fusedOf(n); op != nil && op.arena == a {
			op.pinned = true
		}
	}
	for _, n := range nodes {
		if n.Op() != nil && fusedOf(n) == nil {
			for _, in := range gradInputs(n) {
				if p := fusedOf(in); p != nil && p.arena == a {
					p.pinned = true
				}
			}
		}
	}
	for _, n := range nodes {
		op := fusedOf(n)
		if op == nil {
			continue
		}
		if !op.pinned && n.Shape().Dims() > 0 {
			a.Unplanned += int64(n.Shape().TotalSize()) * int64(n.Dtype().Size())
		}
		for i, in := range op.inputs {
			if p := fusedOf(in); p != nil && p.arena == a && !p.pinned && in.Shape().Dims() > 0 && op.readsData(i) {
				p.readers++
				op.producers = append(op.producers, p)
			}
		}
	}
	return a
}

// gradInputs returns the inputs of a node whose op is not this package's (gorgonia's graph keeps them
// unexported; its edges give them without order or repeats, which is all pinning needs).
func gradInputs(n *G.Node) G.Nodes {
	g := n.Graph()
	var out G.Nodes
	to := g.From(n.ID())
	for to.Next() {
		if c, ok := to.Node().(*G.Node); ok {
			out = append(out, c)
		}
	}
	return out
}

// output returns the buffer the op writes this run: its own when unplanned or pinned, else one from the arena.
func (op *fusedOp) output(dt tensor.Dtype, shape tensor.Shape) *tensor.Dense {
	if op.arena == nil || op.pinned {
		return op.out.get(dt, shape...)
	}
	a := op.arena
	if op.held {
		// The run before stopped early (an error): the buffer was never given back.
		a.give(op)
	}
	op.left = op.readers
	a.take(op, dt, shape)
	return op.out.t
}

// consumed runs after the op's math: each planned input whose last reader this was goes back to the arena, and
// so does the op's own output when nothing reads it.
func (op *fusedOp) consumed() {
	if op.arena == nil {
		return
	}
	for _, p := range op.producers {
		if !p.held {
			continue
		}
		if p.left--; p.left == 0 {
			op.arena.give(p)
		}
	}
	if op.held && op.readers == 0 {
		op.arena.give(op)
	}
}

// take points op.out at a free buffer of shape's size, allocating one when none is free.
func (a *Arena) take(op *fusedOp, dt tensor.Dtype, shape tensor.Shape) {
	n := shape.TotalSize()
	var backing any
	switch dt {
	case tensor.Float32:
		backing = takeFree(a.free32, n, &a.Allocated, poisonBuffers)
	default:
		backing = takeFree(a.free64, n, &a.Allocated, poisonBuffers)
	}
	t := op.out.t
	if t == nil || t.Dtype() != dt || !t.Shape().Eq(shape) || dataPtr(t.Data()) != dataPtr(backing) {
		op.out.t = tensor.New(tensor.WithBacking(backing), tensor.WithShape(shape...))
	}
	op.held = true
	a.Live += int64(n) * int64(dt.Size())
	a.Peak = max(a.Peak, a.Live)
}

// give returns op's buffer to the arena.
func (a *Arena) give(op *fusedOp) {
	op.held = false
	t := op.out.t
	a.Live -= int64(t.Shape().TotalSize()) * int64(t.Dtype().Size())
	switch d := t.Data().(type) {
	case []float32:
		a.free32[len(d)] = append(a.free32[len(d)], d)
	case []float64:
		a.free64[len(d)] = append(a.free64[len(d)], d)
	}
}

func takeFree[T float](free map[int][][]T, n int, allocated *int64, poison bool) []T {
	var s []T
	if l := free[n]; len(l) > 0 {
		s, free[n] = l[len(l)-1], l[:len(l)-1]
	} else {
		s = make([]T, n)
		*allocated += int64(n) * int64(unsafe.Sizeof(s[0]))
	}
	if poison {
		for i := range s {
			s[i] = T(math.NaN())
		}
	}
	return s
}

func dataPtr(d any) uintptr {
	switch s := d.(type) {
	case []float32:
		if len(s) > 0 {
			return uintptr(unsafe.Pointer(&s[0]))
		}
	case []float64:
		if len(s) > 0 {
			return uintptr(unsafe.Pointer(&s[0]))
		}
	}
	return 0
}

func (a *Arena) String() string {
	return fmt.Sprintf("arena: %s allocated, peak live %s, %s without the plan", mib(a.Allocated), mib(a.Peak), mib(a.Unplanned))
}

func mib(b int64) string {
	if b < 1<<20 {
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

// PoisonBuffers makes every arena fill the buffers it hands out with NaN (on) or not (off, the default): for
// tests, so that an op that leaves part of its output unwritten, or reads an input outside spec.reads after
// its buffer went to another op, shows NaNs instead of stale numbers.
func PoisonBuffers(on bool) { poisonBuffers = on }
