package envtest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/preftune/preftune/controllers"
)

// managerNamespace is where config/default installs the manager (its kustomization's namespace).
const managerNamespace = "preftune-system"

// TestManagerStartsWithItsOwnRBAC runs the manager as its ServiceAccount, with only the RBAC that config/rbac
// generates from the markers (the way config/default installs it), and leader election on as the chart sets it:
// it must become leader, record its LeaderElection event, and log no "forbidden" error.
func TestManagerStartsWithItsOwnRBAC(t *testing.T) {
	ctx := context.Background()
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: managerNamespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	sa := applyRBAC(t)

	// The manager authenticates as the ServiceAccount (the suite's admin impersonates it).
	asSA := rest.CopyConfig(cfg)
	asSA.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + managerNamespace + ":" + sa}
	var mu sync.Mutex
	var logs bytes.Buffer
	logger := funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		logs.WriteString(prefix + " " + args + "\n")
	}, funcr.Options{Verbosity: 1})

	opts := controllers.ManagerOptions(scheme, controllers.ManagerConfig{MetricsAddr: "0", ProbeAddr: "0", LeaderElect: true,
		LeaderElectionNamespace: managerNamespace})
	opts.Logger = logger
	opts.Controller = ctrlConfigSkipNameValidation()
	mgr, err := ctrl.NewManager(asSA, opts)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(logr.NewContext(ctx, logger))
	if err := controllers.Setup(runCtx, mgr, testOptions, controllers.Concurrency{Runs: 1, Datasets: 1}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(runCtx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("manager stopped with: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("manager did not stop within 30s")
		}
	}()

	select {
	case <-mgr.Elected():
	case <-time.After(60 * time.Second):
		t.Fatalf("not elected within 60s; log:\n%s", logs.String())
	}
	// The LeaderElection event is written asynchronously after the lease is taken.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var events corev1.EventList
		if err := k8s.List(ctx, &events, client.InNamespace(managerNamespace)); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range events.Items {
			if e.Reason == "LeaderElection" && e.InvolvedObject.Kind == "Lease" && e.InvolvedObject.Name == controllers.LeaderElectionID {
				found = true
			}
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no LeaderElection event for Lease %s within 30s; log:\n%s", controllers.LeaderElectionID, logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "forbidden") {
			t.Errorf("the manager was refused with its own RBAC: %s", line)
		}
	}
}

// applyRBAC creates config/rbac's objects as `kubectl apply -k config/default` would (its namespace transformer
// puts every namespaced object, and the subjects' ServiceAccount, in managerNamespace), and returns the
// ServiceAccount's name.
func applyRBAC(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(repo, "config", "rbac")
	var kust struct {
		Resources []string `json:"resources"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &kust); err != nil {
		t.Fatal(err)
	}
	sa := ""
	for _, res := range kust.Resources {
		f, err := os.Open(filepath.Join(dir, res))
		if err != nil {
			t.Fatal(err)
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
		for {
			var raw map[string]any
			if err := dec.Decode(&raw); err != nil {
				break
			}
			if raw == nil {
				continue
			}
			doc, _ := yaml.Marshal(raw)
			var obj client.Object
			switch raw["kind"] {
			case "ServiceAccount":
				o := &corev1.ServiceAccount{}
				obj = o
			case "ClusterRole":
				obj = &rbacv1.ClusterRole{}
			case "Role":
				obj = &rbacv1.Role{}
			case "ClusterRoleBinding":
				obj = &rbacv1.ClusterRoleBinding{}
			case "RoleBinding":
				obj = &rbacv1.RoleBinding{}
			default:
				t.Fatalf("%s: unexpected kind %v", res, raw["kind"])
			}
			if err := yaml.UnmarshalStrict(doc, obj); err != nil {
				t.Fatalf("%s: %v", res, err)
			}
			switch o := obj.(type) {
			case *corev1.ServiceAccount:
				o.Namespace, sa = managerNamespace, o.Name
			case *rbacv1.Role:
				o.Namespace = managerNamespace
			case *rbacv1.RoleBinding:
				o.Namespace = managerNamespace
				for i := range o.Subjects {
					o.Subjects[i].Namespace = managerNamespace
				}
			case *rbacv1.ClusterRoleBinding:
				for i := range o.Subjects {
					o.Subjects[i].Namespace = managerNamespace
				}
			}
			if err := k8s.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatalf("%s: create %s %s: %v", res, raw["kind"], obj.GetName(), err)
			}
		}
		f.Close()
	}
	if sa == "" {
		t.Fatal("config/rbac has no ServiceAccount")
	}
	return sa
}
