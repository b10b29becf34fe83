package checkpoint

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/preftune/preftune/trainer/internal/durable"
)

// File names inside a checkpoint or model directory.
const (
	ModelFile     = "model.safetensors"
	ConfigFile    = "config.json"
	TokenizerFile = "tokenizer.json"
	OptimizerFile = "optimizer.safetensors"
	StateFile     = "state.json"
	CompleteFile  = "COMPLETE"
)

// fileSum is one manifest entry.
type fileSum struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// manifest is the content of COMPLETE: which files the directory must hold, byte for byte.
type manifest struct {
	FormatVersion int                `json:"formatVersion"`
	Files         map[string]fileSum `json:"files"`
}

func sum(data []byte) fileSum {
	h := sha256.Sum256(data)
	return fileSum{Size: int64(len(data)), SHA256: hex.EncodeToString(h[:])}
}

// installDir writes files into a fresh temporary sibling of dir, then COMPLETE (when complete is true) and renames
// the whole directory to dir. An existing dir is replaced only after the new one is entirely on disk.
func installDir(dir string, files map[string][]byte, complete bool) error {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, tmpPrefix+filepath.Base(dir)+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	// MkdirTemp makes the directory 0700; the installed one must be readable as its siblings are (a serving pod
	// running as another user reads model/ from the same volume).
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	m := manifest{FormatVersion: FormatVersion, Files: make(map[string]fileSum, len(files))}
	for name, data := range files {
		if err := durable.WriteFile(filepath.Join(tmp, name), data); err != nil {
			return err
		}
		m.Files[name] = sum(data)
	}
	if complete {
		raw, err := json.MarshalIndent(m, "", "  ")
		if err != nil {
			return err
		}
		if err := durable.WriteFile(filepath.Join(tmp, CompleteFile), append(raw, '\n')); err != nil {
			return err
		}
	}
	if err := durable.SyncDir(tmp); err != nil {
		return err
	}
	// Rename cannot replace a non-empty directory: move the old one aside first.
	var old string
	if _, err := os.Stat(dir); err == nil {
		old = filepath.Join(parent, tmpPrefix+"old-"+filepath.Base(dir)+"-"+strconv.FormatInt(time.Now().UnixNano(), 36))
		if err := os.Rename(dir, old); err != nil {
			return err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	if err := durable.SyncDir(parent); err != nil {
		return err
	}
	if old != "" {
		return os.RemoveAll(old)
	}
	return nil
}

// readManifest reads COMPLETE. A missing COMPLETE is reported as such: the directory is not a whole checkpoint.
func readManifest(dir string) (manifest, error) {
	raw, err := os.ReadFile(filepath.Join(dir, CompleteFile))
	if errors.Is(err, os.ErrNotExist) {
		return manifest{}, fmt.Errorf("no %s marker: the save did not finish", CompleteFile)
	}
	if err != nil {
		return manifest{}, err
	}
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return manifest{}, fmt.Errorf("%s: %v", CompleteFile, err)
	}
	if m.FormatVersion != FormatVersion {
		return manifest{}, fmt.Errorf("format version %d, this trainer reads version %d", m.FormatVersion, FormatVersion)
	}
	return m, nil
}

// readVerified reads the files named in the manifest and checks each one's size and sha256.
func readVerified(dir string, m manifest, names ...string) (map[string][]byte, error) {
	out := make(map[string][]byte, len(names))
	for _, name := range names {
		want, ok := m.Files[name]
		if !ok {
			return nil, fmt.Errorf("%s does not list %s", CompleteFile, name)
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		if got := sum(data); got != want {
			return nil, fmt.Errorf("%s: %d bytes with sha256 %s, %s recorded %d bytes with sha256 %s",
				name, got.Size, got.SHA256, CompleteFile, want.Size, want.SHA256)
		}
		out[name] = data
	}
	return out, nil
}
