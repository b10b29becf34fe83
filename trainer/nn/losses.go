package nn

import (
	"fmt"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/preftune/preftune/trainer/loss"
)

// NLLMean is the SFT loss: the mean over the masked-in positions of tk of −lp, where lp [B·T] holds the masked
// target log-probs (TargetLogProbs). A batch without masked-in positions has loss 0 and no gradient.
func NLLMean(lp *G.Node, tk *Tokens) (*G.Node, error) {
	return G.ApplyOp(&nllMeanOp{base: newBase("NLLMean"), tk: tk}, lp)
}

type nllMeanOp struct {
	base
	tk *Tokens
}

func (op *nllMeanOp) Arity() int    { return 1 }
func (op *nllMeanOp) Type() hm.Type { return hm.NewFnType(tensorOf(1), scalarOf()) }
func (op *nllMeanOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return tensor.ScalarShape(), nil
}

func (op *nllMeanOp) Do(inputs ...G.Value) (G.Value, error) {
	lp, err := dense(op, inputs, 0)
	if err != nil {
		return nil, err
	}
	n := op.tk.Count(-1)
	if n == 0 {
		return makeScalar(lp.Dtype(), 0), nil
	}
	var s float64
	switch lp.Dtype() {
	case tensor.Float32:
		for _, v := range f32s(lp) {
			s += float64(v)
		}
	case tensor.Float64:
		for _, v := range f64s(lp) {
			s += v
		}
	}
	return makeScalar(lp.Dtype(), -s/float64(n)), nil
}

func (op *nllMeanOp) DiffWRT(int) []bool { return []bool{true} }

func (op *nllMeanOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	d, err := G.ApplyOp(&rowGradOp{base: newBase("NLLMeanGrad"), tk: op.tk, perRow: func(int) float64 {
		if n := op.tk.Count(-1); n > 0 {
			return -1 / float64(n)
		}
		return 0
	}}, inputs[0], output, grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{d}, nil
}

// rowGradOp spreads a scalar loss gradient g onto the positions of lp [B·T]: g·perRow(row). Its second input
// orders it after the loss's forward run.
type rowGradOp struct {
	base
	tk     *Tokens
	perRow func(row int) float64
	out    buffer
}

func (op *rowGradOp) Arity() int { return 3 }
func (op *rowGradOp) Type() hm.Type {
	return hm.NewFnType(tensorOf(1), scalarOf(), scalarOf(), tensorOf(1))
}
func (op *rowGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapeOf(op, in, 0)
	if err != nil {
		return nil, err
	}
	return s.Clone(), nil
}

func (op *rowGradOp) Do(inputs ...G.Value) (G.Value, error) {
	lp, err := dense(op, inputs, 0)
	if err != nil {
		return nil, err
	}
	g, err := scalar(op, inputs[2])
	if err != nil {
		return nil, err
	}
	d := op.out.get(lp.Dtype(), lp.Shape()...)
	t := op.tk.T
	switch lp.Dtype() {
	case tensor.Float32:
		fillRows(f32s(d), t, func(r int) float32 { return float32(g * op.perRow(r)) })
	case tensor.Float64:
		fillRows(f64s(d), t, func(r int) float64 { return g * op.perRow(r) })
	}
	return d, nil
}

func fillRows[T float](d []T, t int, val func(int) T) {
	for r := 0; r*t < len(d); r++ {
		v := val(r)
		row := d[r*t : (r+1)*t]
		for i := range row {
			row[i] = v
		}
	}
}

// DPOSpec configures a DPO loss node and receives its results. The owner sets Pairs and Ref before each run and
// reads Result, Policy and NLL after it.
type DPOSpec struct {
	Config loss.DPOConfig
	// RPOAlpha weighs the mean per-token NLL of the chosen responses added to the loss (0: none).
	RPOAlpha float64
	// Pairs is how many pairs of the batch are real: rows 0..Pairs-1 are chosen, rows B/2..B/2+Pairs-1 the
	// rejected responses of the same pairs; other rows are padding and do not count.
	Pairs int
	// Ref holds the reference model's per-row log-probs, one per row of the batch.
	Ref []float64

	// Result of the last forward run (DPO part only; Loss there excludes the RPO term).
	Result loss.BatchResult
	// Policy holds the per-row sums of the policy's masked target log-probs of the last run.
	Policy []float64
	// NLL is the mean per-token NLL of the real chosen rows of the last run (computed whether or not RPOAlpha is 0).
	NLL float64
	// Total is the loss the graph differentiates: Result.Loss + RPOAlpha·NLL.
	Total float64

	dRow []float64
}

// DPOLoss is the DPO (+ RPO) loss of a batch whose masked target log-probs are lp [B·T], computed by
// trainer/loss from the per-row sums.
func DPOLoss(lp *G.Node, tk *Tokens, spec *DPOSpec) (*G.Node, error) {
	if tk.B%2 != 0 {
		return nil, fmt.Errorf("nn.DPOLoss: a DPO batch needs an even number of rows, got %d", tk.B)
	}
	return G.ApplyOp(&dpoLossOp{base: newBase("DPOLoss"), tk: tk, spec: spec}, lp)
}

type dpoLossOp struct {
	base
	tk   *Tokens
	spec *DPOSpec
}

func (op *dpoLossOp) Arity() int    { return 1 }
func (op *dpoLossOp) Type() hm.Type { return hm.NewFnType(tensorOf(1), scalarOf()) }
func (op *dpoLossOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return tensor.ScalarShape(), nil
}

func (op *dpoLossOp) Do(inputs ...G.Value) (G.Value, error) {
	lp, err := dense(op, inputs, 0)
	if err != nil {
		return nil, err
	}
	s, tk := op.spec, op.tk
	half := tk.B / 2
	if s.Pairs <= 0 || s.Pairs > half {
		return nil, fmt.Errorf("%v: %d pairs in a batch of %d rows (want 1..%d)", op, s.Pairs, tk.B, half)
	}
	if len(s.Ref) != tk.B {
		return nil, fmt.Errorf("%v: %d reference log-probs for %d rows", op, len(s.Ref), tk.B)
	}
	if err := s.Config.Validate(); err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	s.Policy = rowSums(lp, tk.B, tk.T, s.Policy)
	n := s.Pairs
	tokC, tokR := make([]int, n), make([]int, n)
	for i := range n {
		tokC[i], tokR[i] = tk.Count(i), tk.Count(half+i)
	}
	var dC, dR []float64
	// IPO takes per-token means (loss.DPOBatchTokens); the others the sums.
	s.Result, dC, dR = loss.DPOBatchTokens(s.Config, s.Policy[:n], s.Policy[half:half+n], s.Ref[:n], s.Ref[half:half+n], tokC, tokR)
	if len(s.dRow) != tk.B {
		s.dRow = make([]float64, tk.B)
	}
	clear(s.dRow)
	copy(s.dRow, dC)
	copy(s.dRow[half:], dR)
	s.NLL = 0
	chosenTokens := make([]int, n)
	total := 0
	for i := range chosenTokens {
		chosenTokens[i] = tk.Count(i)
		total += chosenTokens[i]
	}
	if total > 0 {
		nll, gN := loss.NLL(s.Policy[:n], chosenTokens)
		s.NLL = nll
		if s.RPOAlpha != 0 {
			for i, g := range gN {
				s.dRow[i] += s.RPOAlpha * g
			}
		}
	}
	s.Total = s.Result.Loss + s.RPOAlpha*s.NLL
	return makeScalar(lp.Dtype(), s.Total), nil
}

// rowSums adds lp [B·T] up per row into dst (reused when long enough).
func rowSums(lp *tensor.Dense, b, t int, dst []float64) []float64 {
	if len(dst) != b {
		dst = make([]float64, b)
	}
	for r := 0; r < b; r++ {
		var s float64
		switch lp.Dtype() {
		case tensor.Float32:
			for _, v := range f32s(lp)[r*t : (r+1)*t] {
				s += float64(v)
			}
		case tensor.Float64:
			for _, v := range f64s(lp)[r*t : (r+1)*t] {
				s += v
			}
		}
		dst[r] = s
	}
	return dst
}

func (op *dpoLossOp) DiffWRT(int) []bool { return []bool{true} }

func (op *dpoLossOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	d, err := G.ApplyOp(&rowGradOp{base: newBase("DPOLossGrad"), tk: op.tk, perRow: func(r int) float64 {
		return op.spec.dRow[r]
	}}, inputs[0], output, grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{d}, nil
}
