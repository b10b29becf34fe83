package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

// TestExactBytes builds the expected file by hand from the format's specification and compares.
func TestExactBytes(t *testing.T) {
	got, err := Encode([]Tensor{
		{Name: "b", Shape: []int{2}, Data: []float32{1, -2}},
		{Name: "a<", Shape: []int{1, 1}, Data: []float32{0.5}},
	}, map[string]string{"format": "pt"})
	if err != nil {
		t.Fatal(err)
	}
	header := `{"__metadata__":{"format":"pt"},` +
		`"a<":{"dtype":"F32","shape":[1,1],"data_offsets":[0,4]},` +
		`"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`
	for len(header)%8 != 0 {
		header += " "
	}
	want := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	want = append(want, header...)
	for _, x := range []float32{0.5, 1, -2} {
		want = binary.LittleEndian.AppendUint32(want, math.Float32bits(x))
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("file bytes\n got %q\nwant %q", got, want)
	}
	size, err := FileSize([]Tensor{{Name: "b", Shape: []int{2}, Data: []float32{1, -2}}, {Name: "a<", Shape: []int{1, 1}, Data: []float32{0.5}}}, map[string]string{"format": "pt"})
	if err != nil || size != int64(len(want)) {
		t.Fatalf("FileSize %d, %v; want %d", size, err, len(want))
	}
}

// f16Reference computes a binary16's value from its definition, in float64.
func f16Reference(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	mant := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * mant * math.Ldexp(1, -24)
	case 0x1f:
		if mant == 0 {
			return math.Inf(int(sign))
		}
		return math.NaN()
	}
	return sign * (1 + mant/1024) * math.Ldexp(1, exp-15)
}

// TestF16AllValues widens every one of the 65,536 binary16 patterns and compares with the definition (normals,
// subnormals, signed zeros, infinities, NaN), then narrows back to the same bits.
func TestF16AllValues(t *testing.T) {
	sub := 0
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		got := F16ToFloat32(h)
		want := f16Reference(h)
		if math.IsNaN(want) {
			if !math.IsNaN(float64(got)) {
				t.Fatalf("%04x: got %v, want NaN", h, got)
			}
			if back := Float32ToF16(got); back&0x7c00 != 0x7c00 || back&0x3ff == 0 || back&0x8000 != h&0x8000 {
				t.Fatalf("NaN %04x narrowed to %04x", h, back)
			}
			continue
		}
		if float64(got) != want || math.Signbit(float64(got)) != (h&0x8000 != 0) {
			t.Fatalf("%04x: got %v, want %v", h, got, want)
		}
		if h&0x7c00 == 0 && h&0x3ff != 0 {
			sub++
		}
		if back := Float32ToF16(got); back != h {
			t.Fatalf("%04x → %v → %04x", h, got, back)
		}
	}
	if sub != 2*1023 {
		t.Fatalf("%d subnormals checked", sub)
	}
	// Specific values: the smallest subnormal, the largest normal, 1 and -2.
	for h, want := range map[uint16]float64{0x0001: math.Ldexp(1, -24), 0x7bff: 65504, 0x3c00: 1, 0xc000: -2} {
		if got := F16ToFloat32(h); float64(got) != want {
			t.Errorf("%04x: %v, want %v", h, got, want)
		}
	}
}

// TestBF16AllValues widens every bfloat16 pattern: the value is the float32 with those top 16 bits.
func TestBF16AllValues(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		b := uint16(i)
		got := BF16ToFloat32(b)
		exp := int(b>>7) & 0xff
		mant := float64(b & 0x7f)
		sign := 1.0
		if b&0x8000 != 0 {
			sign = -1
		}
		var want float64
		switch exp {
		case 0:
			want = sign * mant * math.Ldexp(1, -133) // subnormal: m × 2^(-126-7)
		case 0xff:
			if mant == 0 {
				want = math.Inf(int(sign))
			} else {
				want = math.NaN()
			}
		default:
			want = sign * (1 + mant/128) * math.Ldexp(1, exp-127)
		}
		if math.IsNaN(want) {
			if !math.IsNaN(float64(got)) {
				t.Fatalf("%04x: got %v, want NaN", b, got)
			}
			continue
		}
		if float64(got) != want || math.Signbit(float64(got)) != (b&0x8000 != 0) {
			t.Fatalf("%04x: got %v, want %v", b, got, want)
		}
		if back := Float32ToBF16(got); back != b {
			t.Fatalf("%04x → %v → %04x", b, got, back)
		}
	}
}

// TestNarrowingRounds checks round-to-nearest-even at ties and overflow to infinity.
func TestNarrowingRounds(t *testing.T) {
	// bf16 of 1 + 2^-8 is a tie between 1 (even) and 1 + 2^-7: rounds to 1; 1 + 3·2^-8 rounds up to 1 + 2^-6.
	if got := BF16ToFloat32(Float32ToBF16(1 + 1.0/256)); got != 1 {
		t.Errorf("bf16 tie: %v", got)
	}
	if got := BF16ToFloat32(Float32ToBF16(1 + 3.0/256)); got != 1+1.0/64 {
		t.Errorf("bf16 tie up: %v", got)
	}
	if got := F16ToFloat32(Float32ToF16(1 + 1.0/2048)); got != 1 {
		t.Errorf("f16 tie: %v", got)
	}
	if got := F16ToFloat32(Float32ToF16(65520)); !math.IsInf(float64(got), 1) {
		t.Errorf("f16 of 65520: %v, want +Inf", got)
	}
	if got := F16ToFloat32(Float32ToF16(65519)); got != 65504 {
		t.Errorf("f16 of 65519: %v", got)
	}
	// Half the smallest subnormal is a tie to 0; a bit more rounds up to it.
	if got := Float32ToF16(float32(math.Ldexp(1, -25))); got != 0 {
		t.Errorf("f16 of 2^-25: %04x", got)
	}
	if got := Float32ToF16(float32(math.Ldexp(1.5, -25))); got != 1 {
		t.Errorf("f16 of 1.5·2^-25: %04x", got)
	}
}

func TestWriteReadAllDTypes(t *testing.T) {
	big := make([]float32, 700_000) // > 1 MiB as F32 and as 16-bit: several read chunks
	for i := range big {
		big[i] = float32(i%200-100) / 4
	}
	ts := []Tensor{
		{Name: "f32", Shape: []int{700, 1000}, Data: big},
		{Name: "bf16", Shape: []int{700_000}, Data: big, DType: BF16},
		{Name: "f16", Shape: []int{1000, 700}, Data: big, DType: F16},
		{Name: "scalar", Shape: []int{}, Data: []float32{3}},
		{Name: "empty", Shape: []int{0, 4}, Data: []float32{}},
	}
	buf, err := Encode(ts, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, meta, err := Decode(buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(meta) != 0 || len(got) != 5 {
		t.Fatalf("meta %v, %d tensors", meta, len(got))
	}
	names := []string{}
	for _, g := range got {
		names = append(names, g.Name)
	}
	if !slices.Equal(names, []string{"bf16", "empty", "f16", "f32", "scalar"}) {
		t.Fatalf("order %v", names)
	}
	for _, g := range got[:4] {
		if g.Name == "empty" {
			if len(g.Data) != 0 || !slices.Equal(g.Shape, []int{0, 4}) {
				t.Fatalf("empty: %+v", g)
			}
			continue
		}
		if !slices.Equal(g.Data, big) { // quarters within ±25 are exact in bf16 and f16
			t.Fatalf("%s differs", g.Name)
		}
	}
	if got[4].Data[0] != 3 || len(got[4].Shape) != 0 {
		t.Fatalf("scalar %+v", got[4])
	}
}

func header(h string) []byte {
	for len(h)%8 != 0 {
		h += " "
	}
	return append(binary.LittleEndian.AppendUint64(nil, uint64(len(h))), h...)
}

func TestReadHeaderRejects(t *testing.T) {
	cases := map[string]struct {
		file []byte
		want string
	}{
		"truncated data": {append(header(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`), 0, 0, 0, 0), "truncated"},
		"trailing bytes": {append(header(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`), 0, 0, 0, 0, 1), "after the last"},
		"gap":            {append(header(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`), make([]byte, 8)...), `before tensor "x"`},
		"overlap": {append(header(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`), make([]byte, 8)...),
			"overlaps"},
		"wrong span":   {append(header(`{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`), make([]byte, 8)...), `tensor "x"`},
		"other dtype":  {append(header(`{"x":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}`), make([]byte, 8)...), `"I64"`},
		"not json":     {header(`[1,2]`), "not a JSON object"},
		"header large": {binary.LittleEndian.AppendUint64(nil, 1<<40), "exceeds"},
		"short":        {[]byte{1, 2}, "too short"},
	}
	for name, c := range cases {
		_, err := ReadHeader(bytes.NewReader(c.file), int64(len(c.file)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, c.want)
		}
	}
}

func TestReadFloat32NonFinite(t *testing.T) {
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(-1))} {
		for _, dt := range []DType{F32, BF16, F16} {
			data := []float32{1, 2, 3, bad, 5}
			buf, err := Encode([]Tensor{{Name: "model.norm.weight", Shape: []int{5}, Data: data, DType: dt}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			r := bytes.NewReader(buf)
			h, err := ReadHeader(r, int64(len(buf)))
			if err != nil {
				t.Fatal(err)
			}
			dst := make([]float32, 5)
			err = ReadFloat32(r, h.Tensors[0], dst, true)
			var nf *NonFiniteError
			if !errors.As(err, &nf) || nf.Tensor != "model.norm.weight" || nf.Index != 3 || !strings.Contains(err.Error(), "model.norm.weight") {
				t.Errorf("%s %v: %v", dt, bad, err)
			}
			if err := ReadFloat32(r, h.Tensors[0], dst, false); err != nil {
				t.Errorf("unchecked read: %v", err)
			}
			if err := ReadFloat32(r, h.Tensors[0], make([]float32, 4), false); err == nil || !strings.Contains(err.Error(), "model.norm.weight") {
				t.Errorf("short destination: %v", err)
			}
		}
	}
}

func TestWriteRejects(t *testing.T) {
	for name, ts := range map[string][]Tensor{
		"duplicate":  {{Name: "a", Shape: []int{1}, Data: []float32{1}}, {Name: "a", Shape: []int{1}, Data: []float32{1}}},
		"no name":    {{Shape: []int{1}, Data: []float32{1}}},
		"bad length": {{Name: "a", Shape: []int{2}, Data: []float32{1}}},
		"dtype":      {{Name: "a", Shape: []int{1}, Data: []float32{1}, DType: "I8"}},
	} {
		if _, err := Encode(ts, nil); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}
