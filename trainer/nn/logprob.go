package nn

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TargetLogProbs returns, for every position n of tk, mask[n]·log softmax(logits[n])[target[n]]: a [B·T]
// vector. Log-softmax and gather are fused row by row; masked-out rows are skipped entirely (their value and
// gradient are 0), which saves the prompt's and the padding's share of the vocabulary-wide work.
func TargetLogProbs(logits *G.Node, tk *Tokens) (*G.Node, error) {
	// probs keeps the softmax of the masked-in rows of the last forward run, for the backward pass.
	probs := new(cache)
	return apply(spec{
		name: "TargetLogProbs",
		sig:  []int{2, 1},
		shape: func(in []tensor.Shape) (tensor.Shape, error) {
			s := in[0]
			if s.Dims() != 2 || s[0] != tk.B*tk.T {
				return nil, fmt.Errorf("logits must be [%d, V], got %v", tk.B*tk.T, s)
			}
			return tensor.Shape{s[0]}, nil
		},
		f32: targetLogProbsKernel[float32](tk, probs),
		f64: targetLogProbsKernel[float64](tk, probs),
		grad: func(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
			// d logits[n] = g[n]·mask[n]·(onehot(target[n]) − softmax(logits[n])). The second input orders
			// it after the forward run, whose softmax it reads.
			d, err := apply(spec{
				name:  "TargetLogProbsGrad",
				sig:   []int{2, 1, 1, 2},
				shape: sameShape(0),
				reads: []int{0, 2},
				f32:   targetLogProbsGradKernel[float32](tk, probs),
				f64:   targetLogProbsGradKernel[float64](tk, probs),
			}, inputs[0], output, grad)
			if err != nil {
				return nil, err
			}
			return G.Nodes{d}, nil
		},
	}, logits)
}

func targetLogProbsKernel[T float](tk *Tokens, probs *cache) func(*call[T]) error {
	return func(c *call[T]) error {
		n, v := c.shapes[0][0], c.shapes[0][1]
		for i, m := range tk.Mask {
			if t := tk.Targets[i]; m != 0 && (t < 0 || t >= v) {
				return fmt.Errorf("row %d position %d: target %d outside [0, %d)", i/tk.T, i%tk.T, t, v)
			}
		}
		targetLogProbsForward(c.in[0], c.out, sized[T](probs, 0, n*v), tk, v)
		return nil
	}
}

func targetLogProbsGradKernel[T float](tk *Tokens, probs *cache) func(*call[T]) error {
	return func(c *call[T]) error {
		v := c.shapes[0][1]
		p, err := kept[T](probs, 0, c.shapes[0].TotalSize())
		if err != nil {
			return err
		}
		targetLogProbsBackward(c.in[2], c.out, p, tk, v)
		return nil
	}
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
