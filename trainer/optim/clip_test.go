package optim

import (
	"math"
	"testing"
)

func TestClipGlobalNorm(t *testing.T) {
	// Norm of (3, 4, 0, 12) is 13.
	grads := [][]float32{{3, 4}, {0, 12}}
	if n := ClipGlobalNorm(grads, 0); n != 13 || grads[1][1] != 12 {
		t.Fatalf("measure only: norm %v grads %v", n, grads)
	}
	if n := ClipGlobalNorm(grads, 20); n != 13 || grads[0][0] != 3 {
		t.Fatalf("under the limit: norm %v grads %v", n, grads)
	}
	n := ClipGlobalNorm(grads, 1)
	if n != 13 {
		t.Fatalf("pre-clip norm %v", n)
	}
	if after := GlobalNorm(grads); math.Abs(after-1) > 1e-6 {
		t.Fatalf("post-clip norm %v", after)
	}
	// Direction kept: each element scaled by the same factor.
	if math.Abs(float64(grads[0][1]/grads[0][0])-4.0/3) > 1e-6 || math.Abs(float64(grads[1][1])-12.0/13) > 1e-6 {
		t.Fatalf("clipped grads %v", grads)
	}
}

func TestClipLeavesNonFiniteAlone(t *testing.T) {
	grads := [][]float32{{float32(math.Inf(1)), 1}}
	if n := ClipGlobalNorm(grads, 1); !math.IsInf(n, 1) || grads[0][1] != 1 {
		t.Fatalf("norm %v grads %v", n, grads)
	}
	grads = [][]float32{{float32(math.NaN()), 1}}
	if n := ClipGlobalNorm(grads, 1); !math.IsNaN(n) || grads[0][1] != 1 {
		t.Fatalf("norm %v grads %v", n, grads)
	}
}

func TestAdamWClipGradNorm(t *testing.T) {
	p := Param{Name: "w", Shape: []int{2, 1}, Data: make([]float32, 2), Grad: []float32{6, 8}}
	q := Param{Name: "b", Shape: []int{1}, Data: make([]float32, 1), Grad: []float32{0}}
	opt, _ := NewAdamW(DefaultAdamW(), []Param{p, q}, nil)
	if n := opt.ClipGradNorm(5); n != 10 {
		t.Fatalf("norm %v", n)
	}
	if math.Abs(float64(p.Grad[0])-3) > 1e-5 || math.Abs(float64(p.Grad[1])-4) > 1e-5 {
		t.Fatalf("grads %v", p.Grad)
	}
}
