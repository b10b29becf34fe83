package loss

import (
	"bufio"
	"encoding/json"
	"math"
	"os"
	"testing"
)

// TestIPOAveragesPerToken: IPO is fed per-token means (policy and reference), its gradients are with respect to
// the sums; the other loss types ignore the counts.
func TestIPOAveragesPerToken(t *testing.T) {
	pc, pr := []float64{-6, -40, -3}, []float64{-9, -20, -33}
	rc, rr := []float64{-7, -38, -4}, []float64{-8, -25, -30}
	tc, tr := []int{3, 20, 1}, []int{9, 10, 11}
	cfg := DPOConfig{Beta: 0.2, LossType: LossIPO}
	res, dc, dr := DPOBatchTokens(cfg, pc, pr, rc, rr, tc, tr)
	mean := func(s []float64, n []int) []float64 {
		out := make([]float64, len(s))
		for i := range s {
			out[i] = s[i] / float64(n[i])
		}
		return out
	}
	want, _, _ := DPOBatch(cfg, mean(pc, tc), mean(pr, tr), mean(rc, tc), mean(rr, tr))
	if math.Abs(res.Loss-want.Loss) > 1e-12 || math.Abs(res.LogpsChosen-want.LogpsChosen) > 1e-12 ||
		math.Abs(res.RewardsMargin-want.RewardsMargin) > 1e-12 {
		t.Fatalf("ipo on sums+counts %+v, want the means' %+v", res, want)
	}
	// Finite differences with respect to the sums.
	const h = 1e-6
	for i := range pc {
		for side, xs := range [][]float64{pc, pr} {
			orig := xs[i]
			xs[i] = orig + h
			up, _, _ := DPOBatchTokens(cfg, pc, pr, rc, rr, tc, tr)
			xs[i] = orig - h
			down, _, _ := DPOBatchTokens(cfg, pc, pr, rc, rr, tc, tr)
			xs[i] = orig
			num := (up.Loss - down.Loss) / (2 * h)
			an := dc[i]
			if side == 1 {
				an = dr[i]
			}
			if math.Abs(num-an) > 1e-6*math.Max(1, math.Abs(num)) {
				t.Errorf("pair %d side %d: analytic %g numeric %g", i, side, an, num)
			}
		}
	}
	for _, c := range []DPOConfig{{Beta: 0.1}, {Beta: 0.1, LossType: LossHinge}, {Beta: 0.1, LossType: LossRobust, LabelSmoothing: 0.1}} {
		a, _, _ := DPOBatchTokens(c, pc, pr, rc, rr, tc, tr)
		b, _, _ := DPOBatch(c, pc, pr, rc, rr)
		if a != b {
			t.Errorf("%+v: counts changed the result: %+v vs %+v", c, a, b)
		}
	}
}

// TestIPOLossDoesNotScaleWithLength is case 11 (../shared/testdata/cases/11-ipo-length.jsonl): a 3-byte chosen and
// a 92-byte rejected answer. A policy that moves every token's log-prob by the same amount per side (chosen up by
// δ, rejected down by δ) gets the same IPO loss whether the rejected answer has 92 bytes or twice that: fed
// per-token means, the loss sees 2δ; fed sums, as before, it saw δ·(4 + 93) and grew with the length.
func TestIPOLossDoesNotScaleWithLength(t *testing.T) {
	path := "../../../shared/testdata/cases/11-ipo-length.jsonl"
	f, err := os.Open(path)
	if err != nil {
		t.Skipf("case file %s is absent (%v): skipping", path, err)
	}
	defer f.Close()
	var tc, tr []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var row struct{ Chosen, Rejected string }
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatal(err)
		}
		// Byte tokenizer: one token a byte, plus the end-of-sequence token the loss also covers.
		tc, tr = append(tc, len(row.Chosen)+1), append(tr, len(row.Rejected)+1)
	}
	if len(tc) != 12 || tc[0] != 4 || tr[0] != 93 {
		t.Fatalf("read %d rows with %v / %v tokens", len(tc), tc, tr)
	}
	const delta, refPerToken = 0.05, -5.0
	cfg := DPOConfig{Beta: 0.1, LossType: LossIPO}
	lossFor := func(scale int) float64 {
		n := len(tc)
		pc, pr, rc, rr := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
		longer := make([]int, n)
		for i := range n {
			longer[i] = tr[i] * scale
			rc[i], rr[i] = refPerToken*float64(tc[i]), refPerToken*float64(longer[i])
			pc[i], pr[i] = rc[i]+delta*float64(tc[i]), rr[i]-delta*float64(longer[i])
		}
		res, _, _ := DPOBatchTokens(cfg, pc, pr, rc, rr, tc, longer)
		return res.Loss
	}
	one, two := lossFor(1), lossFor(2)
	want := math.Pow(2*delta-1/(2*cfg.Beta), 2)
	if math.Abs(one-want) > 1e-9 || math.Abs(two-want) > 1e-9 {
		t.Fatalf("IPO loss %v with the file's lengths, %v with rejected twice as long; want %v for both", one, two, want)
	}
}
