package train

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/preftune/preftune/trainer/checkpoint"
	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/hf"
	"github.com/preftune/preftune/trainer/model"
	"github.com/preftune/preftune/trainer/storage"
	"github.com/preftune/preftune/trainer/tokenizer"
)

// The run's local I/O goes through these few functions; remote.go moves inputs and outputs to and from object
// stores around them.

// localPath turns a file:// URI or a plain path into a local path. Other schemes are not supported yet.
func localPath(uri string) (string, error) {
	if uri == "" {
		return "", fmt.Errorf("is empty")
	}
	if !strings.Contains(uri, "://") {
		return filepath.Clean(uri), nil
	}
	u, err := url.Parse(uri)
	if err != nil {
		return "", fmt.Errorf("cannot parse %q: %v", uri, err)
	}
	if u.Scheme != "file" {
		return "", fmt.Errorf("scheme %q of %q is not supported (file:// or a plain path)", u.Scheme, uri)
	}
	if u.Host != "" && u.Host != "localhost" {
		return "", fmt.Errorf("%q names host %q; file URIs must be local (file:///path)", uri, u.Host)
	}
	if u.Path == "" {
		return "", fmt.Errorf("%q has no path", uri)
	}
	return filepath.Clean(u.Path), nil
}

// resolve checks a URI and returns its local path, or "" for a remote URI the storage layer will download
// (https:// is accepted for the dataset only, hf:// for models only).
func resolve(uri string, dataset bool) (string, error) {
	if !dataset && storage.IsHub(uri) {
		if _, err := storage.ParseHub(uri); err != nil {
			return "", err
		}
		return "", nil
	}
	if dataset && storage.IsHTTP(uri) {
		if _, err := url.Parse(uri); err != nil {
			return "", fmt.Errorf("is not a valid URL")
		}
		return "", nil
	}
	u, err := storage.Parse(uri)
	if err != nil {
		return "", err
	}
	if u.Scheme == "file" {
		return localPath(uri)
	}
	return "", nil
}

// uriOf is the URI reported for a local path under the run's output: the remote URI when the output is remote.
func (r *runner) uriOf(local string) string {
	if r.io.out != nil {
		if rel, err := filepath.Rel(r.cfg.OutputDir, local); err == nil && !strings.HasPrefix(rel, "..") {
			return r.io.out.URI(filepath.ToSlash(rel))
		}
	}
	return fileURI(local)
}

// fileURI is the URI reported for a local path.
func fileURI(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	return "file://" + abs
}

// fileDigest is "sha256:<hex>" of a file's bytes.
func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// writeFileAtomic writes data to path through a temporary file and a rename, so readers never see half a file.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// readInput reads an input file (the dataset).
func readInput(path string) ([]byte, error) { return os.ReadFile(path) }

// saveModel writes the final model directory and returns its weights' digest. A model that started from a
// pretrained Hugging Face directory srcDir is written in that layout by Params.Save (config.json,
// model.safetensors or shards, and srcDir's tokenizer files and generation_config.json copied), so it loads as
// its source did; a from-scratch model (srcDir "") gets config.json, model.safetensors, the byte tokenizer's
// tokenizer.json and tokenizer_config.json; a model that started from a checkpoint directory gets that
// checkpoint's tokenizer files.
func saveModel(dir string, p *model.Params, tok tokenizer.Tokenizer, srcDir string) (string, error) {
	if isPretrainedDir(srcDir) {
		if _, err := p.Save(dir, hf.SaveOptions{SourceDir: srcDir}); err != nil {
			return "", err
		}
		return weightsDigest(dir)
	}
	m, err := modelFiles(p, tok, srcDir)
	if err != nil {
		return "", err
	}
	return checkpoint.SaveModel(dir, m)
}

// listCheckpoints returns the newest KeepCheckpoints complete checkpoints under root, oldest first.
func listCheckpoints(root string) ([]contract.Checkpoint, error) {
	entries, err := checkpoint.Scan(root)
	if err != nil {
		return nil, err
	}
	var out []contract.Checkpoint
	for _, e := range entries { // newest first
		if e.Problem != nil {
			continue
		}
		c := contract.Checkpoint{Step: e.Step, URI: fileURI(e.Dir)}
		if fi, err := os.Stat(filepath.Join(e.Dir, checkpoint.CompleteFile)); err == nil {
			c.Time = fi.ModTime().UTC().Format(time.RFC3339)
		}
		out = append([]contract.Checkpoint{c}, out...)
		if len(out) == KeepCheckpoints {
			break
		}
	}
	return out, nil
}
