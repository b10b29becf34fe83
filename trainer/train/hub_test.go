package train

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
)

// loopbackHub serves one model directory as repository org/tiny at one commit through the Hub's API (the two
// endpoints storage.HubClient uses), and records the Authorization headers it got.
type loopbackHub struct {
	dir, commit string
	auth        []string
}

func (h *loopbackHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.auth = append(h.auth, r.Header.Get("Authorization"))
	switch {
	case r.URL.Path == "/api/models/org/tiny/revision/main" || r.URL.Path == "/api/models/org/tiny/revision/"+h.commit:
		type lfs struct {
			SHA256 string `json:"sha256"`
			Size   int64  `json:"size"`
		}
		type sibling struct {
			RFilename string `json:"rfilename"`
			Size      int64  `json:"size"`
			LFS       *lfs   `json:"lfs,omitempty"`
		}
		var sibs []sibling
		des, _ := os.ReadDir(h.dir)
		for _, de := range des {
			raw, _ := os.ReadFile(filepath.Join(h.dir, de.Name()))
			s := sibling{RFilename: de.Name(), Size: int64(len(raw))}
			if strings.HasSuffix(de.Name(), ".safetensors") {
				sum := sha256.Sum256(raw)
				s.LFS = &lfs{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(raw))}
			}
			sibs = append(sibs, s)
		}
		json.NewEncoder(w).Encode(map[string]any{"sha": h.commit, "siblings": sibs})
	case strings.HasPrefix(r.URL.Path, "/org/tiny/resolve/"+h.commit+"/"):
		http.ServeFile(w, r, filepath.Join(h.dir, filepath.Base(r.URL.Path)))
	case strings.HasPrefix(r.URL.Path, "/api/models/"):
		w.Header().Set("X-Error-Code", "RepoNotFound")
		http.Error(w, "Repository not found", http.StatusUnauthorized)
	default:
		http.NotFound(w, r)
	}
}

// TestSFTFromHub starts an SFT run from hf://org/tiny (a model the trainer wrote, served by a Hub on loopback at
// $HF_ENDPOINT with $HF_TOKEN): the result names the source, the commit the revision resolved to and the digest
// of the weights loaded, the architecture and the parameter count. A repository that does not exist is invalid
// input naming it.
func TestSFTFromHub(t *testing.T) {
	dir := t.TempDir()
	dataPath := writeDemo(t, dir, 120, 8)
	base := mustRun(t, tinySFT(dataPath, filepath.Join(dir, "base"), 2))
	if base.Architecture != "GPT2LMHeadModel" || base.ParameterCount <= 0 || base.SourceURI != "" || base.SourceDigest != "" {
		t.Errorf("from scratch: architecture %q parameters %d source %q %q", base.Architecture, base.ParameterCount, base.SourceURI, base.SourceDigest)
	}
	hub := &loopbackHub{dir: filepath.Join(dir, "base", "model"), commit: strings.Repeat("ab", 20)}
	srv := httptest.NewServer(hub)
	defer srv.Close()
	t.Setenv("HF_ENDPOINT", srv.URL)
	t.Setenv("HF_TOKEN", "hf_secret_token")

	rc := tinySFT(dataPath, filepath.Join(dir, "from-hub"), 1)
	rc.Model = contract.ModelConfig{From: "hf://org/tiny@main"}
	cfg, err := NewConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	var events recorder
	res, err := Run(context.Background(), cfg, Options{Progress: &events})
	if err != nil {
		t.Fatal(err)
	}
	// The "model" event tells the operator what is being trained before the run ends.
	var model map[string]any
	for _, e := range events.events {
		if e["event"] == "model" {
			model = e
		}
	}
	if model == nil || model["architecture"] != "GPT2LMHeadModel" || model["parameterCount"] != base.ParameterCount {
		t.Errorf("model event %v, want architecture GPT2LMHeadModel and %d parameters", model, base.ParameterCount)
	}
	if res.SourceURI != "hf://org/tiny@main" || res.SourceCommit != hub.commit || res.SourceDigest != base.ModelDigest {
		t.Errorf("source %q commit %q digest %q, want hf://org/tiny@main, %s, %s", res.SourceURI, res.SourceCommit, res.SourceDigest, hub.commit, base.ModelDigest)
	}
	if res.Architecture != "GPT2LMHeadModel" || res.ParameterCount != base.ParameterCount {
		t.Errorf("architecture %q parameters %d, want GPT2LMHeadModel and %d", res.Architecture, res.ParameterCount, base.ParameterCount)
	}
	if len(hub.auth) == 0 || hub.auth[0] != "Bearer hf_secret_token" {
		t.Errorf("the Hub got Authorization %q, want the HF_TOKEN bearer", hub.auth)
	}

	rc.Model.From, rc.Output.URI = "hf://org/missing", filepath.Join(dir, "missing")
	err = runErr(t, rc, ReasonModelUnreadable, contract.ExitInvalidInput)
	if !strings.Contains(err.Error(), "org/missing") || strings.Contains(err.Error(), "hf_secret_token") {
		t.Errorf("missing repository: %v", err)
	}
	if _, err := NewConfig(func() contract.RunConfig { c := rc; c.Model.From = "hf://a/b/c"; return c }()); err == nil || !strings.Contains(err.Error(), "model.from") {
		t.Errorf("hf://a/b/c: %v, want a model.from error", err)
	}
}
