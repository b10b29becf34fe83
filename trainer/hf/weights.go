package hf

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/preftune/preftune/trainer/safetensors"
)

// File names of a Hugging Face model directory.
const (
	ConfigFile           = "config.json"
	WeightsFile          = "model.safetensors"
	WeightsIndexFile     = "model.safetensors.index.json"
	GenerationConfigFile = "generation_config.json"
)

// TokenizerFiles (the tokenizer and its settings, the generation settings, a chat template in its own file) are
// copied from the source model directory into a saved one when present.
var TokenizerFiles = []string{"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", GenerationConfigFile,
	"chat_template.jinja"}

// TensorInfo is one tensor of a model directory's weights, as its safetensors header gives it.
type TensorInfo struct {
	// Name as stored in the file.
	Name  string
	DType safetensors.DType
	Shape []int
	// File is the safetensors file holding it (relative to the directory).
	File  string
	entry safetensors.Entry
}

// Weights is the table of contents of a model directory's weights: model.safetensors, or the shards that
// model.safetensors.index.json maps. OpenWeights reads only the headers.
type Weights struct {
	Dir string
	// Files are the safetensors files in name order.
	Files []string
	// Tensors in name order.
	Tensors []TensorInfo
}

// ModelUnreadableError is weights or a directory that cannot be read: a missing or malformed file, an index that
// disagrees with its shards, a non-finite value. Reason is "ModelUnreadable".
type ModelUnreadableError struct {
	Dir string
	Err error
}

// Reason is "ModelUnreadable".
func (e *ModelUnreadableError) Reason() string { return ReasonModelUnreadable }
func (e *ModelUnreadableError) Error() string  { return fmt.Sprintf("model %s: %v", e.Dir, e.Err) }
func (e *ModelUnreadableError) Unwrap() error  { return e.Err }

// WeightFiles lists the safetensors files of a model directory's weights, in name order: the shards named by
// model.safetensors.index.json when it exists, else model.safetensors. Shard names must be plain file names.
func WeightFiles(dir string) ([]string, map[string]string, error) {
	data, err := os.ReadFile(filepath.Join(dir, WeightsIndexFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
		if _, err := os.Stat(filepath.Join(dir, WeightsFile)); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				hint := ""
				if _, perr := os.Stat(filepath.Join(dir, "pytorch_model.bin")); perr == nil {
					hint = " (pytorch_model.bin is there: PyTorch pickle weights are not read; convert them to safetensors)"
				}
				return nil, nil, fmt.Errorf("neither %s nor %s is present%s", WeightsFile, WeightsIndexFile, hint)
			}
			return nil, nil, err
		}
		return []string{WeightsFile}, nil, nil
	case err != nil:
		return nil, nil, err
	}
	var index struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(data, &index); err != nil {
		return nil, nil, fmt.Errorf("%s: %v", WeightsIndexFile, err)
	}
	if len(index.WeightMap) == 0 {
		return nil, nil, fmt.Errorf("%s: weight_map is empty", WeightsIndexFile)
	}
	set := map[string]bool{}
	for name, f := range index.WeightMap {
		if f == "" || f != filepath.Base(f) || f == "." || f == ".." || strings.ContainsAny(f, `/\`) {
			return nil, nil, fmt.Errorf("%s: tensor %q maps to %q, not a file name in the directory", WeightsIndexFile, name, f)
		}
		set[f] = true
	}
	files := make([]string, 0, len(set))
	for f := range set {
		files = append(files, f)
	}
	sort.Strings(files)
	return files, index.WeightMap, nil
}

// OpenWeights reads the headers of a model directory's weights. With an index, every shard must exist, hold
// exactly the tensors the index assigns to it, and no tensor may appear in two shards. Errors are
// *ModelUnreadableError naming the file and tensor.
func OpenWeights(dir string) (*Weights, error) {
	fail := func(format string, args ...any) (*Weights, error) {
		return nil, &ModelUnreadableError{Dir: dir, Err: fmt.Errorf(format, args...)}
	}
	files, weightMap, err := WeightFiles(dir)
	if err != nil {
		return fail("%w", err)
	}
	w := &Weights{Dir: dir, Files: files}
	where := map[string]string{}
	for _, name := range files {
		h, err := readHeader(filepath.Join(dir, name))
		if err != nil {
			return fail("%s: %w", name, err)
		}
		for _, e := range h.Tensors {
			if prev, dup := where[e.Name]; dup {
				return fail("tensor %q is in both %s and %s", e.Name, prev, name)
			}
			where[e.Name] = name
			if weightMap != nil && weightMap[e.Name] != name {
				if weightMap[e.Name] == "" {
					return fail("tensor %q is in %s but not in %s", e.Name, name, WeightsIndexFile)
				}
				return fail("tensor %q is in %s but %s maps it to %s", e.Name, name, WeightsIndexFile, weightMap[e.Name])
			}
			w.Tensors = append(w.Tensors, TensorInfo{Name: e.Name, DType: e.DType, Shape: e.Shape, File: name, entry: e})
		}
	}
	for name, f := range weightMap {
		if where[name] == "" {
			return fail("%s maps tensor %q to %s, which does not hold it", WeightsIndexFile, name, f)
		}
	}
	sort.Slice(w.Tensors, func(i, j int) bool { return w.Tensors[i].Name < w.Tensors[j].Name })
	return w, nil
}

func readHeader(path string) (*safetensors.Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return safetensors.ReadHeader(f, st.Size())
}

// Destination returns the []float32 a tensor is read into (its length must be the tensor's element count), or
// nil to skip the tensor (Load counts and returns the skipped names).
type Destination func(t TensorInfo) ([]float32, error)

// Load reads every tensor into the slice dst returns for it, one file at a time and one tensor at a time through
// a single 1 MiB buffer, widening BF16 and F16 to float32 exactly. Peak memory is therefore the destinations (the
// model's own float32 parameters) plus 1 MiB: no second copy of the weights is ever held, whatever the number or
// size of the shards, and nothing is memory-mapped (TestLoadAllocatesOneBuffer measures it). Every value is checked: a NaN or ±Inf fails with an error
// naming the tensor and file. It returns the names dst skipped.
func (w *Weights) Load(dst Destination) (skipped []string, err error) {
	buf := safetensors.NewReadBuffer()
	byFile := map[string][]TensorInfo{}
	for _, t := range w.Tensors {
		byFile[t.File] = append(byFile[t.File], t)
	}
	for _, name := range w.Files {
		if err := w.loadFile(name, byFile[name], dst, &skipped, buf); err != nil {
			return skipped, err
		}
	}
	return skipped, nil
}

func (w *Weights) loadFile(name string, ts []TensorInfo, dst Destination, skipped *[]string, buf []byte) error {
	f, err := os.Open(filepath.Join(w.Dir, name))
	if err != nil {
		return &ModelUnreadableError{Dir: w.Dir, Err: err}
	}
	defer f.Close()
	// Read in file order, so the disk is read sequentially.
	sort.Slice(ts, func(i, j int) bool { return ts[i].entry.Begin < ts[j].entry.Begin })
	for _, t := range ts {
		out, err := dst(t)
		if err != nil {
			return fmt.Errorf("tensor %q: %w", t.Name, err)
		}
		if out == nil {
			*skipped = append(*skipped, t.Name)
			continue
		}
		if err := safetensors.ReadFloat32Buf(f, t.entry, out, true, buf); err != nil {
			return &ModelUnreadableError{Dir: w.Dir, Err: fmt.Errorf("%s: %w", name, err)}
		}
	}
	return nil
}

// Model is a loaded model directory: its config and its parameters under canonical names (ExpectedShapes'),
// float32, in name order.
type Model struct {
	Config  *Config
	Tensors []safetensors.Tensor
	// Ignored are the tensors found in the files and skipped (Config.Ignorable), by their names in the file.
	Ignored []string
	// SourceDTypes counts the tensors loaded by their dtype in the files, e.g. {"BF16": 47}.
	SourceDTypes map[safetensors.DType]int
}

// ModelDir is a model directory opened for loading: its config and the table of contents of its weights, already
// checked against each other. No tensor data has been read yet, so a model can size its own parameters from
// Config and then have LoadInto fill them in place (the model's memory is the only copy).
type ModelDir struct {
	Dir     string
	Config  *Config
	Weights *Weights
	// Ignored are the tensors of the files that are skipped (Config.Ignorable), by their names in the file.
	Ignored []string
	ignored map[string]bool
}

// OpenModel reads config.json and the weights' headers of a model directory and checks every tensor's name and
// shape against the config (ExpectedShapes, after CanonicalName; Ignorable ones skipped). Errors:
// *UnsupportedError, *ConfigError, *ShapeError, *ModelUnreadableError.
func OpenModel(dir string) (*ModelDir, error) {
	data, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, &ModelUnreadableError{Dir: dir, Err: err}
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return nil, err
	}
	w, err := OpenWeights(dir)
	if err != nil {
		return nil, err
	}
	canon := make([]TensorInfo, len(w.Tensors))
	for i, t := range w.Tensors {
		canon[i] = t
		canon[i].Name = cfg.CanonicalName(t.Name)
	}
	ignored, err := CheckShapes(canon, cfg.ExpectedShapes(), cfg.Ignorable)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", dir, err)
	}
	d := &ModelDir{Dir: dir, Config: cfg, Weights: w, ignored: map[string]bool{}}
	for _, n := range ignored {
		d.ignored[n] = true
	}
	for _, t := range w.Tensors {
		if d.ignored[cfg.CanonicalName(t.Name)] {
			d.Ignored = append(d.Ignored, t.Name)
		}
	}
	return d, nil
}

// LoadInto reads every parameter into the slice dst returns for its canonical name (ExpectedShapes' names; the
// slice's length must be the shape's element count), as Weights.Load does: one tensor at a time through one 1 MiB
// buffer, widened to float32, checked finite. It returns the count of tensors loaded by their dtype in the files.
func (d *ModelDir) LoadInto(dst func(name string, shape []int) ([]float32, error)) (map[safetensors.DType]int, error) {
	dtypes := map[safetensors.DType]int{}
	_, err := d.Weights.Load(func(t TensorInfo) ([]float32, error) {
		name := d.Config.CanonicalName(t.Name)
		if d.ignored[name] {
			return nil, nil
		}
		out, err := dst(name, t.Shape)
		if err == nil && out == nil {
			err = fmt.Errorf("no destination for the parameter")
		}
		dtypes[t.DType]++
		return out, err
	})
	return dtypes, err
}

// LoadModel opens a model directory (OpenModel) and loads every parameter into a new slice (LoadInto).
func LoadModel(dir string) (*Model, error) {
	d, err := OpenModel(dir)
	if err != nil {
		return nil, err
	}
	m := &Model{Config: d.Config, Ignored: d.Ignored}
	m.SourceDTypes, err = d.LoadInto(func(name string, shape []int) ([]float32, error) {
		data := make([]float32, numel(shape))
		m.Tensors = append(m.Tensors, safetensors.Tensor{Name: name, Shape: shape, Data: data})
		return data, nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(m.Tensors, func(i, j int) bool { return m.Tensors[i].Name < m.Tensors[j].Name })
	return m, nil
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// WeightsDigest is the digest of a model directory's weights: "sha256:<hex>" of the bytes of its safetensors
// files (WeightFiles: model.safetensors alone, or the shards named by the index) concatenated in name order.
// For a single model.safetensors it is the sha256 of that file, the same as trainer/checkpoint.Digest.
func WeightsDigest(dir string) (string, error) {
	files, _, err := WeightFiles(dir)
	if err != nil {
		return "", &ModelUnreadableError{Dir: dir, Err: err}
	}
	h := sha256.New()
	for _, name := range files {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return "", &ModelUnreadableError{Dir: dir, Err: err}
		}
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", &ModelUnreadableError{Dir: dir, Err: fmt.Errorf("%s: %w", name, err)}
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
