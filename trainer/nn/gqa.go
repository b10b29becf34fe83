package nn

import (
	"fmt"
	"runtime"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// GQAttention is causal grouped-query self-attention (Ainslie et al. 2023, "GQA", arXiv:2305.13245), as
// Hugging Face's LlamaAttention computes it (repeat_kv, then eager attention with a causal mask):
//
//   - q is [B·T, heads·hd], k and v are [B·T, kvHeads·hd] (rows in batch-major order, head i in columns
//     i·hd … (i+1)·hd), after the projections and the rotary embedding; hd (head_dim) is q's width over heads
//     and may differ from hidden_size/heads;
//   - heads must be a multiple of kvHeads; query head i reads key/value head i/(heads/kvHeads), as repeat_kv
//     repeats each key/value head for consecutive query heads (kvHeads = heads is multi-head attention,
//     kvHeads = 1 multi-query attention);
//   - scores are scaled by 1/√hd and softmaxed over keys at positions ≤ the query's; padding must be at the
//     end of the rows, where the causal mask keeps real positions from seeing it;
//   - the result is [B·T, heads·hd], the heads merged for o_proj.
//
// The probabilities [B, heads, T, T] are kept for the backward pass unless RecomputeProbs is given; the
// gradients of k and v sum those of the query heads of each group. Shapes that do not fit fail at graph
// building, naming them.
func GQAttention(q, k, v *G.Node, batch, length, heads, kvHeads int, opts ...AttentionOption) (*G.Node, error) {
	if batch <= 0 || length <= 0 || heads <= 0 || kvHeads <= 0 || heads%kvHeads != 0 {
		return nil, fmt.Errorf("nn.GQAttention: batch %d, length %d, heads %d and kvHeads %d must be positive, "+
			"with heads a multiple of kvHeads", batch, length, heads, kvHeads)
	}
	a := &gqa{b: batch, t: length, h: heads, kv: kvHeads}
	for _, o := range opts {
		switch o {
		case RecomputeProbs:
			a.recompute = true
		default:
			return nil, fmt.Errorf("nn.GQAttention: unknown option %d", o)
		}
	}
	return apply(spec{
		name:  "GQAttention",
		sig:   []int{2, 2, 2, 2},
		shape: a.shape,
		f32:   gqaKernel[float32](a),
		f64:   gqaKernel[float64](a),
		grad:  a.grad,
	}, q, k, v)
}

// AttentionOption changes what GQAttention keeps between its forward and backward passes.
type AttentionOption int

// RecomputeProbs keeps two numbers per query row (the softmax's maximum and inverse sum) instead of the
// probabilities [B, heads, T, T], and recomputes the scores block by block in the backward pass, which gives
// the same probabilities bit for bit: one more product per block (5 products instead of 4 over forward and
// backward) for B·heads·T² fewer floats held, 19 MB a layer at SmolLM2-135M's shapes and batch 8 × 256.
const RecomputeProbs AttentionOption = 1

// gqa is the op's configuration and state: the probabilities (or the row statistics) of the last forward
// run, per-worker scratch, and dk and dv, which the backward op computes with dq and two further ops hand on.
type gqa struct {
	b, t, h, kv    int
	recompute      bool
	probs, scratch cache
	pscratch       cache
	dk, dv         cache
}

// keptSize is the length of what the forward run leaves (probabilities, or row statistics when recomputing) and its size.
func (a *gqa) keptSize() int {
	if a.recompute {
		return a.b * a.h * a.t * 2
	}
	return a.b * a.h * a.t * a.t
}

// scratches returns a t×t scratch per worker from c's slots.
func scratches[T float](c *cache, t int) [][]T {
	scr := make([][]T, runtime.GOMAXPROCS(0))
	for w := range scr {
		scr[w] = sized[T](c, w, t*t)
	}
	return scr
}

func (a *gqa) shape(in []tensor.Shape) (tensor.Shape, error) {
	q, k, v := in[0], in[1], in[2]
	n := a.b * a.t
	if q.Dims() != 2 || q[0] != n || q[1]%a.h != 0 || q[1] == 0 {
		return nil, fmt.Errorf("q must be [%d, %d·head_dim], got %v", n, a.h, q)
	}
	hd := q[1] / a.h
	for i, s := range []tensor.Shape{k, v} {
		if s.Dims() != 2 || s[0] != n || s[1] != a.kv*hd {
			return nil, fmt.Errorf("%s must be [%d, %d·%d] for %d heads of head_dim %d, got %v",
				[]string{"k", "v"}[i], n, a.kv, hd, a.kv, hd, s)
		}
	}
	return q.Clone(), nil
}

func (a *gqa) layout(q tensor.Shape) attnLayout {
	hd := q[1] / a.h
	return attnLayout{b: a.b, t: a.t, h: a.h, kv: a.kv, hd: hd, ldq: a.h * hd, ldkv: a.kv * hd, ldo: a.h * hd}
}

func gqaKernel[T float](a *gqa) func(*call[T]) error {
	return func(c *call[T]) error {
		kept := sized[T](&a.probs, 0, a.keptSize())
		if a.recompute {
			attnForward(a.layout(c.shapes[0]), c.in[0], c.in[1], c.in[2], c.out, nil, kept, scratches[T](&a.pscratch, a.t))
		} else {
			attnForward(a.layout(c.shapes[0]), c.in[0], c.in[1], c.in[2], c.out, kept, nil, nil)
		}
		return nil
	}
}

// grad: one op computes dq (its output) and dk, dv (kept), reading the probabilities of the forward run
// (its fourth input, the forward output, orders it after that run); two ops ordered after it by taking dq
// as input hand dk and dv on.
func (a *gqa) grad(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dq, err := apply(spec{
		name:  "GQAttentionGrad",
		sig:   []int{2, 2, 2, 2, 2, 2},
		shape: sameShape(0),
		reads: []int{0, 1, 2, 4},
		f32:   gqaGradKernel[float32](a),
		f64:   gqaGradKernel[float64](a),
	}, inputs[0], inputs[1], inputs[2], output, grad)
	if err != nil {
		return nil, err
	}
	dk, err := a.handOn("GQAttentionGradK", &a.dk, inputs[1], dq)
	if err != nil {
		return nil, err
	}
	dv, err := a.handOn("GQAttentionGradV", &a.dv, inputs[2], dq)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dq, dk, dv}, nil
}

func gqaGradKernel[T float](a *gqa) func(*call[T]) error {
	return func(c *call[T]) error {
		fwd, err := kept[T](&a.probs, 0, a.keptSize())
		if err != nil {
			return err
		}
		scr := scratches[T](&a.scratch, a.t)
		kvSize := len(c.in[1])
		dk, dv := sized[T](&a.dk, 0, kvSize), sized[T](&a.dv, 0, kvSize)
		l := a.layout(c.shapes[0])
		if a.recompute {
			attnBackward(l, c.in[0], c.in[1], c.in[2], c.in[4], c.out, dk, dv, nil, fwd, scr, scratches[T](&a.pscratch, a.t))
		} else {
			attnBackward(l, c.in[0], c.in[1], c.in[2], c.in[4], c.out, dk, dv, fwd, nil, scr, nil)
		}
		return nil
	}
}

// handOn returns an op that copies the gradient kept in slot 0 of from into a tensor shaped like like; after
// is the node it must run after.
func (a *gqa) handOn(name string, from *cache, like, after *G.Node) (*G.Node, error) {
	return apply(spec{
		name:  name,
		sig:   []int{2, 2, 2},
		shape: sameShape(0),
		reads: []int{0},
		f32:   handOnKernel[float32](from),
		f64:   handOnKernel[float64](from),
	}, like, after)
}

func handOnKernel[T float](from *cache) func(*call[T]) error {
	return func(c *call[T]) error {
		d, err := kept[T](from, 0, len(c.out))
		if err != nil {
			return err
		}
		copy(c.out, d)
		return nil
	}
}
