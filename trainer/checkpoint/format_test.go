package checkpoint

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
)

// TestSafetensorsExactBytes builds the expected file by hand from the format's specification and compares.
func TestSafetensorsExactBytes(t *testing.T) {
	got, err := encodeSafetensors([]Tensor{
		{Name: "b", Shape: []int{2}, Data: []float32{1, -2}},
		{Name: "a", Shape: []int{1, 1}, Data: []float32{0.5}},
	}, map[string]string{"format": "pt"})
	if err != nil {
		t.Fatal(err)
	}
	header := `{"__metadata__":{"format":"pt"},` +
		`"a":{"dtype":"F32","shape":[1,1],"data_offsets":[0,4]},` +
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
}

// TestModelFileFollowsSpec parses a saved model.safetensors byte by byte, independently of the library.
func TestModelFileFollowsSpec(t *testing.T) {
	m := testModel(3)
	dir := filepath.Join(t.TempDir(), "model")
	if _, err := SaveModel(dir, m); err != nil {
		t.Fatal(err)
	}
	buf, err := os.ReadFile(filepath.Join(dir, ModelFile))
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(buf[:8])
	if n%8 != 0 || 8+n > uint64(len(buf)) {
		t.Fatalf("header length %d (file %d bytes): must be a multiple of 8 inside the file", n, len(buf))
	}
	header := buf[8 : 8+n]
	if header[0] != '{' {
		t.Fatalf("header starts with %q", header[0])
	}
	trimmed := bytes.TrimRight(header, " ")
	if trimmed[len(trimmed)-1] != '}' || len(header)-len(trimmed) >= 8 {
		t.Fatalf("header must be JSON padded with fewer than 8 spaces: ends %q", header[len(header)-10:])
	}
	var h map[string]json.RawMessage
	if err := json.Unmarshal(header, &h); err != nil {
		t.Fatal(err)
	}
	var meta map[string]string
	if err := json.Unmarshal(h["__metadata__"], &meta); err != nil || meta["format"] != "pt" {
		t.Fatalf("__metadata__ %s", h["__metadata__"])
	}
	delete(h, "__metadata__")
	data := buf[8+n:]
	type info struct {
		DType   string    `json:"dtype"`
		Shape   []int     `json:"shape"`
		Offsets [2]uint64 `json:"data_offsets"`
	}
	var spans [][2]uint64
	want := ByName(m.Tensors)
	if len(h) != len(want) {
		t.Fatalf("%d tensors in the header, want %d", len(h), len(want))
	}
	for name, raw := range h {
		var ti info
		if err := json.Unmarshal(raw, &ti); err != nil {
			t.Fatal(err)
		}
		w := want[name]
		if ti.DType != "F32" || !slices.Equal(ti.Shape, w.Shape) || ti.Offsets[1]-ti.Offsets[0] != uint64(4*len(w.Data)) {
			t.Fatalf("%s: %+v, want F32 %v of %d bytes", name, ti, w.Shape, 4*len(w.Data))
		}
		if ti.Offsets[0]%4 != 0 {
			t.Fatalf("%s: offset %d not aligned to its 4-byte dtype", name, ti.Offsets[0])
		}
		for i, x := range w.Data {
			if bits := binary.LittleEndian.Uint32(data[ti.Offsets[0]+4*uint64(i):]); bits != math.Float32bits(x) {
				t.Fatalf("%s[%d]: bits %08x, want %08x", name, i, bits, math.Float32bits(x))
			}
		}
		spans = append(spans, ti.Offsets)
	}
	// The tensors tile the data area exactly: no gap, no overlap, nothing after.
	sort.Slice(spans, func(i, j int) bool { return spans[i][0] < spans[j][0] })
	next := uint64(0)
	for _, s := range spans {
		if s[0] != next {
			t.Fatalf("gap or overlap at %d (expected %d)", s[0], next)
		}
		next = s[1]
	}
	if next != uint64(len(data)) {
		t.Fatalf("data area %d bytes, tensors cover %d", len(data), next)
	}
}

func TestDecodeRejectsOtherDType(t *testing.T) {
	header := `{"x":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}`
	for len(header)%8 != 0 {
		header += " "
	}
	buf := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	buf = append(append(buf, header...), 0, 0, 0, 0)
	if _, _, err := decodeSafetensors(buf); err == nil {
		t.Fatal("F16 accepted")
	}
}
