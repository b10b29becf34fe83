package model

import (
	"math"
	"runtime"
	"testing"

	"gorgonia.org/tensor"
)

// TestGoroutineSplitsMatchSerial runs a model big enough for the ops to split their work across goroutines
// and compares loss and gradients with a single-goroutine run.
func TestGoroutineSplitsMatchSerial(t *testing.T) {
	cfg := Config{VocabSize: 259, ContextLength: 64, Layers: 1, DModel: 64, Heads: 2}
	b := randomBatch(31, 8, 64, cfg.VocabSize)
	run := func(procs int) (float64, []float64) {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		p := Init(cfg, tensor.Float64, 32)
		l, _, err := p.SFTStep(b)
		if err != nil {
			t.Fatal(err)
		}
		return l, flat(p, true)
	}
	l1, g1 := run(1)
	l4, g4 := run(4)
	if math.Abs(l1-l4) > 1e-12*l1 {
		t.Fatalf("loss %v with 1 goroutine, %v with 4", l1, l4)
	}
	for i := range g1 {
		if math.Abs(g1[i]-g4[i]) > 1e-10*(1e-6+math.Abs(g1[i])) {
			t.Fatalf("gradient %d: %v with 1 goroutine, %v with 4", i, g1[i], g4[i])
		}
	}
}
