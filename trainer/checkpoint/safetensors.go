package checkpoint

import (
	"fmt"

	"github.com/preftune/preftune/trainer/safetensors"
)

// encodeSafetensors renders tensors as one F32 safetensors file (trainer/safetensors: an 8-byte little-endian
// header length, a JSON header padded with spaces to a multiple of 8, then the tensors' bytes in name order).
// metadata goes under "__metadata__".
func encodeSafetensors(ts []Tensor, metadata map[string]string) ([]byte, error) {
	f32 := make([]Tensor, len(ts))
	for i, t := range ts {
		t.DType = safetensors.F32
		f32[i] = t
	}
	return safetensors.Encode(f32, metadata)
}

// decodeSafetensors parses a whole safetensors file whose tensors must all be F32. The header must tile the data
// exactly, so a truncated file is an error.
func decodeSafetensors(buf []byte) ([]Tensor, map[string]string, error) {
	ts, meta, err := safetensors.Decode(buf)
	if err != nil {
		return nil, nil, err
	}
	for i := range ts {
		if ts[i].DType != safetensors.F32 {
			return nil, nil, fmt.Errorf("tensor %q has dtype %v, want F32", ts[i].Name, ts[i].DType)
		}
		ts[i].DType = ""
	}
	return ts, meta, nil
}
