package controllers

import (
	"context"
	"fmt"

	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// +kubebuilder:rbac:groups="",namespace=preftune-system,resources=secrets,verbs=get;list;watch;create;update;patch

// ProgressCertOptions say where the progress endpoint's certificate lives when the manager makes it itself.
type ProgressCertOptions struct {
	// Secret holds the CA and the serving certificate; it is created if missing and rotated before expiry.
	Secret types.NamespacedName
	// DNSName is the endpoint's Service name in DNS (<service>.<namespace>.svc).
	DNSName string
	// CertDir is where the Deployment mounts Secret (a secret volume, optional: true): the rotator fills the
	// Secret, the kubelet projects tls.crt, tls.key and ca.crt here, and the endpoint reads them.
	CertDir string
}

// AddProgressCertRotator makes the manager create and rotate the progress endpoint's CA and certificate with
// open-policy-agent/cert-controller (as Kueue and JobSet do). No webhook is patched: trainer pods receive the CA
// in their run's configuration ConfigMap when their Job is created. The rotator writes only the Secret and stops
// the manager when the files do not appear in CertDir within minutes, so the Secret must be mounted there.
//
// The rotator only updates the Secret, so it is created here, empty, when missing (the manager's Role may create
// Secrets in its namespace). Shipping it in the manifests instead would make GitOps tools see the rotator's data as
// drift; creating it at start keeps every install method the same.
//
// The returned function reports whether the rotator is ready: it has brought the Secret up to date at start
// (creating or replacing the CA when needed) and the certificate's files are in CertDir. Set it as
// ProgressOptions.CertsReady, so that no trainer Job is handed a CA before then.
func AddProgressCertRotator(ctx context.Context, mgr ctrl.Manager, o ProgressCertOptions) (ready func() bool, err error) {
	if err := ensureSecret(ctx, mgr, o.Secret); err != nil {
		return nil, fmt.Errorf("progress certificate secret: %w", err)
	}
	isReady := make(chan struct{})
	if err := rotator.AddRotator(mgr, &rotator.CertRotator{
		SecretKey:      o.Secret,
		CertDir:        o.CertDir,
		CAName:         "preftune-progress-ca",
		CAOrganization: "preftune",
		DNSName:        o.DNSName,
		IsReady:        isReady,
		// The endpoint is served by the leader only; every replica keeps the files current.
		RequireLeaderElection: false,
	}); err != nil {
		return nil, fmt.Errorf("progress certificate rotator: %w", err)
	}
	return closedChecker(isReady), nil
}

// closedChecker reports, without blocking, whether ch is closed.
func closedChecker(ch <-chan struct{}) func() bool {
	return func() bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
}

// ensureSecret creates the Secret, empty, unless it exists. The manager's cache is not started yet: a direct client.
func ensureSecret(ctx context.Context, mgr ctrl.Manager, key types.NamespacedName) error {
	c, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme()})
	if err != nil {
		return err
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name,
		Labels: map[string]string{LabelManagedBy: managedBy}}, Type: corev1.SecretTypeOpaque}
	if err := c.Create(ctx, secret); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create %s: %w", key, err)
	}
	return nil
}
