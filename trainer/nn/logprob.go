package nn

import (
	"fmt"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TargetLogProbs returns, for every position n of tk, mask[n]·log softmax(logits[n])[target[n]]: a [B·T]
// vector. Log-softmax and gather are fused row by row; masked-out rows are skipped entirely (their value and
// gradient are 0), which saves the prompt's and the padding's share of the vocabulary-wide work.
func TargetLogProbs(logits *G.Node, tk *Tokens) (*G.Node, error) {
	return G.ApplyOp(&targetLogProbsOp{base: newBase("TargetLogProbs"), tk: tk}, logits)
}

type targetLogProbsOp struct {
	base
	tk  *Tokens
	out buffer
	// softmax of the masked-in rows of the last forward run, for the backward pass.
	probs32 []float32
	probs64 []float64
}

func (op *targetLogProbsOp) Arity() int    { return 1 }
func (op *targetLogProbsOp) Type() hm.Type { return hm.NewFnType(tensorOf(2), tensorOf(1)) }

func (op *targetLogProbsOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapeOf(op, in, 0)
	if err != nil {
		return nil, err
	}
	if s.Dims() != 2 || s[0] != op.tk.B*op.tk.T {
		return nil, fmt.Errorf("%v: logits must be [%d, V], got %v", op, op.tk.B*op.tk.T, s)
	}
	return tensor.Shape{s[0]}, nil
}

func (op *targetLogProbsOp) Do(inputs ...G.Value) (G.Value, error) {
	logits, err := dense(op, inputs, 0)
	if err != nil {
		return nil, err
	}
	n, v := logits.Shape()[0], logits.Shape()[1]
	for i, m := range op.tk.Mask {
		if t := op.tk.Targets[i]; m != 0 && (t < 0 || t >= v) {
			return nil, fmt.Errorf("%v: row %d position %d: target %d outside [0, %d)", op, i/op.tk.T, i%op.tk.T, t, v)
		}
	}
	lp := op.out.get(logits.Dtype(), n)
	switch logits.Dtype() {
	case tensor.Float32:
		if len(op.probs32) != n*v {
			op.probs32 = make([]float32, n*v)
		}
		targetLogProbsForward(f32s(logits), f32s(lp), op.probs32, op.tk, v)
	case tensor.Float64:
		if len(op.probs64) != n*v {
			op.probs64 = make([]float64, n*v)
		}
		targetLogProbsForward(f64s(logits), f64s(lp), op.probs64, op.tk, v)
	}
	return lp, nil
}

func targetLogProbsForward[T float](logits, lp, probs []T, tk *Tokens, v int) {
	parallel(len(lp), func(_, r int) {
		m := tk.Mask[r]
		if m == 0 {
			lp[r] = 0
			return
		}
		row, pr := logits[r*v:(r+1)*v], probs[r*v:(r+1)*v]
		mx := row[0]
		for _, x := range row[1:] {
			mx = max(mx, x)
		}
		var sum float64
		for j, x := range row {
			e := math.Exp(float64(x - mx))
			pr[j] = T(e)
			sum += e
		}
		inv := T(1 / sum)
		for j := range pr {
			pr[j] *= inv
		}
		lse := float64(mx) + math.Log(sum)
		lp[r] = T(float64(m) * (float64(row[tk.Targets[r]]) - lse))
	})
}

func (op *targetLogProbsOp) DiffWRT(int) []bool { return []bool{true} }

func (op *targetLogProbsOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	d, err := G.ApplyOp(&targetLogProbsGradOp{base: newBase("TargetLogProbsGrad"), fwd: op}, inputs[0], output, grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{d}, nil
}

// targetLogProbsGradOp: d logits[n] = g[n]·mask[n]·(onehot(target[n]) − softmax(logits[n])). Its second input
// orders it after the forward run, whose softmax it reads.
type targetLogProbsGradOp struct {
	base
	fwd *targetLogProbsOp
	out buffer
}

func (op *targetLogProbsGradOp) Arity() int { return 3 }
func (op *targetLogProbsGradOp) Type() hm.Type {
	return hm.NewFnType(tensorOf(2), tensorOf(1), tensorOf(1), tensorOf(2))
}
func (op *targetLogProbsGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapeOf(op, in, 0)
	if err != nil {
		return nil, err
	}
	return s.Clone(), nil
}

func (op *targetLogProbsGradOp) Do(inputs ...G.Value) (G.Value, error) {
	logits, err := dense(op, inputs, 0)
	if err != nil {
		return nil, err
	}
	g, err := dense(op, inputs, 2)
	if err != nil {
		return nil, err
	}
	if err := sameDtype(op, logits, g); err != nil {
		return nil, err
	}
	v := logits.Shape()[1]
	d := op.out.get(logits.Dtype(), logits.Shape()...)
	switch logits.Dtype() {
	case tensor.Float32:
		if len(op.fwd.probs32) != logits.Shape().TotalSize() {
			return nil, fmt.Errorf("%v: forward pass has not run", op)
		}
		targetLogProbsBackward(f32s(g), f32s(d), op.fwd.probs32, op.fwd.tk, v)
	case tensor.Float64:
		if len(op.fwd.probs64) != logits.Shape().TotalSize() {
			return nil, fmt.Errorf("%v: forward pass has not run", op)
		}
		targetLogProbsBackward(f64s(g), f64s(d), op.fwd.probs64, op.fwd.tk, v)
	}
	return d, nil
}

func targetLogProbsBackward[T float](g, d, probs []T, tk *Tokens, v int) {
	forRange(len(tk.Mask), v, func(lo, hi int) { targetLogProbsBackwardRows(g, d, probs, tk, v, lo, hi) })
}

func targetLogProbsBackwardRows[T float](g, d, probs []T, tk *Tokens, v, lo, hi int) {
	for r := lo; r < hi; r++ {
		m := tk.Mask[r]
		out := d[r*v : (r+1)*v]
		if m == 0 {
			clear(out)
			continue
		}
		s := g[r] * T(m)
		for j, p := range probs[r*v : (r+1)*v] {
			out[j] = -s * p
		}
		out[tk.Targets[r]] += s
	}
}
