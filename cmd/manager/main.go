// Command manager runs the Preftune operator: the PreferenceDataset, SFTRun and DPORun controllers.
package main

import (
	"flag"
	"net"
	"os"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/preftune/preftune/api/v1alpha1"
	"github.com/preftune/preftune/controllers"
)

func main() {
	var (
		opts                                controllers.Options
		metricsAddr, probeAddr              string
		leaderElect                         bool
		leaderElectionNamespace             string
		jobTTL                              time.Duration
		concurrentRuns, concurrentDataset   int
		progressCertSecret, progressService string
		progressCertManager                 bool
	)
	flag.StringVar(&opts.TrainerImage, "trainer-image", "ghcr.io/preftune/preftune:latest", "Image that runs the trainer and dataset validation, unless a run overrides it.")
	flag.StringVar(&opts.GPUResourceName, "gpu-resource-name", controllers.DefaultGPUResourceName, "Extended resource that counts GPUs, unless a run names one.")
	flag.StringVar(&opts.DefaultOutputURI, "default-output-uri", "", "Base output URI of runs without spec.output.uri (s3://, gs://, azblob://, file:// or pvc://<claim>/<path>).")
	flag.StringVar(&opts.ImagePullPolicy, "trainer-image-pull-policy", "", "Pull policy of the trainer container (empty: Kubernetes' default).")
	flag.DurationVar(&jobTTL, "job-ttl", time.Hour, "How long finished Jobs and their pods are kept; custom resources keep their status. 0 keeps them.")
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "Address of the Prometheus metrics endpoint; 0 disables it.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address of the health and readiness probes.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader, so that only one of several replicas reconciles.")
	flag.StringVar(&leaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader election lease (default: the manager's own).")
	flag.IntVar(&concurrentRuns, "max-concurrent-reconciles", 4, "Runs reconciled in parallel per kind.")
	flag.IntVar(&concurrentDataset, "max-concurrent-dataset-reconciles", 2, "Datasets reconciled in parallel.")
	flag.StringVar(&opts.Progress.BindAddress, "progress-bind-address", ":8443", "Address of the HTTPS endpoint trainers push live progress to; empty or 0 disables it.")
	flag.DurationVar(&opts.Progress.Interval, "progress-interval", controllers.DefaultProgressInterval, "Least time between two status writes of one run from its progress reports.")
	flag.StringVar(&opts.Progress.CertDir, "progress-cert-dir", "/tmp/preftune-progress-certs", "Directory of the endpoint's tls.crt, tls.key and ca.crt: the mount of --progress-cert-secret (or of cert-manager's Secret).")
	flag.BoolVar(&progressCertManager, "progress-cert-manager", false, "The files in --progress-cert-dir come from cert-manager (a mounted Secret); do not create or rotate them.")
	flag.StringVar(&progressCertSecret, "progress-cert-secret", "preftune-progress-cert", "Secret, in the manager's namespace, where the manager keeps the endpoint's CA and certificate.")
	flag.StringVar(&progressService, "progress-service", "preftune-progress", "Service in front of the endpoint; trainers reach https://<service>.<namespace>.svc:<port>.")
	flag.StringVar(&opts.Progress.URL, "progress-url", "", "Base URL trainers post to (default: from --progress-service, the manager's namespace and the bind port).")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	opts.JobTTL = jobTTL
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")
	if opts.Progress.BindAddress == "0" {
		opts.Progress.BindAddress = ""
	}
	managerNamespace := os.Getenv("POD_NAMESPACE")
	if managerNamespace == "" {
		managerNamespace = "preftune-system"
	}
	progressDNS := progressService + "." + managerNamespace + ".svc"
	if opts.Progress.BindAddress != "" && opts.Progress.URL == "" {
		_, port, err := net.SplitHostPort(opts.Progress.BindAddress)
		if err != nil {
			log.Error(err, "Bad --progress-bind-address")
			os.Exit(1)
		}
		opts.Progress.URL = "https://" + progressDNS + ":" + port
	}

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))

	// Cache only the Jobs and pods the operator made: a cluster's other pods would cost memory for nothing.
	managed := labels.SelectorFromSet(labels.Set{controllers.LabelManagedBy: "preftune-operator"})
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress:  probeAddr,
		LeaderElection:          leaderElect,
		LeaderElectionID:        "preftune-operator.preftune.io",
		LeaderElectionNamespace: leaderElectionNamespace,
		// The process exits right after the manager stops, so handing the lease back is safe, and it lets a new
		// pod (a rollout, helm upgrade) lead at once instead of after the lease expires (about 15 s without work).
		LeaderElectionReleaseOnCancel: true,
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}:  {Label: managed},
			&batchv1.Job{}: {Label: managed},
		}},
	})
	if err != nil {
		log.Error(err, "Unable to create the manager")
		os.Exit(1)
	}
	ctx := ctrl.SetupSignalHandler()
	if opts.Progress.BindAddress != "" && !progressCertManager {
		if err := controllers.AddProgressCertRotator(ctx, mgr, controllers.ProgressCertOptions{
			Secret:  types.NamespacedName{Namespace: managerNamespace, Name: progressCertSecret},
			DNSName: progressDNS, CertDir: opts.Progress.CertDir,
		}); err != nil {
			log.Error(err, "Unable to set up the progress certificate")
			os.Exit(1)
		}
	}
	if err := controllers.Setup(ctx, mgr, opts, controllers.Concurrency{Runs: concurrentRuns, Datasets: concurrentDataset}); err != nil {
		log.Error(err, "Unable to set up the controllers")
		os.Exit(1)
	}
	utilruntime.Must(mgr.AddHealthzCheck("healthz", healthz.Ping))
	utilruntime.Must(mgr.AddReadyzCheck("readyz", healthz.Ping))
	log.Info("Starting the manager", "trainerImage", opts.TrainerImage, "gpuResourceName", opts.GPUResourceName)
	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "The manager stopped with an error")
		os.Exit(1)
	}
}
