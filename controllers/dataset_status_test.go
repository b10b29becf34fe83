package controllers

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/preftune/preftune/api/v1alpha1"
	"github.com/preftune/preftune/trainer/contract"
)

// finishedValidation is the observation of a validation Job that completed (exit 0) or failed (exit 3), its pod
// holding rep in the termination message.
func finishedValidation(rep contract.DatasetReport, complete bool) datasetObservation {
	msg, _ := json.Marshal(contract.TerminationMessage{Dataset: &rep})
	cond, phase, exit := batchv1.JobComplete, corev1.PodSucceeded, int32(0)
	if !complete {
		cond, phase, exit = batchv1.JobFailed, corev1.PodFailed, int32(contract.ExitInvalidInput)
	}
	job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "ds-validate"},
		Status: batchv1.JobStatus{Conditions: []batchv1.JobCondition{{Type: cond, Status: corev1.ConditionTrue, Message: "done"}}}}
	pod := corev1.Pod{Status: corev1.PodStatus{Phase: phase, ContainerStatuses: []corev1.ContainerStatus{{Name: TrainerContainerName,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: exit, Message: string(msg)}}}}}}
	return datasetObservation{generation: 1, now: metav1.Now(), jobName: job.Name, job: job, pods: []corev1.Pod{pod}}
}

// TestDatasetStatusInvalidRowsPolicy: invalid rows make a dataset not Ready unless the trainer skipped them all
// (spec.invalidRows Skip); then it is Ready, its counts say how many were skipped and its message names their
// lines, and status.splitBy says how the split grouped the rows.
func TestDatasetStatusInvalidRowsPolicy(t *testing.T) {
	rep := contract.DatasetReport{Format: "standard", Digest: "sha256:ab", SplitBy: "row",
		Counts:      contract.Counts{Total: 5, Pairs: 3, Train: 2, Eval: 1, Invalid: 2},
		InvalidRows: []contract.InvalidRow{{Line: 2, Field: "chosen", Reason: "must be a string, got null"}, {Line: 3, Field: "rejected", Reason: "empty response"}}}
	st, _ := computeDatasetStatus(v1alpha1.PreferenceDatasetStatus{}, finishedValidation(rep, false))
	c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionReady)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != ReasonInvalidRows || st.Counts.Skipped != 0 {
		t.Fatalf("reject: condition %+v counts %+v", c, st.Counts)
	}
	rep.Counts.Skipped = 2
	st, _ = computeDatasetStatus(v1alpha1.PreferenceDatasetStatus{}, finishedValidation(rep, true))
	c = meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionReady)
	if c == nil || c.Status != metav1.ConditionTrue || c.Reason != ReasonValid || !strings.Contains(c.Message, "2 invalid rows skipped") ||
		!strings.Contains(c.Message, "lines 2, 3") {
		t.Fatalf("skip: condition %+v", c)
	}
	if st.Counts.Skipped != 2 || st.Counts.Invalid != 2 || len(st.InvalidRows) != 2 || st.InvalidRows[0].Line != 2 || st.SplitBy != "row" {
		t.Fatalf("skip: status %+v", st)
	}
}

// TestDatasetStatusWaitsForThePodsReport: the Job's and the pod's informers are separate, so a pass can see the
// validation Job finished before its pod's final status. Until reportGrace has passed since the Job finished, such
// a pass leaves the dataset Validating (no validatedTime, so the next pass validates again) and asks to come back
// when the grace ends; after it, the dataset fails naming what is missing. A terminated pod ends the wait at once.
func TestDatasetStatusWaitsForThePodsReport(t *testing.T) {
	report := mustJSON(contract.TerminationMessage{Dataset: &contract.DatasetReport{Format: "standard", Digest: "sha256:d1",
		Counts: contract.Counts{Total: 3, Pairs: 3, Train: 3}}})
	running := pod("p", corev1.PodRunning, 0, "")
	succeededNoStatus := pod("p", corev1.PodSucceeded, 0, "")
	succeededNoStatus.Status.ContainerStatuses = nil // phase seen, container status not yet
	later := func(d time.Duration) metav1.Time { return metav1.NewTime(t0.Add(d)) }
	cases := []struct {
		name        string
		job         *batchv1.Job
		pods        []corev1.Pod
		now         metav1.Time
		want        string
		msgHas      string
		validated   bool
		wantRequeue time.Duration
	}{
		{"complete, no pod in the cache yet", job(false, batchv1.JobComplete), nil, t0, "False/Validating", "waiting for its pod's report", false, reportGrace},
		{"complete, pod still Running in the cache", job(false, batchv1.JobComplete), []corev1.Pod{running}, later(10 * time.Second), "False/Validating", "waiting", false, reportGrace - 10*time.Second},
		{"complete, pod Succeeded without its container status", job(false, batchv1.JobComplete), []corev1.Pod{succeededNoStatus}, later(59 * time.Second), "False/Validating", "waiting", false, time.Second},
		{"complete, the pod's report arrives", job(false, batchv1.JobComplete), []corev1.Pod{pod("p", corev1.PodSucceeded, 0, report)}, later(5 * time.Second), "True/Valid", "3 pairs", true, 0},
		{"complete, no pod after the grace", job(false, batchv1.JobComplete), []corev1.Pod{running}, later(reportGrace + time.Second), "False/ValidationFailed", "could not be read from its pod", true, 0},
		{"failed, no pod yet", job(false, batchv1.JobFailed), nil, later(time.Second), "False/Validating", "waiting", false, reportGrace - time.Second},
		{"failed, no pod after the grace", job(false, batchv1.JobFailed), nil, later(2 * reportGrace), "False/ValidationFailed", "backoff limit", true, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obs := datasetObservation{generation: 1, jobName: tc.job.Name, now: tc.now, job: tc.job, pods: tc.pods}
			st, requeue := computeDatasetStatus(v1alpha1.PreferenceDatasetStatus{}, obs)
			c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionReady)
			if got := string(c.Status) + "/" + c.Reason; got != tc.want || !strings.Contains(c.Message, tc.msgHas) {
				t.Errorf("Ready = %s %q, want %s containing %q", got, c.Message, tc.want, tc.msgHas)
			}
			if (st.ValidatedTime != nil) != tc.validated || validated(&st, 1, tc.job.Name) != tc.validated {
				t.Errorf("validatedTime %v, validated %t; want validated %t", st.ValidatedTime, validated(&st, 1, tc.job.Name), tc.validated)
			}
			if requeue != tc.wantRequeue {
				t.Errorf("requeueAfter = %s, want %s", requeue, tc.wantRequeue)
			}
		})
	}
}

func TestDatasetAndTrainingConfig(t *testing.T) {
	ds := &v1alpha1.PreferenceDataset{Spec: v1alpha1.PreferenceDatasetSpec{EvalFraction: "0.1", InvalidRows: v1alpha1.InvalidRowsSkip}}
	dc, err := datasetConfig(ds, "file:///data")
	if err != nil || dc.InvalidRows != contract.InvalidRowsSkip {
		t.Fatalf("datasetConfig %+v %v", dc, err)
	}
	tc, err := trainingConfig(v1alpha1.TrainingSpec{LearningRate: "1e-3", MinLearningRateRatio: "0.25"})
	if err != nil || tc.MinLearningRateRatio == nil || *tc.MinLearningRateRatio != 0.25 {
		t.Fatalf("trainingConfig %+v %v", tc, err)
	}
	tc, err = trainingConfig(v1alpha1.TrainingSpec{LearningRate: "1e-3", MinLearningRateRatio: "0"})
	if err != nil || tc.MinLearningRateRatio == nil || *tc.MinLearningRateRatio != 0 {
		t.Fatalf("ratio 0 must reach the trainer as 0, not as the default: %+v %v", tc, err)
	}
	if tc, _ = trainingConfig(v1alpha1.TrainingSpec{LearningRate: "1e-3"}); tc.MinLearningRateRatio != nil || tc.MaxLength != 0 {
		t.Fatalf("unset ratio %v, unset maxLength %d", tc.MinLearningRateRatio, tc.MaxLength)
	}
	if tc, _ = trainingConfig(v1alpha1.TrainingSpec{LearningRate: "1e-3", MaxLength: ptr.To[int32](2048)}); tc.MaxLength != 2048 {
		t.Fatalf("maxLength %d, want 2048", tc.MaxLength)
	}
}
