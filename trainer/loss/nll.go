package loss

import "fmt"

// NLL is the mean per-token negative log-likelihood of a batch: −Σ sumLogps[i] / Σ tokens[i], where sumLogps[i]
// is sequence i's summed log-probability over its tokens[i] loss-masked target tokens. It is the SFT loss and,
// over the chosen responses, RPO's term (TRL averages over all chosen tokens of the batch, not per sequence).
// grad[i] = ∂NLL/∂sumLogps[i] = −1/Σ tokens. A batch with no tokens, a negative count or mismatched lengths is a
// caller bug and panics.
//
// RPO: loss += alpha·nll and dPolC[i] += alpha·grad[i].
func NLL(sumLogps []float64, tokens []int) (nll float64, grad []float64) {
	if len(sumLogps) != len(tokens) {
		panic(fmt.Sprintf("loss: NLL got %d log-probs for %d token counts", len(sumLogps), len(tokens)))
	}
	total := 0
	for i, t := range tokens {
		if t < 0 {
			panic(fmt.Sprintf("loss: NLL token count %d of sequence %d is negative", t, i))
		}
		total += t
	}
	if total == 0 {
		panic("loss: NLL of a batch with no loss-masked tokens")
	}
	inv := 1 / float64(total)
	grad = make([]float64, len(sumLogps))
	for i, s := range sumLogps {
		nll -= s
		grad[i] = -inv
	}
	return nll * inv, grad
}
