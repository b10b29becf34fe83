package loss

import "fmt"

// PairResult is the loss of one preference pair, its rewards and the gradient of the loss with respect to the
// policy's summed log-probabilities of the chosen and the rejected response.
type PairResult struct {
	Loss float64
	// ChosenReward is β(π_c − ref_c), RejectedReward β(π_r − ref_r), Margin their difference.
	ChosenReward, RejectedReward, Margin float64
	// Accuracy is 1 when ChosenReward > RejectedReward strictly (a tie counts 0, as in TRL), else 0.
	Accuracy float64
	// DPolicyChosen is ∂Loss/∂π_c; DPolicyRejected = −DPolicyChosen because the loss sees only π_c − π_r.
	DPolicyChosen, DPolicyRejected float64
}

// DPOPair evaluates the DPO loss of one pair from summed log-probabilities (policy chosen/rejected, reference
// chosen/rejected). The config must have passed Validate; an unknown loss type panics.
func DPOPair(cfg DPOConfig, polC, polR, refC, refR float64) PairResult {
	if cfg.ReferenceFree {
		refC, refR = 0, 0
	}
	beta, eps := cfg.Beta, cfg.LabelSmoothing
	// logits is the difference of the policy's and the reference's log-ratios.
	logits := (polC - polR) - (refC - refR)
	z := beta * logits

	var loss, dLogits float64
	switch cfg.lossType() {
	case LossSigmoid:
		// −(1−ε)logσ(z) − ε·logσ(−z); d/dz logσ(z) = σ(−z).
		loss = -(1-eps)*logSigmoid(z) - eps*logSigmoid(-z)
		dLogits = beta * (-(1-eps)*sigmoid(-z) + eps*sigmoid(z))
	case LossRobust:
		loss = (-(1-eps)*logSigmoid(z) + eps*logSigmoid(-z)) / (1 - 2*eps)
		dLogits = beta * (-(1-eps)*sigmoid(-z) - eps*sigmoid(z)) / (1 - 2*eps)
	case LossIPO:
		d := logits - 1/(2*beta)
		loss = d * d
		dLogits = 2 * d
	case LossHinge:
		// relu's gradient at the kink is 0, as in PyTorch.
		if 1-z > 0 {
			loss = 1 - z
			dLogits = -beta
		}
	default:
		panic(fmt.Sprintf("loss: unknown DPO loss type %q (call DPOConfig.Validate first)", cfg.LossType))
	}

	chosen := beta * (polC - refC)
	rejected := beta * (polR - refR)
	acc := 0.0
	if chosen > rejected {
		acc = 1
	}
	return PairResult{
		Loss:            loss,
		ChosenReward:    chosen,
		RejectedReward:  rejected,
		Margin:          chosen - rejected,
		Accuracy:        acc,
		DPolicyChosen:   dLogits,
		DPolicyRejected: -dLogits,
	}
}
