// Command manager runs the Preftune operator: the PreferenceDataset, SFTRun and DPORun controllers.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

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
	flag.Var(envFlag{&opts.TrainerEnv}, "trainer-env", "NAME=VALUE added to every trainer container's environment (repeatable).")
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

	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), controllers.ManagerOptions(scheme, controllers.ManagerConfig{
		MetricsAddr: metricsAddr, ProbeAddr: probeAddr,
		LeaderElect: leaderElect, LeaderElectionNamespace: leaderElectionNamespace,
	}))
	if err != nil {
		log.Error(err, "Unable to create the manager")
		os.Exit(1)
	}
	ctx := ctrl.SetupSignalHandler()
	if opts.Progress.BindAddress != "" && !progressCertManager {
		ready, err := controllers.AddProgressCertRotator(ctx, mgr, controllers.ProgressCertOptions{
			Secret:  types.NamespacedName{Namespace: managerNamespace, Name: progressCertSecret},
			DNSName: progressDNS, CertDir: opts.Progress.CertDir,
		})
		if err != nil {
			log.Error(err, "Unable to set up the progress certificate")
			os.Exit(1)
		}
		opts.Progress.CertsReady = ready
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

// envFlag collects repeated NAME=VALUE flags into environment variables.
type envFlag struct{ env *[]corev1.EnvVar }

func (f envFlag) String() string {
	if f.env == nil {
		return ""
	}
	parts := make([]string, 0, len(*f.env))
	for _, e := range *f.env {
		parts = append(parts, e.Name+"="+e.Value)
	}
	return strings.Join(parts, ",")
}

func (f envFlag) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return fmt.Errorf("want NAME=VALUE, got %q", s)
	}
	if errs := validation.IsEnvVarName(name); len(errs) > 0 {
		return fmt.Errorf("%q: %s", name, strings.Join(errs, "; "))
	}
	*f.env = append(*f.env, corev1.EnvVar{Name: name, Value: value})
	return nil
}
