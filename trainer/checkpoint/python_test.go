package checkpoint

import (
	"encoding/json"
	"math"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// pythonWithSafetensors finds an interpreter that imports safetensors and numpy (Debian's, or the one on PATH).
func pythonWithSafetensors() string {
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(py, "-c", "import safetensors.numpy, numpy").Run() == nil {
			return py
		}
	}
	return ""
}

// TestPythonSafetensorsLoads loads the weights with Python's safetensors and compares every value's bits.
func TestPythonSafetensorsLoads(t *testing.T) {
	py := pythonWithSafetensors()
	if py == "" {
		t.Skip("no python3 that imports safetensors and numpy; Python loading is covered with torch by the cross-framework tests")
	}
	m := testModel(11)
	dir := filepath.Join(t.TempDir(), "model")
	if _, err := SaveModel(dir, m); err != nil {
		t.Fatal(err)
	}
	script := `
import json, sys
from safetensors import safe_open
out = {}
with safe_open(sys.argv[1], framework="numpy") as f:
    out["__metadata__"] = f.metadata()
    for name in f.keys():
        a = f.get_tensor(name)
        out[name] = {"dtype": str(a.dtype), "shape": list(a.shape), "bits": [int(x) for x in a.reshape(-1).view("<u4")]}
print(json.dumps(out))
`
	raw, err := exec.Command(py, "-c", script, filepath.Join(dir, ModelFile)).Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	var got map[string]json.RawMessage
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	var meta map[string]string
	if err := json.Unmarshal(got["__metadata__"], &meta); err != nil || meta["format"] != "pt" {
		t.Fatalf("metadata %s", got["__metadata__"])
	}
	for _, w := range m.Tensors {
		var g struct {
			DType string   `json:"dtype"`
			Shape []int    `json:"shape"`
			Bits  []uint32 `json:"bits"`
		}
		if err := json.Unmarshal(got[w.Name], &g); err != nil {
			t.Fatalf("%s: %v", w.Name, err)
		}
		if g.DType != "float32" || !slices.Equal(g.Shape, w.Shape) || len(g.Bits) != len(w.Data) {
			t.Fatalf("%s: python read %s %v with %d values", w.Name, g.DType, g.Shape, len(g.Bits))
		}
		for i, b := range g.Bits {
			if want := math.Float32bits(w.Data[i]); b != want {
				t.Fatalf("%s[%d]: python bits %08x, want %08x", w.Name, i, b, want)
			}
		}
	}
}
