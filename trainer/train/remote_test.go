package train

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/preftune/preftune/trainer/checkpoint"
	"github.com/preftune/preftune/trainer/hf"
)

// TestModelLastFile: the file a remote upload stores last is the one readers open first, so a reader never finds
// a model whose weights are still on their way: the index of a sharded model, else model.safetensors.
func TestModelLastFile(t *testing.T) {
	write := func(dir string, names ...string) {
		for _, n := range names {
			if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	single, sharded := t.TempDir(), t.TempDir()
	write(single, "config.json", checkpoint.ModelFile, "tokenizer.json")
	write(sharded, "config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
		hf.WeightsIndexFile, "tokenizer.json")
	if got := modelLastFile(single); got != checkpoint.ModelFile {
		t.Errorf("single file model: last is %s, want %s", got, checkpoint.ModelFile)
	}
	if got := modelLastFile(sharded); got != hf.WeightsIndexFile {
		t.Errorf("sharded model: last is %s, want %s", got, hf.WeightsIndexFile)
	}
}
