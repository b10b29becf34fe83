package envtest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/preftune/preftune/api/v1alpha1"
	"github.com/preftune/preftune/trainer/contract"
)

func TestDatasetValidation(t *testing.T) {
	defer startManager(t)()
	ns := newNamespace(t)

	t.Run("valid data becomes Ready with its statistics", func(t *testing.T) {
		ds := readyDataset(t, ns, "good")
		if ds.Status.Digest != "sha256:0f1e2d" || ds.Status.Counts.Pairs != 100 || ds.Status.Counts.Train != 90 ||
			ds.Status.Format != "standard" || ds.Status.Lengths.PromptMax != 8 || ds.Status.ObservedGeneration != ds.Generation {
			t.Errorf("status = %+v", ds.Status)
		}
		job := waitForJob(t, ns, "PreferenceDataset", "good")
		c := job.Spec.Template.Spec.Containers[0]
		if strings.Join(c.Args, " ") != "inspect-dataset --config /etc/preftune/config.json" {
			t.Errorf("validation args = %v", c.Args)
		}
	})

	t.Run("invalid rows are named and the dataset is not Ready", func(t *testing.T) {
		newDataset(t, ns, "bad")
		job := waitForJob(t, ns, "PreferenceDataset", "bad")
		pod := startPod(t, job, "v", corev1.PodRunning)
		finishPod(t, pod, contract.ExitInvalidInput, datasetReport(
			contract.InvalidRow{Line: 3, Field: "chosen", Reason: "missing field"},
			contract.InvalidRow{Line: 9, Reason: "invalid JSON at column 12"}))
		failJob(t, job, "PodFailurePolicy", "Container trainer for pod exited with code 3 matching FailJob rule")
		var ds v1alpha1.PreferenceDataset
		eventually(t, "dataset InvalidRows", func() error {
			get(t, &ds, ns, "bad")
			return wantCondition(ds.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, "InvalidRows")
		})
		msg := ds.Status.Conditions[0].Message
		if !strings.Contains(msg, "line 3 field chosen: missing field") || !strings.Contains(msg, "line 9") {
			t.Errorf("message = %q", msg)
		}
		if len(ds.Status.InvalidRows) != 2 || ds.Status.InvalidRows[1].Line != 9 || ds.Status.Counts.Invalid != 2 {
			t.Errorf("invalid rows = %+v counts %+v", ds.Status.InvalidRows, ds.Status.Counts)
		}
	})

	t.Run("an unreadable source says why", func(t *testing.T) {
		newDataset(t, ns, "gone")
		job := waitForJob(t, ns, "PreferenceDataset", "gone")
		pod := startPod(t, job, "v", corev1.PodRunning)
		finishPod(t, pod, contract.ExitInvalidInput, contract.TerminationMessage{Error: &contract.Error{Reason: "InvalidDataset", Message: "open /mnt/dataset/train.jsonl: no such file"}})
		failJob(t, job, "PodFailurePolicy", "exit code 3")
		eventually(t, "dataset InvalidSource", func() error {
			var ds v1alpha1.PreferenceDataset
			get(t, &ds, ns, "gone")
			if err := wantCondition(ds.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, "InvalidSource"); err != nil {
				return err
			}
			if !strings.Contains(ds.Status.Conditions[0].Message, "no such file") {
				return fmt.Errorf("message %q", ds.Status.Conditions[0].Message)
			}
			return nil
		})
	})

	t.Run("a new generation is validated again", func(t *testing.T) {
		var ds v1alpha1.PreferenceDataset
		get(t, &ds, ns, "good")
		ds.Spec.EvalFraction = "0.2"
		if err := k8s.Update(context.Background(), &ds); err != nil {
			t.Fatal(err)
		}
		eventually(t, "second validation Job", func() error {
			if n := len(ownedJobs(t, ns, "PreferenceDataset", "good")); n != 2 {
				return fmt.Errorf("%d jobs", n)
			}
			get(t, &ds, ns, "good")
			return wantCondition(ds.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, "Validating")
		})
	})
}

func TestSFTRunLifecycle(t *testing.T) {
	defer startManager(t)()
	ns := newNamespace(t)

	run := newSFTRun(ns, "tiny", "arith")
	run.Spec.Resources.GPUs = 1
	run.Spec.Output.SecretRef = &corev1.LocalObjectReference{Name: "store-credentials"}
	create(t, run)
	eventually(t, "run waits for its dataset", func() error {
		get(t, run, ns, "tiny")
		if run.Status.Phase != v1alpha1.RunPhasePending {
			return fmt.Errorf("phase %q", run.Status.Phase)
		}
		return wantCondition(run.Status.Conditions, v1alpha1.ConditionDatasetReady, metav1.ConditionFalse, "DatasetNotFound")
	})
	if n := len(ownedJobs(t, ns, "SFTRun", "tiny")); n != 0 {
		t.Fatalf("%d Jobs before the dataset is ready", n)
	}

	readyDataset(t, ns, "arith") // the dataset watch wakes the run
	job := waitForJob(t, ns, "SFTRun", "tiny")
	rc := configOf(t, job)
	if rc.Kind != contract.KindSFT || rc.Dataset.Digest != "sha256:0f1e2d" || rc.Dataset.URI != "file:///mnt/dataset/train.jsonl" ||
		rc.Training.MaxSteps != 50 || rc.Training.LearningRate != 3e-4 || rc.Model.Architecture.DModel != 128 ||
		!strings.HasPrefix(rc.Output.URI, "file:///mnt/pvc/outputs/preftune/"+ns+"/tiny-") {
		t.Errorf("trainer config = %+v", rc)
	}
	if ef := job.Spec.Template.Spec.Containers[0].EnvFrom; len(ef) != 1 || ef[0].SecretRef == nil || ef[0].SecretRef.Name != "store-credentials" {
		t.Errorf("output credentials not in the trainer's environment: %+v", ef)
	}
	if q := job.Spec.Template.Spec.Containers[0].Resources.Limits["nvidia.com/gpu"]; q.Value() != 1 {
		t.Errorf("GPU limit = %v", job.Spec.Template.Spec.Containers[0].Resources.Limits)
	}
	eventually(t, "dataset pinned", func() error {
		get(t, run, ns, "tiny")
		if run.Status.Dataset == nil || run.Status.Dataset.Digest != "sha256:0f1e2d" || run.Status.JobName != job.Name || run.Status.StartTime == nil {
			return fmt.Errorf("status %+v", run.Status)
		}
		return wantCondition(run.Status.Conditions, v1alpha1.ConditionDatasetReady, metav1.ConditionTrue, "Pinned")
	})

	pod := startPod(t, job, "a", corev1.PodRunning)
	eventually(t, "run Running", func() error {
		get(t, run, ns, "tiny")
		if run.Status.Phase != v1alpha1.RunPhaseRunning || run.Status.Attempts != 1 {
			return fmt.Errorf("phase %q attempts %d", run.Status.Phase, run.Status.Attempts)
		}
		return nil
	})

	// The training spec is locked once the run has started; suspend is not.
	locked := run.DeepCopy()
	locked.Spec.Training.LearningRate = "1e-3"
	if err := k8s.Update(context.Background(), locked); err == nil || !strings.Contains(err.Error(), "cannot change once the run has started") {
		t.Errorf("changing training after start: %v", err)
	}

	modelURI := "file:///mnt/pvc/outputs/preftune/" + ns + "/tiny-x/model"
	finishPod(t, pod, 0, runResult(modelURI, map[string]float64{"loss": 0.4321, "eval_loss": 0.5, "tokens_per_second": 4000}))
	completeJob(t, job)
	eventually(t, "run Succeeded", func() error {
		get(t, run, ns, "tiny")
		if err := wantCondition(run.Status.Conditions, v1alpha1.ConditionSucceeded, metav1.ConditionTrue, "TrainingSucceeded"); err != nil {
			return err
		}
		if run.Status.Phase != v1alpha1.RunPhaseSucceeded || run.Status.Metrics == nil || run.Status.Metrics.TrainLoss != "0.4321" ||
			run.Status.Metrics.EvalLoss != "0.5" || run.Status.ModelURI != "pvc://outputs/preftune/"+ns+"/tiny-x/model" ||
			len(run.Status.Checkpoints) != 1 || run.Status.Progress.Percent != 100 || run.Status.CompletionTime == nil {
			return fmt.Errorf("status %+v metrics %+v", run.Status, run.Status.Metrics)
		}
		return nil
	})
	for _, typ := range []string{"DatasetReady", "Running", "Succeeded", "Failed", "Suspended"} {
		if c := findCondition(run.Status.Conditions, typ); c == nil || c.Reason == "" || c.ObservedGeneration != run.Generation {
			t.Errorf("condition %s = %+v", typ, c)
		}
	}
	wantEvents(t, ns, "tiny", "JobCreated", "Started", "Succeeded")
}

func TestSFTRunFailure(t *testing.T) {
	defer startManager(t)()
	ns := newNamespace(t)
	readyDataset(t, ns, "arith")
	run := newSFTRun(ns, "doomed", "arith")
	create(t, run)
	job := waitForJob(t, ns, "SFTRun", "doomed")

	// A first attempt dies of something passing: the run retries and says so.
	first := startPod(t, job, "a", corev1.PodRunning)
	finishPod(t, first, contract.ExitFailed, contract.TerminationMessage{Error: &contract.Error{Reason: "TrainingFailed", Message: "write checkpoint: disk full"}})
	bumpJob(t, job, func(s *batchv1.JobStatus) { s.Failed = 1; s.Active = 0 })
	second := startPod(t, job, "b", corev1.PodRunning)
	eventually(t, "retrying", func() error {
		get(t, run, ns, "doomed")
		if run.Status.Attempts != 2 {
			return fmt.Errorf("attempts %d", run.Status.Attempts)
		}
		return wantCondition(run.Status.Conditions, v1alpha1.ConditionFailed, metav1.ConditionFalse, "Retrying")
	})

	// The second finds the data changed since it was pinned: invalid input, the Job fails at once.
	finishPod(t, second, contract.ExitInvalidInput, contract.TerminationMessage{Error: &contract.Error{Reason: "DatasetChanged",
		Message: "dataset digest is sha256:99, but the run pinned sha256:0f1e2d"}})
	failJob(t, job, "PodFailurePolicy", "Container trainer exited with code 3 matching FailJob rule at index 0")
	eventually(t, "run Failed", func() error {
		get(t, run, ns, "doomed")
		if err := wantCondition(run.Status.Conditions, v1alpha1.ConditionFailed, metav1.ConditionTrue, "DatasetChanged"); err != nil {
			return err
		}
		if run.Status.Phase != v1alpha1.RunPhaseFailed || !strings.Contains(findCondition(run.Status.Conditions, "Failed").Message, "pinned sha256:0f1e2d") {
			return fmt.Errorf("status %+v", run.Status)
		}
		return nil
	})
	wantEvents(t, ns, "doomed", "Retrying", "Failed")
}

func TestDPORunReference(t *testing.T) {
	defer startManager(t)()
	ns := newNamespace(t)
	readyDataset(t, ns, "arith")

	dpo := newDPORun(ns, "pref", "arith", "base")
	create(t, dpo)
	eventually(t, "ReferenceNotFound", func() error {
		get(t, dpo, ns, "pref")
		return wantCondition(dpo.Status.Conditions, v1alpha1.ConditionReferenceReady, metav1.ConditionFalse, "ReferenceNotFound")
	})

	// The reference exists but fails: the DPORun says so and does not start.
	sft := newSFTRun(ns, "base", "arith")
	create(t, sft)
	sftJob := waitForJob(t, ns, "SFTRun", "base")
	pod := startPod(t, sftJob, "a", corev1.PodRunning)
	eventually(t, "ReferenceNotReady", func() error {
		get(t, dpo, ns, "pref")
		return wantCondition(dpo.Status.Conditions, v1alpha1.ConditionReferenceReady, metav1.ConditionFalse, "ReferenceNotReady")
	})
	finishPod(t, pod, contract.ExitInvalidInput, contract.TerminationMessage{Error: &contract.Error{Reason: "InvalidConfig", Message: "training.batchSize too large"}})
	failJob(t, sftJob, "PodFailurePolicy", "exit code 3")
	eventually(t, "ReferenceFailed", func() error {
		get(t, dpo, ns, "pref")
		return wantCondition(dpo.Status.Conditions, v1alpha1.ConditionReferenceReady, metav1.ConditionFalse, "ReferenceFailed")
	})
	consistently(t, "no DPO Job while the reference failed", time.Second, func() error {
		if n := len(ownedJobs(t, ns, "DPORun", "pref")); n != 0 {
			return fmt.Errorf("%d jobs", n)
		}
		return nil
	})

	// A second DPORun on a succeeded reference pins its model, and later changes to the SFTRun do not reach it.
	good := newSFTRun(ns, "good-base", "arith")
	create(t, good)
	gJob := waitForJob(t, ns, "SFTRun", "good-base")
	gPod := startPod(t, gJob, "a", corev1.PodRunning)
	finishPod(t, gPod, 0, runResult("file:///mnt/pvc/outputs/preftune/"+ns+"/good-base-1/model", map[string]float64{"loss": 1}))
	completeJob(t, gJob)
	dpo2 := newDPORun(ns, "pref2", "arith", "good-base")
	dpo2.Spec.Beta, dpo2.Spec.LossType, dpo2.Spec.RPOAlpha = "0.2", "ipo", "1"
	create(t, dpo2)
	job := waitForJob(t, ns, "DPORun", "pref2")
	rc := configOf(t, job)
	if rc.Kind != contract.KindDPO || rc.Reference == nil || rc.Reference.ModelURI != "file:///mnt/pvc/outputs/preftune/"+ns+"/good-base-1/model" ||
		rc.DPO.Beta != 0.2 || rc.DPO.LossType != "ipo" || rc.DPO.RPOAlpha != 1 || !rc.DPO.PrecomputeReferenceLogProbs {
		t.Errorf("trainer config = %+v dpo %+v ref %+v", rc, rc.DPO, rc.Reference)
	}
	if !hasClaim(job, "outputs") {
		t.Errorf("outputs claim not mounted: %+v", job.Spec.Template.Spec.Volumes)
	}
	eventually(t, "reference pinned", func() error {
		get(t, dpo2, ns, "pref2")
		if r := dpo2.Status.Reference; r == nil || r.ModelURI != "pvc://outputs/preftune/"+ns+"/good-base-1/model" || r.UID != string(good.UID) {
			return fmt.Errorf("reference %+v", dpo2.Status.Reference)
		}
		return wantCondition(dpo2.Status.Conditions, v1alpha1.ConditionReferenceReady, metav1.ConditionTrue, "Pinned")
	})
	get(t, good, ns, "good-base")
	good.Status.ModelURI = "s3://elsewhere/model"
	if err := k8s.Status().Update(context.Background(), good); err != nil {
		t.Fatal(err)
	}
	consistently(t, "pinned reference unchanged", time.Second, func() error {
		get(t, dpo2, ns, "pref2")
		if dpo2.Status.Reference.ModelURI != "pvc://outputs/preftune/"+ns+"/good-base-1/model" {
			return fmt.Errorf("reference moved to %s", dpo2.Status.Reference.ModelURI)
		}
		return nil
	})

	pod2 := startPod(t, job, "a", corev1.PodRunning)
	finishPod(t, pod2, 0, runResult("file:///mnt/pvc/outputs/preftune/"+ns+"/pref2-1/model", map[string]float64{
		"loss": 0.3, "rewards/accuracies": 0.95, "rewards/margins": 1.25, "rewards/chosen": 0.5, "rewards/rejected": -0.75,
		"eval_loss": 0.35, "eval_rewards/accuracies": 0.92}))
	completeJob(t, job)
	eventually(t, "DPO succeeded with its metrics", func() error {
		get(t, dpo2, ns, "pref2")
		m := dpo2.Status.Metrics
		if m == nil || m.RewardAccuracy != "0.95" || m.RewardMargin != "1.25" || m.ChosenReward != "0.5" || m.RejectedReward != "-0.75" ||
			m.EvalRewardAccuracy != "0.92" || m.Loss != "0.3" {
			return fmt.Errorf("metrics %+v", m)
		}
		return wantCondition(dpo2.Status.Conditions, v1alpha1.ConditionSucceeded, metav1.ConditionTrue, "TrainingSucceeded")
	})
}

func TestSuspendAndResume(t *testing.T) {
	defer startManager(t)()
	ns := newNamespace(t)
	readyDataset(t, ns, "arith")
	run := newSFTRun(ns, "pausable", "arith")
	run.Spec.Suspend = true
	create(t, run)
	job := waitForJob(t, ns, "SFTRun", "pausable")
	if !*job.Spec.Suspend {
		t.Fatal("a suspended run's Job is not suspended")
	}
	eventually(t, "Suspended", func() error {
		get(t, run, ns, "pausable")
		if run.Status.Phase != v1alpha1.RunPhaseSuspended {
			return fmt.Errorf("phase %q", run.Status.Phase)
		}
		return wantCondition(run.Status.Conditions, v1alpha1.ConditionSuspended, metav1.ConditionTrue, "SuspendedByUser")
	})

	setSuspend := func(v bool) {
		eventually(t, "update suspend", func() error {
			get(t, run, ns, "pausable")
			run.Spec.Suspend = v
			return k8s.Update(context.Background(), run)
		})
	}
	setSuspend(false)
	eventually(t, "Job resumed", func() error {
		get(t, job, ns, job.Name)
		if *job.Spec.Suspend {
			return fmt.Errorf("job still suspended")
		}
		get(t, run, ns, "pausable")
		return wantCondition(run.Status.Conditions, v1alpha1.ConditionSuspended, metav1.ConditionFalse, "NotSuspended")
	})
	startPod(t, job, "a", corev1.PodRunning)
	eventually(t, "Running", func() error {
		get(t, run, ns, "pausable")
		return wantCondition(run.Status.Conditions, v1alpha1.ConditionRunning, metav1.ConditionTrue, "TrainerRunning")
	})
	setSuspend(true) // allowed after start: only the training spec is locked
	eventually(t, "Job suspended again", func() error {
		get(t, job, ns, job.Name)
		if !*job.Spec.Suspend {
			return fmt.Errorf("job not suspended")
		}
		return nil
	})
	wantEvents(t, ns, "pausable", "Suspended", "Resumed", "Started")
}

func TestDeletionCascadesToJobs(t *testing.T) {
	defer startManager(t)()
	ns := newNamespace(t)
	readyDataset(t, ns, "arith")
	run := newSFTRun(ns, "short-lived", "arith")
	create(t, run)
	job := waitForJob(t, ns, "SFTRun", "short-lived")
	get(t, run, ns, "short-lived")

	// envtest runs no garbage collector, so the test checks what the collector acts on: a controller owner
	// reference to the run, on the Job and on its configuration, with blockOwnerDeletion for foreground deletion.
	var cm corev1.ConfigMap
	get(t, &cm, ns, job.Name+"-config")
	for _, obj := range []client.Object{job, &cm} {
		refs := obj.GetOwnerReferences()
		if len(refs) != 1 || refs[0].UID != run.UID || !*refs[0].Controller || !*refs[0].BlockOwnerDeletion || refs[0].Kind != "SFTRun" {
			t.Errorf("%T %s owner references = %+v", obj, obj.GetName(), refs)
		}
	}
	if err := k8s.Delete(context.Background(), run, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil {
		t.Fatal(err)
	}
	// Play the garbage collector's part, then check the operator creates nothing new for the deleted run.
	if err := k8s.Delete(context.Background(), job, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil {
		t.Fatal(err)
	}
	consistently(t, "no Job recreated for a deleted run", 2*time.Second, func() error {
		if n := len(ownedJobs(t, ns, "SFTRun", "short-lived")); n != 0 {
			return fmt.Errorf("%d jobs", n)
		}
		return nil
	})
}

func TestManagerRestartCreatesNoSecondJob(t *testing.T) {
	stop := startManager(t)
	ns := newNamespace(t)
	readyDataset(t, ns, "arith")
	run := newSFTRun(ns, "survivor", "arith")
	create(t, run)
	job := waitForJob(t, ns, "SFTRun", "survivor")
	pod := startPod(t, job, "a", corev1.PodRunning)
	eventually(t, "Running", func() error {
		get(t, run, ns, "survivor")
		return wantCondition(run.Status.Conditions, v1alpha1.ConditionRunning, metav1.ConditionTrue, "")
	})
	stop()

	// While no manager runs, the trainer finishes.
	finishPod(t, pod, 0, runResult("file:///mnt/pvc/outputs/preftune/"+ns+"/survivor-1/model", map[string]float64{"loss": 0.25}))
	completeJob(t, job)

	defer startManager(t)()
	eventually(t, "status converges after the restart", func() error {
		get(t, run, ns, "survivor")
		if run.Status.Metrics == nil || run.Status.Metrics.TrainLoss != "0.25" {
			return fmt.Errorf("metrics %+v", run.Status.Metrics)
		}
		return wantCondition(run.Status.Conditions, v1alpha1.ConditionSucceeded, metav1.ConditionTrue, "TrainingSucceeded")
	})
	consistently(t, "exactly one Job", time.Second, func() error {
		if n := len(ownedJobs(t, ns, "SFTRun", "survivor")); n != 1 {
			return fmt.Errorf("%d jobs", n)
		}
		return nil
	})
}

func TestManagerRestartBeforeTheCacheSeesTheJob(t *testing.T) {
	// Two managers racing on one run (an old leader still running while a new one starts) must still end with
	// one Job: the name is deterministic and creation is idempotent.
	stopA := startManager(t)
	stopB := startManager(t)
	ns := newNamespace(t)
	readyDataset(t, ns, "arith")
	for i := range 5 {
		create(t, newSFTRun(ns, fmt.Sprintf("race-%d", i), "arith"))
	}
	for i := range 5 {
		waitForJob(t, ns, "SFTRun", fmt.Sprintf("race-%d", i))
	}
	stopA()
	stopB()
	for i := range 5 {
		if n := len(ownedJobs(t, ns, "SFTRun", fmt.Sprintf("race-%d", i))); n != 1 {
			t.Errorf("race-%d has %d Jobs", i, n)
		}
	}
}

func findCondition(conds []metav1.Condition, typ string) *metav1.Condition {
	for i := range conds {
		if conds[i].Type == typ {
			return &conds[i]
		}
	}
	return nil
}

func hasClaim(job *batchv1.Job, claim string) bool {
	for _, v := range job.Spec.Template.Spec.Volumes {
		if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == claim {
			return true
		}
	}
	return false
}

// wantEvents waits until events with each reason were recorded for the named object.
func wantEvents(t testing.TB, ns, name string, reasons ...string) {
	t.Helper()
	eventually(t, "events "+strings.Join(reasons, ","), func() error {
		var list corev1.EventList
		if err := k8s.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, e := range list.Items {
			if e.InvolvedObject.Name == name {
				seen[e.Reason] = true
			}
		}
		for _, r := range reasons {
			if !seen[r] {
				return fmt.Errorf("no %s event among %v", r, seen)
			}
		}
		return nil
	})
}
