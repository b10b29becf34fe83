package nn

import "fmt"

// Tokens are the token ids and loss mask of one run of a graph: B rows of T positions, row-major. The graph's
// owner fills them before each run; their shape is fixed when the graph is built.
type Tokens struct {
	B, T    int
	Inputs  []int
	Targets []int
	// Mask is 1 where the target counts in the losses and 0 elsewhere.
	Mask []float32
}

// NewTokens returns zeroed tokens for a B×T graph.
func NewTokens(b, t int) *Tokens {
	return &Tokens{B: b, T: t, Inputs: make([]int, b*t), Targets: make([]int, b*t), Mask: make([]float32, b*t)}
}

// Set copies a batch in, checking shapes, id ranges (vocab) and that the mask is 0 or 1.
func (tk *Tokens) Set(b, t int, inputs, targets []int, mask []float32, vocab int) error {
	if b != tk.B || t != tk.T {
		return fmt.Errorf("nn: batch is %d×%d but the graph was built for %d×%d", b, t, tk.B, tk.T)
	}
	n := b * t
	if len(inputs) != n || len(targets) != n || len(mask) != n {
		return fmt.Errorf("nn: batch %d×%d needs %d inputs, targets and mask values, got %d, %d and %d",
			b, t, n, len(inputs), len(targets), len(mask))
	}
	for i := 0; i < n; i++ {
		if inputs[i] < 0 || inputs[i] >= vocab {
			return fmt.Errorf("nn: row %d position %d: input id %d outside the vocabulary [0, %d)", i/t, i%t, inputs[i], vocab)
		}
		if mask[i] != 0 && mask[i] != 1 {
			return fmt.Errorf("nn: row %d position %d: mask %v is neither 0 nor 1", i/t, i%t, mask[i])
		}
		// A masked-out target is never read, so padding may carry any id there.
		if mask[i] != 0 && (targets[i] < 0 || targets[i] >= vocab) {
			return fmt.Errorf("nn: row %d position %d: target id %d outside the vocabulary [0, %d)", i/t, i%t, targets[i], vocab)
		}
	}
	copy(tk.Inputs, inputs)
	copy(tk.Targets, targets)
	copy(tk.Mask, mask)
	return nil
}

// Count is the number of masked-in positions of row r (all rows when r < 0).
func (tk *Tokens) Count(r int) int {
	m := tk.Mask
	if r >= 0 {
		m = m[r*tk.T : (r+1)*tk.T]
	}
	n := 0
	for _, v := range m {
		if v != 0 {
			n++
		}
	}
	return n
}
