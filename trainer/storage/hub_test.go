package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/preftune/preftune/trainer/hf"
	"github.com/preftune/preftune/trainer/storage/hubtest"
)

// stories260K is a real pretrained Llama in Hugging Face's layout in the read-only shared folder (see its README).
var stories260K = filepath.Join("..", "..", "..", "shared", "models", "stories260K")

const storiesWeightsSHA256 = "407a7c581bdd66972383ce9ad24857713fb98786d06ea564a2fe9b34ebe77dfd"

// startHub serves h on loopback at $HF_ENDPOINT, with $HF_TOKEN unset.
func startHub(t *testing.T, h *hubtest.Hub) {
	t.Helper()
	hubtest.Start(t, h)
	t.Setenv("HF_TOKEN", "")
}

func TestParseHub(t *testing.T) {
	for uri, want := range map[string]HubRef{
		"hf://karpathy/tinyllamas":             {"karpathy/tinyllamas", "main"},
		"hf://HuggingFaceTB/SmolLM2-135M@v1.0": {"HuggingFaceTB/SmolLM2-135M", "v1.0"},
		"hf://gpt2@refs/pr/1":                  {"gpt2", "refs/pr/1"},
	} {
		if got, err := ParseHub(uri); err != nil || got != want {
			t.Errorf("%s: %+v, %v", uri, got, err)
		}
	}
	for _, bad := range []string{"hf://", "hf://a/b/c", "hf://a/b@", "hf://../x", "s3://a/b", "hf://a/b c"} {
		if _, err := ParseHub(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestHubDownloadStories260K(t *testing.T) {
	if _, err := os.Stat(filepath.Join(stories260K, "model.safetensors")); err != nil {
		t.Skipf("stories260K not available at %s: %v", stories260K, err)
	}
	commit := strings.Repeat("ab12", 10)
	h := &hubtest.Hub{Repos: map[string]string{"test-org/stories260K": stories260K}, Commit: commit, Refs: map[string]bool{"main": true, "v1": true}, Token: "hf_secret-token-1234"}
	startHub(t, h)
	ctx := context.Background()

	// Without a token the Hub hides the repository: the error says to set HF_TOKEN.
	_, err := HubFromEnv().Download(ctx, "hf://test-org/stories260K", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "HF_TOKEN") || !strings.Contains(err.Error(), "test-org/stories260K") {
		t.Fatalf("no token: %v", err)
	}
	// A wrong token: refused, and never quoted.
	t.Setenv("HF_TOKEN", "hf_wrong-token-5678")
	_, err = HubFromEnv().Download(ctx, "hf://test-org/stories260K", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "refused") || strings.Contains(err.Error(), "hf_wrong-token-5678") {
		t.Fatalf("wrong token: %v", err)
	}

	t.Setenv("HF_TOKEN", h.Token)
	dst := t.TempDir()
	m, err := HubFromEnv().Download(ctx, "hf://test-org/stories260K@v1", dst)
	if err != nil {
		t.Fatal(err)
	}
	wantFiles := []string{"config.json", "generation_config.json", "model.safetensors", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"}
	if m.Commit != commit || m.Repo != "test-org/stories260K" || m.Revision != "v1" || !slices.Equal(m.Files, wantFiles) {
		t.Errorf("downloaded %+v", m)
	}
	for _, s := range []string{"LICENSE", "README.md", "onnx/model.onnx", "pytorch_model.bin", "golden_logits.json"} {
		if !slices.Contains(m.Skipped, s) {
			t.Errorf("%s not listed as skipped: %v", s, m.Skipped)
		}
	}
	if m.Digest != "sha256:"+storiesWeightsSHA256 {
		t.Errorf("digest %s", m.Digest)
	}
	var total int64
	for _, f := range wantFiles {
		a, _ := os.ReadFile(filepath.Join(stories260K, f))
		b, err := os.ReadFile(filepath.Join(dst, f))
		if err != nil || string(a) != string(b) {
			t.Errorf("%s differs (%v)", f, err)
		}
		total += int64(len(a))
	}
	if m.Bytes != total {
		t.Errorf("%d bytes, want %d", m.Bytes, total)
	}
	if len(h.Fetched()) != len(wantFiles) {
		t.Errorf("fetched %v", h.Fetched())
	}
	// The download is a model directory trainer/hf loads.
	if _, err := hf.LoadModel(dst); err != nil {
		t.Errorf("loading the download: %v", err)
	}

	// A missing repository and a missing revision are not-found errors naming them.
	_, err = HubFromEnv().Download(ctx, "hf://test-org/nope", t.TempDir())
	if !IsNotExist(err) || !strings.Contains(err.Error(), "test-org/nope") {
		t.Errorf("missing repo: %v", err)
	}
	_, err = HubFromEnv().Download(ctx, "hf://test-org/stories260K@v9", t.TempDir())
	if !IsNotExist(err) || !strings.Contains(err.Error(), `"v9"`) {
		t.Errorf("missing revision: %v", err)
	}
	// A corrupted download fails its LFS sha256.
	h.Corrupt = "model.safetensors"
	_, err = HubFromEnv().Download(ctx, "hf://test-org/stories260K", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "sha256") || !strings.Contains(err.Error(), "model.safetensors") {
		t.Errorf("corrupted weights: %v", err)
	}
}

// TestHubDownloadSharded: a sharded repository brings its index and exactly the shards it names.
func TestHubDownloadSharded(t *testing.T) {
	if _, err := os.Stat(filepath.Join(stories260K, "model.safetensors")); err != nil {
		t.Skipf("stories260K not available at %s: %v", stories260K, err)
	}
	m, err := hf.LoadModel(stories260K)
	if err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(t.TempDir(), "sharded")
	saved, err := hf.SaveModel(repo, m.Config, m.Tensors, hf.SaveOptions{ShardSize: 400_000, SourceDir: stories260K})
	if err != nil {
		t.Fatal(err)
	}
	commit := strings.Repeat("0123456789", 4)
	startHub(t, &hubtest.Hub{Repos: map[string]string{"org/sharded": repo}, Commit: commit, Refs: map[string]bool{"main": true}})
	dst := t.TempDir()
	got, err := HubFromEnv().Download(context.Background(), "hf://org/sharded@"+commit, dst)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range append([]string{hf.WeightsIndexFile}, saved.WeightFiles...) {
		if !slices.Contains(got.Files, f) {
			t.Errorf("%s not downloaded: %v", f, got.Files)
		}
	}
	if got.Digest != saved.Digest || got.Commit != commit {
		t.Errorf("digest %s, saved %s; commit %s", got.Digest, saved.Digest, got.Commit)
	}
	back, err := hf.LoadModel(dst)
	if err != nil || len(back.Tensors) != 47 {
		t.Fatalf("loading the sharded download: %v", err)
	}
}

// TestHubDownloadSkipWeights: with SkipWeights only config.json and the tokenizer files come down (inspect-dataset
// reads a model's tokenizer and chat template without its weights).
func TestHubDownloadSkipWeights(t *testing.T) {
	if _, err := os.Stat(filepath.Join(stories260K, "model.safetensors")); err != nil {
		t.Skipf("stories260K not available at %s: %v", stories260K, err)
	}
	h := &hubtest.Hub{Repos: map[string]string{"test-org/stories260K": stories260K}, Commit: strings.Repeat("cd34", 10), Refs: map[string]bool{"main": true}}
	startHub(t, h)
	c := HubFromEnv()
	c.SkipWeights = true
	dst := t.TempDir()
	m, err := c.Download(context.Background(), "hf://test-org/stories260K", dst)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"config.json", "generation_config.json", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"}
	if !slices.Equal(m.Files, want) || !slices.Contains(m.Skipped, "model.safetensors") || m.Digest != "" {
		t.Fatalf("downloaded %+v", m)
	}
	if _, err := os.Stat(filepath.Join(dst, "model.safetensors")); !os.IsNotExist(err) {
		t.Fatalf("weights downloaded: %v", err)
	}
}

// TestHubDownloadAdapter: a PEFT adapter repository brings adapter_config.json, adapter_model.safetensors and the
// tokenizer files it has, nothing else (not its README, a PyTorch copy of the weights or a config.json); the digest
// is the adapter weights' sha256. A model repository, a repository with only adapter_model.bin and a missing one are
// not-found errors that say what the repository holds.
func TestHubDownloadAdapter(t *testing.T) {
	files := map[string]string{
		"adapter_config.json": `{"peft_type": "LORA", "r": 4}`, "adapter_model.safetensors": "weights",
		"tokenizer_config.json": `{"chat_template": "x"}`, "tokenizer.json": "{}", "README.md": "card", "config.json": "{}",
	}
	repo := t.TempDir()
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(repo, name), []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	binOnly := t.TempDir()
	for _, name := range []string{"adapter_config.json", "adapter_model.bin"} {
		if err := os.WriteFile(filepath.Join(binOnly, name), []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	model := t.TempDir()
	if err := os.WriteFile(filepath.Join(model, "config.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	commit := strings.Repeat("9a", 20)
	h := &hubtest.Hub{Repos: map[string]string{"org/adapter": repo, "org/bin": binOnly, "org/model": model}, Commit: commit,
		Refs: map[string]bool{"main": true}}
	startHub(t, h)
	ctx := context.Background()
	dst := t.TempDir()
	m, err := HubFromEnv().DownloadAdapter(ctx, "hf://org/adapter", dst)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "tokenizer_config.json"}
	sum := sha256.Sum256([]byte("weights"))
	if m.Commit != commit || m.Revision != "main" || !slices.Equal(m.Files, want) || m.Digest != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Errorf("downloaded %+v", m)
	}
	for _, s := range []string{"README.md", "config.json", "pytorch_model.bin", "onnx/model.onnx"} {
		if !slices.Contains(m.Skipped, s) {
			t.Errorf("%s not listed as skipped: %v", s, m.Skipped)
		}
	}
	if got := h.Fetched(); len(got) != len(want) {
		t.Errorf("fetched %v, want %v only", got, want)
	}
	for _, name := range want {
		if b, err := os.ReadFile(filepath.Join(dst, name)); err != nil || string(b) != files[name] {
			t.Errorf("%s: %q, %v", name, b, err)
		}
	}
	for uri, wantErr := range map[string]string{
		"hf://org/model":   "no adapter_config.json (it has config.json: a model repository, not an adapter)",
		"hf://org/bin":     "no adapter_model.safetensors (weight files found: [adapter_model.bin pytorch_model.bin])",
		"hf://org/missing": "repository org/missing not found",
	} {
		_, err := HubFromEnv().DownloadAdapter(ctx, uri, t.TempDir())
		if !IsNotExist(err) || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%s: %v, want a not-found error saying %q", uri, err, wantErr)
		}
	}
}
