package envtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/preftune/preftune/controllers"
)

// The cert-controller rotator only updates its Secret, and a fresh install ships none: the manager creates it, empty,
// before the rotator starts (a real cluster showed the manager crash-looping without). The rotator's controller name
// is global to the process, so this builds one manager only; a restart's AlreadyExists is ignored by the same call.
// The same manager then runs the rotator: its readiness (which gates trainer Jobs) stays false until the rotator
// has filled the Secret and the files are in the cert dir (here the test projects them, as the kubelet would).
func TestProgressCertSecretIsCreatedWhenMissing(t *testing.T) {
	ns := newNamespace(t)
	key := types.NamespacedName{Namespace: ns, Name: "preftune-progress-cert"}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		Controller: ctrlConfigSkipNameValidation()})
	if err != nil {
		t.Fatal(err)
	}
	certDir := t.TempDir()
	ready, err := controllers.AddProgressCertRotator(context.Background(), mgr, controllers.ProgressCertOptions{
		Secret: key, DNSName: "preftune-progress." + ns + ".svc", CertDir: certDir,
	})
	if err != nil {
		t.Fatalf("AddProgressCertRotator: %v", err)
	}
	var s corev1.Secret
	if err := k8s.Get(context.Background(), key, &s); err != nil {
		t.Fatalf("the progress certificate Secret: %v", err)
	}
	if s.Labels[controllers.LabelManagedBy] != "preftune-operator" {
		t.Errorf("labels %v", s.Labels)
	}
	if ready() {
		t.Fatal("ready before the rotator started")
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("manager did not stop")
		}
	}()
	eventually(t, "the rotator fills the Secret", func() error {
		if err := k8s.Get(context.Background(), key, &s); err != nil {
			return err
		}
		if len(s.Data["ca.crt"]) == 0 || len(s.Data["tls.crt"]) == 0 || len(s.Data["tls.key"]) == 0 {
			return fmt.Errorf("secret keys %d", len(s.Data))
		}
		return nil
	})
	consistently(t, "not ready while the files are not in the cert dir", 2*time.Second, func() error {
		if ready() {
			return fmt.Errorf("ready without %s/tls.crt", certDir)
		}
		return nil
	})
	for _, k := range []string{"ca.crt", "tls.crt", "tls.key"} { // the kubelet projecting the Secret
		if err := os.WriteFile(filepath.Join(certDir, k), s.Data[k], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(90 * time.Second) // the rotator checks with backoff: 1 s, 2 s, 4 s, ... with jitter
	for !ready() {
		if time.Now().After(deadline) {
			t.Fatal("the rotator is not ready 90 s after its files appeared")
		}
		time.Sleep(200 * time.Millisecond)
	}
}
