package report

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/preftune/preftune/trainer/contract"
)

// endpoint is a TLS test server that records reports and answers with code().
type endpoint struct {
	srv     *httptest.Server
	caFile  string
	mu      sync.Mutex
	reports []contract.ProgressReport
	tokens  []string
	code    func(n int) int
	delay   time.Duration
}

func newEndpoint(t *testing.T) *endpoint {
	t.Helper()
	e := &endpoint{code: func(int) int { return http.StatusAccepted }}
	e.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(e.delay)
		var rep contract.ProgressReport
		if err := json.NewDecoder(r.Body).Decode(&rep); err != nil {
			t.Errorf("report body: %v", err)
		}
		e.mu.Lock()
		e.reports = append(e.reports, rep)
		e.tokens = append(e.tokens, r.Header.Get("Authorization"))
		code := e.code(len(e.reports))
		e.mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(e.srv.Close)
	e.caFile = filepath.Join(t.TempDir(), "ca.crt")
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.srv.Certificate().Raw})
	if err := os.WriteFile(e.caFile, ca, 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *endpoint) received() ([]contract.ProgressReport, []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]contract.ProgressReport(nil), e.reports...), append([]string(nil), e.tokens...)
}

func writeToken(t *testing.T, path, tok string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestReporterPostsTheNewestSnapshotAtMostEveryInterval(t *testing.T) {
	e := newEndpoint(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	writeToken(t, tokenFile, "first")
	const interval = 100 * time.Millisecond
	r, err := New(Config{URL: e.srv.URL + "/v1alpha1/progress/ns/sftruns/x", TokenFile: tokenFile, CAFile: e.caFile, Interval: interval, Attempt: 2})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r.Event("resumed", map[string]any{"step": 20, "dir": "/out/checkpoints/step-00000020"})
	r.Event("model", map[string]any{"architecture": "LlamaForCausalLM", "parameterCount": int64(134515008),
		"trainableParameterCount": int64(4884480)})
	for step := 21; step <= 100; step++ {
		r.Step(step, 200, map[string]float64{"loss": 3 - float64(step)/100, "epoch": float64(step) / 50, "tokens_per_second": 1000,
			"step": float64(step), "rewards/accuracies": 0.5})
		if step == 50 {
			r.Step(step, 200, map[string]float64{"eval_loss": 2.5, "step": 50})
			r.Event("checkpoint", map[string]any{"step": 50, "dir": "/mnt/pvc/out/checkpoints/step-00000050"})
			writeToken(t, tokenFile, "rotated") // the kubelet renews the projected token
		}
		if step == 80 {
			// training.checkpointsToKeep 1: step 50's checkpoint is deleted once step 80's is complete.
			r.Event("checkpoint", map[string]any{"step": 80, "dir": "/mnt/pvc/out/checkpoints/step-00000080"})
			r.Event("checkpoints-pruned", map[string]any{"oldestKept": 80, "deleted": []string{"file:///mnt/pvc/out/checkpoints/step-00000050"}})
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.Close()
	elapsed := time.Since(start)
	reports, tokens := e.received()
	if limit := int(elapsed/interval) + 2; len(reports) > limit || len(reports) < 2 {
		t.Errorf("%d posts in %s, want 2..%d", len(reports), elapsed, limit)
	}
	last := reports[len(reports)-1]
	if last.Step != 100 || last.TotalSteps != 200 || last.Epoch != 2 || last.TokensPerSecond != 1000 || last.ResumedFromStep != 20 || last.Attempt != 2 ||
		last.Architecture != "LlamaForCausalLM" || last.ParameterCount != 134515008 || last.TrainableParameterCount != 4884480 {
		t.Errorf("last report = %+v", last)
	}
	if last.TrainMetrics["loss"] != 2 || last.TrainMetrics["rewards/accuracies"] != 0.5 || last.EvalMetrics["eval_loss"] != 2.5 {
		t.Errorf("metrics: train %v eval %v", last.TrainMetrics, last.EvalMetrics)
	}
	if _, ok := last.TrainMetrics["step"]; ok {
		t.Errorf("step leaked into the metrics: %v", last.TrainMetrics)
	}
	if len(last.Checkpoints) != 1 || last.Checkpoints[0].Step != 80 || last.Checkpoints[0].URI != "file:///mnt/pvc/out/checkpoints/step-00000080" ||
		last.OldestKeptStep != 80 {
		t.Errorf("checkpoints = %+v (oldest kept %d), want only step 80's", last.Checkpoints, last.OldestKeptStep)
	}
	if last.ETASeconds <= 0 {
		t.Errorf("eta = %v, want > 0 with 100 steps left", last.ETASeconds)
	}
	if tokens[0] != "Bearer first" || tokens[len(tokens)-1] != "Bearer rotated" {
		t.Errorf("tokens = %v, want the file read for every post", tokens)
	}
}

func TestReporterNeverBlocksAndRetriesFailures(t *testing.T) {
	e := newEndpoint(t)
	e.delay = 300 * time.Millisecond // a slow endpoint
	e.code = func(n int) int {
		if n <= 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusAccepted
	}
	var log bytes.Buffer
	var logMu sync.Mutex
	r, err := New(Config{URL: e.srv.URL, CAFile: e.caFile, Interval: 50 * time.Millisecond, Log: lockedWriter{&logMu, &log}})
	if err != nil {
		t.Fatal(err)
	}
	var slowest time.Duration
	for step := 1; step <= 200; step++ {
		t0 := time.Now()
		r.Step(step, 200, map[string]float64{"loss": 1})
		slowest = max(slowest, time.Since(t0))
	}
	if slowest > 20*time.Millisecond {
		t.Errorf("a Step call took %s while the endpoint was slow", slowest)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		reports, _ := e.received()
		if len(reports) >= 3 && reports[len(reports)-1].Step == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no successful retry: %d posts", len(reports))
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.Close()
	logMu.Lock()
	defer logMu.Unlock()
	if !strings.Contains(log.String(), "failed (will retry): HTTP 503") {
		t.Errorf("log = %q", log.String())
	}
}

func TestReporterStopsWhenTheRunHasFinished(t *testing.T) {
	e := newEndpoint(t)
	e.code = func(int) int { return http.StatusConflict }
	r, err := New(Config{URL: e.srv.URL, CAFile: e.caFile, Interval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	r.Step(1, 10, nil)
	time.Sleep(100 * time.Millisecond)
	for step := 2; step <= 5; step++ {
		r.Step(step, 10, nil)
		time.Sleep(30 * time.Millisecond)
	}
	r.Close()
	if reports, _ := e.received(); len(reports) != 1 {
		t.Errorf("%d posts after the endpoint said 409, want 1", len(reports))
	}
}

func TestReporterUnreachableEndpointDoesNotHoldUpClose(t *testing.T) {
	var log bytes.Buffer
	var logMu sync.Mutex
	r, err := New(Config{URL: "https://127.0.0.1:1/x", Interval: 10 * time.Millisecond, Log: lockedWriter{&logMu, &log}})
	if err != nil {
		t.Fatal(err)
	}
	r.Step(1, 10, map[string]float64{"loss": 1})
	t0 := time.Now()
	r.Close()
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("Close took %s", d)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if !strings.Contains(log.String(), "progress report for step 1 failed") {
		t.Errorf("log = %q", log.String())
	}
}

func TestFromEnv(t *testing.T) {
	t.Setenv(contract.ProgressURLEnv, "")
	if r, err := FromEnv(nil); r != nil || err != nil {
		t.Fatalf("without a URL: %v, %v", r, err)
	}
	t.Setenv(contract.ProgressURLEnv, "https://preftune-progress.preftune-system.svc:8443/v1alpha1/progress/ns/dporuns/x")
	t.Setenv(contract.ProgressCAFileEnv, filepath.Join(t.TempDir(), "missing.crt"))
	if _, err := FromEnv(nil); err == nil || !strings.Contains(err.Error(), "progress CA") {
		t.Errorf("missing CA file: err = %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.crt")
	os.WriteFile(bad, []byte("not pem"), 0o600)
	t.Setenv(contract.ProgressCAFileEnv, bad)
	if _, err := FromEnv(nil); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("bad CA file: err = %v", err)
	}
	t.Setenv(contract.ProgressCAFileEnv, "")
	t.Setenv(contract.ProgressAttemptEnv, "two")
	if _, err := FromEnv(nil); err == nil || !strings.Contains(err.Error(), contract.ProgressAttemptEnv) {
		t.Errorf("bad attempt: err = %v", err)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
