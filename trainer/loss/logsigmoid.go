package loss

import "math"

// logSigmoid returns log(σ(x)) without overflow: for large |x| the naive form loses everything
// (exp(-x) overflows for x ≪ 0, 1+exp(-x) rounds to 1 for x ≫ 0).
func logSigmoid(x float64) float64 {
	if x >= 0 {
		return -math.Log1p(math.Exp(-x))
	}
	return x - math.Log1p(math.Exp(x))
}

// sigmoid returns σ(x), evaluating exp only on non-positive arguments so it never overflows.
func sigmoid(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}
