package controllers

import (
	"sort"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/preftune/preftune/api/v1alpha1"
	"github.com/preftune/preftune/trainer/contract"
)

// applyReport merges a run's newest progress report into its status: progress, checkpoints, the attempt's resume
// step and the kind's metrics. The final result, from the termination message, replaces all of it.
func applyReport(run Run, rep *receivedReport) {
	st := run.Status()
	pct := int32(0)
	if rep.TotalSteps > 0 {
		pct = int32(min(100, 100*rep.Step/rep.TotalSteps))
	}
	p := &v1alpha1.Progress{Step: int64(rep.Step), TotalSteps: int64(rep.TotalSteps), Percent: pct,
		LastUpdateTime: ptr.To(rep.received)}
	if rep.Epoch > 0 {
		p.Epoch = formatFloat(rep.Epoch)
	}
	if rep.ETASeconds > 0 {
		p.ETASeconds = ptr.To(int64(rep.ETASeconds + 0.5))
	}
	if rep.TokensPerSecond > 0 {
		p.TokensPerSecond = formatFloat(rep.TokensPerSecond)
	}
	st.Progress = p
	st.ResumedFromStep = int64(rep.ResumedFromStep)
	if rep.Architecture != "" {
		st.Architecture = rep.Architecture
	}
	if rep.ParameterCount > 0 {
		st.ParameterCount = rep.ParameterCount
	}
	if rep.TrainableParameterCount > 0 {
		st.TrainableParameterCount = rep.TrainableParameterCount
	}
	st.Attempts = max(st.Attempts, int32(rep.Attempt))
	st.Checkpoints = mergeCheckpoints(st.Checkpoints, rep.Checkpoints, rep.OldestKeptStep)

	metrics := map[string]float64{}
	for k, v := range rep.TrainMetrics {
		metrics[k] = v
	}
	for k, v := range rep.EvalMetrics {
		metrics[k] = v
	}
	if len(metrics) > 0 {
		run.setResult(&contract.Result{Metrics: metrics})
	}
}

// mergeCheckpoints adds reported checkpoints to those in status, one per step, the newest maxStatusCheckpoints kept.
// Checkpoints of steps before oldestKept (when positive) were deleted by training.checkpointsToKeep and are dropped.
func mergeCheckpoints(have []v1alpha1.CheckpointStatus, reported []contract.Checkpoint, oldestKept int) []v1alpha1.CheckpointStatus {
	byStep := map[int64]v1alpha1.CheckpointStatus{}
	for _, c := range have {
		byStep[c.Step] = c
	}
	if oldestKept > 0 {
		for step := range byStep {
			if step < int64(oldestKept) {
				delete(byStep, step)
			}
		}
	}
	for _, c := range reported {
		cs := v1alpha1.CheckpointStatus{Step: int64(c.Step), URI: unmapURI(c.URI)}
		if t, err := time.Parse(time.RFC3339, c.Time); err == nil {
			cs.Time = ptr.To(metav1.NewTime(t))
		}
		byStep[cs.Step] = cs
	}
	if len(byStep) == 0 {
		return nil
	}
	out := make([]v1alpha1.CheckpointStatus, 0, len(byStep))
	for _, c := range byStep {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Step < out[j].Step })
	if n := len(out); n > maxStatusCheckpoints {
		out = out[n-maxStatusCheckpoints:]
	}
	return out
}
