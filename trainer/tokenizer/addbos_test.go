package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// storiesWithAddBOS copies stories260K's tokenizer files into a temporary directory with tokenizer_config.json's
// add_bos_token set to *addBOS, or removed when addBOS is nil.
func storiesWithAddBOS(t *testing.T, addBOS *bool) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(stories260K, FileName)); err != nil {
		t.Skipf("%s is absent (../shared is the project's read-only test data beside the repository): %v", stories260K, err)
	}
	dir := t.TempDir()
	for _, f := range []string{FileName, GenerationConfigFileName} {
		b, err := os.ReadFile(filepath.Join(stories260K, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.Join(stories260K, ConfigFileName))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	delete(cfg, "add_bos_token")
	if addBOS != nil {
		cfg["add_bos_token"] = *addBOS
	}
	if b, err = json.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFileName), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestAddBOSToken: "add_bos_token": false means no BOS from the tokenizer (AddsBOS false, and EncodeWithSpecial
// drops the BOS that tokenizer.json's post-processor adds, as transformers' LlamaTokenizerFast rebuilds its
// post-processor); true or absent keeps it. A text that spells "<s>" keeps that one id either way.
func TestAddBOSToken(t *testing.T) {
	f, tr := false, true
	for _, c := range []struct {
		name   string
		addBOS *bool
		want   bool
	}{{"false", &f, false}, {"true", &tr, true}, {"absent", nil, true}} {
		t.Run(c.name, func(t *testing.T) {
			p, err := LoadDir(storiesWithAddBOS(t, c.addBOS))
			if err != nil {
				t.Fatal(err)
			}
			if p.BOS() != 1 {
				t.Fatalf("BOS %d, want 1 (the BOS token stays known)", p.BOS())
			}
			if p.AddsBOS() != c.want || AddsBOS(p) != c.want {
				t.Fatalf("AddsBOS %v / %v, want %v", p.AddsBOS(), AddsBOS(p), c.want)
			}
			plain := p.Encode("Once upon a time")
			want := plain
			if c.want {
				want = append([]int{1}, plain...)
			}
			if got := p.EncodeWithSpecial("Once upon a time"); !slices.Equal(got, want) {
				t.Errorf("EncodeWithSpecial = %v, want %v", got, want)
			}
			// The text's own <s> is one id; the post-processor's BOS comes before it only when add_bos_token is on.
			own := p.Encode("<s>Once")
			if len(own) == 0 || own[0] != 1 {
				t.Fatalf("Encode(<s>Once) = %v: <s> is not its id", own)
			}
			want = own
			if c.want {
				want = append([]int{1}, own...)
			}
			if got := p.EncodeWithSpecial("<s>Once"); !slices.Equal(got, want) {
				t.Errorf("EncodeWithSpecial(<s>Once) = %v, want %v", got, want)
			}
		})
	}
	if !AddsBOS(NewByte()) {
		t.Error("the byte tokenizer adds BOS")
	}
}
