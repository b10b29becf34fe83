package checkpoint

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSaveLoadModel(t *testing.T) {
	m := testModel(9)
	dir := filepath.Join(t.TempDir(), "out", "model")
	digest, err := SaveModel(dir, m)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, ModelFile))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(raw)
	if digest != "sha256:"+hex.EncodeToString(h[:]) {
		t.Fatalf("digest %s", digest)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Fatalf("model dir holds %v", entries)
	}
	got, d2, err := LoadModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	if d2 != digest || string(got.Config) != string(m.Config) || string(got.Tokenizer) != string(m.Tokenizer) {
		t.Fatalf("digest %s config %s tokenizer %s", d2, got.Config, got.Tokenizer)
	}
	want := ByName(m.Tensors)
	for _, g := range got.Tensors {
		sameBits(t, g.Name, g.Data, want[g.Name].Data)
	}
	// Saving again replaces the directory and gives the same digest for the same weights.
	if d3, err := SaveModel(dir, m); err != nil || d3 != digest {
		t.Fatalf("resave: %s %v", d3, err)
	}
	parent, _ := os.ReadDir(filepath.Dir(dir))
	if len(parent) != 1 {
		t.Fatalf("leftovers beside the model: %v", parent)
	}
}

func TestLoadModelFromCheckpoint(t *testing.T) {
	root := t.TempDir()
	c := testCheckpoint(3)
	dir, err := Save(root, c, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, digest, err := LoadModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, ModelFile))
	if digest != Digest(raw) || len(got.Tensors) != len(c.Tensors) {
		t.Fatalf("digest %s, %d tensors", digest, len(got.Tensors))
	}
	// Without COMPLETE the checkpoint's model is refused.
	if err := os.Remove(filepath.Join(dir, CompleteFile)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadModel(dir); err == nil || !strings.Contains(err.Error(), "COMPLETE") {
		t.Fatalf("incomplete checkpoint: %v", err)
	}
}

func TestLoadModelErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m")
	if _, err := SaveModel(dir, testModel(1)); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, ModelFile))
	if err := os.WriteFile(filepath.Join(dir, ModelFile), raw[:len(raw)-1], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadModel(dir); err == nil || !strings.Contains(err.Error(), ModelFile) {
		t.Fatalf("truncated weights: %v", err)
	}
	if err := os.Remove(filepath.Join(dir, TokenizerFile)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadModel(dir); err == nil || !strings.Contains(err.Error(), TokenizerFile) {
		t.Fatalf("missing tokenizer: %v", err)
	}
}

func TestLoadModelRejectsEmptyWeights(t *testing.T) {
	dir := t.TempDir()
	empty, err := encodeSafetensors(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{ModelFile: empty, ConfigFile: []byte("{}"), TokenizerFile: []byte("{}")} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := LoadModel(dir); err == nil || !strings.Contains(err.Error(), "no tensors") {
		t.Fatalf("empty weights: %v", err)
	}
}
