package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// MatMul computes op(a)·op(b) for 2-D a and b, where op transposes when the flag is set. The tied LM head is
// MatMul(h, wte, false, true); the gradients of MatMul and Linear are MatMuls with other flags.
func MatMul(a, b *G.Node, transA, transB bool) (*G.Node, error) {
	mm := matMul{tA: transA, tB: transB}
	return apply(spec{
		name: fmt.Sprintf("MatMul(%v,%v)", transA, transB),
		sig:  []int{2, 2, 2},
		shape: func(in []tensor.Shape) (tensor.Shape, error) {
			m, n, _, err := mm.dims(in[0], in[1])
			return tensor.Shape{m, n}, err
		},
		f32:  matMulKernel[float32](mm),
		f64:  matMulKernel[float64](mm),
		grad: mm.grad,
	}, a, b)
}

type matMul struct{ tA, tB bool }

// dims returns m, n, k of the product for the given shapes.
func (mm matMul) dims(a, b tensor.Shape) (m, n, k int, err error) {
	if a.Dims() != 2 || b.Dims() != 2 {
		return 0, 0, 0, fmt.Errorf("want 2-D operands, got %v and %v", a, b)
	}
	m, k = a[0], a[1]
	if mm.tA {
		m, k = k, m
	}
	kb, n := b[0], b[1]
	if mm.tB {
		kb, n = n, kb
	}
	if k != kb {
		return 0, 0, 0, fmt.Errorf("inner dimensions differ: %v and %v", a, b)
	}
	return m, n, k, nil
}

func matMulKernel[T float](mm matMul) func(*call[T]) error {
	return func(c *call[T]) error {
		m, n, k, err := mm.dims(c.shapes[0], c.shapes[1])
		if err != nil {
			return err
		}
		gemm(mm.tA, mm.tB, m, n, k, 1, c.in[0], c.shapes[0][1], c.in[1], c.shapes[1][1], 0, c.out, n)
		return nil
	}
}

func (mm matMul) grad(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	a, b := inputs[0], inputs[1]
	var da, db *G.Node
	var err error
	// C = op(A)·op(B): d op(A) = G·op(B)ᵀ, d op(B) = op(A)ᵀ·G, transposed back where the flag is set.
	if mm.tA {
		da, err = MatMul(b, grad, mm.tB, true)
	} else {
		da, err = MatMul(grad, b, false, !mm.tB)
	}
	if err != nil {
		return nil, err
	}
	if mm.tB {
		db, err = MatMul(grad, a, true, mm.tA)
	} else {
		db, err = MatMul(a, grad, !mm.tA, false)
	}
	if err != nil {
		return nil, err
	}
	return G.Nodes{da, db}, nil
}
