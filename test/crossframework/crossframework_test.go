package crossframework

import (
	"fmt"
	"math"
	"testing"

	"gorgonia.org/tensor"

	"github.com/preftune/preftune/trainer/data"
	"github.com/preftune/preftune/trainer/loss"
	"github.com/preftune/preftune/trainer/model"
)

// Tolerances. err(go, ref) = |go − ref| / max(1, |ref|): absolute below magnitude 1, relative above. The float64
// model must agree with PyTorch's float64 to rounding; the float32 model (the one that trains) to 1e-4, as
// llm.c holds its CPU code to PyTorch. Gradients are compared per tensor relative to the tensor's largest
// reference gradient, since float32 rounding of a gradient scales with the gradients around it. A decoding step
// counts as a tie when PyTorch's margin (logit gap, or probability from the draw to a CDF boundary) is under
// tie: a few times the error the dtype makes in them.
var tolerances = map[tensor.Dtype]struct{ value, grad, tie float64 }{
	tensor.Float64: {1e-9, 1e-9, 1e-9},
	tensor.Float32: {1e-4, 1e-4, 1e-5},
}

// dpoCases cover every loss type through the whole model; the rewards and gradients change with each.
var dpoCases = []dpoCase{
	{loss.DPOConfig{Beta: 0.1, LossType: loss.LossSigmoid, LabelSmoothing: 0.1}, 0.5},
	{loss.DPOConfig{Beta: 0.5, LossType: loss.LossIPO}, 0},
	{loss.DPOConfig{Beta: 0.2, LossType: loss.LossHinge}, 0},
	{loss.DPOConfig{Beta: 0.1, LossType: loss.LossRobust, LabelSmoothing: 0.2}, 0},
}

type dpoCase struct {
	cfg loss.DPOConfig
	rpo float64
}

// refOffsets make the reference log-probs differ from the policy's by a few nats, so that every DPO loss sits
// in its sensitive range (neither saturated nor flat).
var refOffsets = []float64{-1.5, 2.0, 0.3, 0, 0.8, -0.4, 1.1, 0}

// TestMatchesPyTorch writes a model with trainer/checkpoint, evaluates a DPO batch (which is also used as an SFT
// batch) with gpt2_ref.py in float64, and holds the Go model, in float64 and in float32, to its numbers.
func TestMatchesPyTorch(t *testing.T) {
	py := findTorch(t)
	for _, gc := range gpt2Cases {
		t.Run(gc.name, func(t *testing.T) { matchGPT2(t, py, gc.cfg) })
	}
}

func matchGPT2(t *testing.T, py string, cfg model.Config) {
	dir := writeTinyModel(t, cfg)
	b := dpoBatch()

	// The reference model's log-probs are the policy's shifted by refOffsets (any numbers do; both sides get them).
	sums, _, err := loadTinyModel(t, dir, tensor.Float64).LogProbs(b.Model())
	if err != nil {
		t.Fatal(err)
	}
	refLogps := make([]float64, b.B)
	for r := range refLogps {
		refLogps[r] = sums[r] + refOffsets[r]
	}
	rb := refInputs(b)
	rb.SFTGrads = true
	half := b.B / 2
	for _, c := range dpoCases {
		in := refDPOIn{Beta: c.cfg.Beta, LossType: c.cfg.LossType, LabelSmoothing: c.cfg.LabelSmoothing,
			RPOAlpha: c.rpo, Grads: true}
		for i := 0; i < b.N; i++ {
			in.ChosenRows = append(in.ChosenRows, i)
			in.RejectedRows = append(in.RejectedRows, half+i)
			in.RefChosen = append(in.RefChosen, refLogps[i])
			in.RefRejected = append(in.RefRejected, refLogps[half+i])
		}
		rb.DPO = append(rb.DPO, in)
	}
	for _, g := range genRuns {
		rb.Generate = append(rb.Generate, g.input())
	}
	ref := runReference(t, py, dir, rb)
	if want := []int{b.B, b.T, cfg.VocabSize}; fmt.Sprint(ref.Shape) != fmt.Sprint(want) {
		t.Fatalf("gpt2_ref.py computed logits of shape %v, want %v", ref.Shape, want)
	}

	for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
		t.Run(dt.String(), func(t *testing.T) {
			c := &checker{t: t, tol: tolerances[dt].value, gradTol: tolerances[dt].grad, tieTol: tolerances[dt].tie}
			p := loadTinyModel(t, dir, dt)
			checkLogits(c, p, b, ref)
			checkDistributions(c, p, b, ref)
			checkSequences(c, p, b, ref)
			checkSFT(c, p, b, ref)
			for i, dc := range dpoCases {
				checkDPO(c, p, b, refLogps, dc, ref.DPO[i])
			}
			for i, g := range genRuns {
				checkGenerate(c, p, g, ref.Generate[i].Tokens, ref.Generate[i].Margins)
			}
			c.report()
		})
	}
}

// checkLogits compares the raw logits of every position of every row, padding included.
func checkLogits(c *checker, p *model.Params, b data.Batch, ref refOutput) {
	got, err := p.Logits(b.Model())
	if err != nil {
		c.t.Fatal(err)
	}
	if len(got) != len(ref.Logits) {
		c.t.Fatalf("%d logits, PyTorch has %d", len(got), len(ref.Logits))
	}
	V := p.VocabSize
	for i, g := range got {
		c.value(fmt.Sprintf("logits[row %d, pos %d, token %d]", i/(b.T*V), i/V%b.T, i%V), g, ref.Logits[i])
	}
}

// checkDistributions compares log-softmax(logits) over the whole vocabulary at sampled positions, and the
// target's log-prob at every position of every row (padding and all-padding rows included). The model exposes
// only masked sums of target log-probs, so each value is read through a row whose mask is one-hot at its
// position. log-softmax is the logits less each position's log-sum-exp: all that any loss sees of them.
func checkDistributions(c *checker, p *model.Params, b data.Batch, ref refOutput) {
	V := p.VocabSize
	positions := [][2]int{{0, 0}, {0, 12}, {1, 20}, {2, 31}, {3, 7}, {4, 16}, {6, 31}}
	for _, pos := range positions {
		r, t := pos[0], pos[1]
		probe := newProbe(b, V)
		for v := 0; v < V; v++ {
			probe.add(r, t, v)
		}
		got := probe.logProbs(c.t, p)
		for v := 0; v < V; v++ {
			c.value(fmt.Sprintf("logp[row %d, pos %d, token %d]", r, t, v), got[v], ref.Logp[(r*b.T+t)*V+v])
		}
	}
	probe := newProbe(b, V)
	for r := 0; r < b.B; r++ {
		_, tg, _ := b.Row(r)
		for t := 0; t < b.T; t++ {
			probe.add(r, t, tg[t])
		}
	}
	got := probe.logProbs(c.t, p)
	for i, g := range got {
		r, t := i/b.T, i%b.T
		_, tg, _ := b.Row(r)
		c.value(fmt.Sprintf("target logp[row %d, pos %d]", r, t), g, ref.Logp[(r*b.T+t)*V+tg[t]])
	}
}

// checkSequences compares the per-row masked sums (DPO's log-probs) and their token counts.
func checkSequences(c *checker, p *model.Params, b data.Batch, ref refOutput) {
	sums, counts, err := p.LogProbs(b.Model())
	if err != nil {
		c.t.Fatal(err)
	}
	for r := range sums {
		c.value(fmt.Sprintf("seq logp[row %d]", r), sums[r], ref.SeqLogp[r])
		if counts[r] != ref.SeqTokens[r] {
			c.t.Errorf("row %d: Go counts %d masked tokens, PyTorch %d", r, counts[r], ref.SeqTokens[r])
		}
	}
}

func checkSFT(c *checker, p *model.Params, b data.Batch, ref refOutput) {
	p.ZeroGrads()
	l, n, err := p.SFTStep(b.Model())
	if err != nil {
		c.t.Fatal(err)
	}
	c.value("SFT loss", l, ref.SFTLoss)
	want := 0
	for _, k := range ref.SeqTokens {
		want += k
	}
	if n != want {
		c.t.Errorf("SFT step counts %d tokens, PyTorch %d", n, want)
	}
	c.grads("SFT", p, ref.SFTGrads)
}

func checkDPO(c *checker, p *model.Params, b data.Batch, refLogps []float64, dc dpoCase, ref refDPOOut) {
	cfg, rpo := dc.cfg, dc.rpo
	name := fmt.Sprintf("DPO %s β=%v ε=%v rpo=%v", cfg.LossType, cfg.Beta, cfg.LabelSmoothing, rpo)
	p.ZeroGrads()
	out, err := p.DPOStep(b.Model(), refLogps, cfg, rpo)
	if err != nil {
		c.t.Fatalf("%s: %v", name, err)
	}
	c.value(name+" loss", out.Loss, ref.Loss)
	c.value(name+" preference loss", out.DPO.Loss, ref.PreferenceLoss)
	if rpo != 0 {
		c.value(name+" chosen NLL", out.NLL, ref.NLL)
	}
	c.value(name+" rewards/chosen", out.DPO.RewardsChosen, mean(ref.ChosenRewards))
	c.value(name+" rewards/rejected", out.DPO.RewardsRejected, mean(ref.RejectedRewards))
	c.value(name+" rewards/margins", out.DPO.RewardsMargin, ref.Margin)
	if out.DPO.RewardsAccuracy != ref.Accuracy {
		c.t.Errorf("%s: rewards/accuracies %v, PyTorch %v", name, out.DPO.RewardsAccuracy, ref.Accuracy)
	}
	if out.DPO.Pairs != len(ref.Losses) {
		c.t.Errorf("%s: %d pairs, PyTorch %d", name, out.DPO.Pairs, len(ref.Losses))
	}
	c.grads(name, p, ref.Grads)
}

func mean(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// checker compares values, records the worst error of each kind for the log, and fails on the first few
// values out of tolerance (not thousands).
type checker struct {
	t                    *testing.T
	tol, gradTol, tieTol float64
	worst, worstGrad     float64
	failures, compared   int
}

func (c *checker) value(what string, got, want float64) {
	c.t.Helper()
	c.compared++
	e := math.Abs(got-want) / math.Max(1, math.Abs(want))
	if math.IsNaN(e) {
		e = math.Inf(1)
	}
	c.worst = max(c.worst, e)
	if e > c.tol {
		c.fail("%s: Go %.12g, PyTorch %.12g (error %.3g > %.0e)", what, got, want, e, c.tol)
	}
}

// grads compares every parameter's gradient with PyTorch's, relative to the tensor's largest reference value.
func (c *checker) grads(what string, p *model.Params, ref map[string][]float64) {
	c.t.Helper()
	if len(ref) != len(p.Names) {
		c.t.Fatalf("%s: PyTorch returned %d gradients for %d weights", what, len(ref), len(p.Names))
	}
	for _, n := range p.Names {
		want := ref[n]
		got := floats(p.Grads[n])
		if len(got) != len(want) {
			c.t.Fatalf("%s: gradient of %s has %d values, PyTorch %d", what, n, len(got), len(want))
		}
		scale := 0.0
		for _, w := range want {
			scale = max(scale, math.Abs(w))
		}
		scale = math.Max(scale, 1e-12)
		for i := range got {
			c.compared++
			e := math.Abs(got[i]-want[i]) / scale
			if math.IsNaN(e) {
				e = math.Inf(1)
			}
			c.worstGrad = max(c.worstGrad, e)
			if e > c.gradTol {
				c.fail("%s: d loss/d %s[%d]: Go %.10g, PyTorch %.10g (error %.3g of the largest %.3g > %.0e)",
					what, n, i, got[i], want[i], e, scale, c.gradTol)
			}
		}
	}
}

func (c *checker) fail(format string, args ...any) {
	c.t.Helper()
	c.failures++
	if c.failures <= 20 {
		c.t.Errorf(format, args...)
	}
}

func (c *checker) report() {
	c.t.Logf("%d values compared; worst value error %.3g (tolerance %.0e), worst gradient error %.3g (tolerance %.0e)",
		c.compared, c.worst, c.tol, c.worstGrad, c.gradTol)
	if c.failures > 20 {
		c.t.Errorf("... and %d more values out of tolerance", c.failures-20)
	}
}

func floats(t *tensor.Dense) []float64 {
	switch d := t.Data().(type) {
	case []float32:
		out := make([]float64, len(d))
		for i, x := range d {
			out[i] = float64(x)
		}
		return out
	case []float64:
		return append([]float64(nil), d...)
	}
	panic(fmt.Sprintf("unexpected dtype %v", t.Dtype()))
}
