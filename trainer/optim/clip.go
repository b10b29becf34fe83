package optim

import "math"

// GlobalNorm is the L2 norm of all gradients taken as one vector, summed in float64 in a fixed order.
func GlobalNorm(grads [][]float32) float64 {
	var sum float64
	for _, g := range grads {
		for _, x := range g {
			sum += float64(x) * float64(x)
		}
	}
	return math.Sqrt(sum)
}

// ClipGlobalNorm scales every gradient by maxNorm/(norm+1e-6) when the global norm exceeds maxNorm (PyTorch's
// clip_grad_norm_), and returns the norm before clipping. maxNorm <= 0 only measures. A non-finite norm leaves
// the gradients untouched, so the caller can see it and skip the update rather than write NaN into the weights.
func ClipGlobalNorm(grads [][]float32, maxNorm float64) float64 {
	norm := GlobalNorm(grads)
	if maxNorm <= 0 || norm <= maxNorm || math.IsNaN(norm) || math.IsInf(norm, 0) {
		return norm
	}
	scale := float32(maxNorm / (norm + 1e-6))
	for _, g := range grads {
		for j := range g {
			g[j] *= scale
		}
	}
	return norm
}
