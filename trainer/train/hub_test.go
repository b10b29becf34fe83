package train

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/storage/hubtest"
)

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
	hub := &hubtest.Hub{Repos: map[string]string{"org/tiny": filepath.Join(dir, "base", "model")}, Commit: strings.Repeat("ab", 20),
		Refs: map[string]bool{"main": true}, Token: "hf_secret_token"}
	hubtest.Start(t, hub)

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
	if res.SourceURI != "hf://org/tiny@main" || res.SourceCommit != hub.Commit || res.SourceDigest != base.ModelDigest {
		t.Errorf("source %q commit %q digest %q, want hf://org/tiny@main, %s, %s", res.SourceURI, res.SourceCommit, res.SourceDigest, hub.Commit, base.ModelDigest)
	}
	if res.Architecture != "GPT2LMHeadModel" || res.ParameterCount != base.ParameterCount {
		t.Errorf("architecture %q parameters %d, want GPT2LMHeadModel and %d", res.Architecture, res.ParameterCount, base.ParameterCount)
	}
	if auth := hub.Auth(); len(auth) == 0 || auth[0] != "Bearer hf_secret_token" {
		t.Errorf("the Hub got Authorization %q, want the HF_TOKEN bearer", auth)
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
