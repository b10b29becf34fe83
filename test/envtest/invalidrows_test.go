package envtest

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/preftune/preftune/api/v1alpha1"
	"github.com/preftune/preftune/trainer/contract"
)

// inspectConfigOf reads the inspection configuration a dataset's validation Job mounts.
func inspectConfigOf(t *testing.T, ns, dataset string) contract.InspectConfig {
	t.Helper()
	job := waitForJob(t, ns, "PreferenceDataset", dataset)
	var name string
	for _, v := range job.Spec.Template.Spec.Volumes {
		if v.Name == "config" {
			name = v.ConfigMap.Name
		}
	}
	var cm corev1.ConfigMap
	get(t, &cm, ns, name)
	var ic contract.InspectConfig
	if err := json.Unmarshal([]byte(cm.Data["config.json"]), &ic); err != nil {
		t.Fatalf("config of %s: %v", job.Name, err)
	}
	return ic
}

// TestDatasetInvalidRowsPolicy plays both spec.invalidRows policies against the apiserver: Reject is the default
// and keeps a dataset with invalid rows from being Ready; Skip reaches the trainer (validation and runs), and a
// dataset whose invalid rows the trainer skipped is Ready with the skipped count and lines in its status. An
// unknown policy is refused by the CRD's schema.
func TestDatasetInvalidRowsPolicy(t *testing.T) {
	defer startManager(t)()
	ns := newNamespace(t)
	ctx := context.Background()
	invalid := []contract.InvalidRow{{Line: 2, Field: "chosen", Reason: "must be a string, got null"},
		{Line: 3, Field: "rejected", Reason: "empty response"}}

	t.Run("Reject is the default", func(t *testing.T) {
		newDataset(t, ns, "strict")
		var ds v1alpha1.PreferenceDataset
		get(t, &ds, ns, "strict")
		if ds.Spec.InvalidRows != v1alpha1.InvalidRowsReject {
			t.Fatalf("spec.invalidRows defaulted to %q, want Reject", ds.Spec.InvalidRows)
		}
		if ic := inspectConfigOf(t, ns, "strict"); ic.Dataset.InvalidRows != contract.InvalidRowsReject {
			t.Fatalf("validation config invalidRows %q", ic.Dataset.InvalidRows)
		}
		job := waitForJob(t, ns, "PreferenceDataset", "strict")
		pod := startPod(t, job, "v", corev1.PodRunning)
		finishPod(t, pod, contract.ExitInvalidInput, datasetReport(invalid...))
		failJob(t, job, "PodFailurePolicy", "exit code 3")
		eventually(t, "dataset InvalidRows", func() error {
			get(t, &ds, ns, "strict")
			return wantCondition(ds.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, "InvalidRows")
		})
		if ds.Status.Counts.Invalid != 2 || ds.Status.Counts.Skipped != 0 {
			t.Fatalf("counts %+v", ds.Status.Counts)
		}
	})

	t.Run("Skip: Ready with the skipped rows counted and named, and runs skip them too", func(t *testing.T) {
		create(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "lenient-data", Namespace: ns},
			Data: map[string]string{"train.jsonl": `{"prompt":"2+2=","chosen":"4","rejected":"5"}` + "\n"}})
		ds := &v1alpha1.PreferenceDataset{ObjectMeta: metav1.ObjectMeta{Name: "lenient", Namespace: ns},
			Spec: v1alpha1.PreferenceDatasetSpec{InvalidRows: v1alpha1.InvalidRowsSkip,
				Source: v1alpha1.DatasetSource{ConfigMap: &v1alpha1.ConfigMapDataSource{Name: "lenient-data", Key: "train.jsonl"}}}}
		create(t, ds)
		if ic := inspectConfigOf(t, ns, "lenient"); ic.Dataset.InvalidRows != contract.InvalidRowsSkip {
			t.Fatalf("validation config invalidRows %q", ic.Dataset.InvalidRows)
		}
		job := waitForJob(t, ns, "PreferenceDataset", "lenient")
		pod := startPod(t, job, "v", corev1.PodRunning)
		rep := datasetReport(invalid...)
		rep.Dataset.Counts.Skipped = 2
		rep.Dataset.SplitBy = "prompt"
		rep.Dataset.Warnings = []string{"2 of 100 rows are invalid and were skipped (invalidRows: Skip): lines 2, 3; first: line 2, field chosen: must be a string, got null"}
		finishPod(t, pod, 0, rep)
		completeJob(t, job)
		eventually(t, "dataset Ready", func() error {
			get(t, ds, ns, "lenient")
			return wantCondition(ds.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, "Valid")
		})
		st := ds.Status
		if st.Counts.Skipped != 2 || st.Counts.Invalid != 2 || len(st.InvalidRows) != 2 || st.InvalidRows[0].Line != 2 ||
			st.InvalidRows[1].Line != 3 || st.SplitBy != "prompt" || st.Digest != "sha256:0f1e2d" {
			t.Fatalf("status %+v", st)
		}
		if msg := st.Conditions[0].Message; !strings.Contains(msg, "2 invalid rows skipped") || !strings.Contains(msg, "lines 2, 3") {
			t.Fatalf("Ready message %q", msg)
		}
		if len(st.Warnings) != 1 || !strings.Contains(st.Warnings[0], "were skipped") {
			t.Fatalf("warnings %q", st.Warnings)
		}
		// A run on it trains on the valid rows: its trainer is told to skip, pinned to the whole file's digest,
		// and gets the documented floor of the learning-rate schedule.
		create(t, newSFTRun(ns, "on-lenient", "lenient"))
		rc := configOf(t, waitForJob(t, ns, "SFTRun", "on-lenient"))
		if rc.Dataset.InvalidRows != contract.InvalidRowsSkip || rc.Dataset.Digest != "sha256:0f1e2d" {
			t.Fatalf("run dataset config %+v", rc.Dataset)
		}
		if r := rc.Training.MinLearningRateRatio; r == nil || *r != 0.1 {
			t.Fatalf("run minLearningRateRatio %v, want the default 0.1", r)
		}
	})

	t.Run("an unknown policy is refused", func(t *testing.T) {
		ds := &v1alpha1.PreferenceDataset{ObjectMeta: metav1.ObjectMeta{Name: "odd", Namespace: ns},
			Spec: v1alpha1.PreferenceDatasetSpec{InvalidRows: "Ignore",
				Source: v1alpha1.DatasetSource{ConfigMap: &v1alpha1.ConfigMapDataSource{Name: "odd-data", Key: "train.jsonl"}}}}
		err := k8s.Create(ctx, ds)
		if err == nil || !strings.Contains(err.Error(), "invalidRows") {
			t.Fatalf("create with invalidRows Ignore: %v", err)
		}
		sft := newSFTRun(ns, "bad-ratio", "lenient")
		sft.Spec.Training.MinLearningRateRatio = "1.5"
		if err := k8s.Create(ctx, sft); err == nil || !strings.Contains(err.Error(), "minLearningRateRatio") {
			t.Fatalf("create with minLearningRateRatio 1.5: %v", err)
		}
	})
}
