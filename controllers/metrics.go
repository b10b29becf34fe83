package controllers

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/preftune/preftune/api/v1alpha1"
)

// Prometheus metrics of the operator, served with controller-runtime's own on the manager's metrics endpoint.
var (
	runLabels = []string{"namespace", "name", "kind"}

	runLoss = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "preftune_run_loss", Help: "Newest training loss a running run reported."}, runLabels)
	runRewardAccuracy = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "preftune_run_reward_accuracy", Help: "Newest DPO reward accuracy (rewards/accuracies) a running run reported."}, runLabels)
	runRewardMargin = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "preftune_run_reward_margin", Help: "Newest DPO reward margin (rewards/margins) a running run reported."}, runLabels)
	runStep = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "preftune_run_step", Help: "Newest optimiser step a running run reported."}, runLabels)
	runTokensPerSecond = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "preftune_run_tokens_per_second", Help: "Newest training throughput a running run reported."}, runLabels)

	progressRejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "preftune_progress_reports_rejected_total",
		Help: "Progress reports the manager refused, by reason (missing_token, invalid_token, not_pod_bound, other_run, ...).",
	}, []string{"reason"})

	runPhases = &phaseCollector{
		desc:   prometheus.NewDesc("preftune_runs", "Runs by kind and phase.", []string{"kind", "phase"}, nil),
		phases: map[runKey]v1alpha1.RunPhase{},
	}
)

func init() {
	metrics.Registry.MustRegister(runLoss, runRewardAccuracy, runRewardMargin, runStep, runTokensPerSecond,
		progressRejected, runPhases)
}

// runKey identifies a run of a kind.
type runKey struct {
	kind string
	types.NamespacedName
}

// phaseCollector counts runs by phase at scrape time from the phase each reconcile last saw, so a run that
// changes phase never counts twice and a deleted run stops counting.
type phaseCollector struct {
	desc   *prometheus.Desc
	mu     sync.Mutex
	phases map[runKey]v1alpha1.RunPhase
}

func (c *phaseCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *phaseCollector) Collect(ch chan<- prometheus.Metric) {
	type kp struct {
		kind  string
		phase v1alpha1.RunPhase
	}
	counts := map[kp]int{}
	c.mu.Lock()
	for k, p := range c.phases {
		counts[kp{k.kind, p}]++
	}
	c.mu.Unlock()
	// Report zero for every phase of a kind that has runs, so dashboards see a phase empty out.
	kinds := map[string]bool{}
	for k := range counts {
		kinds[k.kind] = true
	}
	for kind := range kinds {
		for _, p := range []v1alpha1.RunPhase{v1alpha1.RunPhasePending, v1alpha1.RunPhaseSuspended, v1alpha1.RunPhaseRunning,
			v1alpha1.RunPhaseSucceeded, v1alpha1.RunPhaseFailed} {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[kp{kind, p}]), kind, string(p))
		}
	}
}

func (c *phaseCollector) set(k runKey, p v1alpha1.RunPhase) {
	c.mu.Lock()
	c.phases[k] = p
	c.mu.Unlock()
}

func (c *phaseCollector) forget(k runKey) {
	c.mu.Lock()
	delete(c.phases, k)
	c.mu.Unlock()
}

// setRunGauges publishes a run's newest reported training figures.
func setRunGauges(k runKey, step int, train map[string]float64, tokensPerSecond float64) {
	l := prometheus.Labels{"namespace": k.Namespace, "name": k.Name, "kind": k.kind}
	runStep.With(l).Set(float64(step))
	if tokensPerSecond > 0 {
		runTokensPerSecond.With(l).Set(tokensPerSecond)
	}
	if v, ok := train["loss"]; ok {
		runLoss.With(l).Set(v)
	}
	if v, ok := train["rewards/accuracies"]; ok {
		runRewardAccuracy.With(l).Set(v)
	}
	if v, ok := train["rewards/margins"]; ok {
		runRewardMargin.With(l).Set(v)
	}
}

// deleteRunGauges removes a finished or deleted run's per-run series, so they do not linger at their last value.
func deleteRunGauges(k runKey) {
	l := prometheus.Labels{"namespace": k.Namespace, "name": k.Name, "kind": k.kind}
	for _, g := range []*prometheus.GaugeVec{runLoss, runRewardAccuracy, runRewardMargin, runStep, runTokensPerSecond} {
		g.Delete(l)
	}
}
