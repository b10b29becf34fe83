package hf

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/preftune/preftune/trainer/internal/durable"
	"github.com/preftune/preftune/trainer/safetensors"
)

// DefaultShardSize is the largest tensor data a weights file holds before SaveModel shards: 2 GiB.
const DefaultShardSize int64 = 2 << 30

// SaveOptions tune SaveModel.
type SaveOptions struct {
	// ShardSize bounds the tensor bytes of one safetensors file; 0 means DefaultShardSize. Weights of at most
	// ShardSize bytes go to model.safetensors; more are split, in name order, into model-0000k-of-0000n.safetensors
	// files of at most ShardSize bytes each (a single larger tensor gets a file of its own) with
	// model.safetensors.index.json, as save_pretrained does.
	ShardSize int64
	// SourceDir is the model directory the weights came from; the files of TokenizerFiles found there are copied.
	SourceDir string
}

// SaveResult says what SaveModel wrote.
type SaveResult struct {
	// WeightFiles are the safetensors files in name order; Files every file written, in name order.
	WeightFiles []string
	Files       []string
	// TotalSize is the tensor bytes (the index's metadata.total_size).
	TotalSize int64
	// Digest is WeightsDigest of the directory written, computed while writing.
	Digest string
	// Copied and Missing are the TokenizerFiles copied from SourceDir and those it does not have.
	Copied  []string
	Missing []string
}

// SaveModel writes a Hugging Face model directory: config.json (cfg.Marshal: same architecture, torch_dtype
// float32), the weights as F32 safetensors with {"format": "pt"} metadata (sharded past opts.ShardSize), and the
// tokenizer files copied from opts.SourceDir. The tensors must be exactly cfg.ExpectedShapes() (canonical names;
// no lm_head.weight when tied), so that transformers' from_pretrained loads the result unchanged. Tensor data is
// streamed to disk (no copy of the weights is made). Everything is written into a temporary sibling directory
// and fsynced, then renamed to dir, replacing an existing dir only then.
func SaveModel(dir string, cfg *Config, tensors []safetensors.Tensor, opts SaveOptions) (*SaveResult, error) {
	if _, err := CheckShapes(infos(tensors), cfg.ExpectedShapes(), nil); err != nil {
		return nil, fmt.Errorf("saving model %s: %w", dir, err)
	}
	config, err := cfg.Marshal()
	if err != nil {
		return nil, fmt.Errorf("saving model %s: %w", dir, err)
	}
	limit := opts.ShardSize
	if limit <= 0 {
		limit = DefaultShardSize
	}
	order := make([]safetensors.Tensor, len(tensors))
	var total int64
	for i, t := range tensors {
		t.DType = safetensors.F32
		order[i] = t
		total += 4 * int64(len(t.Data))
	}
	sort.Slice(order, func(i, j int) bool { return order[i].Name < order[j].Name })
	var shards [][]safetensors.Tensor
	var cur []safetensors.Tensor
	var curSize int64
	for _, t := range order {
		size := 4 * int64(len(t.Data))
		if len(cur) > 0 && curSize+size > limit {
			shards = append(shards, cur)
			cur, curSize = nil, 0
		}
		cur = append(cur, t)
		curSize += size
	}
	shards = append(shards, cur)

	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(parent, ".tmp-"+filepath.Base(dir)+"-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	res := &SaveResult{TotalSize: total}
	digest := sha256.New()
	meta := map[string]string{"format": "pt"}
	if total <= limit {
		shards = [][]safetensors.Tensor{order}
		if err := writeWeights(filepath.Join(tmp, WeightsFile), shards[0], meta, digest); err != nil {
			return nil, fmt.Errorf("saving model %s: %w", dir, err)
		}
		res.WeightFiles = []string{WeightsFile}
	} else {
		weightMap := map[string]string{}
		for i, s := range shards {
			name := fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(shards))
			if err := writeWeights(filepath.Join(tmp, name), s, meta, digest); err != nil {
				return nil, fmt.Errorf("saving model %s: %w", dir, err)
			}
			for _, t := range s {
				weightMap[t.Name] = name
			}
			res.WeightFiles = append(res.WeightFiles, name)
		}
		index, err := indentJSON(map[string]any{"metadata": map[string]any{"total_size": total}, "weight_map": weightMap})
		if err != nil {
			return nil, err
		}
		if err := durable.Copy(filepath.Join(tmp, WeightsIndexFile), bytes.NewReader(index)); err != nil {
			return nil, err
		}
	}
	res.Digest = "sha256:" + hex.EncodeToString(digest.Sum(nil))
	if err := durable.Copy(filepath.Join(tmp, ConfigFile), bytes.NewReader(config)); err != nil {
		return nil, err
	}
	if opts.SourceDir != "" {
		for _, name := range TokenizerFiles {
			f, err := os.Open(filepath.Join(opts.SourceDir, name))
			if errors.Is(err, os.ErrNotExist) {
				res.Missing = append(res.Missing, name)
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("saving model %s: copying %s: %w", dir, name, err)
			}
			err = durable.Copy(filepath.Join(tmp, name), f)
			f.Close()
			if err != nil {
				return nil, fmt.Errorf("saving model %s: copying %s: %w", dir, name, err)
			}
			res.Copied = append(res.Copied, name)
		}
	}
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		res.Files = append(res.Files, e.Name())
	}
	if err := durable.SyncDir(tmp); err != nil {
		return nil, err
	}
	if err := replaceDir(tmp, dir); err != nil {
		return nil, fmt.Errorf("saving model %s: %w", dir, err)
	}
	return res, nil
}

func infos(ts []safetensors.Tensor) []TensorInfo {
	out := make([]TensorInfo, len(ts))
	for i, t := range ts {
		// CheckShapes compares shapes; a data length that does not match is caught by the writer, named there.
		out[i] = TensorInfo{Name: t.Name, Shape: t.Shape}
	}
	return out
}

func writeWeights(path string, ts []safetensors.Tensor, meta map[string]string, digest hash.Hash) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := safetensors.Write(io.MultiWriter(f, digest), ts, meta); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// replaceDir renames tmp to dir; an existing dir is moved aside first and removed once tmp is in place.
func replaceDir(tmp, dir string) error {
	old := ""
	if _, err := os.Stat(dir); err == nil {
		old = tmp + ".old"
		if err := os.Rename(dir, old); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if old != "" {
			os.Rename(old, dir)
		}
		return err
	}
	if old != "" {
		os.RemoveAll(old)
	}
	return durable.SyncDir(filepath.Dir(dir))
}

func indentJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
