package loss

import "fmt"

// BatchResult is the mean DPO loss of a batch and TRL's metrics, each a mean over the batch's pairs.
type BatchResult struct {
	Pairs           int
	Loss            float64
	RewardsChosen   float64
	RewardsRejected float64
	RewardsAccuracy float64
	RewardsMargin   float64
	// LogpsChosen and LogpsRejected are the policy's summed log-probabilities.
	LogpsChosen   float64
	LogpsRejected float64
}

// Metrics returns the result under TRL's metric names ("loss", "rewards/chosen", "rewards/rejected",
// "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected"), each prefixed by prefix
// (e.g. "eval_" for evaluation).
func (b BatchResult) Metrics(prefix string) map[string]float64 {
	return map[string]float64{
		prefix + "loss":               b.Loss,
		prefix + "rewards/chosen":     b.RewardsChosen,
		prefix + "rewards/rejected":   b.RewardsRejected,
		prefix + "rewards/accuracies": b.RewardsAccuracy,
		prefix + "rewards/margins":    b.RewardsMargin,
		prefix + "logps/chosen":       b.LogpsChosen,
		prefix + "logps/rejected":     b.LogpsRejected,
	}
}

// DPOBatch evaluates a batch of pairs. dPolC[i] and dPolR[i] are the gradients of the MEAN loss with respect to
// polC[i] and polR[i]. The four slices must have the same, non-zero length (a caller bug otherwise: it panics).
func DPOBatch(cfg DPOConfig, polC, polR, refC, refR []float64) (res BatchResult, dPolC, dPolR []float64) {
	n := len(polC)
	if n == 0 || len(polR) != n || len(refC) != n || len(refR) != n {
		panic(fmt.Sprintf("loss: DPOBatch needs four equal non-empty slices, got lengths %d, %d, %d, %d",
			len(polC), len(polR), len(refC), len(refR)))
	}
	dPolC = make([]float64, n)
	dPolR = make([]float64, n)
	inv := 1 / float64(n)
	for i := range n {
		p := DPOPair(cfg, polC[i], polR[i], refC[i], refR[i])
		res.Loss += p.Loss
		res.RewardsChosen += p.ChosenReward
		res.RewardsRejected += p.RejectedReward
		res.RewardsAccuracy += p.Accuracy
		res.RewardsMargin += p.Margin
		res.LogpsChosen += polC[i]
		res.LogpsRejected += polR[i]
		dPolC[i] = p.DPolicyChosen * inv
		dPolR[i] = p.DPolicyRejected * inv
	}
	res.Pairs = n
	res.Loss *= inv
	res.RewardsChosen *= inv
	res.RewardsRejected *= inv
	res.RewardsAccuracy *= inv
	res.RewardsMargin *= inv
	res.LogpsChosen *= inv
	res.LogpsRejected *= inv
	return res, dPolC, dPolR
}

// AveragesPerToken says whether the loss type takes per-token averaged log-probabilities instead of sums: IPO does,
// as in TRL (its DPOTrainer divides each sequence's summed log-probability by its count of loss-masked tokens when
// loss_type is "ipo", following the IPO paper, Azar et al. 2023, whose β is calibrated on averages); the other
// loss types take sums.
func (c DPOConfig) AveragesPerToken() bool { return c.lossType() == LossIPO }

// DPOBatchTokens is DPOBatch fed as TRL feeds it. polC, polR, refC and refR are per-sequence SUMS of log-probs
// over the responses' loss-masked target tokens; tokC and tokR count those tokens (the same counts serve the policy
// and the reference: they score the same sequences). When cfg.AveragesPerToken (IPO), every log-prob is divided by
// its count before the loss, so the loss, the rewards and logps/* are per-token means and the loss no longer grows
// with the responses' lengths; the gradients returned are still with respect to the sums (∂/∂sum = ∂/∂mean ÷
// count). For the other loss types this is DPOBatch. A count below 1 is taken as 1. Slices of unequal length panic,
// as in DPOBatch.
func DPOBatchTokens(cfg DPOConfig, polC, polR, refC, refR []float64, tokC, tokR []int) (res BatchResult, dPolC, dPolR []float64) {
	if !cfg.AveragesPerToken() {
		return DPOBatch(cfg, polC, polR, refC, refR)
	}
	n := len(polC)
	if len(tokC) != n || len(tokR) != n {
		panic(fmt.Sprintf("loss: DPOBatchTokens got %d pairs but %d and %d token counts", n, len(tokC), len(tokR)))
	}
	mean := func(sums []float64, counts []int) []float64 {
		out := make([]float64, len(sums))
		for i, s := range sums {
			out[i] = s / float64(max(counts[i], 1))
		}
		return out
	}
	res, dPolC, dPolR = DPOBatch(cfg, mean(polC, tokC), mean(polR, tokR), mean(refC, tokC), mean(refR, tokR))
	for i := range dPolC {
		dPolC[i] /= float64(max(tokC[i], 1))
		dPolR[i] /= float64(max(tokR[i], 1))
	}
	return res, dPolC, dPolR
}
