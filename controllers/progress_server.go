package controllers

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/preftune/preftune/api/v1alpha1"
	"github.com/preftune/preftune/trainer/contract"
)

// ProgressOptions configure the endpoint trainers push progress to.
type ProgressOptions struct {
	// BindAddress of the HTTPS endpoint; "" disables it (and trainers get no report URL).
	BindAddress string
	// URL is the base URL trainer pods reach the endpoint at (https://<service>.<namespace>.svc:8443).
	URL string
	// CertDir holds tls.crt and tls.key of the endpoint and ca.crt, the CA given to trainer pods. The files may
	// appear after the manager starts (the cert rotator writes them) and are reloaded when they change.
	CertDir string
	// Interval bounds how often a run's status is rewritten from its reports.
	Interval time.Duration
	// CertsReady, when set, says whether CertDir holds the certificate the endpoint will serve (the cert rotator
	// has made or checked it and the files are there). Until then no trainer Job that reports progress is created:
	// it would carry a CA about to be replaced, or none. nil: ready (cert-manager's files, tests).
	CertsReady func() bool
}

func (o ProgressOptions) certsReady() bool { return o.CertsReady == nil || o.CertsReady() }

// Files in ProgressOptions.CertDir (the names cert-controller and cert-manager use).
const (
	progressCertFile = "tls.crt"
	progressKeyFile  = "tls.key"
	progressCAFile   = "ca.crt"
)

// ProgressPathPrefix is the endpoint's path: <prefix><namespace>/<sftruns|dporuns>/<name>.
const ProgressPathPrefix = "/v1alpha1/progress/"

// progressURL is where a run's trainer posts its reports.
func (o ProgressOptions) progressURL(resource, namespace, name string) string {
	return strings.TrimSuffix(o.URL, "/") + ProgressPathPrefix + namespace + "/" + resource + "/" + name
}

// caPEM is the CA trainer pods trust, nil when the cert dir has none yet.
func (o ProgressOptions) caPEM() []byte {
	if o.CertDir == "" {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(o.CertDir, progressCAFile))
	if err != nil {
		return nil
	}
	return b
}

// resourceKinds maps the URL's resource to the API kind.
var resourceKinds = map[string]string{"sftruns": "SFTRun", "dporuns": "DPORun"}

func kindResource(kind string) string {
	if kind == "DPORun" {
		return "dporuns"
	}
	return "sftruns"
}

// progressServer is the manager Runnable that serves the progress endpoint.
type progressServer struct {
	opts  ProgressOptions
	auth  *progressAuthenticator
	runs  client.Reader
	store *progressStore
}

// NeedLeaderElection: only the leader's reconcilers consume the reports, so only the leader serves them.
func (s *progressServer) NeedLeaderElection() bool { return true }

// Start waits for the certificate, then serves until ctx ends.
func (s *progressServer) Start(ctx context.Context) error {
	log := ctrl.Log.WithName("progress")
	certPath, keyPath := filepath.Join(s.opts.CertDir, progressCertFile), filepath.Join(s.opts.CertDir, progressKeyFile)
	if !waitForFiles(ctx, certPath, keyPath) {
		return nil // stopped before the certificate appeared
	}
	watcher, err := certwatcher.New(certPath, keyPath)
	if err != nil {
		return fmt.Errorf("progress endpoint certificate: %w", err)
	}
	go func() {
		if err := watcher.Start(ctx); err != nil {
			log.Error(err, "Certificate watcher stopped")
		}
	}()
	ln, err := net.Listen("tcp", s.opts.BindAddress)
	if err != nil {
		return fmt.Errorf("progress endpoint: %w", err)
	}
	srv := &http.Server{
		Handler:           s,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: watcher.GetCertificate},
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
	}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Info("Serving progress reports", "address", ln.Addr().String())
	if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("progress endpoint: %w", err)
	}
	return nil
}

// waitForFiles polls until the certificate files exist (the rotator writes them once the manager runs); false
// when ctx ended first.
func waitForFiles(ctx context.Context, paths ...string) bool {
	for {
		missing := false
		for _, p := range paths {
			if _, err := os.Stat(p); err != nil {
				missing = true
			}
		}
		if !missing {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// ServeHTTP accepts one report: POST <prefix><namespace>/<resource>/<name> with a bearer token.
func (s *progressServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rej := s.accept(r); rej != nil {
		progressRejected.WithLabelValues(rej.reason).Inc()
		ctrl.Log.WithName("progress").V(1).Info("Rejected a progress report", "path", r.URL.Path, "reason", rej.reason, "detail", rej.msg)
		http.Error(w, rej.msg, rej.code)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (s *progressServer) accept(r *http.Request) *rejection {
	if r.Method != http.MethodPost {
		return reject(http.StatusMethodNotAllowed, rejectBadRequest, "use POST")
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, ProgressPathPrefix), "/")
	if !strings.HasPrefix(r.URL.Path, ProgressPathPrefix) || len(parts) != 3 || parts[0] == "" || parts[2] == "" || resourceKinds[parts[1]] == "" {
		return reject(http.StatusNotFound, rejectBadRequest, "path must be %s<namespace>/<sftruns|dporuns>/<name>", ProgressPathPrefix)
	}
	ns, resource, name := parts[0], parts[1], parts[2]
	kind := resourceKinds[resource]
	token := bearerToken(r)
	if token == "" {
		return reject(http.StatusUnauthorized, rejectMissingToken, "no bearer token")
	}

	var run Run = sftRun{&v1alpha1.SFTRun{}}
	if kind == "DPORun" {
		run = dpoRun{&v1alpha1.DPORun{}}
	}
	key := runKey{kind: kind, NamespacedName: types.NamespacedName{Namespace: ns, Name: name}}
	if err := s.runs.Get(r.Context(), key.NamespacedName, run.Object()); err != nil {
		// Not found and unreadable look the same to a caller that is not yet authenticated.
		return reject(http.StatusNotFound, rejectRunNotFound, "%s %s/%s not found", kind, ns, name)
	}
	jobName := run.Status().JobName
	if jobName == "" {
		jobName = childName(name, map[string]string{"SFTRun": "sft", "DPORun": "dpo"}[kind], string(run.GetUID()))
	}
	pod, rej := s.auth.authenticate(r.Context(), token, ProgressAudience(resource, ns, name), ns, jobName)
	if rej != nil {
		return rej
	}
	st := run.Status()
	if isTrue(st.Conditions, v1alpha1.ConditionSucceeded) || isTrue(st.Conditions, v1alpha1.ConditionFailed) {
		return reject(http.StatusConflict, rejectRunFinished, "%s %s/%s has finished", kind, ns, name)
	}

	var rep contract.ProgressReport
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, contract.MaxProgressReportBytes))
	if err := dec.Decode(&rep); err != nil {
		return reject(http.StatusBadRequest, rejectBadRequest, "report: %v", err)
	}
	if rep.Step < 0 || rep.TotalSteps < 0 {
		return reject(http.StatusBadRequest, rejectBadRequest, "report: step and totalSteps must not be negative")
	}
	s.store.put(key, &receivedReport{ProgressReport: rep, received: metav1.Now(), podUID: string(pod.UID)})
	setRunGauges(key, rep.Step, rep.TrainMetrics, rep.TokensPerSecond)
	return nil
}
