package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/preftune/preftune/trainer/hf"
)

// stories260K is a real pretrained Llama in Hugging Face's layout in the read-only shared folder (see its README).
var stories260K = filepath.Join("..", "..", "..", "shared", "models", "stories260K")

const storiesWeightsSHA256 = "407a7c581bdd66972383ce9ad24857713fb98786d06ea564a2fe9b34ebe77dfd"

// fakeHub is a Hub-compatible HTTP server on loopback: the two endpoints the trainer uses, serving local
// directories as repositories at a fixed commit, with the Hub's error conventions (401 + X-Error-Code RepoNotFound
// for an unknown repository, 404 + RevisionNotFound, 401 without the right token).
type fakeHub struct {
	repos   map[string]string // repo → directory
	commit  string
	refs    map[string]bool // branches and tags that resolve to commit
	token   string          // required bearer token ("" none)
	corrupt string          // a file served with one byte changed
	mu      sync.Mutex
	fetched []string // files downloaded, as "repo/file"
}

func (h *fakeHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.token != "" && r.Header.Get("Authorization") != "Bearer "+h.token {
		w.Header().Set("X-Error-Code", "RepoNotFound")
		http.Error(w, "Repository not found", http.StatusUnauthorized)
		return
	}
	path := r.URL.EscapedPath()
	if rest, ok := strings.CutPrefix(path, "/api/models/"); ok {
		i := strings.Index(rest, "/revision/")
		if i < 0 {
			http.NotFound(w, r)
			return
		}
		repo := rest[:i]
		rev, _ := url.PathUnescape(rest[i+len("/revision/"):])
		dir, ok := h.repos[repo]
		if !ok {
			w.Header().Set("X-Error-Code", "RepoNotFound")
			http.Error(w, "Repository not found", http.StatusUnauthorized)
			return
		}
		if rev != h.commit && !h.refs[rev] {
			w.Header().Set("X-Error-Code", "RevisionNotFound")
			http.Error(w, "Invalid rev id", http.StatusNotFound)
			return
		}
		entries, _ := os.ReadDir(dir)
		var siblings []map[string]any
		for _, e := range entries {
			b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
			s := map[string]any{"rfilename": e.Name(), "size": len(b)}
			if strings.HasSuffix(e.Name(), ".safetensors") {
				sum := sha256.Sum256(b)
				s["lfs"] = map[string]any{"sha256": hex.EncodeToString(sum[:]), "size": len(b), "pointerSize": 134}
			}
			siblings = append(siblings, s)
		}
		// A file in a subfolder and a PyTorch copy of the weights, as real repositories have.
		siblings = append(siblings, map[string]any{"rfilename": "onnx/model.onnx", "size": 1}, map[string]any{"rfilename": "pytorch_model.bin", "size": 1})
		json.NewEncoder(w).Encode(map[string]any{"id": repo, "sha": h.commit, "siblings": siblings})
		return
	}
	// /{org}/{name}/resolve/{commit}/{file}
	parts := strings.SplitN(strings.TrimPrefix(path, "/"), "/", 5)
	if len(parts) != 5 || parts[2] != "resolve" || parts[3] != h.commit {
		http.Error(w, "only downloads at the commit are served", http.StatusBadRequest)
		return
	}
	repo := parts[0] + "/" + parts[1]
	b, err := os.ReadFile(filepath.Join(h.repos[repo], parts[4]))
	if err != nil || h.repos[repo] == "" {
		w.Header().Set("X-Error-Code", "EntryNotFound")
		http.Error(w, "Entry not found", http.StatusNotFound)
		return
	}
	if parts[4] == h.corrupt {
		b[len(b)-1] ^= 1
	}
	h.mu.Lock()
	h.fetched = append(h.fetched, repo+"/"+parts[4])
	h.mu.Unlock()
	w.Write(b)
}

func startHub(t *testing.T, h *fakeHub) {
	t.Helper()
	srv := httptest.NewServer(h) // listens on 127.0.0.1
	t.Cleanup(srv.Close)
	t.Setenv("HF_ENDPOINT", srv.URL+"/")
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
	h := &fakeHub{repos: map[string]string{"test-org/stories260K": stories260K}, commit: commit, refs: map[string]bool{"main": true, "v1": true}, token: "hf_secret-token-1234"}
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

	t.Setenv("HF_TOKEN", h.token)
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
	if len(h.fetched) != len(wantFiles) {
		t.Errorf("fetched %v", h.fetched)
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
	h.corrupt = "model.safetensors"
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
	startHub(t, &fakeHub{repos: map[string]string{"org/sharded": repo}, commit: commit, refs: map[string]bool{"main": true}})
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
	h := &fakeHub{repos: map[string]string{"test-org/stories260K": stories260K}, commit: strings.Repeat("cd34", 10), refs: map[string]bool{"main": true}}
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
