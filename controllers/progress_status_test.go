package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/preftune/preftune/api/v1alpha1"
	"github.com/preftune/preftune/trainer/contract"
)

func TestApplyReportDPO(t *testing.T) {
	run := dpoRun{&v1alpha1.DPORun{}}
	run.Status().Checkpoints = []v1alpha1.CheckpointStatus{{Step: 10, URI: "pvc://out/checkpoints/step-00000010"}}
	rep := &receivedReport{received: metav1.Now(), ProgressReport: contract.ProgressReport{
		Step: 30, TotalSteps: 40, Epoch: 1.25, ETASeconds: 99.6, TokensPerSecond: 1234.5, ResumedFromStep: 20, Attempt: 2,
		Architecture: "Qwen2ForCausalLM", ParameterCount: 494032768, TrainableParameterCount: 4399104,
		TrainMetrics: map[string]float64{"loss": 0.5, "rewards/accuracies": 0.75, "rewards/margins": 1.5, "rewards/chosen": 0.25, "rewards/rejected": -1.25},
		EvalMetrics:  map[string]float64{"eval_loss": 0.6, "eval_rewards/accuracies": 0.7},
		Checkpoints: []contract.Checkpoint{
			{Step: 20, URI: "file:///mnt/pvc/out/checkpoints/step-00000020", Time: "2026-11-26T10:00:00Z"},
			{Step: 30, URI: "s3://bucket/run/checkpoints/step-00000030"},
		},
	}}
	applyReport(run, rep)
	st := run.Status()
	p := st.Progress
	if p.Step != 30 || p.TotalSteps != 40 || p.Percent != 75 || p.Epoch != "1.25" || *p.ETASeconds != 100 || p.TokensPerSecond != "1234" {
		t.Errorf("progress = %+v", p)
	}
	if st.ResumedFromStep != 20 || st.Attempts != 2 {
		t.Errorf("resumedFromStep %d attempts %d", st.ResumedFromStep, st.Attempts)
	}
	if st.Architecture != "Qwen2ForCausalLM" || st.ParameterCount != 494032768 || st.TrainableParameterCount != 4399104 {
		t.Errorf("architecture %q parameterCount %d trainable %d", st.Architecture, st.ParameterCount, st.TrainableParameterCount)
	}
	m := run.DPORun.Status.Metrics
	if m.Loss != "0.5" || m.RewardAccuracy != "0.75" || m.RewardMargin != "1.5" || m.ChosenReward != "0.25" ||
		m.RejectedReward != "-1.25" || m.EvalLoss != "0.6" || m.EvalRewardAccuracy != "0.7" {
		t.Errorf("metrics = %+v", m)
	}
	if len(st.Checkpoints) != 3 || st.Checkpoints[1].URI != "pvc://out/checkpoints/step-00000020" || st.Checkpoints[1].Time == nil ||
		st.Checkpoints[2].Step != 30 {
		t.Errorf("checkpoints = %+v", st.Checkpoints)
	}
}

func TestMergeCheckpointsKeepsTheNewest(t *testing.T) {
	var have []v1alpha1.CheckpointStatus
	for step := 1; step <= 8; step++ {
		have = mergeCheckpoints(have, []contract.Checkpoint{{Step: step * 10, URI: "file:///x"}, {Step: step * 10, URI: "file:///x"}}, 0)
	}
	if len(have) != maxStatusCheckpoints || have[0].Step != 40 || have[4].Step != 80 {
		t.Errorf("checkpoints = %+v", have)
	}
}

// Checkpoints that training.checkpointsToKeep deleted (steps before the report's oldestKeptStep) leave status, also
// those an earlier attempt reported; the reported ones stay.
func TestMergeCheckpointsDropsPruned(t *testing.T) {
	have := []v1alpha1.CheckpointStatus{{Step: 10, URI: "file:///c/10"}, {Step: 20, URI: "file:///c/20"}}
	got := mergeCheckpoints(have, []contract.Checkpoint{{Step: 30, URI: "file:///c/30"}}, 20)
	if len(got) != 2 || got[0].Step != 20 || got[1].Step != 30 {
		t.Errorf("checkpoints = %+v, want steps 20 and 30", got)
	}
	got = mergeCheckpoints(got, []contract.Checkpoint{{Step: 30, URI: "file:///c/30"}, {Step: 40, URI: "file:///c/40"}}, 30)
	if len(got) != 2 || got[0].Step != 30 || got[1].Step != 40 {
		t.Errorf("checkpoints = %+v, want steps 30 and 40", got)
	}
}

// The store wakes a run at once, then at most once per interval however many reports arrive, and the last
// report of a burst is released at the interval's end.
func TestProgressStorePacesWakeUps(t *testing.T) {
	const interval = 200 * time.Millisecond
	s := newProgressStore(interval)
	ch := s.channel("SFTRun")
	k := runKey{kind: "SFTRun", NamespacedName: types.NamespacedName{Namespace: "ns", Name: "r"}}
	start := time.Now()
	for i := 1; i <= 30; i++ {
		s.put(k, &receivedReport{ProgressReport: contract.ProgressReport{Step: i}})
		time.Sleep(15 * time.Millisecond)
	}
	burst := time.Since(start)
	wakes := 0
	deadline := time.After(burst + 2*interval - time.Since(start))
loop:
	for {
		select {
		case <-ch:
			wakes++
		case <-deadline:
			break loop
		}
	}
	if limit := int(burst/interval) + 2; wakes < 2 || wakes > limit {
		t.Errorf("%d wake-ups for a %s burst, want 2..%d", wakes, burst, limit)
	}
	if r := s.latest(k); r == nil || r.Step != 30 {
		t.Errorf("released report = %+v, want step 30", r)
	}
	s.forget(k)
	if s.latest(k) != nil {
		t.Error("a forgotten run still has a report")
	}
}
