//go:build e2e

// Package e2e runs the whole product on a real cluster: the operator installed with its Helm chart from the image
// built from this checkout, a real kubelet running the trainer, the garbage collector, the scheduler's GPU
// accounting, and faults (pods and the operator deleted, helm upgrade) in the middle of runs. `make test-e2e`
// (hack/e2e.sh) starts the local cluster, installs the operator and runs it; it needs the build tag e2e, so
// `go test ./...` leaves it out.
package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/config"

	"github.com/preftune/preftune/api/v1alpha1"
)

// What hack/e2e.sh hands over.
var (
	helmBin    = os.Getenv("PREFTUNE_E2E_HELM")
	trainerBin = os.Getenv("PREFTUNE_E2E_TRAINER")
	imageRepo  = os.Getenv("PREFTUNE_E2E_IMAGE_REPOSITORY")
	imageDig   = os.Getenv("PREFTUNE_E2E_IMAGE_DIGEST")
)

const (
	operatorNS = "preftune-system"
	release    = "preftune"
	claim      = "preftune-data"
)

var (
	cl      client.Client
	wcl     client.WithWatch // for watches (phaseRecorder)
	cs      kubernetes.Interface
	ns      string // this run's namespace
	hostDir string // the claim's folder on this host (local cluster only)
	repo    string
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	_, file, _, _ := runtime.Caller(0)
	repo = filepath.Join(filepath.Dir(file), "..", "..")
	for name, v := range map[string]string{"PREFTUNE_E2E_HELM": helmBin, "PREFTUNE_E2E_TRAINER": trainerBin,
		"PREFTUNE_E2E_IMAGE_REPOSITORY": imageRepo, "PREFTUNE_E2E_IMAGE_DIGEST": imageDig, "KUBECONFIG": os.Getenv("KUBECONFIG")} {
		if v == "" {
			fmt.Fprintf(os.Stderr, "e2e: %s is not set: run the end-to-end tests with `make test-e2e`\n", name)
			return 1
		}
	}
	cfg, err := config.GetConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: kubeconfig:", err)
		return 1
	}
	scheme := clientgoscheme.Scheme
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if cl, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: client:", err)
		return 1
	}
	if wcl, err = client.NewWithWatch(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: watch client:", err)
		return 1
	}
	if cs, err = kubernetes.NewForConfig(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: clientset:", err)
		return 1
	}

	ctx := context.Background()
	ns = fmt.Sprintf("preftune-e2e-%04x", rand.IntN(1<<16))
	if err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: namespace:", err)
		return 1
	}
	out, err := exec.Command(filepath.Join(repo, "hack", "cluster", "volume.sh"), ns, claim).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: volume.sh: %v\n%s", err, out)
		return 1
	}
	hostDir = strings.TrimSpace(string(out))
	if hostDir == "" {
		fmt.Fprintln(os.Stderr, "e2e: the claim has no folder on this host: the tests check the runs' files from the host, "+
			"so they run on the local cluster only (make test-e2e starts it)")
		return 1
	}
	fmt.Printf("e2e: namespace %s, claim %s (host folder %q)\n", ns, claim, hostDir)

	code := m.Run()
	if code != 0 || os.Getenv("PREFTUNE_E2E_KEEP") == "1" {
		fmt.Printf("e2e: namespace %s kept for a post-mortem\n", ns)
		return code
	}
	if err := cl.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: delete namespace:", err)
	}
	_ = cl.Delete(ctx, &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: ns + "-" + claim}})
	return code
}
