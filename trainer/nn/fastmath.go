package nn

import "math"

// exp32 is e^x in float32 to within a few ulp: range reduction by ln 2 and a degree-6 polynomial, small enough
// to be inlined. Arguments are clamped to [-87.3, 88], so it never returns 0 or +Inf. GELU and the softmaxes
// run on it in float32; math.Exp and math.Tanh in float64 cost a quarter of a training step.
func exp32(x float32) float32 {
	x = min(max(x, -87.3), 88)
	// Round x·log2(e) to the nearest integer by adding and removing 1.5·2²³ (no call to math.Floor, which
	// is not inlined without GOAMD64=v2).
	k := (x*1.44269504 + 12582912) - 12582912
	r := x - k*0.693359375 + k*2.12194440e-4
	p := 1 + r*(1+r*(0.5+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720))))))
	return p * math.Float32frombits(uint32(int32(k)+127)<<23)
}

// tanh32 is tanh in float32 through exp32, accurate to about 1e-7 absolute.
func tanh32(x float32) float32 {
	e := exp32(-2 * abs32(x))
	t := (1 - e) / (1 + e)
	if x < 0 {
		return -t
	}
	return t
}

func abs32(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }
