package envtest

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/preftune/preftune/controllers"
)

// The cert-controller rotator only updates its Secret, and a fresh install ships none: the manager creates it, empty,
// before the rotator starts (a real cluster showed the manager crash-looping without). The rotator's controller name
// is global to the process, so this builds one manager only; a restart's AlreadyExists is ignored by the same call.
func TestProgressCertSecretIsCreatedWhenMissing(t *testing.T) {
	ns := newNamespace(t)
	key := types.NamespacedName{Namespace: ns, Name: "preftune-progress-cert"}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		Controller: ctrlConfigSkipNameValidation()})
	if err != nil {
		t.Fatal(err)
	}
	if err := controllers.AddProgressCertRotator(context.Background(), mgr, controllers.ProgressCertOptions{
		Secret: key, DNSName: "preftune-progress." + ns + ".svc", CertDir: t.TempDir(),
	}); err != nil {
		t.Fatalf("AddProgressCertRotator: %v", err)
	}
	var s corev1.Secret
	if err := k8s.Get(context.Background(), key, &s); err != nil {
		t.Fatalf("the progress certificate Secret: %v", err)
	}
	if s.Labels[controllers.LabelManagedBy] != "preftune-operator" {
		t.Errorf("labels %v", s.Labels)
	}
}
