package install

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
)

var crdNames = []string{"preferencedatasets.preftune.io", "sftruns.preftune.io", "dporuns.preftune.io"}

// TestHelmLifecycle installs the chart into the envtest apiserver, upgrades it to a chart whose SFTRun CRD gained
// a printer column, and uninstalls it: first with the default crds.keep (the CRDs stay), then, after adopting the
// kept CRDs with a fresh install, with crds.keep=false (they go).
func TestHelmLifecycle(t *testing.T) {
	ctx := context.Background()
	const ns, release = "preftune-helm", "preftune"
	restrictedNamespace(t, ns)

	helm(t, "install", release, chartDir, "-n", ns)
	for _, name := range crdNames {
		eventually(t, "CRD "+name+" established", func() error { return established(name) })
	}
	var dep appsv1.Deployment
	if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "preftune-controller-manager"}, &dep); err != nil {
		t.Fatalf("manager Deployment: %v", err)
	}
	if got := dep.Spec.Template.Spec.ServiceAccountName; got != "preftune-controller-manager" {
		t.Errorf("serviceAccountName = %q", got)
	}
	var crb rbacv1.ClusterRoleBinding
	if err := k8s.Get(ctx, types.NamespacedName{Name: "preftune-manager-rolebinding"}, &crb); err != nil {
		t.Fatalf("ClusterRoleBinding: %v", err)
	}
	if len(crb.Subjects) != 1 || crb.Subjects[0].Namespace != ns {
		t.Errorf("ClusterRoleBinding subjects %v: want the ServiceAccount in %s", crb.Subjects, ns)
	}

	// A newer chart whose CRD changed: helm upgrade must change it in the apiserver (Helm's crds/ folder would not).
	newer := copyChart(t)
	crdFile := filepath.Join(newer, "templates", "crds", "sftruns.preftune.io.yaml")
	b, err := os.ReadFile(crdFile)
	if err != nil {
		t.Fatal(err)
	}
	const anchor = "  - additionalPrinterColumns:\n"
	if !strings.Contains(string(b), anchor) {
		t.Fatalf("%s has no %q to add a column to", crdFile, anchor)
	}
	changed := strings.Replace(string(b), anchor, anchor+"    - jsonPath: .spec.datasetRef.name\n      name: UpgradeTest\n      type: string\n", 1)
	if err := os.WriteFile(crdFile, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	if hasColumn(t, "sftruns.preftune.io", "UpgradeTest") {
		t.Fatal("the column is there before the upgrade")
	}
	helm(t, "upgrade", release, newer, "-n", ns, "--set", "replicas=2")
	if !hasColumn(t, "sftruns.preftune.io", "UpgradeTest") {
		t.Fatal("helm upgrade did not add the printer column to the SFTRun CRD")
	}
	if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "preftune-controller-manager"}, &dep); err != nil {
		t.Fatal(err)
	}
	if *dep.Spec.Replicas != 2 {
		t.Errorf("replicas after upgrade = %d, want 2", *dep.Spec.Replicas)
	}
	if hist := helm(t, "history", release, "-n", ns); !strings.Contains(hist, "Upgrade complete") {
		t.Errorf("helm history:\n%s", hist)
	}

	// Uninstall with crds.keep (the default): the operator goes, the CRDs (and so every run) stay.
	helm(t, "uninstall", release, "-n", ns)
	eventually(t, "Deployment deleted", func() error {
		return gone(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "preftune-controller-manager"}, &appsv1.Deployment{}))
	})
	if err := gone(k8s.Get(ctx, types.NamespacedName{Name: "preftune-manager-role"}, &rbacv1.ClusterRole{})); err != nil {
		t.Errorf("ClusterRole: %v", err)
	}
	for _, name := range crdNames {
		if err := established(name); err != nil {
			t.Errorf("CRD %s after uninstall with crds.keep: %v", name, err)
		}
	}

	// Install again (Helm adopts the kept CRDs: same release and namespace), then uninstall without keep.
	helm(t, "install", release, chartDir, "-n", ns, "--set", "crds.keep=false")
	if hasColumn(t, "sftruns.preftune.io", "UpgradeTest") {
		t.Error("installing the older chart over the kept CRDs left the newer CRD in place")
	}
	helm(t, "uninstall", release, "-n", ns)
	for _, name := range crdNames {
		eventually(t, "CRD "+name+" deleted with crds.keep=false", func() error {
			return gone(k8s.Get(ctx, types.NamespacedName{Name: name}, &apiextensionsv1.CustomResourceDefinition{}))
		})
	}
}

func established(name string) error {
	var crd apiextensionsv1.CustomResourceDefinition
	if err := k8s.Get(context.Background(), types.NamespacedName{Name: name}, &crd); err != nil {
		return err
	}
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
			return nil
		}
	}
	return fmt.Errorf("CRD %s is not Established: %v", name, crd.Status.Conditions)
}

func hasColumn(t testing.TB, crdName, column string) bool {
	t.Helper()
	var crd apiextensionsv1.CustomResourceDefinition
	if err := k8s.Get(context.Background(), types.NamespacedName{Name: crdName}, &crd); err != nil {
		t.Fatalf("CRD %s: %v", crdName, err)
	}
	for _, v := range crd.Spec.Versions {
		if slices.ContainsFunc(v.AdditionalPrinterColumns, func(c apiextensionsv1.CustomResourceColumnDefinition) bool { return c.Name == column }) {
			return true
		}
	}
	return false
}

// gone turns "not found" into success and anything else, including found, into an error.
func gone(err error) error {
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err == nil:
		return fmt.Errorf("still there")
	default:
		return err
	}
}

// copyChart copies charts/preftune into a temporary directory.
func copyChart(t testing.TB) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "preftune")
	if err := os.CopyFS(dst, os.DirFS(chartDir)); err != nil {
		t.Fatalf("copy chart: %v", err)
	}
	return dst
}
