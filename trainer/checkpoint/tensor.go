package checkpoint

import (
	"fmt"

	"github.com/preftune/preftune/trainer/safetensors"
)

// Tensor is a named float32 tensor in row-major order (trainer/safetensors' type; checkpoints write it as F32
// whatever its DType).
type Tensor = safetensors.Tensor

// ByName indexes tensors by name (Load returns them in file order, which is sorted by name).
func ByName(ts []Tensor) map[string]Tensor {
	m := make(map[string]Tensor, len(ts))
	for _, t := range ts {
		m[t.Name] = t
	}
	return m
}

func elements(shape []int) (int, error) {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension in shape %v", shape)
		}
		n *= d
	}
	return n, nil
}

// checkTensors rejects empty or repeated names and data whose length does not match the shape.
func checkTensors(what string, ts []Tensor) error {
	seen := make(map[string]bool, len(ts))
	for i, t := range ts {
		if t.Name == "" {
			return fmt.Errorf("%s: tensor %d has no name", what, i)
		}
		if seen[t.Name] {
			return fmt.Errorf("%s: tensor %q appears twice", what, t.Name)
		}
		seen[t.Name] = true
		n, err := elements(t.Shape)
		if err != nil {
			return fmt.Errorf("%s: tensor %q: %v", what, t.Name, err)
		}
		if n != len(t.Data) {
			return fmt.Errorf("%s: tensor %q of shape %v needs %d values, has %d", what, t.Name, t.Shape, n, len(t.Data))
		}
	}
	return nil
}
