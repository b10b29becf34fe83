package checkpoint

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Model is a model directory's content: weights, and the bytes of config.json and tokenizer.json.
type Model struct {
	Tensors   []Tensor
	Config    []byte
	Tokenizer []byte
	// Files are further files by name, kept beside the weights and vouched for by COMPLETE in a checkpoint: a
	// pretrained model's tokenizer_config.json, special_tokens_map.json and generation_config.json, so the
	// checkpoint loads with its tokenizer as the model directory it came from does.
	Files map[string][]byte
}

// Digest is the form of a weights digest: "sha256:<hex>" of the model.safetensors file.
func Digest(weights []byte) string {
	h := sha256.Sum256(weights)
	return "sha256:" + hex.EncodeToString(h[:])
}

// files renders the model's three files; config and tokenizer must be JSON (Python loaders parse them).
func (m Model) files() (map[string][]byte, error) {
	if len(m.Tensors) == 0 {
		return nil, fmt.Errorf("the model has no tensors")
	}
	if err := checkTensors(ModelFile, m.Tensors); err != nil {
		return nil, err
	}
	if !json.Valid(m.Config) {
		return nil, fmt.Errorf("%s is not valid JSON", ConfigFile)
	}
	if !json.Valid(m.Tokenizer) {
		return nil, fmt.Errorf("%s is not valid JSON", TokenizerFile)
	}
	// "format": "pt" is what Hugging Face's loaders expect in a PyTorch-layout safetensors file.
	weights, err := encodeSafetensors(m.Tensors, map[string]string{"format": "pt"})
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{ModelFile: weights, ConfigFile: m.Config, TokenizerFile: m.Tokenizer}
	for name, data := range m.Files {
		if _, ok := out[name]; ok || name == OptimizerFile || name == StateFile || name == CompleteFile ||
			name != filepath.Base(name) || name == "" || name[0] == '.' {
			return nil, fmt.Errorf("extra file %q: not a plain file name of its own", name)
		}
		out[name] = data
	}
	return out, nil
}

func decodeModel(files map[string][]byte) (Model, error) {
	ts, _, err := decodeSafetensors(files[ModelFile])
	if err != nil {
		return Model{}, fmt.Errorf("%s: %w", ModelFile, err)
	}
	m := Model{Tensors: ts, Config: files[ConfigFile], Tokenizer: files[TokenizerFile]}
	for name, data := range files {
		switch name {
		case ModelFile, ConfigFile, TokenizerFile, OptimizerFile, StateFile:
		default:
			if m.Files == nil {
				m.Files = map[string][]byte{}
			}
			m.Files[name] = data
		}
	}
	return m, nil
}

// extraFiles are the names COMPLETE lists beyond the fixed ones of a checkpoint (Model.Files).
func extraFiles(m manifest) []string {
	var out []string
	for name := range m.Files {
		switch name {
		case ModelFile, ConfigFile, TokenizerFile, OptimizerFile, StateFile:
		default:
			out = append(out, name)
		}
	}
	return out
}

// ModelSideFiles are the files of a model directory beside its weights, config and tokenizer.json that LoadModel
// reads into Model.Files when they are there: the tokenizer's settings, its special tokens, the generation
// settings and a chat template kept in its own file (Hugging Face's names).
var ModelSideFiles = []string{"tokenizer_config.json", "special_tokens_map.json", "generation_config.json", "chat_template.jinja"}

// SaveModel writes a final model directory (model.safetensors, config.json, tokenizer.json), replacing one
// already there only once the new files are on disk, and returns the weights' digest "sha256:<hex>".
func SaveModel(dir string, m Model) (string, error) {
	files, err := m.files()
	if err != nil {
		return "", fmt.Errorf("model %s: %w", dir, err)
	}
	if err := installDir(dir, files, false); err != nil {
		return "", fmt.Errorf("model %s: %w", dir, err)
	}
	return Digest(files[ModelFile]), nil
}

// LoadModel reads a model directory (with ModelSideFiles found there in Model.Files), or the model inside a
// checkpoint directory (verified against its COMPLETE; a checkpoint directory without COMPLETE is refused). It
// returns the weights' digest too.
func LoadModel(dir string) (Model, string, error) {
	var files map[string][]byte
	names := []string{ModelFile, ConfigFile, TokenizerFile}
	if _, err := os.Stat(filepath.Join(dir, StateFile)); err == nil {
		m, err := readManifest(dir)
		if err != nil {
			return Model{}, "", fmt.Errorf("model %s is a checkpoint directory: %w", dir, err)
		}
		if files, err = readVerified(dir, m, append(names, extraFiles(m)...)...); err != nil {
			return Model{}, "", fmt.Errorf("model %s: %w", dir, err)
		}
	} else {
		files = make(map[string][]byte, len(names))
		for _, name := range names {
			data, err := os.ReadFile(filepath.Join(dir, name))
			if errors.Is(err, os.ErrNotExist) {
				return Model{}, "", fmt.Errorf("model %s: %s is missing", dir, name)
			}
			if err != nil {
				return Model{}, "", fmt.Errorf("model %s: %w", dir, err)
			}
			files[name] = data
		}
		for _, name := range ModelSideFiles {
			data, err := os.ReadFile(filepath.Join(dir, name))
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return Model{}, "", fmt.Errorf("model %s: %w", dir, err)
			}
			files[name] = data
		}
	}
	m, err := decodeModel(files)
	if err != nil {
		return Model{}, "", fmt.Errorf("model %s: %w", dir, err)
	}
	if len(m.Tensors) == 0 {
		return Model{}, "", fmt.Errorf("model %s: %s holds no tensors", dir, ModelFile)
	}
	if !json.Valid(m.Config) {
		return Model{}, "", fmt.Errorf("model %s: %s is not valid JSON", dir, ConfigFile)
	}
	if !json.Valid(m.Tokenizer) {
		return Model{}, "", fmt.Errorf("model %s: %s is not valid JSON", dir, TokenizerFile)
	}
	return m, Digest(files[ModelFile]), nil
}
