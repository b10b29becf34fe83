// Package envtest runs the operator against a real kube-apiserver and etcd (built from source by
// hack/envtest/build.sh). There is no kubelet and no Job controller here: tests stand in for them by creating the
// trainer's pods and setting pod and Job status by hand, termination messages included.
package envtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/preftune/preftune/api/v1alpha1"
	"github.com/preftune/preftune/controllers"
)

var (
	testEnv *envtest.Environment
	cfg     *rest.Config
	k8s     client.Client
	scheme  = k8sruntime.NewScheme()
	repo    string
)

// testOptions are the manager options every test runs with.
var testOptions = controllers.Options{
	TrainerImage:     "registry.test/preftune:test",
	GPUResourceName:  "nvidia.com/gpu",
	DefaultOutputURI: "pvc://outputs/preftune",
}

func TestMain(m *testing.M) {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	_, file, _, _ := runtime.Caller(0)
	repo = filepath.Join(filepath.Dir(file), "..", "..")

	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(repo, "bin", "envtest")
	}
	if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); err != nil {
		fmt.Fprintf(os.Stderr, "envtest binaries are missing in %s: run `make envtest` (or `make test`, which builds them)\n", assets)
		os.Exit(1)
	}
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.Level(zapcore.Level(zapLevel()))))
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(repo, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	var err error
	if cfg, err = testEnv.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "start envtest: %v\n", err)
		os.Exit(1)
	}
	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintf(os.Stderr, "client: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	if err := testEnv.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stop envtest: %v\n", err)
	}
	os.Exit(code)
}

// zapLevel keeps the controllers quiet unless PREFTUNE_TEST_VERBOSE is set.
func zapLevel() int8 {
	if os.Getenv("PREFTUNE_TEST_VERBOSE") != "" {
		return -1
	}
	return 2 // errors only
}

// managedSelector restricts the manager's pod and Job caches as cmd/manager does.
var managedSelector = labels.SelectorFromSet(labels.Set{controllers.LabelManagedBy: "preftune-operator"})

// startManager runs the operator's controllers in the background, wired exactly as cmd/manager wires them, and
// returns a function that stops it and waits until it has stopped.
func startManager(t testing.TB) (stop func()) {
	t.Helper()
	return startManagerWith(t, cfg, testOptions, controllers.Concurrency{Runs: 4, Datasets: 2})
}

// startManagerWith is startManager with its own rest config (e.g. one that counts requests), options and
// concurrency.
func startManagerWith(t testing.TB, restCfg *rest.Config, opts controllers.Options, conc controllers.Concurrency) (stop func()) {
	t.Helper()
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:  scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}:  {Label: managedSelector},
			&batchv1.Job{}: {Label: managedSelector},
		}},
		Controller: ctrlConfigSkipNameValidation(),
	})
	if err != nil {
		t.Fatalf("new manager: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := controllers.Setup(ctx, mgr, opts, conc); err != nil {
		t.Fatalf("setup controllers: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	return func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("manager stopped with: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("manager did not stop within 30s")
		}
	}
}
