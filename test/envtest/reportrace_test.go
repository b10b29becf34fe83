package envtest

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/preftune/preftune/api/v1alpha1"
)

// TestDatasetJobCompleteBeforeItsPod: the Job controller may mark the validation Job complete before the pod's
// final status (with the trainer's report) reaches the manager's cache. The dataset stays Validating without a
// validatedTime, and the pod's update alone (no further Job change) makes it Ready.
func TestDatasetJobCompleteBeforeItsPod(t *testing.T) {
	stop := startManager(t)
	defer stop()
	ns := newNamespace(t)
	newDataset(t, ns, "late-pod")
	job := waitForJob(t, ns, "PreferenceDataset", "late-pod")
	pod := startPod(t, job, "v", corev1.PodRunning)
	completeJob(t, job)

	var ds v1alpha1.PreferenceDataset
	eventually(t, "Validating while the pod has not terminated", func() error {
		get(t, &ds, ns, "late-pod")
		if err := wantCondition(ds.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, "Validating"); err != nil {
			return err
		}
		if c := findCondition(ds.Status.Conditions, v1alpha1.ConditionReady); c.Message != fmt.Sprintf("validation Job %s finished; waiting for its pod's report", job.Name) {
			return fmt.Errorf("message %q", c.Message)
		}
		return nil
	})
	consistently(t, "no verdict before the pod's report", 2*time.Second, func() error {
		get(t, &ds, ns, "late-pod")
		if ds.Status.ValidatedTime != nil {
			return fmt.Errorf("validatedTime set: %v", ds.Status.Conditions)
		}
		return wantCondition(ds.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, "Validating")
	})
	finishPod(t, pod, 0, datasetReport())
	eventually(t, "Ready from the pod's report", func() error {
		get(t, &ds, ns, "late-pod")
		if ds.Status.ValidatedTime == nil {
			return fmt.Errorf("no validatedTime")
		}
		return wantCondition(ds.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, "Valid")
	})
}

// TestRunJobCompleteBeforeItsPod: the same race for a run. A run's outcome is final, so until its pod's end is
// seen the run stays unfinished (Running=False/TrainerFinished); the pod's update alone then makes it Succeeded with
// the trainer's result, not ResultMissing.
func TestRunJobCompleteBeforeItsPod(t *testing.T) {
	stop := startManager(t)
	defer stop()
	ns := newNamespace(t)
	readyDataset(t, ns, "arith")
	create(t, newSFTRun(ns, "late", "arith"))
	job := waitForJob(t, ns, "SFTRun", "late")
	pod := startPod(t, job, "a", corev1.PodRunning)
	completeJob(t, job)

	var run v1alpha1.SFTRun
	eventually(t, "run waiting for its pod's result", func() error {
		get(t, &run, ns, "late")
		return wantCondition(run.Status.Conditions, v1alpha1.ConditionRunning, metav1.ConditionFalse, "TrainerFinished")
	})
	consistently(t, "not finished before the pod's result", 2*time.Second, func() error {
		get(t, &run, ns, "late")
		if run.Status.CompletionTime != nil || run.Status.Phase == v1alpha1.RunPhaseSucceeded {
			return fmt.Errorf("finished without the result: phase %s %v", run.Status.Phase, run.Status.Conditions)
		}
		return nil
	})
	finishPod(t, pod, 0, runResult("file:///mnt/pvc/outputs/preftune/"+ns+"/late/model", map[string]float64{"loss": 0.5}))
	eventually(t, "Succeeded with the trainer's result", func() error {
		get(t, &run, ns, "late")
		if run.Status.ModelURI == "" {
			return fmt.Errorf("no modelURI: %v", run.Status.Conditions)
		}
		return wantCondition(run.Status.Conditions, v1alpha1.ConditionSucceeded, metav1.ConditionTrue, "TrainingSucceeded")
	})
}
