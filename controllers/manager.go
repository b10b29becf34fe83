package controllers

import (
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// Leader election keeps a Lease in the manager's namespace and records a LeaderElection event (core/v1, written
// by client-go's resource lock through controller-runtime's event recorder) when a replica becomes leader. Both
// are granted in the manager's namespace only; client-go's Lease lock gets, creates and updates, nothing more.
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=preftune-system,resources=leases,verbs=get;create;update
// +kubebuilder:rbac:groups="",namespace=preftune-system,resources=events,verbs=create;patch

// LeaderElectionID names the manager's leader election Lease.
const LeaderElectionID = "preftune-operator.preftune.io"

// ManagerConfig is what the manager's command line decides about the controller-runtime manager.
type ManagerConfig struct {
	MetricsAddr, ProbeAddr string
	LeaderElect            bool
	// LeaderElectionNamespace holds the Lease; empty means the manager's own namespace.
	LeaderElectionNamespace string
}

// ManagerOptions are the controller-runtime options cmd/manager starts with (and the tests, so that they run the
// same manager): the scheme, metrics and probes, leader election, and caches of only the Jobs and pods the operator
// made (a cluster's other pods would cost memory for nothing).
func ManagerOptions(scheme *runtime.Scheme, c ManagerConfig) ctrl.Options {
	managed := labels.SelectorFromSet(labels.Set{LabelManagedBy: "preftune-operator"})
	return ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: c.MetricsAddr},
		HealthProbeBindAddress:  c.ProbeAddr,
		LeaderElection:          c.LeaderElect,
		LeaderElectionID:        LeaderElectionID,
		LeaderElectionNamespace: c.LeaderElectionNamespace,
		// The process exits right after the manager stops, so handing the lease back is safe, and it lets a new
		// pod (a rollout, helm upgrade) lead at once instead of after the lease expires (about 15 s without work).
		LeaderElectionReleaseOnCancel: true,
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}:  {Label: managed},
			&batchv1.Job{}: {Label: managed},
		}},
	}
}
