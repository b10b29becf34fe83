package controllers

import (
	"encoding/json"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
	st := computeDatasetStatus(v1alpha1.PreferenceDatasetStatus{}, finishedValidation(rep, false))
	c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionReady)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != ReasonInvalidRows || st.Counts.Skipped != 0 {
		t.Fatalf("reject: condition %+v counts %+v", c, st.Counts)
	}
	rep.Counts.Skipped = 2
	st = computeDatasetStatus(v1alpha1.PreferenceDatasetStatus{}, finishedValidation(rep, true))
	c = meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionReady)
	if c == nil || c.Status != metav1.ConditionTrue || c.Reason != ReasonValid || !strings.Contains(c.Message, "2 invalid rows skipped") ||
		!strings.Contains(c.Message, "lines 2, 3") {
		t.Fatalf("skip: condition %+v", c)
	}
	if st.Counts.Skipped != 2 || st.Counts.Invalid != 2 || len(st.InvalidRows) != 2 || st.InvalidRows[0].Line != 2 || st.SplitBy != "row" {
		t.Fatalf("skip: status %+v", st)
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
	if tc, _ = trainingConfig(v1alpha1.TrainingSpec{LearningRate: "1e-3"}); tc.MinLearningRateRatio != nil {
		t.Fatalf("unset ratio: %v", *tc.MinLearningRateRatio)
	}
}
