package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Embed returns wte[input] + wpe[position] for every position of tk: [B·T, D]. wpe may have more rows (the
// context length) than the graph's T.
func Embed(wte, wpe *G.Node, tk *Tokens) (*G.Node, error) {
	return apply(spec{
		name: "Embed",
		sig:  []int{2, 2, 2},
		shape: func(in []tensor.Shape) (tensor.Shape, error) {
			wte, wpe := in[0], in[1]
			if wte.Dims() != 2 || wpe.Dims() != 2 || wte[1] != wpe[1] {
				return nil, fmt.Errorf("wte %v and wpe %v must be [V, D] and [T, D]", wte, wpe)
			}
			if tk.T > wpe[0] {
				return nil, fmt.Errorf("graph length %d exceeds the %d positions of wpe", tk.T, wpe[0])
			}
			return tensor.Shape{tk.B * tk.T, wte[1]}, nil
		},
		f32: embedKernel[float32](tk),
		f64: embedKernel[float64](tk),
		grad: func(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
			dwte, err := embedGrad(inputs[0], grad, tk, false)
			if err != nil {
				return nil, err
			}
			dwpe, err := embedGrad(inputs[1], grad, tk, true)
			if err != nil {
				return nil, err
			}
			return G.Nodes{dwte, dwpe}, nil
		},
	}, wte, wpe)
}

func embedKernel[T float](tk *Tokens) func(*call[T]) error {
	return func(c *call[T]) error {
		v, d := c.shapes[0][0], c.shapes[0][1]
		for i, id := range tk.Inputs {
			if id < 0 || id >= v {
				return fmt.Errorf("row %d position %d: id %d outside [0, %d)", i/tk.T, i%tk.T, id, v)
			}
		}
		embedForward(c.in[0], c.in[1], c.out, tk, d)
		return nil
	}
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

// embedGrad scatters the gradient rows onto the table (token ids, or positions) they were read from; the
// table w is read only for its shape.
func embedGrad(w, grad *G.Node, tk *Tokens, positions bool) (*G.Node, error) {
	name := "EmbedGradWTE"
	if positions {
		name = "EmbedGradWPE"
	}
	return apply(spec{
		name:  name,
		sig:   []int{2, 2, 2},
		shape: sameShape(0),
		reads: []int{1},
		f32:   embedGradKernel[float32](tk, positions),
		f64:   embedGradKernel[float64](tk, positions),
	}, w, grad)
}

func embedGradKernel[T float](tk *Tokens, positions bool) func(*call[T]) error {
	return func(c *call[T]) error {
		embedBackward(c.in[1], c.out, tk, c.shapes[0][1], positions)
		return nil
	}
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

// TokenEmbed returns wte[input] for every position of tk: [B·T, D], for wte [V, D] (Hugging Face's
// model.embed_tokens.weight). Llama-family models have no position table: RoPE places the positions. An id
// outside [0, V) fails the run, naming its row and position.
func TokenEmbed(wte *G.Node, tk *Tokens) (*G.Node, error) {
	return apply(spec{
		name: "TokenEmbed",
		sig:  []int{2, 2},
		shape: func(in []tensor.Shape) (tensor.Shape, error) {
			if in[0].Dims() != 2 {
				return nil, fmt.Errorf("wte must be [V, D], got %v", in[0])
			}
			return tensor.Shape{tk.B * tk.T, in[0][1]}, nil
		},
		f32: tokenEmbedKernel[float32](tk),
		f64: tokenEmbedKernel[float64](tk),
		grad: func(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
			dwte, err := embedGrad(inputs[0], grad, tk, false)
			if err != nil {
				return nil, err
			}
			return G.Nodes{dwte}, nil
		},
	}, wte)
}

func tokenEmbedKernel[T float](tk *Tokens) func(*call[T]) error {
	return func(c *call[T]) error {
		v, d := c.shapes[0][0], c.shapes[0][1]
		wte, x := c.in[0], c.out
		for i, id := range tk.Inputs {
			if id < 0 || id >= v {
				return fmt.Errorf("row %d position %d: id %d outside [0, %d)", i/tk.T, i%tk.T, id, v)
			}
		}
		forRange(len(tk.Inputs), d, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				id := tk.Inputs[i]
				copy(x[i*d:(i+1)*d], wte[id*d:(id+1)*d])
			}
		})
		return nil
	}
}
