package nn

import (
	"fmt"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// LayerNormEps is GPT-2's ε; the variance is the biased one.
const LayerNormEps = 1e-5

// LayerNorm normalises each row of x [N, D] and applies weight w [D] and bias b [D].
func LayerNorm(x, w, b *G.Node) (*G.Node, error) {
	return G.ApplyOp(&layerNormOp{base: newBase("LayerNorm")}, x, w, b)
}

type layerNormOp struct {
	base
	out buffer
}

func (op *layerNormOp) Arity() int { return 3 }
func (op *layerNormOp) Type() hm.Type {
	return hm.NewFnType(tensorOf(2), tensorOf(1), tensorOf(1), tensorOf(2))
}

func (op *layerNormOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	x, err := shapeOf(op, in, 0)
	if err != nil {
		return nil, err
	}
	if x.Dims() != 2 {
		return nil, fmt.Errorf("%v: x must be [N, D], got %v", op, x)
	}
	for i := 1; i <= 2; i++ {
		s, err := shapeOf(op, in, i)
		if err != nil {
			return nil, err
		}
		if s.TotalSize() != x[1] {
			return nil, fmt.Errorf("%v: input %d has shape %v, want [%d]", op, i, s, x[1])
		}
	}
	return x.Clone(), nil
}

func (op *layerNormOp) Do(inputs ...G.Value) (G.Value, error) {
	x, err := dense(op, inputs, 0)
	if err != nil {
		return nil, err
	}
	w, err := dense(op, inputs, 1)
	if err != nil {
		return nil, err
	}
	b, err := dense(op, inputs, 2)
	if err != nil {
		return nil, err
	}
	if err := sameDtype(op, x, w, b); err != nil {
		return nil, err
	}
	n, d := x.Shape()[0], x.Shape()[1]
	y := op.out.get(x.Dtype(), n, d)
	switch x.Dtype() {
	case tensor.Float32:
		layerNormForward(f32s(x), f32s(w), f32s(b), f32s(y), d)
	case tensor.Float64:
		layerNormForward(f64s(x), f64s(w), f64s(b), f64s(y), d)
	}
	return y, nil
}

func (op *layerNormOp) DiffWRT(int) []bool { return []bool{true, true, true} }

func (op *layerNormOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	x, w := inputs[0], inputs[1]
	dx, err := G.ApplyOp(&layerNormGradXOp{base: newBase("LayerNormGradX")}, x, w, grad)
	if err != nil {
		return nil, err
	}
	dw, err := G.ApplyOp(&layerNormGradWOp{base: newBase("LayerNormGradW")}, x, grad)
	if err != nil {
		return nil, err
	}
	db, err := ColSum(grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx, dw, db}, nil
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

// layerNormGradXOp: dx = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)) with dx̂ = g·w. The row statistics are
// recomputed: that costs one pass over x and keeps the op stateless.
type layerNormGradXOp struct {
	base
	out buffer
}

func (op *layerNormGradXOp) Arity() int { return 3 }
func (op *layerNormGradXOp) Type() hm.Type {
	return hm.NewFnType(tensorOf(2), tensorOf(1), tensorOf(2), tensorOf(2))
}
func (op *layerNormGradXOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	x, err := shapeOf(op, in, 0)
	if err != nil {
		return nil, err
	}
	return x.Clone(), nil
}

func (op *layerNormGradXOp) Do(inputs ...G.Value) (G.Value, error) {
	x, err := dense(op, inputs, 0)
	if err != nil {
		return nil, err
	}
	w, err := dense(op, inputs, 1)
	if err != nil {
		return nil, err
	}
	g, err := dense(op, inputs, 2)
	if err != nil {
		return nil, err
	}
	if err := sameDtype(op, x, w, g); err != nil {
		return nil, err
	}
	n, d := x.Shape()[0], x.Shape()[1]
	dx := op.out.get(x.Dtype(), n, d)
	switch x.Dtype() {
	case tensor.Float32:
		layerNormBackwardX(f32s(x), f32s(w), f32s(g), f32s(dx), d)
	case tensor.Float64:
		layerNormBackwardX(f64s(x), f64s(w), f64s(g), f64s(dx), d)
	}
	return dx, nil
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

// layerNormGradWOp: dw = Σ_rows g·x̂.
type layerNormGradWOp struct {
	base
	out buffer
}

func (op *layerNormGradWOp) Arity() int { return 2 }
func (op *layerNormGradWOp) Type() hm.Type {
	return hm.NewFnType(tensorOf(2), tensorOf(2), tensorOf(1))
}
func (op *layerNormGradWOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	x, err := shapeOf(op, in, 0)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{x[1]}, nil
}

func (op *layerNormGradWOp) Do(inputs ...G.Value) (G.Value, error) {
	x, err := dense(op, inputs, 0)
	if err != nil {
		return nil, err
	}
	g, err := dense(op, inputs, 1)
	if err != nil {
		return nil, err
	}
	if err := sameDtype(op, x, g); err != nil {
		return nil, err
	}
	d := x.Shape()[1]
	dw := op.out.get(x.Dtype(), d)
	switch x.Dtype() {
	case tensor.Float32:
		layerNormBackwardW(f32s(x), f32s(g), f32s(dw), d)
	case tensor.Float64:
		layerNormBackwardW(f64s(x), f64s(g), f64s(dw), d)
	}
	return dw, nil
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
