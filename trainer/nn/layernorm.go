package nn

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// LayerNormEps is GPT-2's ε; the variance is the biased one.
const LayerNormEps = 1e-5

// LayerNorm normalises each row of x [N, D] and applies weight w [D] and bias b [D].
func LayerNorm(x, w, b *G.Node) (*G.Node, error) {
	return apply(spec{
		name: "LayerNorm",
		sig:  []int{2, 1, 1, 2},
		shape: func(in []tensor.Shape) (tensor.Shape, error) {
			x := in[0]
			if x.Dims() != 2 {
				return nil, fmt.Errorf("x must be [N, D], got %v", x)
			}
			for i := 1; i <= 2; i++ {
				if in[i].TotalSize() != x[1] {
					return nil, fmt.Errorf("input %d has shape %v, want [%d]", i, in[i], x[1])
				}
			}
			return x.Clone(), nil
		},
		f32:  layerNormKernel[float32],
		f64:  layerNormKernel[float64],
		grad: layerNormGrad,
	}, x, w, b)
}

func layerNormKernel[T float](c *call[T]) error {
	layerNormForward(c.in[0], c.in[1], c.in[2], c.out, c.shapes[0][1])
	return nil
}

func layerNormGrad(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	x, w := inputs[0], inputs[1]
	// dx = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)) with dx̂ = g·w. The row statistics are recomputed: that
	// costs one pass over x and keeps the op stateless.
	dx, err := apply(spec{
		name:  "LayerNormGradX",
		sig:   []int{2, 1, 2, 2},
		shape: sameShape(0),
		f32:   layerNormGradXKernel[float32],
		f64:   layerNormGradXKernel[float64],
	}, x, w, grad)
	if err != nil {
		return nil, err
	}
	// dw = Σ_rows g·x̂.
	dw, err := apply(spec{
		name:  "LayerNormGradW",
		sig:   []int{2, 2, 1},
		shape: func(in []tensor.Shape) (tensor.Shape, error) { return tensor.Shape{in[0][1]}, nil },
		f32:   layerNormGradWKernel[float32],
		f64:   layerNormGradWKernel[float64],
	}, x, grad)
	if err != nil {
		return nil, err
	}
	db, err := ColSum(grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx, dw, db}, nil
}

func layerNormGradXKernel[T float](c *call[T]) error {
	layerNormBackwardX(c.in[0], c.in[1], c.in[2], c.out, c.shapes[0][1])
	return nil
}

func layerNormGradWKernel[T float](c *call[T]) error {
	layerNormBackwardW(c.in[0], c.in[1], c.out, c.shapes[0][1])
	return nil
}

// rowStats returns the mean and 1/sqrt(var+ε) of one row, accumulated in float64.
func rowStats[T float](row []T) (mean, rstd float64) {
	var s float64
	for _, v := range row {
		s += float64(v)
	}
	mean = s / float64(len(row))
	var q float64
	for _, v := range row {
		c := float64(v) - mean
		q += c * c
	}
	return mean, 1 / math.Sqrt(q/float64(len(row))+LayerNormEps)
}

func layerNormForward[T float](x, w, b, y []T, d int) {
	forRange(len(x)/d, d, func(lo, hi int) { layerNormForwardRows(x[lo*d:hi*d], w, b, y[lo*d:hi*d], d) })
}

func layerNormForwardRows[T float](x, w, b, y []T, d int) {
	for r := 0; r < len(x); r += d {
		row, out := x[r:r+d], y[r:r+d]
		mean, rstd := rowStats(row)
		m, s := T(mean), T(rstd)
		for i, v := range row {
			out[i] = (v-m)*s*w[i] + b[i]
		}
	}
}

func layerNormBackwardX[T float](x, w, g, dx []T, d int) {
	forRange(len(x)/d, d, func(lo, hi int) {
		layerNormBackwardXRows(x[lo*d:hi*d], w, g[lo*d:hi*d], dx[lo*d:hi*d], d)
	})
}

func layerNormBackwardXRows[T float](x, w, g, dx []T, d int) {
	for r := 0; r < len(x); r += d {
		row, gr, out := x[r:r+d], g[r:r+d], dx[r:r+d]
		mean, rstd := rowStats(row)
		var sumDh, sumDhXh float64
		for i, v := range row {
			dh := float64(gr[i]) * float64(w[i])
			sumDh += dh
			sumDhXh += dh * (float64(v) - mean) * rstd
		}
		a := sumDh / float64(d)
		c := sumDhXh / float64(d)
		for i, v := range row {
			xh := (float64(v) - mean) * rstd
			dh := float64(gr[i]) * float64(w[i])
			out[i] = T(rstd * (dh - a - xh*c))
		}
	}
}

func layerNormBackwardW[T float](x, g, dw []T, d int) {
	clear(dw)
	for r := 0; r < len(x); r += d {
		row, gr := x[r:r+d], g[r:r+d]
		mean, rstd := rowStats(row)
		m, s := T(mean), T(rstd)
		for i, v := range row {
			dw[i] += gr[i] * (v - m) * s
		}
	}
}
