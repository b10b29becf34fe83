package nn

import (
	"fmt"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Embed returns wte[input] + wpe[position] for every position of tk: [B·T, D]. wpe may have more rows (the
// context length) than the graph's T.
func Embed(wte, wpe *G.Node, tk *Tokens) (*G.Node, error) {
	return G.ApplyOp(&embedOp{base: newBase("Embed"), tk: tk}, wte, wpe)
}

type embedOp struct {
	base
	tk  *Tokens
	out buffer
}

func (op *embedOp) Arity() int { return 2 }
func (op *embedOp) Type() hm.Type {
	return hm.NewFnType(tensorOf(2), tensorOf(2), tensorOf(2))
}

func (op *embedOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	wte, err := shapeOf(op, in, 0)
	if err != nil {
		return nil, err
	}
	wpe, err := shapeOf(op, in, 1)
	if err != nil {
		return nil, err
	}
	if wte.Dims() != 2 || wpe.Dims() != 2 || wte[1] != wpe[1] {
		return nil, fmt.Errorf("%v: wte %v and wpe %v must be [V, D] and [T, D]", op, wte, wpe)
	}
	if op.tk.T > wpe[0] {
		return nil, fmt.Errorf("%v: graph length %d exceeds the %d positions of wpe", op, op.tk.T, wpe[0])
	}
	return tensor.Shape{op.tk.B * op.tk.T, wte[1]}, nil
}

func (op *embedOp) Do(inputs ...G.Value) (G.Value, error) {
	wte, err := dense(op, inputs, 0)
	if err != nil {
		return nil, err
	}
	wpe, err := dense(op, inputs, 1)
	if err != nil {
		return nil, err
	}
	if err := sameDtype(op, wte, wpe); err != nil {
		return nil, err
	}
	v, d := wte.Shape()[0], wte.Shape()[1]
	for i, id := range op.tk.Inputs {
		if id < 0 || id >= v {
			return nil, fmt.Errorf("%v: row %d position %d: id %d outside [0, %d)", op, i/op.tk.T, i%op.tk.T, id, v)
		}
	}
	x := op.out.get(wte.Dtype(), op.tk.B*op.tk.T, d)
	switch wte.Dtype() {
	case tensor.Float32:
		embedForward(f32s(wte), f32s(wpe), f32s(x), op.tk, d)
	case tensor.Float64:
		embedForward(f64s(wte), f64s(wpe), f64s(x), op.tk, d)
	}
	return x, nil
}

func embedForward[T float](wte, wpe, x []T, tk *Tokens, d int) {
	forRange(len(tk.Inputs), d, func(lo, hi int) { embedForwardRows(wte, wpe, x, tk, d, lo, hi) })
}

func embedForwardRows[T float](wte, wpe, x []T, tk *Tokens, d, lo, hi int) {
	for i := lo; i < hi; i++ {
		id := tk.Inputs[i]
		p := i % tk.T
		tok, pos, out := wte[id*d:(id+1)*d], wpe[p*d:(p+1)*d], x[i*d:(i+1)*d]
		for j := range out {
			out[j] = tok[j] + pos[j]
		}
	}
}

func (op *embedOp) DiffWRT(int) []bool { return []bool{true, true} }

func (op *embedOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dwte, err := G.ApplyOp(&embedGradOp{base: newBase("EmbedGradWTE"), tk: op.tk, positions: false}, inputs[0], grad)
	if err != nil {
		return nil, err
	}
	dwpe, err := G.ApplyOp(&embedGradOp{base: newBase("EmbedGradWPE"), tk: op.tk, positions: true}, inputs[1], grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dwte, dwpe}, nil
}

// embedGradOp scatters the gradient rows onto the table (token ids, or positions) they were read from; its
// first input is the table, read only for its shape.
type embedGradOp struct {
	base
	tk        *Tokens
	positions bool
	out       buffer
}

func (op *embedGradOp) Arity() int { return 2 }
func (op *embedGradOp) Type() hm.Type {
	return hm.NewFnType(tensorOf(2), tensorOf(2), tensorOf(2))
}
func (op *embedGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	w, err := shapeOf(op, in, 0)
	if err != nil {
		return nil, err
	}
	return w.Clone(), nil
}

func (op *embedGradOp) Do(inputs ...G.Value) (G.Value, error) {
	w, err := dense(op, inputs, 0)
	if err != nil {
		return nil, err
	}
	g, err := dense(op, inputs, 1)
	if err != nil {
		return nil, err
	}
	dw := op.out.get(w.Dtype(), w.Shape()...)
	switch w.Dtype() {
	case tensor.Float32:
		embedBackward(f32s(g), f32s(dw), op.tk, w.Shape()[1], op.positions)
	case tensor.Float64:
		embedBackward(f64s(g), f64s(dw), op.tk, w.Shape()[1], op.positions)
	}
	return dw, nil
}

func embedBackward[T float](g, dw []T, tk *Tokens, d int, positions bool) {
	clear(dw)
	for i, id := range tk.Inputs {
		row := id
		if positions {
			row = i % tk.T
		}
		dst, src := dw[row*d:(row+1)*d], g[i*d:(i+1)*d]
		for j, v := range src {
			dst[j] += v
		}
	}
}
