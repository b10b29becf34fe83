package loss

import (
	"math"
	"testing"
)

func TestNLLTokenMean(t *testing.T) {
	// Two sequences: 3 tokens summing to -6, 1 token of -2: mean per token = 8/4.
	nll, grad := NLL([]float64{-6, -2}, []int{3, 1})
	if nll != 2 {
		t.Fatalf("nll %v", nll)
	}
	const h = 1e-6
	for i := range grad {
		xs := []float64{-6, -2}
		xs[i] += h
		up, _ := NLL(xs, []int{3, 1})
		xs[i] -= 2 * h
		down, _ := NLL(xs, []int{3, 1})
		if num := (up - down) / (2 * h); math.Abs(num-grad[i]) > 1e-8 || grad[i] != -0.25 {
			t.Errorf("grad[%d] %v numeric %v", i, grad[i], num)
		}
	}
}

func TestNLLBadInputPanics(t *testing.T) {
	cases := []struct {
		s []float64
		n []int
	}{{[]float64{-1}, []int{0}}, {[]float64{-1}, []int{1, 2}}, {[]float64{-1, -1}, []int{2, -1}}, {nil, nil}}
	for _, c := range cases {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%v %v: no panic", c.s, c.n)
				}
			}()
			NLL(c.s, c.n)
		}()
	}
}
