package nn

import (
	"fmt"
	"math"
	"runtime"

	"github.com/chewxy/hm"
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
	return G.ApplyOp(&attentionOp{base: newBase("Attention"), b: batch, t: length, h: heads}, qkv)
}

type attentionOp struct {
	base
	b, t, h int
	out     buffer
	// probs [B, H, T, T] of the last forward run, zero above the diagonal.
	probs32 []float32
	probs64 []float64
}

func (op *attentionOp) Arity() int    { return 1 }
func (op *attentionOp) Type() hm.Type { return hm.NewFnType(tensorOf(2), tensorOf(2)) }

func (op *attentionOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapeOf(op, in, 0)
	if err != nil {
		return nil, err
	}
	if s.Dims() != 2 || s[0] != op.b*op.t || s[1]%(3*op.h) != 0 {
		return nil, fmt.Errorf("%v: qkv must be [%d, 3·D] with D divisible by %d heads, got %v", op, op.b*op.t, op.h, s)
	}
	return tensor.Shape{s[0], s[1] / 3}, nil
}

func (op *attentionOp) Do(inputs ...G.Value) (G.Value, error) {
	qkv, err := dense(op, inputs, 0)
	if err != nil {
		return nil, err
	}
	d := qkv.Shape()[1] / 3
	y := op.out.get(qkv.Dtype(), op.b*op.t, d)
	n := op.b * op.h * op.t * op.t
	switch qkv.Dtype() {
	case tensor.Float32:
		if len(op.probs32) != n {
			op.probs32 = make([]float32, n)
		}
		attentionForward(f32s(qkv), f32s(y), op.probs32, op.b, op.t, op.h, d)
	case tensor.Float64:
		if len(op.probs64) != n {
			op.probs64 = make([]float64, n)
		}
		attentionForward(f64s(qkv), f64s(y), op.probs64, op.b, op.t, op.h, d)
	}
	return y, nil
}

func (op *attentionOp) DiffWRT(int) []bool { return []bool{true} }

func (op *attentionOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dqkv, err := G.ApplyOp(&attentionGradOp{base: newBase("AttentionGrad"), fwd: op}, inputs[0], output, grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dqkv}, nil
}

// attnBlock is the number of query rows per block: block i only needs keys before its end, so splitting the
// T×T products into row blocks skips most of the masked upper triangle (5/8 of the work is left at T = 4 blocks).
var attnBlock = 32

func attentionForward[T float](qkv, y, probs []T, b, t, h, d int) {
	hd := d / h
	scale := T(1 / math.Sqrt(float64(hd)))
	ld := 3 * d
	parallel(b*h, func(_, job int) {
		bi, hi := job/h, job%h
		base := bi * t * ld
		q := qkv[base+hi*hd:]
		k := qkv[base+d+hi*hd:]
		v := qkv[base+2*d+hi*hd:]
		p := probs[job*t*t : (job+1)*t*t]
		out := y[bi*t*d+hi*hd:]
		for r0 := 0; r0 < t; r0 += attnBlock {
			r1 := min(r0+attnBlock, t) // rows r0..r1-1 see keys 0..r1-1
			gemm(false, true, r1-r0, r1, hd, scale, q[r0*ld:], ld, k, ld, 0, p[r0*t:], t)
			for i := r0; i < r1; i++ {
				// Only keys before r1 are ever read; the rest of the row stays at its initial zero.
				causalSoftmaxRow(p[i*t:i*t+r1], i)
			}
			gemm(false, false, r1-r0, hd, r1, 1, p[r0*t:], t, v, ld, 0, out[r0*d:], d)
		}
	})
}

// causalSoftmaxRow softmaxes row[0..i] in place and zeroes the keys after position i.
func causalSoftmaxRow[T float](row []T, i int) {
	if r, ok := any(row).([]float32); ok {
		causalSoftmaxRow32(r, i)
		return
	}
	m := row[0]
	for _, s := range row[1 : i+1] {
		m = max(m, s)
	}
	var sum float64
	for j := 0; j <= i; j++ {
		e := math.Exp(float64(row[j] - m))
		row[j] = T(e)
		sum += e
	}
	inv := T(1 / sum)
	for j := 0; j <= i; j++ {
		row[j] *= inv
	}
	clear(row[i+1:])
}

// attentionGradOp returns d qkv from the output gradient and the probabilities its forward op kept. Its
// second input (the forward output) is there only to order it after the forward run.
type attentionGradOp struct {
	base
	fwd *attentionOp
	out buffer
	// per-worker T×T scratch for dP
	scratch32 [][]float32
	scratch64 [][]float64
}

func (op *attentionGradOp) Arity() int { return 3 }
func (op *attentionGradOp) Type() hm.Type {
	return hm.NewFnType(tensorOf(2), tensorOf(2), tensorOf(2), tensorOf(2))
}
func (op *attentionGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapeOf(op, in, 0)
	if err != nil {
		return nil, err
	}
	return s.Clone(), nil
}

func (op *attentionGradOp) Do(inputs ...G.Value) (G.Value, error) {
	qkv, err := dense(op, inputs, 0)
	if err != nil {
		return nil, err
	}
	g, err := dense(op, inputs, 2)
	if err != nil {
		return nil, err
	}
	if err := sameDtype(op, qkv, g); err != nil {
		return nil, err
	}
	f := op.fwd
	d := qkv.Shape()[1] / 3
	dqkv := op.out.get(qkv.Dtype(), qkv.Shape()...)
	workers := runtime.GOMAXPROCS(0)
	switch qkv.Dtype() {
	case tensor.Float32:
		if len(f.probs32) == 0 {
			return nil, fmt.Errorf("%v: forward pass has not run", op)
		}
		op.scratch32 = scratch(op.scratch32, workers, f.t*f.t)
		attentionBackward(f32s(qkv), f32s(g), f32s(dqkv), f.probs32, op.scratch32, f.b, f.t, f.h, d)
	case tensor.Float64:
		if len(f.probs64) == 0 {
			return nil, fmt.Errorf("%v: forward pass has not run", op)
		}
		op.scratch64 = scratch(op.scratch64, workers, f.t*f.t)
		attentionBackward(f64s(qkv), f64s(g), f64s(dqkv), f.probs64, op.scratch64, f.b, f.t, f.h, d)
	}
	return dqkv, nil
}

func scratch[T float](s [][]T, workers, size int) [][]T {
	if len(s) < workers {
		s = make([][]T, workers)
	}
	for i := range s {
		if len(s[i]) != size {
			s[i] = make([]T, size)
		}
	}
	return s
}

func attentionBackward[T float](qkv, g, dqkv, probs []T, scr [][]T, b, t, h, d int) {
	hd := d / h
	scale := T(1 / math.Sqrt(float64(hd)))
	ld := 3 * d
	parallel(b*h, func(w, job int) {
		bi, hi := job/h, job%h
		base := bi * t * ld
		q, k, v := qkv[base+hi*hd:], qkv[base+d+hi*hd:], qkv[base+2*d+hi*hd:]
		dq, dk, dv := dqkv[base+hi*hd:], dqkv[base+d+hi*hd:], dqkv[base+2*d+hi*hd:]
		dO := g[bi*t*d+hi*hd:]
		p := probs[job*t*t : (job+1)*t*t]
		dp := scr[w]
		// dK and dV collect contributions from every later row block.
		for i := 0; i < t; i++ {
			clear(dk[i*ld : i*ld+hd])
			clear(dv[i*ld : i*ld+hd])
		}
		for r0 := 0; r0 < t; r0 += attnBlock {
			r1 := min(r0+attnBlock, t)
			m := r1 - r0
			// dV += Pᵀ·dO, dP = dO·Vᵀ
			gemm(true, false, r1, hd, m, 1, p[r0*t:], t, dO[r0*d:], d, 1, dv, ld)
			gemm(false, true, m, r1, hd, 1, dO[r0*d:], d, v, ld, 0, dp[r0*t:], t)
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
			gemm(false, false, m, hd, r1, scale, dp[r0*t:], t, k, ld, 0, dq[r0*ld:], ld)
			gemm(true, false, r1, hd, m, scale, dp[r0*t:], t, q[r0*ld:], ld, 1, dk, ld)
		}
	})
}

// causalSoftmaxRow32 is causalSoftmaxRow on exp32, for training.
func causalSoftmaxRow32(row []float32, i int) {
	m := row[0]
	for _, s := range row[1 : i+1] {
		m = max(m, s)
	}
	var sum float32
	for j := 0; j <= i; j++ {
		e := exp32(row[j] - m)
		row[j] = e
		sum += e
	}
	inv := 1 / sum
	for j := 0; j <= i; j++ {
		row[j] *= inv
	}
	clear(row[i+1:])
}
