package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Grad returns the gradient of the scalar loss with respect to each of wrt (input nodes: the trainable
// weights), as nodes of loss's graph, in wrt's order. It is reverse-mode differentiation as gorgonia's Grad
// (Backpropagate) does it: the nodes in reverse topological order, each op's SymDiff given the sum of the
// gradient terms its output received. Two things differ. The terms are summed by this package's Sum, so a graph
// of this package's ops stays one and PlanBuffers can plan all of it (gorgonia sums them with its own Add,
// which writes into the first term's buffer). And only the inputs on a path from wrt to the loss receive terms;
// the gradients SymDiff also builds for the others (a frozen weight's) feed nothing and are left out when the
// graph is compiled from its roots.
//
// Errors: a loss that is not a scalar; a wrt that is not an input node or does not affect the loss; an op on a
// path from wrt to the loss that is not one of this package's or has no gradient.
func Grad(loss *G.Node, wrt ...*G.Node) (G.Nodes, error) {
	if !loss.IsScalar() {
		return nil, fmt.Errorf("nn.Grad: the loss %v is not a scalar (shape %v)", loss, loss.Shape())
	}
	for _, w := range wrt {
		if w.Op() != nil {
			return nil, fmt.Errorf("nn.Grad: %v is not an input node", w)
		}
	}
	sorted, err := G.Sort(loss.Graph()) // outputs first
	if err != nil {
		return nil, fmt.Errorf("nn.Grad: %w", err)
	}
	// affected: the node depends on a wrt (inputs first); needed: the loss depends on the node.
	affected := map[*G.Node]bool{}
	for _, w := range wrt {
		affected[w] = true
	}
	for i := len(sorted) - 1; i >= 0; i-- {
		n := sorted[i]
		if op := fusedOf(n); op != nil {
			for _, in := range op.inputs {
				if affected[in] {
					affected[n] = true
					break
				}
			}
		} else if n.Op() != nil {
			for _, in := range gradInputs(n) {
				if affected[in] {
					affected[n] = true
					break
				}
			}
		}
	}
	needed := map[*G.Node]bool{loss: true}
	for _, n := range sorted {
		if !needed[n] || !affected[n] || n.Op() == nil {
			continue
		}
		op := fusedOf(n)
		if op == nil {
			return nil, fmt.Errorf("nn.Grad: %v (op %v) lies between the weights and the loss but is not an nn op", n, n.Op())
		}
		if op.grad == nil {
			return nil, fmt.Errorf("nn.Grad: %v lies between the weights and the loss but has no gradient", op)
		}
		for _, in := range op.inputs {
			needed[in] = true
		}
	}
	seed, err := one(loss)
	if err != nil {
		return nil, err
	}
	terms := map[*G.Node]G.Nodes{loss: {seed}}
	grads := map[*G.Node]*G.Node{}
	for _, n := range sorted {
		if !needed[n] || !affected[n] {
			continue
		}
		g, err := Sum(terms[n]...)
		if err != nil {
			return nil, fmt.Errorf("nn.Grad: summing the gradient of %v: %w", n, err)
		}
		grads[n] = g
		op := fusedOf(n)
		if op == nil {
			continue // an input: its gradient is done
		}
		cg, err := op.grad(op.inputs, n, g)
		if err != nil {
			return nil, fmt.Errorf("nn.Grad: gradient of %v: %w", op, err)
		}
		if len(cg) != len(op.inputs) {
			return nil, fmt.Errorf("nn.Grad: gradient of %v has %d terms for %d inputs", op, len(cg), len(op.inputs))
		}
		for i, in := range op.inputs {
			if !affected[in] {
				continue
			}
			if cg[i] == nil {
				return nil, fmt.Errorf("nn.Grad: %v gives no gradient for its input %d (%v)", op, i, in)
			}
			terms[in] = append(terms[in], cg[i])
		}
	}
	out := make(G.Nodes, len(wrt))
	for i, w := range wrt {
		if out[i] = grads[w]; out[i] == nil {
			return nil, fmt.Errorf("nn.Grad: %v does not affect the loss %v", w, loss)
		}
	}
	return out, nil
}

// one is the seed of the backward pass: a scalar input node of the loss's type with value 1.
func one(loss *G.Node) (*G.Node, error) {
	var v any
	switch loss.Dtype() {
	case tensor.Float32:
		v = float32(1)
	case tensor.Float64:
		v = float64(1)
	default:
		return nil, fmt.Errorf("nn.Grad: the loss %v has dtype %v, want float32 or float64", loss, loss.Dtype())
	}
	return G.NewScalar(loss.Graph(), loss.Dtype(), G.WithValue(v), G.WithName(fmt.Sprintf("d%v", loss.Name()))), nil
}

// Sum adds same-shaped tensors (a node's gradient terms): the one node itself, or a new node for two or more.
func Sum(terms ...*G.Node) (*G.Node, error) {
	switch len(terms) {
	case 0:
		return nil, fmt.Errorf("nn.Sum: no terms")
	case 1:
		return terms[0], nil
	}
	sig := make([]int, len(terms)+1)
	for i := range sig {
		sig[i] = dimsAny
	}
	return apply(spec{
		name: "Sum",
		sig:  sig,
		shape: func(in []tensor.Shape) (tensor.Shape, error) {
			for i, s := range in[1:] {
				if !s.Eq(in[0]) {
					return nil, fmt.Errorf("term %d has shape %v, term 0 %v", i+1, s, in[0])
				}
			}
			return in[0].Clone(), nil
		},
		f32: sumKernel[float32],
		f64: sumKernel[float64],
		grad: func(_ G.Nodes, _, grad *G.Node) (G.Nodes, error) {
			out := make(G.Nodes, len(terms))
			for i := range out {
				out[i] = grad
			}
			return out, nil
		},
	}, terms...)
}

func sumKernel[T float](c *call[T]) error {
	if len(c.in) == 2 {
		addInto(c.in[0], c.in[1], c.out)
		return nil
	}
	forRange(len(c.out), 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			s := c.in[0][i]
			for _, x := range c.in[1:] {
				s += x[i]
			}
			c.out[i] = s
		}
	})
	return nil
}
