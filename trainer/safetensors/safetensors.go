// Package safetensors reads and writes the safetensors format (https://github.com/huggingface/safetensors):
// an 8-byte little-endian header length N, a JSON header of N bytes, then the tensors' bytes.
//
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the
// first byte after the header) and may hold "__metadata__", a string-to-string map. This package writes the header
// with "__metadata__" first, then the tensors sorted by name, padded with spaces so N is a multiple of 8 (the data
// then starts 8-byte aligned), and the tensors' bytes in the same name order with no gaps: the layout the Python
// library writes for tensors of one dtype.
//
// It is the one encoder and decoder of the project: trainer/checkpoint writes checkpoints with it and trainer/hf
// reads and writes Hugging Face model directories with it.
//
// Memory: Write streams each tensor through a small buffer, so writing needs no copy of the weights. Reading is
// per tensor: Header parses only the header, and ReadFloat32 fills a caller-owned []float32 through a 1 MiB
// buffer, widening BF16 and F16 to float32 on the way (exactly: every BF16 and F16 value, subnormals, infinities
// and NaN included, is a float32 value). Nothing is memory-mapped.
package safetensors

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
)

// DType is a safetensors element type name.
type DType string

// The element types this package reads (all three) and writes (all three).
const (
	F32  DType = "F32"
	BF16 DType = "BF16"
	F16  DType = "F16"
)

// Size is the element size in bytes of a dtype, 0 for one this package does not handle.
func (d DType) Size() int {
	switch d {
	case F32:
		return 4
	case BF16, F16:
		return 2
	}
	return 0
}

// MaxHeaderSize bounds the JSON header (the Python library's limit is 100 MB).
const MaxHeaderSize = 100 << 20

// Tensor is a named float32 tensor in row-major order. DType is the type to write it as (empty: F32); when read,
// Data is always float32.
type Tensor struct {
	Name  string
	Shape []int
	Data  []float32
	DType DType
}

// Entry is one tensor of a file's header. Begin and End are byte offsets from the start of the file (not from the
// data area as in the header), so a reader seeks to them directly.
type Entry struct {
	Name  string
	DType DType
	Shape []int
	Begin int64
	End   int64
}

// Elements is the product of the shape (1 for a scalar).
func (e Entry) Elements() int {
	n := 1
	for _, d := range e.Shape {
		n *= d
	}
	return n
}

// Header is a parsed safetensors header.
type Header struct {
	Metadata map[string]string
	// Tensors sorted by name.
	Tensors []Entry
	// Size is the file's size in bytes: 8 + header + data.
	Size int64
}

// Find returns the entry named name.
func (h *Header) Find(name string) (Entry, bool) {
	i := sort.Search(len(h.Tensors), func(i int) bool { return h.Tensors[i].Name >= name })
	if i < len(h.Tensors) && h.Tensors[i].Name == name {
		return h.Tensors[i], true
	}
	return Entry{}, false
}

type headerEntry struct {
	DType       DType    `json:"dtype"`
	Shape       []int64  `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// ReadHeader parses the header of a safetensors file of size bytes. It checks what the format requires: the header
// fits the file and is a JSON object; every tensor's dtype is one this package reads, its shape has no negative
// dimension, and its byte span is exactly elements × element size; the spans tile the data area exactly (no gap,
// no overlap, nothing after the last), so a truncated or padded file is an error. Errors name the tensor.
func ReadHeader(r io.ReaderAt, size int64) (*Header, error) {
	var lenBuf [8]byte
	if size < 8 {
		return nil, fmt.Errorf("file of %d bytes is too short for a safetensors header", size)
	}
	if _, err := r.ReadAt(lenBuf[:], 0); err != nil {
		return nil, fmt.Errorf("reading the header length: %w", err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > MaxHeaderSize {
		return nil, fmt.Errorf("header length %d exceeds the %d-byte limit", n, MaxHeaderSize)
	}
	if int64(n) > size-8 {
		return nil, fmt.Errorf("header length %d exceeds the file (%d bytes): the file is truncated", n, size)
	}
	raw := make([]byte, n)
	if _, err := r.ReadAt(raw, 8); err != nil {
		return nil, fmt.Errorf("reading the header: %w", err)
	}
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&fields); err != nil {
		return nil, fmt.Errorf("header is not a JSON object: %v", err)
	}
	if fields == nil {
		return nil, fmt.Errorf("header is not a JSON object")
	}
	h := &Header{Size: size}
	dataStart := 8 + int64(n)
	for name, v := range fields {
		if name == "__metadata__" {
			if err := json.Unmarshal(v, &h.Metadata); err != nil {
				return nil, fmt.Errorf("__metadata__ is not a map of strings: %v", err)
			}
			continue
		}
		var he headerEntry
		if err := json.Unmarshal(v, &he); err != nil {
			return nil, fmt.Errorf("tensor %q: %v", name, err)
		}
		if he.DType.Size() == 0 {
			return nil, fmt.Errorf("tensor %q has dtype %q; supported: F32, BF16, F16", name, he.DType)
		}
		e := Entry{Name: name, DType: he.DType, Shape: make([]int, len(he.Shape))}
		elems := int64(1)
		for i, d := range he.Shape {
			if d < 0 || d > math.MaxInt32 {
				return nil, fmt.Errorf("tensor %q has dimension %d", name, d)
			}
			e.Shape[i] = int(d)
			if d != 0 && elems > math.MaxInt64/d {
				return nil, fmt.Errorf("tensor %q: shape %v overflows", name, he.Shape)
			}
			elems *= d
		}
		b, en := he.DataOffsets[0], he.DataOffsets[1]
		if b < 0 || en < b {
			return nil, fmt.Errorf("tensor %q has data_offsets [%d, %d]", name, b, en)
		}
		if want := elems * int64(he.DType.Size()); en-b != want {
			return nil, fmt.Errorf("tensor %q: %s of shape %v needs %d bytes, data_offsets [%d, %d] give %d", name, he.DType, e.Shape, want, b, en, en-b)
		}
		e.Begin, e.End = dataStart+b, dataStart+en
		h.Tensors = append(h.Tensors, e)
	}
	// The spans must tile [dataStart, size) exactly.
	spans := append([]Entry(nil), h.Tensors...)
	sort.Slice(spans, func(i, j int) bool {
		if spans[i].Begin != spans[j].Begin {
			return spans[i].Begin < spans[j].Begin
		}
		return spans[i].End < spans[j].End
	})
	next := dataStart
	for _, e := range spans {
		if e.Begin != next {
			if e.Begin < next {
				return nil, fmt.Errorf("tensor %q overlaps the tensor before it (bytes from %d, previous ends at %d)", e.Name, e.Begin-dataStart, next-dataStart)
			}
			return nil, fmt.Errorf("gap in the data area before tensor %q (bytes %d to %d unused)", e.Name, next-dataStart, e.Begin-dataStart)
		}
		next = e.End
	}
	if next != size {
		if next > size {
			return nil, fmt.Errorf("the tensors need %d data bytes, the file has %d: the file is truncated", next-dataStart, size-dataStart)
		}
		return nil, fmt.Errorf("%d bytes after the last tensor", size-next)
	}
	sort.Slice(h.Tensors, func(i, j int) bool { return h.Tensors[i].Name < h.Tensors[j].Name })
	return h, nil
}

// chunkSize is the read buffer of ReadFloat32: the only memory it uses besides the destination.
const chunkSize = 1 << 20

// ReadFloat32 reads the tensor e of the file r into dst (len(dst) must equal e.Elements()), widening BF16 and F16
// exactly. It returns an error naming the tensor and the element for a NaN or ±Inf value when checkFinite is set.
// It allocates a read buffer of at most 1 MiB; ReadFloat32Buf reuses the caller's.
func ReadFloat32(r io.ReaderAt, e Entry, dst []float32, checkFinite bool) error {
	return ReadFloat32Buf(r, e, dst, checkFinite, make([]byte, min(chunkSize, max(int(e.End-e.Begin), 4))))
}

// NewReadBuffer is a read buffer for ReadFloat32Buf (1 MiB).
func NewReadBuffer() []byte { return make([]byte, chunkSize) }

// ReadFloat32Buf is ReadFloat32 reading through buf (at least 4 bytes; its size bounds each read), so that a loop
// over many tensors allocates nothing.
func ReadFloat32Buf(r io.ReaderAt, e Entry, dst []float32, checkFinite bool, buf []byte) error {
	if len(dst) != e.Elements() {
		return fmt.Errorf("tensor %q has %d elements (shape %v), destination holds %d", e.Name, e.Elements(), e.Shape, len(dst))
	}
	size := e.DType.Size()
	if size == 0 {
		return fmt.Errorf("tensor %q has dtype %q; supported: F32, BF16, F16", e.Name, e.DType)
	}
	if len(buf) < 4 {
		return fmt.Errorf("tensor %q: read buffer of %d bytes is too small", e.Name, len(buf))
	}
	per := len(buf) / size
	for i := 0; i < len(dst); i += per {
		k := min(per, len(dst)-i)
		b := buf[:k*size]
		if _, err := r.ReadAt(b, e.Begin+int64(i*size)); err != nil {
			return fmt.Errorf("tensor %q: reading: %w", e.Name, err)
		}
		out := dst[i : i+k]
		switch e.DType {
		case F32:
			for j := range out {
				out[j] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*j:]))
			}
		case BF16:
			for j := range out {
				out[j] = BF16ToFloat32(binary.LittleEndian.Uint16(b[2*j:]))
			}
		case F16:
			for j := range out {
				out[j] = F16ToFloat32(binary.LittleEndian.Uint16(b[2*j:]))
			}
		}
		if checkFinite {
			for j, x := range out {
				if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
					return &NonFiniteError{Tensor: e.Name, Index: i + j, Value: x}
				}
			}
		}
	}
	return nil
}

// NonFiniteError is a NaN or ±Inf found in a tensor on load.
type NonFiniteError struct {
	Tensor string
	// Index is the flat (row-major) index of the first non-finite element.
	Index int
	Value float32
}

func (e *NonFiniteError) Error() string {
	return fmt.Sprintf("tensor %q holds a non-finite value (%v at flat index %d)", e.Tensor, e.Value, e.Index)
}

// BF16ToFloat32 widens a bfloat16 (the top 16 bits of a float32) exactly.
func BF16ToFloat32(b uint16) float32 { return math.Float32frombits(uint32(b) << 16) }

// F16ToFloat32 widens an IEEE 754 binary16 exactly: normals, subnormals (2^-24 steps), ±0, ±Inf and NaN (the
// payload is kept in the top mantissa bits, quiet or not as it was).
func F16ToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf or NaN
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	case exp != 0: // normal: rebias 15 → 127
		return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
	case mant == 0:
		return math.Float32frombits(sign)
	}
	// Subnormal: mant × 2^-24; normalise into a float32 normal.
	e := uint32(113) // exponent field of 2^-14
	for mant&0x400 == 0 {
		mant <<= 1
		e--
	}
	return math.Float32frombits(sign | e<<23 | (mant&0x3ff)<<13)
}

// Float32ToBF16 rounds to the nearest bfloat16, ties to even (as PyTorch's .to(torch.bfloat16)); NaN stays NaN.
func Float32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if f != f {
		return uint16(b>>16) | 0x40 // quiet NaN, sign kept
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// Float32ToF16 rounds to the nearest binary16, ties to even; values beyond the range become ±Inf, NaN stays NaN.
func Float32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// Subnormal half (or zero): value = m × 2^-24 with m = round(full mantissa × 2^(e-1-13)).
		if e < -10 {
			return sign
		}
		full := mant | 0x800000
		shift := uint32(14 - e) // 13 + (1 - e)
		m := full >> shift
		rem := full & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || (rem == half && m&1 == 1) {
			m++
		}
		return sign | uint16(m)
	}
	m := mant >> 13
	rem := mant & 0x1fff
	out := uint32(e)<<10 | m
	if rem > 0x1000 || (rem == 0x1000 && m&1 == 1) {
		out++ // may carry into the exponent, up to Inf: correct rounding
	}
	return sign | uint16(out)
}

// Write writes tensors as one safetensors file to w and returns the number of bytes written. Each tensor is
// converted to its DType (F32 when empty; BF16/F16 rounded to nearest even) through a 64 KiB buffer, so the
// weights are never copied whole. Names must be unique and non-empty and each Data must match its shape.
func Write(w io.Writer, ts []Tensor, metadata map[string]string) (int64, error) {
	header, order, err := encodeHeader(ts, metadata)
	if err != nil {
		return 0, err
	}
	cw := &countingWriter{w: w}
	bw := bufio.NewWriterSize(cw, 64<<10)
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(header)))
	bw.Write(lenBuf[:])
	bw.Write(header)
	var b [4]byte
	for _, t := range order {
		switch dtypeOf(t) {
		case F32:
			for _, x := range t.Data {
				binary.LittleEndian.PutUint32(b[:], math.Float32bits(x))
				bw.Write(b[:4])
			}
		case BF16:
			for _, x := range t.Data {
				binary.LittleEndian.PutUint16(b[:], Float32ToBF16(x))
				bw.Write(b[:2])
			}
		case F16:
			for _, x := range t.Data {
				binary.LittleEndian.PutUint16(b[:], Float32ToF16(x))
				bw.Write(b[:2])
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return cw.n, err
	}
	return cw.n, nil
}

// Encode renders tensors as one safetensors file in memory (Write into a buffer).
func Encode(ts []Tensor, metadata map[string]string) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := Write(&buf, ts, metadata); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// FileSize is the size of the file Write would produce for ts, without writing it.
func FileSize(ts []Tensor, metadata map[string]string) (int64, error) {
	header, order, err := encodeHeader(ts, metadata)
	if err != nil {
		return 0, err
	}
	n := 8 + int64(len(header))
	for _, t := range order {
		n += int64(len(t.Data) * dtypeOf(t).Size())
	}
	return n, nil
}

// Decode parses a whole safetensors file held in memory into float32 tensors sorted by name (F32, BF16 and F16
// accepted; no finiteness check) and returns its metadata.
func Decode(buf []byte) ([]Tensor, map[string]string, error) {
	r := bytes.NewReader(buf)
	h, err := ReadHeader(r, int64(len(buf)))
	if err != nil {
		return nil, nil, err
	}
	ts := make([]Tensor, len(h.Tensors))
	for i, e := range h.Tensors {
		data := make([]float32, e.Elements())
		if err := ReadFloat32(r, e, data, false); err != nil {
			return nil, nil, err
		}
		ts[i] = Tensor{Name: e.Name, Shape: e.Shape, Data: data, DType: e.DType}
	}
	return ts, h.Metadata, nil
}

func dtypeOf(t Tensor) DType {
	if t.DType == "" {
		return F32
	}
	return t.DType
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// encodeHeader checks the tensors and renders the padded JSON header; order is the tensors sorted by name.
func encodeHeader(ts []Tensor, metadata map[string]string) ([]byte, []Tensor, error) {
	order := append([]Tensor(nil), ts...)
	sort.Slice(order, func(i, j int) bool { return order[i].Name < order[j].Name })
	var buf bytes.Buffer
	buf.WriteByte('{')
	first := true
	if len(metadata) > 0 {
		m, err := marshal(metadata)
		if err != nil {
			return nil, nil, err
		}
		buf.WriteString(`"__metadata__":`)
		buf.Write(m)
		first = false
	}
	var offset int64
	for i, t := range order {
		if t.Name == "" {
			return nil, nil, fmt.Errorf("a tensor has no name")
		}
		if t.Name == "__metadata__" {
			return nil, nil, fmt.Errorf("tensor name %q is reserved", t.Name)
		}
		if i > 0 && order[i-1].Name == t.Name {
			return nil, nil, fmt.Errorf("tensor %q appears twice", t.Name)
		}
		dt := dtypeOf(t)
		if dt.Size() == 0 {
			return nil, nil, fmt.Errorf("tensor %q: dtype %q cannot be written; supported: F32, BF16, F16", t.Name, t.DType)
		}
		n := 1
		for _, d := range t.Shape {
			if d < 0 {
				return nil, nil, fmt.Errorf("tensor %q: negative dimension in shape %v", t.Name, t.Shape)
			}
			n *= d
		}
		if n != len(t.Data) {
			return nil, nil, fmt.Errorf("tensor %q of shape %v needs %d values, has %d", t.Name, t.Shape, n, len(t.Data))
		}
		name, err := marshal(t.Name)
		if err != nil {
			return nil, nil, err
		}
		shape := make([]string, len(t.Shape))
		for j, d := range t.Shape {
			shape[j] = fmt.Sprint(d)
		}
		end := offset + int64(n*dt.Size())
		if !first {
			buf.WriteByte(',')
		}
		first = false
		fmt.Fprintf(&buf, `%s:{"dtype":"%s","shape":[%s],"data_offsets":[%d,%d]}`, name, dt, strings.Join(shape, ","), offset, end)
		offset = end
	}
	buf.WriteByte('}')
	for buf.Len()%8 != 0 {
		buf.WriteByte(' ')
	}
	return buf.Bytes(), order, nil
}

// marshal is json.Marshal without HTML escaping (serde_json, which the Python library uses, writes '<' as is).
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}
