package nn

import (
	"fmt"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// MatMul computes op(a)·op(b) for 2-D a and b, where op transposes when the flag is set. The tied LM head is
// MatMul(h, wte, false, true); the gradients of MatMul and Linear are MatMuls with other flags.
func MatMul(a, b *G.Node, transA, transB bool) (*G.Node, error) {
	return G.ApplyOp(&matMulOp{base: newBase(fmt.Sprintf("MatMul(%v,%v)", transA, transB)), tA: transA, tB: transB}, a, b)
}

type matMulOp struct {
	base
	tA, tB bool
	out    buffer
}

func (op *matMulOp) Arity() int { return 2 }
func (op *matMulOp) Type() hm.Type {
	return hm.NewFnType(tensorOf(2), tensorOf(2), tensorOf(2))
}

// dims returns m, n, k of the product for the given shapes.
func (op *matMulOp) dims(a, b tensor.Shape) (m, n, k int, err error) {
	if a.Dims() != 2 || b.Dims() != 2 {
		return 0, 0, 0, fmt.Errorf("%v: want 2-D operands, got %v and %v", op, a, b)
	}
	m, k = a[0], a[1]
	if op.tA {
		m, k = k, m
	}
	kb, n := b[0], b[1]
	if op.tB {
		kb, n = n, kb
	}
	if k != kb {
		return 0, 0, 0, fmt.Errorf("%v: inner dimensions differ: %v and %v", op, a, b)
	}
	return m, n, k, nil
}

func (op *matMulOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	a, err := shapeOf(op, in, 0)
	if err != nil {
		return nil, err
	}
	b, err := shapeOf(op, in, 1)
	if err != nil {
		return nil, err
	}
	m, n, _, err := op.dims(a, b)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{m, n}, nil
}

func (op *matMulOp) Do(inputs ...G.Value) (G.Value, error) {
	a, err := dense(op, inputs, 0)
	if err != nil {
		return nil, err
	}
	b, err := dense(op, inputs, 1)
	if err != nil {
		return nil, err
	}
	if err := sameDtype(op, a, b); err != nil {
		return nil, err
	}
	m, n, k, err := op.dims(a.Shape(), b.Shape())
	if err != nil {
		return nil, err
	}
	c := op.out.get(a.Dtype(), m, n)
	lda, ldb := a.Shape()[1], b.Shape()[1]
	switch a.Dtype() {
	case tensor.Float32:
		gemm(op.tA, op.tB, m, n, k, 1, f32s(a), lda, f32s(b), ldb, 0, f32s(c), n)
	case tensor.Float64:
		gemm(op.tA, op.tB, m, n, k, 1, f64s(a), lda, f64s(b), ldb, 0, f64s(c), n)
	}
	return c, nil
}

func (op *matMulOp) DiffWRT(int) []bool { return []bool{true, true} }

func (op *matMulOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	a, b := inputs[0], inputs[1]
	var da, db *G.Node
	var err error
	// C = op(A)·op(B): d op(A) = G·op(B)ᵀ, d op(B) = op(A)ᵀ·G, transposed back where the flag is set.
	if op.tA {
		da, err = MatMul(b, grad, op.tB, true)
	} else {
		da, err = MatMul(grad, b, false, !op.tB)
	}
	if err != nil {
		return nil, err
	}
	if op.tB {
		db, err = MatMul(grad, a, true, op.tA)
	} else {
		db, err = MatMul(a, grad, !op.tA, false)
	}
	if err != nil {
		return nil, err
	}
	return G.Nodes{da, db}, nil
}
