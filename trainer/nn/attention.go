package nn

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Attention is GPT-2's causal multi-head self-attention on c_attn's output qkv [B·T, 3D] (q | k | v, head h
// in columns h·hd … (h+1)·hd of each), returning the heads merged back into [B·T, D]. Scores are scaled by
// 1/√hd and softmaxed over keys ≤ the query's position. Each head's products run on strided views of qkv, so
// heads are never split or merged by copies; the probabilities are kept for the backward pass.
func Attention(qkv *G.Node, batch, length, heads int) (*G.Node, error) {
	if batch <= 0 || length <= 0 || heads <= 0 {
		return nil, fmt.Errorf("nn.Attention: batch %d, length %d and heads %d must be positive", batch, length, heads)
	}
	a := &attention{b: batch, t: length, h: heads}
	return apply(spec{
		name:  "Attention",
		sig:   []int{2, 2},
		shape: a.shape,
		f32:   attentionKernel[float32](a),
		f64:   attentionKernel[float64](a),
		grad:  a.grad,
	}, qkv)
}

// attention is the op's configuration and state: probs [B, H, T, T] of the last forward run (slot 0, zero
// above the diagonal) and per-worker T×T scratch for the backward pass's dP.
type attention struct {
	b, t, h int
	probs   cache
	scratch cache
}

func (a *attention) shape(in []tensor.Shape) (tensor.Shape, error) {
	s := in[0]
	if s.Dims() != 2 || s[0] != a.b*a.t || s[1]%(3*a.h) != 0 {
		return nil, fmt.Errorf("qkv must be [%d, 3·D] with D divisible by %d heads, got %v", a.b*a.t, a.h, s)
	}
	return tensor.Shape{s[0], s[1] / 3}, nil
}

// layout places q, k and v in qkv's columns (row stride 3·D) and the heads in the output's (stride D).
func (a *attention) layout(d int) attnLayout {
	return attnLayout{b: a.b, t: a.t, h: a.h, kv: a.h, hd: d / a.h, ldq: 3 * d, ldkv: 3 * d, ldo: d}
}

func attentionKernel[T float](a *attention) func(*call[T]) error {
	return func(c *call[T]) error {
		d := c.shapes[0][1] / 3
		qkv := c.in[0]
		probs := sized[T](&a.probs, 0, a.b*a.h*a.t*a.t)
		attnForward(a.layout(d), qkv, qkv[d:], qkv[2*d:], c.out, probs, nil, nil)
		return nil
	}
}

// grad returns d qkv from the output gradient and the probabilities the forward op kept. Its second input
// (the forward output) is there only to order it after the forward run.
func (a *attention) grad(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dqkv, err := apply(spec{
		name:  "AttentionGrad",
		sig:   []int{2, 2, 2, 2},
		shape: sameShape(0),
		reads: []int{0, 2},
		f32:   attentionGradKernel[float32](a),
		f64:   attentionGradKernel[float64](a),
	}, inputs[0], output, grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dqkv}, nil
}

func attentionGradKernel[T float](a *attention) func(*call[T]) error {
	return func(c *call[T]) error {
		probs, err := kept[T](&a.probs, 0, a.b*a.h*a.t*a.t)
		if err != nil {
			return err
		}
		scr := scratches[T](&a.scratch, a.t)
		d := c.shapes[0][1] / 3
		qkv, dqkv := c.in[0], c.out
		attnBackward(a.layout(d), qkv, qkv[d:], qkv[2*d:], c.in[2], dqkv, dqkv[d:], dqkv[2*d:], probs, nil, scr, nil)
		return nil
	}
}

// attnLayout describes where causal attention finds its heads: b rows (sequences) of t positions, h query
// heads of hd columns each sharing kv key/value heads (query head i reads key/value head i/(h/kv)), and the
// row strides of q, of k and v, and of the output (and of their gradients: dq like q, dk and dv like k).
type attnLayout struct {
	b, t, h, kv, hd int
	ldq, ldkv, ldo  int
}

// attnBlock is the number of query rows per block: block i only needs keys before its end, so splitting the
// T×T products into row blocks skips most of the masked upper triangle (5/8 of the work is left at T = 4 blocks).
var attnBlock = 32

// attnForward computes, for every sequence and query head, softmax(Q·Kᵀ/√hd, causal)·V into y. q, k, v and
// y start at head 0 of position 0 of sequence 0; each head's products run on strided views, so heads are never
// split or merged by copies. It keeps either the probabilities [b, h, t, t] (zero above the diagonal) in
// probs, or, when stats is not nil, each row's softmax maximum and inverse sum in stats [b, h, t, 2], working
// in scr (a t×t scratch per worker) instead.
func attnForward[T float](l attnLayout, q, k, v, y, probs, stats []T, scr [][]T) {
	t, hd := l.t, l.hd
	scale := T(1 / math.Sqrt(float64(hd)))
	group := l.h / l.kv
	parallel(l.b*l.h, func(w, job int) {
		bi, hi := job/l.h, job%l.h
		kvh := hi / group
		qh := q[bi*t*l.ldq+hi*hd:]
		kh := k[bi*t*l.ldkv+kvh*hd:]
		vh := v[bi*t*l.ldkv+kvh*hd:]
		var p []T
		if stats == nil {
			p = probs[job*t*t : (job+1)*t*t]
		} else {
			p = scr[w]
		}
		out := y[bi*t*l.ldo+hi*hd:]
		for r0 := 0; r0 < t; r0 += attnBlock {
			r1 := min(r0+attnBlock, t) // rows r0..r1-1 see keys 0..r1-1
			gemm(false, true, r1-r0, r1, hd, scale, qh[r0*l.ldq:], l.ldq, kh, l.ldkv, 0, p[r0*t:], t)
			for i := r0; i < r1; i++ {
				// Only keys before r1 are ever read; the rest of the row stays at its initial zero.
				m, inv := causalSoftmaxRow(p[i*t:i*t+r1], i)
				if stats != nil {
					stats[(job*t+i)*2], stats[(job*t+i)*2+1] = m, inv
				}
			}
			gemm(false, false, r1-r0, hd, r1, 1, p[r0*t:], t, vh, l.ldkv, 0, out[r0*l.ldo:], l.ldo)
		}
	})
}

// attnBackward computes dq, dk and dv from the output gradient g and the kept probabilities, or, when stats
// is not nil, from probabilities recomputed block by block (the same products and replayRow give the forward
// pass's values bit for bit) in pscr, a t×t scratch per worker. Jobs are (sequence, key/value head): each
// sums its group's query heads into dk and dv in order, so no two goroutines write the same rows. scr holds a
// t×t scratch per worker.
func attnBackward[T float](l attnLayout, q, k, v, g, dq, dk, dv, probs, stats []T, scr, pscr [][]T) {
	t, hd := l.t, l.hd
	scale := T(1 / math.Sqrt(float64(hd)))
	group := l.h / l.kv
	parallel(l.b*l.kv, func(w, job int) {
		bi, kvh := job/l.kv, job%l.kv
		kh, vh := k[bi*t*l.ldkv+kvh*hd:], v[bi*t*l.ldkv+kvh*hd:]
		dkh, dvh := dk[bi*t*l.ldkv+kvh*hd:], dv[bi*t*l.ldkv+kvh*hd:]
		dp := scr[w]
		// dK and dV collect contributions from every later row block of every query head of the group.
		for i := 0; i < t; i++ {
			clear(dkh[i*l.ldkv : i*l.ldkv+hd])
			clear(dvh[i*l.ldkv : i*l.ldkv+hd])
		}
		for hi := kvh * group; hi < (kvh+1)*group; hi++ {
			qh, dqh := q[bi*t*l.ldq+hi*hd:], dq[bi*t*l.ldq+hi*hd:]
			dO := g[bi*t*l.ldo+hi*hd:]
			head := bi*l.h + hi
			var p []T
			if stats == nil {
				p = probs[head*t*t : (head+1)*t*t]
			} else {
				p = pscr[w]
			}
			for r0 := 0; r0 < t; r0 += attnBlock {
				r1 := min(r0+attnBlock, t)
				m := r1 - r0
				if stats != nil {
					gemm(false, true, m, r1, hd, scale, qh[r0*l.ldq:], l.ldq, kh, l.ldkv, 0, p[r0*t:], t)
					for i := r0; i < r1; i++ {
						replayRow(p[i*t:i*t+r1], i, stats[(head*t+i)*2], stats[(head*t+i)*2+1])
					}
				}
				// dV += Pᵀ·dO, dP = dO·Vᵀ
				gemm(true, false, r1, hd, m, 1, p[r0*t:], t, dO[r0*l.ldo:], l.ldo, 1, dvh, l.ldkv)
				gemm(false, true, m, r1, hd, 1, dO[r0*l.ldo:], l.ldo, vh, l.ldkv, 0, dp[r0*t:], t)
				// dS = P ∘ (dP − rowsum(P ∘ dP)) on keys ≤ the row, 0 on the other keys of the block.
				for i := r0; i < r1; i++ {
					pr, dr := p[i*t:i*t+i+1], dp[i*t:i*t+r1]
					var dot float64
					for j, pv := range pr {
						dot += float64(pv) * float64(dr[j])
					}
					dt := T(dot)
					for j, pv := range pr {
						dr[j] = pv * (dr[j] - dt)
					}
					clear(dr[i+1:])
				}
				// dQ = scale·dS·K, dK += scale·dSᵀ·Q
				gemm(false, false, m, hd, r1, scale, dp[r0*t:], t, kh, l.ldkv, 0, dqh[r0*l.ldq:], l.ldq)
				gemm(true, false, r1, hd, m, scale, dp[r0*t:], t, qh[r0*l.ldq:], l.ldq, 1, dkh, l.ldkv)
			}
		}
	})
}

// causalSoftmaxRow softmaxes row[0..i] in place and zeroes the keys after position i. It returns the row's
// maximum and the inverse of its sum of exponentials, from which replayRow rebuilds the same probabilities.
func causalSoftmaxRow[T float](row []T, i int) (m, inv T) {
	if r, ok := any(row).([]float32); ok {
		m32, inv32 := causalSoftmaxRow32(r, i)
		return T(m32), T(inv32)
	}
	m = row[0]
	for _, s := range row[1 : i+1] {
		m = max(m, s)
	}
	var sum float64
	for j := 0; j <= i; j++ {
		e := math.Exp(float64(row[j] - m))
		row[j] = T(e)
		sum += e
	}
	inv = T(1 / sum)
	for j := 0; j <= i; j++ {
		row[j] *= inv
	}
	clear(row[i+1:])
	return m, inv
}

// causalSoftmaxRow32 is causalSoftmaxRow on exp32, for training.
func causalSoftmaxRow32(row []float32, i int) (m, inv float32) {
	m = row[0]
	for _, s := range row[1 : i+1] {
		m = max(m, s)
	}
	var sum float32
	for j := 0; j <= i; j++ {
		e := exp32(row[j] - m)
		row[j] = e
		sum += e
	}
	inv = 1 / sum
	for j := 0; j <= i; j++ {
		row[j] *= inv
	}
	clear(row[i+1:])
	return m, inv
}

// replayRow turns a row of the same scores back into causalSoftmaxRow's probabilities, bit for bit, from
// the maximum and inverse sum it returned.
func replayRow[T float](row []T, i int, m, inv T) {
	if r, ok := any(row).([]float32); ok {
		m32, inv32 := float32(m), float32(inv)
		for j := 0; j <= i; j++ {
			r[j] = exp32(r[j]-m32) * inv32
		}
	} else {
		for j := 0; j <= i; j++ {
			row[j] = T(math.Exp(float64(row[j]-m))) * inv
		}
	}
	clear(row[i+1:])
}
