package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"

	"github.com/preftune/preftune/trainer/loss"
)

// NLLMean is the SFT loss: the mean over the masked-in positions of tk of −lp, where lp [B·T] holds the masked
// target log-probs (TargetLogProbs). A batch without masked-in positions has loss 0 and no gradient.
func NLLMean(lp *G.Node, tk *Tokens) (*G.Node, error) {
	return apply(spec{
		name:  "NLLMean",
		sig:   []int{1, dimsScalar},
		shape: scalarShape,
		f32:   nllMeanKernel[float32](tk),
		f64:   nllMeanKernel[float64](tk),
		grad: func(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
			return rowGrad("NLLMeanGrad", tk, func(int) float64 {
				if n := tk.Count(-1); n > 0 {
					return -1 / float64(n)
				}
				return 0
			}, inputs[0], output, grad)
		},
	}, lp)
}

func nllMeanKernel[T float](tk *Tokens) func(*call[T]) error {
	return func(c *call[T]) error {
		n := tk.Count(-1)
		if n == 0 {
			c.scalar = 0
			return nil
		}
		var s float64
		for _, v := range c.in[0] {
			s += float64(v)
		}
		c.scalar = -s / float64(n)
		return nil
	}
}

// rowGrad spreads a scalar loss gradient g onto the positions of lp [B·T]: g·perRow(row). Its second input
// (the loss) orders it after the loss's forward run.
func rowGrad(name string, tk *Tokens, perRow func(row int) float64, lp, loss, grad *G.Node) (G.Nodes, error) {
	d, err := apply(spec{
		name:  name,
		sig:   []int{1, dimsScalar, dimsScalar, 1},
		shape: sameShape(0),
		reads: []int{0},
		f32:   rowGradKernel[float32](tk, perRow),
		f64:   rowGradKernel[float64](tk, perRow),
	}, lp, loss, grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{d}, nil
}

func rowGradKernel[T float](tk *Tokens, perRow func(int) float64) func(*call[T]) error {
	return func(c *call[T]) error {
		g, err := c.scalarIn(2)
		if err != nil {
			return err
		}
		fillRows(c.out, tk.T, func(r int) T { return T(g * perRow(r)) })
		return nil
	}
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
	return apply(dpoSpec(tk, spec), lp)
}

func dpoSpec(tk *Tokens, s *DPOSpec) spec {
	return spec{
		name:  "DPOLoss",
		sig:   []int{1, dimsScalar},
		shape: scalarShape,
		f32:   dpoLossKernel[float32](tk, s),
		f64:   dpoLossKernel[float64](tk, s),
		grad: func(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
			return rowGrad("DPOLossGrad", tk, func(r int) float64 { return s.dRow[r] }, inputs[0], output, grad)
		},
	}
}

func dpoLossKernel[T float](tk *Tokens, s *DPOSpec) func(*call[T]) error {
	return func(c *call[T]) error {
		half := tk.B / 2
		if s.Pairs <= 0 || s.Pairs > half {
			return fmt.Errorf("%d pairs in a batch of %d rows (want 1..%d)", s.Pairs, tk.B, half)
		}
		if len(s.Ref) != tk.B {
			return fmt.Errorf("%d reference log-probs for %d rows", len(s.Ref), tk.B)
		}
		if err := s.Config.Validate(); err != nil {
			return err
		}
		s.Policy = rowSums(c.in[0], tk.B, tk.T, s.Policy)
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
		c.scalar = s.Total
		return nil
	}
}

// rowSums adds lp [B·T] up per row into dst (reused when long enough).
func rowSums[T float](lp []T, b, t int, dst []float64) []float64 {
	if len(dst) != b {
		dst = make([]float64, b)
	}
	for r := 0; r < b; r++ {
		var s float64
		for _, v := range lp[r*t : (r+1)*t] {
			s += float64(v)
		}
		dst[r] = s
	}
	return dst
}
