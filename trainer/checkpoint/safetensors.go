package checkpoint

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/nlpodyssey/safetensors"
)

// f32View lets the safetensors library serialise a tensor already encoded as little-endian F32 bytes.
type f32View struct {
	shape []uint64
	data  []byte
}

func (v f32View) DType() safetensors.DType { return safetensors.F32 }
func (v f32View) Shape() []uint64          { return v.shape }
func (v f32View) Data() []byte             { return v.data }
func (v f32View) DataLen() uint64          { return uint64(len(v.data)) }

// encodeSafetensors renders tensors as one safetensors file: an 8-byte little-endian header length, a JSON
// header padded with spaces to a multiple of 8, then the tensors' bytes (the library orders them by name).
// metadata goes under "__metadata__".
func encodeSafetensors(ts []Tensor, metadata map[string]string) ([]byte, error) {
	views := make(map[string]f32View, len(ts))
	for _, t := range ts {
		shape := make([]uint64, len(t.Shape))
		for i, d := range t.Shape {
			shape[i] = uint64(d)
		}
		data := make([]byte, 4*len(t.Data))
		for i, x := range t.Data {
			binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(x))
		}
		views[t.Name] = f32View{shape: shape, data: data}
	}
	return safetensors.Serialize(views, metadata)
}

// decodeSafetensors parses a whole safetensors file whose tensors must all be F32. The library checks the header
// length against the file size and that the offsets tile the data exactly, so a truncated file is an error.
func decodeSafetensors(buf []byte) ([]Tensor, map[string]string, error) {
	st, err := safetensors.Deserialize(buf)
	if err != nil {
		return nil, nil, err
	}
	_, meta, err := safetensors.ReadMetadata(buf)
	if err != nil {
		return nil, nil, err
	}
	views := st.Tensors()
	ts := make([]Tensor, 0, len(views))
	for _, v := range views {
		if v.TensorView.DType() != safetensors.F32 {
			return nil, nil, fmt.Errorf("tensor %q has dtype %v, want F32", v.Name, v.TensorView.DType())
		}
		shape := make([]int, len(v.TensorView.Shape()))
		for i, d := range v.TensorView.Shape() {
			if d > math.MaxInt32 {
				return nil, nil, fmt.Errorf("tensor %q has dimension %d, too large", v.Name, d)
			}
			shape[i] = int(d)
		}
		raw := v.TensorView.Data()
		data := make([]float32, len(raw)/4)
		for i := range data {
			data[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		ts = append(ts, Tensor{Name: v.Name, Shape: shape, Data: data})
	}
	return ts, meta.Metadata(), nil
}
