package install

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestKustomizeServerDryRun checks that `kubectl apply -k config/default` is accepted by the apiserver: schemas,
// RBAC objects, the Deployment and the NetworkPolicy are validated there without being stored.
func TestKustomizeServerDryRun(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatal("kubectl is not on PATH: install kubectl (>= 1.27) to check `kubectl apply -k config/default`")
	}
	// A server-side dry run stores nothing, not even the Namespace it applies first, so the namespaced objects
	// would find no namespace: create it as the kustomization declares it.
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "preftune-system", Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted",
	}}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	out, err := runCmd(kubectl, "--kubeconfig", kubeconfig, "apply", "-k", "config/default", "--dry-run=server")
	if err != nil {
		t.Fatalf("kubectl apply -k config/default --dry-run=server: %v", err)
	}
	for _, want := range []string{
		"customresourcedefinition.apiextensions.k8s.io/sftruns.preftune.io",
		"clusterrole.rbac.authorization.k8s.io/preftune-manager-role",
		"deployment.apps/preftune-controller-manager",
		"service/preftune-controller-manager-metrics",
		"service/preftune-progress",
		"networkpolicy.networking.k8s.io/preftune-controller-manager",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl apply output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "(server dry run)") {
		t.Errorf("not a server dry run:\n%s", out)
	}
}
