// Package hubtest is a Hugging Face Hub on loopback for tests: the two endpoints trainer/storage's HubClient uses,
// serving local directories as repositories at one commit, with the Hub's error conventions.
package hubtest

import (
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
)

// Hub serves Repos (repository "org/name" → local directory; its files, not subdirectories) at Commit:
//
//   - GET /api/models/{repo}/revision/{rev} lists the directory's files with their sizes (and, for .safetensors
//     files, an LFS pointer with their sha256), plus onnx/model.onnx and pytorch_model.bin as real repositories
//     have; rev must be Commit or one of Refs;
//   - GET /{repo}/resolve/{Commit}/{file} serves a file.
//
// An unknown repository, or a request without "Authorization: Bearer <Token>" when Token is set, is answered 401
// with X-Error-Code RepoNotFound (as the Hub hides private repositories); an unknown revision 404
// RevisionNotFound; a missing file 404 EntryNotFound. The file named Corrupt is served with its last byte changed.
type Hub struct {
	Repos   map[string]string
	Commit  string
	Refs    map[string]bool
	Token   string
	Corrupt string

	mu      sync.Mutex
	fetched []string
	auth    []string
}

// Start serves h on loopback for the test and points $HF_ENDPOINT at it, with $HF_TOKEN set to h.Token.
func Start(t testing.TB, h *Hub) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	t.Setenv("HF_ENDPOINT", srv.URL+"/")
	t.Setenv("HF_TOKEN", h.Token)
	return srv
}

// Fetched are the files downloaded so far, as "repo/file", in order.
func (h *Hub) Fetched() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.fetched)
}

// Auth are the Authorization headers of the requests so far, in order.
func (h *Hub) Auth() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.auth)
}

func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.auth = append(h.auth, r.Header.Get("Authorization"))
	h.mu.Unlock()
	if h.Token != "" && r.Header.Get("Authorization") != "Bearer "+h.Token {
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
		dir, ok := h.Repos[repo]
		if !ok {
			w.Header().Set("X-Error-Code", "RepoNotFound")
			http.Error(w, "Repository not found", http.StatusUnauthorized)
			return
		}
		if rev != h.Commit && !h.Refs[rev] {
			w.Header().Set("X-Error-Code", "RevisionNotFound")
			http.Error(w, "Invalid rev id", http.StatusNotFound)
			return
		}
		entries, _ := os.ReadDir(dir)
		var siblings []map[string]any
		for _, e := range entries {
			if e.IsDir() {
				continue
			}
			b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
			s := map[string]any{"rfilename": e.Name(), "size": len(b)}
			if strings.HasSuffix(e.Name(), ".safetensors") {
				sum := sha256.Sum256(b)
				s["lfs"] = map[string]any{"sha256": hex.EncodeToString(sum[:]), "size": len(b), "pointerSize": 134}
			}
			siblings = append(siblings, s)
		}
		siblings = append(siblings, map[string]any{"rfilename": "onnx/model.onnx", "size": 1}, map[string]any{"rfilename": "pytorch_model.bin", "size": 1})
		json.NewEncoder(w).Encode(map[string]any{"id": repo, "sha": h.Commit, "siblings": siblings})
		return
	}
	// /{org}/{name}/resolve/{commit}/{file}
	parts := strings.SplitN(strings.TrimPrefix(path, "/"), "/", 5)
	if len(parts) != 5 || parts[2] != "resolve" || parts[3] != h.Commit {
		http.Error(w, "only downloads at the commit are served", http.StatusBadRequest)
		return
	}
	repo := parts[0] + "/" + parts[1]
	b, err := os.ReadFile(filepath.Join(h.Repos[repo], parts[4]))
	if err != nil || h.Repos[repo] == "" {
		w.Header().Set("X-Error-Code", "EntryNotFound")
		http.Error(w, "Entry not found", http.StatusNotFound)
		return
	}
	if parts[4] == h.Corrupt {
		b[len(b)-1] ^= 1
	}
	h.mu.Lock()
	h.fetched = append(h.fetched, repo+"/"+parts[4])
	h.mu.Unlock()
	w.Write(b)
}
