package envtest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/preftune/preftune/api/v1alpha1"
	"github.com/preftune/preftune/controllers"
	"github.com/preftune/preftune/trainer/contract"
)

// progressEnv is a manager with the progress endpoint on loopback, and a client that trusts its certificate.
type progressEnv struct {
	url      string
	http     *http.Client
	interval time.Duration
	kube     *kubernetes.Clientset
}

// startProgressManager runs the controllers as startManager does, plus the progress endpoint with a self-signed
// certificate given through the cert-dir option (the cert-manager path).
func startProgressManager(t *testing.T, interval time.Duration) (*progressEnv, func()) {
	t.Helper()
	dir := t.TempDir()
	caPEM := writeSelfSignedCert(t, dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	opts := testOptions
	opts.Progress = controllers.ProgressOptions{BindAddress: addr, URL: "https://" + addr, CertDir: dir, Interval: interval}
	stop := startManagerWith(t, cfg, opts, controllers.Concurrency{Runs: 4, Datasets: 2})

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	env := &progressEnv{url: "https://" + addr, interval: interval,
		http: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
	if env.kube, err = kubernetes.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	eventually(t, "progress endpoint listening", func() error {
		resp, err := env.http.Get(env.url + "/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	return env, stop
}

// writeSelfSignedCert writes tls.crt, tls.key and ca.crt (the certificate itself) for 127.0.0.1 into dir.
func writeSelfSignedCert(t *testing.T, dir string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "preftune-progress-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	for name, b := range map[string][]byte{"tls.crt": certPEM, "ca.crt": certPEM,
		"tls.key": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return certPEM
}

// post sends a report and returns the HTTP status.
func (e *progressEnv) post(t *testing.T, ns, resource, name, token string, rep contract.ProgressReport) int {
	t.Helper()
	body, _ := json.Marshal(rep)
	req, _ := http.NewRequest(http.MethodPost, e.url+controllers.ProgressPathPrefix+ns+"/"+resource+"/"+name, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatalf("post report: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// token mints a service-account token for audience, bound to pod when it is not nil (TokenRequest API).
func (e *progressEnv) token(t *testing.T, ns, audience string, pod *corev1.Pod) string {
	t.Helper()
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences: []string{audience}, ExpirationSeconds: ptr.To[int64](600)}}
	if pod != nil {
		req.Spec.BoundObjectRef = &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}
	}
	tr, err := e.kube.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), "default", req, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create token: %v", err)
	}
	return tr.Status.Token
}

// rejected reads preftune_progress_reports_rejected_total{reason}.
func rejected(t *testing.T, reason string) float64 {
	t.Helper()
	return metricValue(t, "preftune_progress_reports_rejected_total", map[string]string{"reason": reason})
}

// metricValue reads one series of the manager's registry; NaN when it does not exist.
func metricValue(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue series
				}
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	return math.NaN()
}

// runningTrainer creates a run's pod (with the default service account, which a token can be bound to).
func runningTrainer(t *testing.T, job *batchv1.Job, suffix string) *corev1.Pod {
	t.Helper()
	j := job.DeepCopy()
	j.Spec.Template.Spec.ServiceAccountName = "default"
	return startPod(t, j, suffix, corev1.PodRunning)
}

func TestProgressReports(t *testing.T) {
	const interval = time.Second
	env, stop := startProgressManager(t, interval)
	defer stop()
	ns := newNamespace(t)
	// No service-account controller runs here: create the account tokens are minted for.
	create(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns}})
	readyDataset(t, ns, "arith")
	create(t, newSFTRun(ns, "live", "arith"))
	create(t, newSFTRun(ns, "other", "arith"))
	job := waitForJob(t, ns, "SFTRun", "live")
	otherJob := waitForJob(t, ns, "SFTRun", "other")
	audience := controllers.ProgressAudience("sftruns", ns, "live")

	t.Run("the pod gets a projected token for its run, a report URL and the CA, and no API token", func(t *testing.T) {
		spec := job.Spec.Template.Spec
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			t.Errorf("automountServiceAccountToken = %v", spec.AutomountServiceAccountToken)
		}
		var proj *corev1.ServiceAccountTokenProjection
		for _, v := range spec.Volumes {
			if v.Projected != nil && len(v.Projected.Sources) == 1 {
				proj = v.Projected.Sources[0].ServiceAccountToken
			}
		}
		if proj == nil || proj.Audience != audience || proj.ExpirationSeconds == nil || *proj.ExpirationSeconds != 3600 {
			t.Fatalf("projected token = %+v, want audience %s for 3600s", proj, audience)
		}
		env2 := map[string]string{}
		for _, e := range spec.Containers[0].Env {
			env2[e.Name] = e.Value
		}
		if env2[contract.ProgressURLEnv] != env.url+"/v1alpha1/progress/"+ns+"/sftruns/live" ||
			!strings.HasSuffix(env2[contract.ProgressTokenFileEnv], "/token") || env2[contract.ProgressCAFileEnv] != "/etc/preftune/progress-ca.crt" {
			t.Errorf("env = %v", env2)
		}
		var cm corev1.ConfigMap
		get(t, &cm, ns, job.Name+"-config")
		if !strings.Contains(cm.Data["progress-ca.crt"], "BEGIN CERTIFICATE") {
			t.Errorf("config ConfigMap has no CA: keys %v", cm.Data)
		}
	})

	pod := runningTrainer(t, job, "a")
	otherPod := runningTrainer(t, otherJob, "a")
	var run v1alpha1.SFTRun
	eventually(t, "run Running", func() error {
		get(t, &run, ns, "live")
		return wantCondition(run.Status.Conditions, v1alpha1.ConditionRunning, metav1.ConditionTrue, "")
	})
	good := env.token(t, ns, audience, pod)

	t.Run("a report with a valid pod-bound token updates status and the gauges", func(t *testing.T) {
		code := env.post(t, ns, "sftruns", "live", good, contract.ProgressReport{Step: 10, TotalSteps: 50, Epoch: 0.3,
			ETASeconds: 120, TokensPerSecond: 5432, TrainMetrics: map[string]float64{"loss": 2.5},
			EvalMetrics: map[string]float64{"eval_loss": 2.75},
			Checkpoints: []contract.Checkpoint{{Step: 10, URI: "file:///mnt/pvc/outputs/x/checkpoints/step-00000010", Time: time.Now().UTC().Format(time.RFC3339)}}})
		if code != http.StatusAccepted {
			t.Fatalf("status %d", code)
		}
		eventually(t, "status.progress from the report", func() error {
			get(t, &run, ns, "live")
			p := run.Status.Progress
			if p == nil || p.Step != 10 || p.TotalSteps != 50 || p.Percent != 20 || p.ETASeconds == nil || *p.ETASeconds != 120 ||
				p.TokensPerSecond != "5432" || p.Epoch != "0.3" || p.LastUpdateTime == nil {
				return fmt.Errorf("progress %+v", p)
			}
			if m := run.Status.Metrics; m == nil || m.TrainLoss != "2.5" || m.EvalLoss != "2.75" {
				return fmt.Errorf("metrics %+v", m)
			}
			if len(run.Status.Checkpoints) != 1 || run.Status.Checkpoints[0].URI != "pvc://outputs/x/checkpoints/step-00000010" {
				return fmt.Errorf("checkpoints %+v", run.Status.Checkpoints)
			}
			return nil
		})
		l := map[string]string{"namespace": ns, "name": "live", "kind": "SFTRun"}
		if v := metricValue(t, "preftune_run_step", l); v != 10 {
			t.Errorf("preftune_run_step = %v", v)
		}
		if v := metricValue(t, "preftune_run_loss", l); v != 2.5 {
			t.Errorf("preftune_run_loss = %v", v)
		}
		if v := metricValue(t, "preftune_runs", map[string]string{"kind": "SFTRun", "phase": "Running"}); !(v >= 2) {
			t.Errorf("preftune_runs{Running} = %v, want at least 2", v)
		}
	})

	t.Run("bad tokens are rejected and counted", func(t *testing.T) {
		rep := contract.ProgressReport{Step: 11, TotalSteps: 50}
		unbound := env.token(t, ns, audience, nil)
		wrongAudience := env.token(t, ns, controllers.ProgressAudience("sftruns", ns, "other"), pod)
		otherRunsPod := env.token(t, ns, audience, otherPod)
		for _, tc := range []struct {
			name, token, reason string
			code                int
		}{
			{"no token", "", "missing_token", http.StatusUnauthorized},
			{"garbage", "not-a-token", "invalid_token", http.StatusUnauthorized},
			{"wrong audience", wrongAudience, "invalid_token", http.StatusUnauthorized},
			{"not bound to a pod", unbound, "not_pod_bound", http.StatusForbidden},
			{"a pod of another run's Job", otherRunsPod, "other_run", http.StatusForbidden},
		} {
			before := rejected(t, tc.reason)
			if code := env.post(t, ns, "sftruns", "live", tc.token, rep); code != tc.code {
				t.Errorf("%s: status %d, want %d", tc.name, code, tc.code)
			}
			if after := rejected(t, tc.reason); !(after == before+1 || (math.IsNaN(before) && after == 1)) {
				t.Errorf("%s: rejected{%s} went from %v to %v", tc.name, tc.reason, before, after)
			}
		}
		get(t, &run, ns, "live")
		if run.Status.Progress.Step != 10 {
			t.Errorf("a rejected report changed status: step %d", run.Status.Progress.Step)
		}
	})

	t.Run("a token whose pod is gone is rejected", func(t *testing.T) {
		gone := runningTrainer(t, otherJob, "gone")
		tok := env.token(t, ns, controllers.ProgressAudience("sftruns", ns, "other"), gone)
		if code := env.post(t, ns, "sftruns", "other", tok, contract.ProgressReport{Step: 1, TotalSteps: 50}); code != http.StatusAccepted {
			t.Fatalf("while the pod exists: status %d", code)
		}
		if err := k8s.Delete(context.Background(), gone, client.GracePeriodSeconds(0)); err != nil {
			t.Fatal(err)
		}
		before := rejected(t, "invalid_token")
		eventually(t, "token of a deleted pod refused", func() error {
			if code := env.post(t, ns, "sftruns", "other", tok, contract.ProgressReport{Step: 2, TotalSteps: 50}); code != http.StatusUnauthorized {
				return fmt.Errorf("status %d", code)
			}
			return nil
		})
		if after := rejected(t, "invalid_token"); after < before+1 {
			t.Errorf("invalid_token went from %v to %v", before, after)
		}
	})

	t.Run("a burst of reports costs at most one status write per interval", func(t *testing.T) {
		wc, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
		if err != nil {
			t.Fatal(err)
		}
		w, err := wc.Watch(context.Background(), &v1alpha1.SFTRunList{}, client.InNamespace(ns))
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		start := time.Now()
		const n = 50
		for i := 1; i <= n; i++ {
			if code := env.post(t, ns, "sftruns", "live", good, contract.ProgressReport{Step: 11 + i, TotalSteps: 100,
				TrainMetrics: map[string]float64{"loss": 2 - float64(i)/100}}); code != http.StatusAccepted {
				t.Fatalf("report %d: status %d", i, code)
			}
			time.Sleep(40 * time.Millisecond)
		}
		burst := time.Since(start)
		// The last report lands within one interval after the burst; then nothing more may be written.
		writes := 0
		var last *v1alpha1.SFTRun
		quiet := time.After(burst + 3*interval - time.Since(start))
	count:
		for {
			select {
			case ev := <-w.ResultChan():
				// A watch opens with an ADDED event per existing object: only modifications are writes.
				if r, ok := ev.Object.(*v1alpha1.SFTRun); ok && r.Name == "live" && ev.Type == watch.Modified {
					writes++
					last = r
				}
			case <-quiet:
				break count
			}
		}
		limit := int(math.Ceil(float64(burst)/float64(interval))) + 1
		t.Logf("%d reports in %s: %d status writes (limit %d)", n, burst.Round(time.Millisecond), writes, limit)
		if writes > limit {
			t.Errorf("%d status writes for a burst of %s, want at most %d", writes, burst, limit)
		}
		if last == nil || last.Status.Progress == nil || last.Status.Progress.Step != 11+n || last.Status.Metrics.TrainLoss != "1.5" {
			t.Errorf("the newest report is not in status: %+v", last)
		}
	})

	t.Run("the termination message decides the end; later reports are refused and the gauges go", func(t *testing.T) {
		finishPod(t, pod, 0, runResult("pvc://outputs/preftune/"+ns+"/live/model", map[string]float64{"loss": 0.9, "eval_loss": 1.1}))
		completeJob(t, job)
		eventually(t, "run Succeeded with the final metrics", func() error {
			get(t, &run, ns, "live")
			if run.Status.Phase != v1alpha1.RunPhaseSucceeded {
				return fmt.Errorf("phase %s", run.Status.Phase)
			}
			if run.Status.Metrics == nil || run.Status.Metrics.TrainLoss != "0.9" || run.Status.Progress.Step != 50 {
				return fmt.Errorf("metrics %+v progress %+v", run.Status.Metrics, run.Status.Progress)
			}
			return nil
		})
		if code := env.post(t, ns, "sftruns", "live", good, contract.ProgressReport{Step: 99, TotalSteps: 100}); code != http.StatusConflict {
			t.Errorf("report after the end: status %d, want 409", code)
		}
		if v := metricValue(t, "preftune_run_step", map[string]string{"namespace": ns, "name": "live", "kind": "SFTRun"}); !math.IsNaN(v) {
			t.Errorf("preftune_run_step of a finished run = %v, want no series", v)
		}
	})

	t.Run("a run that never reported still ends right", func(t *testing.T) {
		fresh := newSFTRun(ns, "silent", "arith")
		create(t, fresh)
		j := waitForJob(t, ns, "SFTRun", "silent")
		p := runningTrainer(t, j, "a")
		finishPod(t, p, 0, runResult("pvc://outputs/preftune/"+ns+"/silent/model", map[string]float64{"loss": 0.8, "eval_loss": 1.2}))
		completeJob(t, j)
		eventually(t, "silent run Succeeded", func() error {
			var r v1alpha1.SFTRun
			get(t, &r, ns, "silent")
			if r.Status.Phase != v1alpha1.RunPhaseSucceeded || r.Status.Metrics == nil || r.Status.Metrics.EvalLoss != "1.2" ||
				r.Status.Progress == nil || r.Status.Progress.Step != 50 {
				return fmt.Errorf("phase %s metrics %+v progress %+v", r.Status.Phase, r.Status.Metrics, r.Status.Progress)
			}
			return nil
		})
	})
}

// TestRunWaitsForTheProgressCertificate: while the manager's progress certificate is not ready, a run whose inputs
// are ready gets no Job (it would carry a CA the rotator is about to replace, or none) and says why in its Running
// condition and an event; once ready, the Job is created with the CA.
func TestRunWaitsForTheProgressCertificate(t *testing.T) {
	dir := t.TempDir()
	caPEM := writeSelfSignedCert(t, dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var certsReady atomic.Bool
	opts := testOptions
	opts.Progress = controllers.ProgressOptions{BindAddress: addr, URL: "https://" + addr, CertDir: dir, Interval: time.Second,
		CertsReady: certsReady.Load}
	stop := startManagerWith(t, cfg, opts, controllers.Concurrency{Runs: 2, Datasets: 1})
	defer stop()

	ns := newNamespace(t)
	readyDataset(t, ns, "arith")
	create(t, newSFTRun(ns, "early", "arith"))
	var run v1alpha1.SFTRun
	eventually(t, "run waiting for the certificate", func() error {
		get(t, &run, ns, "early")
		return wantCondition(run.Status.Conditions, v1alpha1.ConditionRunning, metav1.ConditionFalse, controllers.ReasonWaitingForProgressCertificate)
	})
	consistently(t, "no Job before the certificate is ready", 3*time.Second, func() error {
		if jobs := ownedJobs(t, ns, "SFTRun", "early"); len(jobs) != 0 {
			return fmt.Errorf("%d Jobs", len(jobs))
		}
		return nil
	})
	wantEvents(t, ns, "early", controllers.ReasonWaitingForProgressCertificate)

	certsReady.Store(true)
	job := waitForJob(t, ns, "SFTRun", "early")
	var cm corev1.ConfigMap
	get(t, &cm, ns, job.Name+"-config")
	if cm.Data["progress-ca.crt"] != string(caPEM) {
		t.Errorf("the Job's CA is not the endpoint's: %q", cm.Data["progress-ca.crt"])
	}
	eventually(t, "run no longer waiting", func() error {
		get(t, &run, ns, "early")
		if c := findCondition(run.Status.Conditions, v1alpha1.ConditionRunning); c == nil || c.Reason == controllers.ReasonWaitingForProgressCertificate {
			return fmt.Errorf("Running %+v", c)
		}
		return nil
	})
}
