package model

import (
	"fmt"
	"math"
)

// CheckFinite fails when a weight tensor holds a NaN or an infinity, naming the tensor (its Hugging Face name, as
// in model.safetensors), how many values are bad, and the first one with its index in the flattened tensor. A
// model with such a weight computes NaN everywhere the weight reaches, so it is refused when it is loaded rather
// than at the first step (where the loss would blame the learning rate) or while generating (where it would print
// whatever the NaN logits pick).
func CheckFinite(name string, data []float32) error {
	bad, first := 0, -1
	for i, v := range data {
		if f := float64(v); math.IsNaN(f) || math.IsInf(f, 0) {
			if first < 0 {
				first = i
			}
			bad++
		}
	}
	if bad == 0 {
		return nil
	}
	return fmt.Errorf("model: tensor %q holds %d non-finite values of %d (the first, at flat index %d, is %v): the weights are corrupt",
		name, bad, len(data), first, data[first])
}
