// Package install checks the ways users install Preftune: the Helm chart (lint, golden templates, install, upgrade
// with a changed CRD, uninstall), kustomize (server-side dry run), Pod Security "restricted" admission of the
// manager and trainer pods, least-privilege RBAC, and the container image. Helm and crane are Go tool dependencies
// of hack/tools, built here from the module proxy; the apiserver is envtest's (bin/envtest, `make envtest`).
package install

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"go.uber.org/zap/zapcore"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/preftune/preftune/api/v1alpha1"
)

var (
	repo       string
	chartDir   string
	toolsDir   string
	helmBin    string
	craneBin   string
	kubeconfig string
	cfg        *rest.Config
	k8s        client.Client
	clientset  *kubernetes.Clientset
	scheme     = k8sruntime.NewScheme()
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// Errors only: the controllers started by the Pod Security test would drown the output.
	ctrl.SetLogger(zap.New(zap.Level(zapcore.ErrorLevel)))
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	utilruntime.Must(apiextensionsv1.AddToScheme(scheme))
	_, file, _, _ := runtime.Caller(0)
	repo = filepath.Join(filepath.Dir(file), "..", "..")
	chartDir = filepath.Join(repo, "charts", "preftune")
	toolsDir = filepath.Join(repo, "hack", "tools")

	tmp, err := os.MkdirTemp("", "preftune-install-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	// Built from hack/tools/go.mod through the Go build cache: seconds once built, no download outside the proxy.
	helmBin, craneBin = filepath.Join(tmp, "helm"), filepath.Join(tmp, "crane")
	for bin, pkg := range map[string]string{helmBin: "helm.sh/helm/v3/cmd/helm", craneBin: "github.com/google/go-containerregistry/cmd/crane"} {
		cmd := exec.Command("go", "build", "-o", bin, pkg)
		cmd.Dir = toolsDir
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, out)
			return 1
		}
	}

	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(repo, "bin", "envtest")
	}
	if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); err != nil {
		fmt.Fprintf(os.Stderr, "envtest binaries are missing in %s: run `make envtest` (or `make test`, which builds them)\n", assets)
		return 1
	}
	// No CRDs here: the chart installs them.
	testEnv := &envtest.Environment{BinaryAssetsDirectory: assets}
	if cfg, err = testEnv.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "start envtest: %v\n", err)
		return 1
	}
	defer func() {
		if err := testEnv.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stop envtest: %v\n", err)
		}
	}()
	// helm and kubectl reach the apiserver through a kubeconfig of a cluster-admin user.
	admin, err := testEnv.AddUser(envtest.User{Name: "installer", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		fmt.Fprintf(os.Stderr, "add user: %v\n", err)
		return 1
	}
	kc, err := admin.KubeConfig()
	if err != nil {
		fmt.Fprintf(os.Stderr, "kubeconfig: %v\n", err)
		return 1
	}
	kubeconfig = filepath.Join(tmp, "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintf(os.Stderr, "client: %v\n", err)
		return 1
	}
	if clientset, err = kubernetes.NewForConfig(cfg); err != nil {
		fmt.Fprintf(os.Stderr, "clientset: %v\n", err)
		return 1
	}
	return m.Run()
}
