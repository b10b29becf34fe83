package nn

import (
	"math"
	"testing"
)

func TestExp32AndTanh32(t *testing.T) {
	worstExp, worstTanh := 0.0, 0.0
	for x := -87.0; x <= 88.0; x += 0.001 {
		got := float64(exp32(float32(x)))
		// float32(x) itself moves x by up to half an ulp, so compare with e^float32(x).
		want := math.Exp(float64(float32(x)))
		worstExp = max(worstExp, math.Abs(got-want)/want)
	}
	for x := -12.0; x <= 12.0; x += 0.0001 {
		xf := float64(float32(x))
		worstTanh = max(worstTanh, math.Abs(float64(tanh32(float32(x)))-math.Tanh(xf)))
	}
	if worstExp > 5e-7 || worstTanh > 3e-7 {
		t.Fatalf("exp32 worst relative error %.3g (want <= 5e-7), tanh32 worst absolute error %.3g (want <= 3e-7)",
			worstExp, worstTanh)
	}
	t.Logf("exp32 worst relative error %.3g, tanh32 worst absolute error %.3g", worstExp, worstTanh)
	if exp32(100) < 1e38 || exp32(-100) > 1e-37 || tanh32(50) != 1 || tanh32(-50) != -1 || tanh32(0) != 0 {
		t.Fatal("exp32/tanh32 limits wrong")
	}
}

func TestGELU32MatchesFloat64(t *testing.T) {
	var x32, g32 []float32
	var x64, g64 []float64
	for x := -12.0; x <= 12.0; x += 0.001 {
		xf := float64(float32(x))
		x32, x64 = append(x32, float32(xf)), append(x64, xf)
		g32, g64 = append(g32, 1), append(g64, 1)
	}
	y32, y64 := make([]float32, len(x32)), make([]float64, len(x64))
	exps := make([]float32, len(x32))
	geluForward32(x32, y32, exps)
	geluForward(x64, y64)
	d32, d64 := make([]float32, len(x32)), make([]float64, len(x64))
	geluBackward32(x32, g32, exps, d32)
	geluBackward(x64, g64, d64)
	for i := range x64 {
		if math.Abs(float64(y32[i])-y64[i]) > 1e-6*(1+math.Abs(y64[i])) || math.Abs(float64(d32[i])-d64[i]) > 1e-6 {
			t.Fatalf("x = %v: float32 gelu %v and gelu' %v, float64 %v and %v", x64[i], y32[i], d32[i], y64[i], d64[i])
		}
	}
}
