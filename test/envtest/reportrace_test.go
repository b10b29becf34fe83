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
