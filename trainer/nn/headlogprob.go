package nn

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// HeadLogProbs fuses the LM head with TargetLogProbs: for every position n of tk it returns
// mask[n]·log softmax(h[n]·Wᵀ)[target[n]], a [B·T] vector, for hidden states h [B·T, D] and the head's weight
// W [V, D] (Hugging Face's lm_head.weight, or model.embed_tokens.weight / GPT-2's wte when tied).
//
// Only the masked-in rows (M of them: no prompt, no padding) are multiplied by the head, and their logits
// live in one [M, V] buffer that the forward pass turns into probabilities and the backward pass into the
// logits' gradient in place; MatMul + TargetLogProbs would hold three [B·T, V] tensors (logits, softmax and
// their gradient). The gradient of h (zero on masked-out rows) and of W come from that buffer by two
// products. float32 runs on exp32. Errors: shapes that do not fit (at graph building); a masked-in target
// outside [0, V) (at run time, naming row and position).
func HeadLogProbs(h, w *G.Node, tk *Tokens) (*G.Node, error) {
	s := &headState{tk: tk}
	return apply(spec{
		name: "HeadLogProbs",
		sig:  []int{2, 2, 1},
		shape: func(in []tensor.Shape) (tensor.Shape, error) {
			h, w := in[0], in[1]
			if h.Dims() != 2 || w.Dims() != 2 || h[0] != tk.B*tk.T || h[1] != w[1] {
				return nil, fmt.Errorf("h %v and W %v must be [%d, D] and [V, D]", h, w, tk.B*tk.T)
			}
			return tensor.Shape{h[0]}, nil
		},
		f32:  headForward[float32](s),
		f64:  headForward[float64](s),
		grad: s.grad,
	}, h, w)
}

// headState is what the forward pass leaves for the backward pass: the masked-in rows, their packed hidden
// states (slot 0 of hc) and their probabilities (slot 0 of probs).
type headState struct {
	tk        *Tokens
	rows      []int
	hc, probs cache
	dh        cache
}

func headForward[T float](s *headState) func(*call[T]) error {
	return func(c *call[T]) error {
		tk := s.tk
		d, v := c.shapes[0][1], c.shapes[1][0]
		s.rows = s.rows[:0]
		for i, m := range tk.Mask {
			if m == 0 {
				continue
			}
			if t := tk.Targets[i]; t < 0 || t >= v {
				return fmt.Errorf("row %d position %d: target %d outside [0, %d)", i/tk.T, i%tk.T, t, v)
			}
			s.rows = append(s.rows, i)
		}
		lp := c.out
		clear(lp)
		m := len(s.rows)
		if m == 0 {
			return nil
		}
		h, w := c.in[0], c.in[1]
		hc := sized[T](&s.hc, 0, m*d)
		for j, r := range s.rows {
			copy(hc[j*d:(j+1)*d], h[r*d:(r+1)*d])
		}
		// The buffer keeps the largest M seen, so batches with fewer target tokens do not reallocate it.
		p := growKept[T](&s.probs, m*v)
		gemm(false, true, m, v, d, 1, hc, d, w, d, 0, p, v)
		parallel(m, func(_, j int) {
			row := p[j*v : (j+1)*v]
			r := s.rows[j]
			target := float64(row[tk.Targets[r]])
			lse := softmaxInPlace(row)
			lp[r] = T(float64(tk.Mask[r]) * (target - lse))
		})
		return nil
	}
}

// softmaxInPlace turns a row of logits into probabilities and returns its log-sum-exp (float64 sums; float32
// rows on exp32).
func softmaxInPlace[T float](row []T) float64 {
	mx := row[0]
	for _, x := range row[1:] {
		mx = max(mx, x)
	}
	var sum float64
	if r32, ok := any(row).([]float32); ok {
		m32 := float32(mx)
		for j, x := range r32 {
			e := exp32(x - m32)
			r32[j] = e
			sum += float64(e)
		}
	} else {
		for j, x := range row {
			e := math.Exp(float64(x - mx))
			row[j] = T(e)
			sum += e
		}
	}
	inv := T(1 / sum)
	for j := range row {
		row[j] *= inv
	}
	return float64(mx) + math.Log(sum)
}

// growKept returns slot 0 of c with length n, reallocating only when its capacity is below n.
func growKept[T float](c *cache, n int) []T {
	s := slots[T](c)
	if len(*s) == 0 {
		*s = append(*s, nil)
	}
	if cap((*s)[0]) < n {
		(*s)[0] = make([]T, n)
	}
	(*s)[0] = (*s)[0][:n]
	return (*s)[0]
}

// grad: one op turns the kept probabilities into the logits' gradient in place and returns dh [B·T, D] (its
// third input, the forward output, orders it after the forward run); a second op, ordered after it by taking
// dh, returns dW [V, D] from the same buffer. A frozen head (LoRA) asks for dh only, and the graph leaves the
// second op, a product as large as the forward one, out.
func (s *headState) grad(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dh, err := apply(spec{
		name:  "HeadLogProbsGrad",
		sig:   []int{2, 2, 1, 1, 2},
		shape: sameShape(0),
		reads: []int{1, 3},
		f32:   headBackward[float32](s),
		f64:   headBackward[float64](s),
	}, inputs[0], inputs[1], output, grad)
	if err != nil {
		return nil, err
	}
	dw, err := apply(spec{
		name:  "HeadLogProbsGradW",
		sig:   []int{2, 2, 2, 2},
		shape: sameShape(1),
		reads: []int{1},
		f32:   headBackwardW[float32](s),
		f64:   headBackwardW[float64](s),
	}, inputs[0], inputs[1], dh)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dh, dw}, nil
}

// headBackward: with s_r = g[r]·mask[r], d logits_r = s_r·(onehot(target_r) − p_r), written over p; then
// dh = d logits·W on the masked-in rows and 0 on the others.
func headBackward[T float](s *headState) func(*call[T]) error {
	return func(c *call[T]) error {
		tk := s.tk
		w, g, dh := c.in[1], c.in[3], c.out
		d, v := c.shapes[0][1], c.shapes[1][0]
		m := len(s.rows)
		clear(dh)
		if m == 0 {
			return nil
		}
		p, err := kept[T](&s.probs, 0, m*v)
		if err != nil {
			return err
		}
		forRange(m, v, func(lo, hi int) {
			for j := lo; j < hi; j++ {
				r := s.rows[j]
				sc := g[r] * T(tk.Mask[r])
				row := p[j*v : (j+1)*v]
				for k := range row {
					row[k] *= -sc
				}
				row[tk.Targets[r]] += sc
			}
		})
		dhc := sized[T](&s.dh, 0, m*d)
		gemm(false, false, m, d, v, 1, p, v, w, d, 0, dhc, d)
		for j, r := range s.rows {
			copy(dh[r*d:(r+1)*d], dhc[j*d:(j+1)*d])
		}
		return nil
	}
}

// headBackwardW: dW = d logitsᵀ·h over the masked-in rows, from the buffer headBackward left.
func headBackwardW[T float](s *headState) func(*call[T]) error {
	return func(c *call[T]) error {
		dw := c.out
		d, v := c.shapes[0][1], c.shapes[1][0]
		m := len(s.rows)
		if m == 0 {
			clear(dw)
			return nil
		}
		p, err := kept[T](&s.probs, 0, m*v)
		if err != nil {
			return err
		}
		hc, err := kept[T](&s.hc, 0, m*d)
		if err != nil {
			return err
		}
		gemm(true, false, v, d, m, 1, p, v, hc, d, 0, dw, d)
		return nil
	}
}
