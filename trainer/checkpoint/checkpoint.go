package checkpoint

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// FormatVersion of the checkpoint layout. A checkpoint of another version is never resumed from: bump it whenever
// what a checkpoint holds, or how it is read, changes.
//
// Version 2: weights under Hugging Face's names and config.json in its layout (a GPT-2 is a GPT2LMHeadModel with
// "transformer."-prefixed tensors); version 1 checkpoints (GPT-2 names without the prefix) are not resumed from.
const FormatVersion = 2

// OptimizerState is AdamW's state; it has optim.State's fields, so each converts to the other.
type OptimizerState struct {
	Step     int
	ExpAvg   map[string][]float32
	ExpAvgSq map[string][]float32
}

// State is state.json: the training loop's position. The loop owns the opaque fields' meaning; JSON fields come
// back with the same value, re-spaced (encoding/json re-indents raw messages).
type State struct {
	// FormatVersion is set by Save; SavedAt (RFC 3339) too when empty, so a caller may set it to know it.
	FormatVersion int     `json:"formatVersion"`
	SavedAt       string  `json:"savedAt"`
	Step          int     `json:"step"`
	Epoch         float64 `json:"epoch"`
	// RNG is the random generator's serialised state (base64 in the JSON).
	RNG []byte `json:"rng,omitempty"`
	// DataCursor says where in the data the next batch starts.
	DataCursor json.RawMessage `json:"dataCursor,omitempty"`
	// Schedule is the learning-rate schedule in force, so a resume can check it still matches.
	Schedule json.RawMessage `json:"schedule,omitempty"`
	// ReferenceDigest identifies the reference log-probabilities a DPO run precomputed.
	ReferenceDigest string `json:"referenceDigest,omitempty"`
	// BaseModelDigest is set in the checkpoints of a run that trains an adapter: they hold the adapter (and its
	// optimiser state) only, and this identifies the frozen base model they belong to.
	BaseModelDigest string          `json:"baseModelDigest,omitempty"`
	Extra           json.RawMessage `json:"extra,omitempty"`
}

// Checkpoint is everything one checkpoint directory holds.
type Checkpoint struct {
	Model
	Optimizer OptimizerState
	State     State
}

// checkpointFiles are the files COMPLETE must vouch for.
var checkpointFiles = []string{ModelFile, ConfigFile, TokenizerFile, OptimizerFile, StateFile}

// Dir is the directory of the checkpoint of step under root (the run's output directory).
func Dir(root string, step int) string {
	return filepath.Join(root, "checkpoints", fmt.Sprintf("step-%08d", step))
}

// Save writes c as root/checkpoints/step-<State.Step>/ and returns that directory. When keep > 0 it then
// removes all but the newest keep complete checkpoints, and leftovers of interrupted saves (the caller is
// the only writer of root). A checkpoint already at that step is replaced once the new one is whole.
func Save(root string, c Checkpoint, keep int) (string, error) {
	if c.State.Step < 0 {
		return "", fmt.Errorf("checkpoint: step %d is negative", c.State.Step)
	}
	files, err := c.Model.files()
	if err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	opt, err := encodeOptimizer(c.Model.Tensors, c.Optimizer)
	if err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	files[OptimizerFile] = opt
	st := c.State
	st.FormatVersion = FormatVersion
	if st.SavedAt == "" {
		st.SavedAt = time.Now().UTC().Format(time.RFC3339)
	}
	raw, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return "", fmt.Errorf("checkpoint: state.json: %w", err)
	}
	files[StateFile] = append(raw, '\n')

	dir := Dir(root, st.Step)
	if err := installDir(dir, files, true); err != nil {
		return "", fmt.Errorf("checkpoint: saving %s: %w", dir, err)
	}
	if keep > 0 {
		if err := prune(root, keep); err != nil {
			return dir, fmt.Errorf("checkpoint: saved %s, but pruning older ones failed: %w", dir, err)
		}
	}
	return dir, nil
}

// Load reads a complete checkpoint directory, verifying every file against COMPLETE.
func Load(dir string) (*Checkpoint, error) {
	m, err := readManifest(dir)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	files, err := readVerified(dir, m, append(checkpointFiles, extraFiles(m)...)...)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	var c Checkpoint
	if err := json.Unmarshal(files[StateFile], &c.State); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %s: %w", dir, StateFile, err)
	}
	if c.State.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("checkpoint %s: %s has format version %d, this trainer reads version %d",
			dir, StateFile, c.State.FormatVersion, FormatVersion)
	}
	if want := "step-" + fmt.Sprintf("%08d", c.State.Step); filepath.Base(dir) != want && isStepDir(filepath.Base(dir)) {
		return nil, fmt.Errorf("checkpoint %s: %s says step %d", dir, StateFile, c.State.Step)
	}
	if c.Model, err = decodeModel(files); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	if c.Optimizer, err = decodeOptimizer(files[OptimizerFile], c.Model.Tensors); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %s: %w", dir, OptimizerFile, err)
	}
	return &c, nil
}

// encodeOptimizer stores each moment under exp_avg.<name> / exp_avg_sq.<name> with its parameter's shape, and the
// step in the header's metadata (a float32 tensor would round steps above 2^24).
func encodeOptimizer(model []Tensor, s OptimizerState) ([]byte, error) {
	if s.Step < 0 {
		return nil, fmt.Errorf("optimizer step %d is negative", s.Step)
	}
	if len(s.ExpAvg) != len(s.ExpAvgSq) {
		return nil, fmt.Errorf("optimizer has %d exp_avg and %d exp_avg_sq tensors", len(s.ExpAvg), len(s.ExpAvgSq))
	}
	params := ByName(model)
	var ts []Tensor
	for _, moment := range []struct {
		prefix string
		m      map[string][]float32
	}{{"exp_avg.", s.ExpAvg}, {"exp_avg_sq.", s.ExpAvgSq}} {
		for name, data := range moment.m {
			p, ok := params[name]
			if !ok {
				return nil, fmt.Errorf("optimizer state %s%s has no model tensor %q", moment.prefix, name, name)
			}
			if len(data) != len(p.Data) {
				return nil, fmt.Errorf("optimizer state %s%s has %d values, the parameter %d",
					moment.prefix, name, len(data), len(p.Data))
			}
			ts = append(ts, Tensor{Name: moment.prefix + name, Shape: p.Shape, Data: data})
		}
	}
	for name := range s.ExpAvg {
		if _, ok := s.ExpAvgSq[name]; !ok {
			return nil, fmt.Errorf("optimizer state has exp_avg.%s but no exp_avg_sq.%s", name, name)
		}
	}
	return encodeSafetensors(ts, map[string]string{"step": strconv.Itoa(s.Step), "optimizer": "adamw"})
}

func decodeOptimizer(buf []byte, model []Tensor) (OptimizerState, error) {
	ts, meta, err := decodeSafetensors(buf)
	if err != nil {
		return OptimizerState{}, err
	}
	step, err := strconv.Atoi(meta["step"])
	if err != nil || step < 0 {
		return OptimizerState{}, fmt.Errorf("metadata step %q is not a step count", meta["step"])
	}
	s := OptimizerState{Step: step, ExpAvg: map[string][]float32{}, ExpAvgSq: map[string][]float32{}}
	params := ByName(model)
	for _, t := range ts {
		var name string
		var into map[string][]float32
		if n, ok := strings.CutPrefix(t.Name, "exp_avg_sq."); ok {
			name, into = n, s.ExpAvgSq
		} else if n, ok := strings.CutPrefix(t.Name, "exp_avg."); ok {
			name, into = n, s.ExpAvg
		} else {
			return OptimizerState{}, fmt.Errorf("tensor %q is neither exp_avg.<name> nor exp_avg_sq.<name>", t.Name)
		}
		if p, ok := params[name]; !ok || len(p.Data) != len(t.Data) {
			return OptimizerState{}, fmt.Errorf("tensor %q does not match a model tensor of the same size", t.Name)
		}
		into[name] = t.Data
	}
	if len(s.ExpAvg) != len(s.ExpAvgSq) {
		return OptimizerState{}, fmt.Errorf("%d exp_avg but %d exp_avg_sq tensors", len(s.ExpAvg), len(s.ExpAvgSq))
	}
	return s, nil
}
