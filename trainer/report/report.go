// Package report pushes a training run's progress to the operator's progress endpoint. It never blocks or fails
// training: reports are snapshots handed to a background goroutine, which posts the newest one at most every
// Interval; a failed post is logged and the newest snapshot is tried again later. The final result does not depend
// on it: it travels in the pod's termination message.
package report

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/preftune/preftune/trainer/contract"
)

// DefaultInterval is the least time between two posts.
const DefaultInterval = 5 * time.Second

// postTimeout bounds one post; Close waits less (closeTimeout) so that a dead endpoint never delays the exit.
const (
	postTimeout  = 10 * time.Second
	closeTimeout = 3 * time.Second
)

// maxCheckpoints bounds the checkpoints a report carries; status keeps the newest few anyway.
const maxCheckpoints = 5

// Config says where and how to report.
type Config struct {
	// URL to POST reports to.
	URL string
	// TokenFile holds the bearer token; it is read for every post (the kubelet rotates it).
	TokenFile string
	// CAFile is the PEM CA the endpoint's certificate chains to; "" trusts the system's roots.
	CAFile string
	// Interval between posts (DefaultInterval when 0).
	Interval time.Duration
	// Attempt is reported as is (0: unknown).
	Attempt int
	// Log receives one line per failed post (nil: discarded).
	Log io.Writer
}

// Reporter collects progress and posts it in the background. Its methods are safe for concurrent use.
type Reporter struct {
	cfg    Config
	client *http.Client

	mu      sync.Mutex
	cur     contract.ProgressReport
	dirty   bool
	stopped bool // the endpoint said the run has finished: nothing more to say
	// first step and time seen by this attempt, for the ETA.
	firstStep int
	firstTime time.Time

	wake chan struct{}
	quit chan struct{}
	done chan struct{}
	now  func() time.Time
}

// FromEnv builds a Reporter from the environment the operator gives the trainer's pod; nil (and no error) when
// the pod was given no report URL.
func FromEnv(log io.Writer) (*Reporter, error) {
	url := os.Getenv(contract.ProgressURLEnv)
	if url == "" {
		return nil, nil
	}
	cfg := Config{URL: url, TokenFile: os.Getenv(contract.ProgressTokenFileEnv), CAFile: os.Getenv(contract.ProgressCAFileEnv), Log: log}
	if a := os.Getenv(contract.ProgressAttemptEnv); a != "" {
		n, err := strconv.Atoi(a)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not a number", contract.ProgressAttemptEnv, a)
		}
		cfg.Attempt = n
	}
	return New(cfg)
}

// New starts a Reporter; Close stops it.
func New(cfg Config) (*Reporter, error) {
	if !strings.HasPrefix(cfg.URL, "https://") && !strings.HasPrefix(cfg.URL, "http://") {
		return nil, fmt.Errorf("progress URL %q: not an http(s) URL", cfg.URL)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("progress CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("progress CA %s: no PEM certificate in it", cfg.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	r := &Reporter{
		cfg:    cfg,
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg, Proxy: http.ProxyFromEnvironment}},
		cur:    contract.ProgressReport{Attempt: cfg.Attempt},
		wake:   make(chan struct{}, 1),
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
		now:    time.Now,
	}
	go r.run()
	return r, nil
}

// Step records a finished step, or an evaluation when m has eval_ metrics.
func (r *Reporter) Step(step, total int, m map[string]float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if r.firstTime.IsZero() {
		r.firstStep, r.firstTime = step, now
	}
	r.cur.Step, r.cur.TotalSteps = step, total
	train, eval := map[string]float64{}, map[string]float64{}
	for k, v := range m {
		switch {
		case k == "step":
		case k == "epoch":
			r.cur.Epoch = v
		case k == "tokens_per_second":
			r.cur.TokensPerSecond = v
		case strings.HasPrefix(k, "eval_"):
			eval[k] = v
		default:
			train[k] = v
		}
	}
	if len(eval) > 0 {
		r.cur.EvalMetrics = eval
	}
	if len(train) > 0 {
		r.cur.TrainMetrics = train
	}
	if done := step - r.firstStep; done > 0 && total > step {
		r.cur.ETASeconds = now.Sub(r.firstTime).Seconds() / float64(done) * float64(total-step)
	} else if step >= total {
		r.cur.ETASeconds = 0
	}
	r.dirty = true
	r.signal()
}

// Event records what reports carry of the trainer's events: checkpoints (and those pruned) and the resume step. (Close posts the
// last snapshot without waiting for the interval.)
func (r *Reporter) Event(name string, fields map[string]any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch name {
	case "checkpoint":
		step, _ := fields["step"].(int)
		dir, _ := fields["dir"].(string)
		uri := dir
		if filepath.IsAbs(dir) {
			uri = "file://" + dir
		}
		r.cur.Checkpoints = append(r.cur.Checkpoints, contract.Checkpoint{Step: step, URI: uri, Time: r.now().UTC().Format(time.RFC3339)})
		if n := len(r.cur.Checkpoints); n > maxCheckpoints {
			r.cur.Checkpoints = r.cur.Checkpoints[n-maxCheckpoints:]
		}
	case "resumed":
		step, _ := fields["step"].(int)
		r.cur.ResumedFromStep = step
	case "model":
		r.cur.Architecture, _ = fields["architecture"].(string)
		r.cur.ParameterCount, _ = fields["parameterCount"].(int64)
		r.cur.TrainableParameterCount, _ = fields["trainableParameterCount"].(int64)
	case "checkpoints-pruned":
		// training.checkpointsToKeep deleted every checkpoint before oldestKept: reports stop listing them and
		// tell the operator to drop them from status.
		oldest, _ := fields["oldestKept"].(int)
		if oldest <= 0 {
			return
		}
		r.cur.OldestKeptStep = oldest
		kept := r.cur.Checkpoints[:0]
		for _, c := range r.cur.Checkpoints {
			if c.Step >= oldest {
				kept = append(kept, c)
			}
		}
		r.cur.Checkpoints = kept
	default:
		return
	}
	r.dirty = true
	r.signal()
}

// signal wakes the sender without blocking; called with mu held.
func (r *Reporter) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Close posts the newest snapshot once more if it was not sent (waiting at most a few seconds) and stops.
func (r *Reporter) Close() {
	select {
	case <-r.quit:
	default:
		close(r.quit)
	}
	select {
	case <-r.done:
	case <-time.After(15 * time.Second):
	}
}

// run posts the newest snapshot when there is one and the interval since the last attempt has passed.
func (r *Reporter) run() {
	defer close(r.done)
	var last time.Time
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-r.quit:
			r.flush(closeTimeout)
			return
		case <-r.wake:
		case <-timer.C:
		}
		if wait := last.Add(r.cfg.Interval).Sub(r.now()); !last.IsZero() && wait > 0 {
			timer.Reset(wait)
			continue
		}
		if r.flush(postTimeout) {
			last = r.now()
		}
		// A failed post leaves the snapshot dirty: retry after an interval even if training sends nothing new.
		r.mu.Lock()
		dirty := r.dirty && !r.stopped
		r.mu.Unlock()
		if dirty {
			timer.Reset(r.cfg.Interval)
		}
	}
}

// flush posts the snapshot if it changed since the last successful post; it reports whether it tried.
func (r *Reporter) flush(timeout time.Duration) bool {
	r.mu.Lock()
	if !r.dirty || r.stopped {
		r.mu.Unlock()
		return false
	}
	snap := r.cur
	snap.TrainMetrics, snap.EvalMetrics = maps.Clone(r.cur.TrainMetrics), maps.Clone(r.cur.EvalMetrics)
	snap.Checkpoints = append([]contract.Checkpoint(nil), r.cur.Checkpoints...)
	r.dirty = false
	r.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	code, err := r.post(ctx, snap)
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case err == nil && code == http.StatusConflict:
		r.stopped = true // the run has finished: the operator ignores further reports
	case err != nil || code/100 != 2:
		if err == nil {
			err = fmt.Errorf("HTTP %d", code)
		}
		fmt.Fprintf(r.cfg.Log, "progress report for step %d failed (will retry): %v\n", snap.Step, err)
		r.dirty = true
	}
	return true
}

func (r *Reporter) post(ctx context.Context, rep contract.ProgressReport) (int, error) {
	body, err := json.Marshal(rep)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if r.cfg.TokenFile != "" {
		tok, err := os.ReadFile(r.cfg.TokenFile)
		if err != nil {
			return 0, fmt.Errorf("token: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	return resp.StatusCode, nil
}
