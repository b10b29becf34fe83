package envtest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"

	"github.com/preftune/preftune/api/v1alpha1"
	"github.com/preftune/preftune/controllers"
	"github.com/preftune/preftune/trainer/contract"
)

const waitFor = 20 * time.Second

func ctrlConfigSkipNameValidation() config.Controller {
	// Several managers start in one test process (restart tests); controller names repeat on purpose.
	return config.Controller{SkipNameValidation: ptr.To(true)}
}

var nsCounter atomic.Int64

// newNamespace creates a namespace of the test's own.
func newNamespace(t testing.TB) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("t%d-%d", time.Now().UnixNano()%100000, nsCounter.Add(1))}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	return ns.Name
}

// eventually retries f until it returns nil or the timeout passes.
func eventually(t testing.TB, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: still failing after %s: %v", what, waitFor, err)
}

// consistently checks f keeps returning nil for d.
func consistently(t testing.TB, what string, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := f(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func get(t testing.TB, obj client.Object, ns, name string) {
	t.Helper()
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, obj); err != nil {
		t.Fatalf("get %s/%s: %v", ns, name, err)
	}
}

func create(t testing.TB, obj client.Object) {
	t.Helper()
	if err := k8s.Create(context.Background(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// ownedJobs lists the Jobs that belong to an object of kind/name.
func ownedJobs(t testing.TB, ns, kind, name string) []batchv1.Job {
	t.Helper()
	var jobs batchv1.JobList
	if err := k8s.List(context.Background(), &jobs, client.InNamespace(ns),
		client.MatchingLabels{controllers.LabelOwnerKind: kind, controllers.LabelOwnerName: name}); err != nil {
		t.Fatalf("list jobs: %v", err)
	}
	return jobs.Items
}

// waitForJob waits until exactly one Job belongs to kind/name and returns it.
func waitForJob(t testing.TB, ns, kind, name string) *batchv1.Job {
	t.Helper()
	var job batchv1.Job
	eventually(t, "one Job for "+kind+" "+name, func() error {
		jobs := ownedJobs(t, ns, kind, name)
		if len(jobs) != 1 {
			return fmt.Errorf("%d jobs", len(jobs))
		}
		job = jobs[0]
		return nil
	})
	return &job
}

// startPod stands in for the Job controller and the kubelet: it creates the Job's pod and gives it a phase.
func startPod(t testing.TB, job *batchv1.Job, suffix string, phase corev1.PodPhase) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: job.Name + "-" + suffix, Namespace: job.Namespace,
			Labels:          map[string]string{controllers.LabelJobName: job.Name},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(job, batchv1.SchemeGroupVersion.WithKind("Job"))},
		},
		Spec: *job.Spec.Template.Spec.DeepCopy(),
	}
	for k, v := range job.Spec.Template.Labels {
		pod.Labels[k] = v
	}
	create(t, pod)
	pod.Status.Phase = phase
	if phase == corev1.PodRunning {
		pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: controllers.TrainerContainerName, Ready: true,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}}}
	}
	if err := k8s.Status().Update(context.Background(), pod); err != nil {
		t.Fatalf("set pod phase: %v", err)
	}
	bumpJob(t, job, func(s *batchv1.JobStatus) { s.Active = 1 })
	return pod
}

// finishPod ends a pod's trainer container with an exit code and a termination message.
func finishPod(t testing.TB, pod *corev1.Pod, exit int32, msg any) {
	t.Helper()
	text, ok := msg.(string)
	if !ok {
		b, err := json.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		text = string(b)
	}
	phase := corev1.PodSucceeded
	if exit != 0 {
		phase = corev1.PodFailed
	}
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(pod), pod); err != nil {
		t.Fatal(err)
	}
	pod.Status.Phase = phase
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: controllers.TrainerContainerName,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: exit, Message: text,
			StartedAt: metav1.Now(), FinishedAt: metav1.Now()}}}}
	if err := k8s.Status().Update(context.Background(), pod); err != nil {
		t.Fatalf("finish pod: %v", err)
	}
}

// bumpJob updates a Job's status as the Job controller would.
func bumpJob(t testing.TB, job *batchv1.Job, f func(*batchv1.JobStatus)) {
	t.Helper()
	eventually(t, "update Job status", func() error {
		var cur batchv1.Job
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(job), &cur); err != nil {
			return err
		}
		if cur.Status.StartTime == nil {
			cur.Status.StartTime = ptr.To(metav1.Now())
		}
		f(&cur.Status)
		return k8s.Status().Update(context.Background(), &cur)
	})
}

// completeJob marks a Job succeeded the way the Job controller does (SuccessCriteriaMet, then Complete).
func completeJob(t testing.TB, job *batchv1.Job) {
	t.Helper()
	bumpJob(t, job, func(s *batchv1.JobStatus) {
		now := metav1.Now()
		s.Active, s.Succeeded, s.Ready, s.Terminating = 0, 1, ptr.To[int32](0), ptr.To[int32](0)
		s.CompletionTime = &now
		s.UncountedTerminatedPods = &batchv1.UncountedTerminatedPods{}
		s.Conditions = append(s.Conditions,
			batchv1.JobCondition{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, Reason: "CompletionsReached", LastTransitionTime: now, LastProbeTime: now},
			batchv1.JobCondition{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, Reason: "CompletionsReached", LastTransitionTime: now, LastProbeTime: now})
	})
}

// failJob marks a Job failed the way the Job controller does (FailureTarget, then Failed).
func failJob(t testing.TB, job *batchv1.Job, reason, message string) {
	t.Helper()
	bumpJob(t, job, func(s *batchv1.JobStatus) {
		now := metav1.Now()
		s.Active, s.Failed, s.Ready, s.Terminating = 0, s.Failed+1, ptr.To[int32](0), ptr.To[int32](0)
		s.UncountedTerminatedPods = &batchv1.UncountedTerminatedPods{}
		s.Conditions = append(s.Conditions,
			batchv1.JobCondition{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: reason, Message: message, LastTransitionTime: now, LastProbeTime: now},
			batchv1.JobCondition{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: reason, Message: message, LastTransitionTime: now, LastProbeTime: now})
	})
}

// datasetReport is what a validation pod reports for a valid dataset.
func datasetReport(invalid ...contract.InvalidRow) contract.TerminationMessage {
	r := &contract.DatasetReport{Format: "standard", Digest: "sha256:0f1e2d", Counts: contract.Counts{Total: 100, Pairs: 100, Train: 90, Eval: 10},
		Lengths: contract.LengthStats{PromptMean: 6, PromptMax: 8, ChosenMean: 2, ChosenMax: 3, RejectedMean: 2, RejectedMax: 3}, ChosenLongerFraction: 0.05}
	if len(invalid) > 0 {
		r.Counts.Invalid = len(invalid)
		r.Counts.Pairs -= len(invalid)
		r.InvalidRows = invalid
	}
	return contract.TerminationMessage{Dataset: r}
}

// newDataset creates a ConfigMap-backed PreferenceDataset.
func newDataset(t testing.TB, ns, name string) *v1alpha1.PreferenceDataset {
	t.Helper()
	create(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name + "-data", Namespace: ns},
		Data: map[string]string{"train.jsonl": `{"prompt":"2+2=","chosen":"4","rejected":"5"}` + "\n"}})
	ds := &v1alpha1.PreferenceDataset{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.PreferenceDatasetSpec{Source: v1alpha1.DatasetSource{ConfigMap: &v1alpha1.ConfigMapDataSource{Name: name + "-data", Key: "train.jsonl"}}}}
	create(t, ds)
	return ds
}

// readyDataset creates a dataset and plays its validation through to Ready.
func readyDataset(t testing.TB, ns, name string) *v1alpha1.PreferenceDataset {
	t.Helper()
	newDataset(t, ns, name)
	job := waitForJob(t, ns, "PreferenceDataset", name)
	pod := startPod(t, job, "v", corev1.PodRunning)
	finishPod(t, pod, 0, datasetReport())
	completeJob(t, job)
	var ds v1alpha1.PreferenceDataset
	eventually(t, "dataset Ready", func() error {
		get(t, &ds, ns, name)
		return wantCondition(ds.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, "Valid")
	})
	return &ds
}

func wantCondition(conds []metav1.Condition, typ string, status metav1.ConditionStatus, reason string) error {
	c := meta.FindStatusCondition(conds, typ)
	if c == nil {
		return fmt.Errorf("no %s condition in %v", typ, conds)
	}
	if c.Status != status || (reason != "" && c.Reason != reason) {
		return fmt.Errorf("%s is %s/%s (%s), want %s/%s", typ, c.Status, c.Reason, c.Message, status, reason)
	}
	return nil
}

func newSFTRun(ns, name, dataset string) *v1alpha1.SFTRun {
	return &v1alpha1.SFTRun{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.SFTRunSpec{
			Model: v1alpha1.ModelSpec{Architecture: &v1alpha1.Architecture{}},
			RunSpec: v1alpha1.RunSpec{DatasetRef: v1alpha1.DatasetReference{Name: dataset},
				Training: v1alpha1.TrainingSpec{MaxSteps: ptr.To[int32](50)}},
		}}
}

func newDPORun(ns, name, dataset, reference string) *v1alpha1.DPORun {
	return &v1alpha1.DPORun{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.DPORunSpec{
			ReferenceRef: v1alpha1.ReferenceReference{SFTRun: reference},
			RunSpec: v1alpha1.RunSpec{DatasetRef: v1alpha1.DatasetReference{Name: dataset},
				Training: v1alpha1.TrainingSpec{MaxSteps: ptr.To[int32](50)}},
		}}
}

// runResult is a trainer's final document for a run that trained to step 50.
func runResult(modelURI string, metrics map[string]float64) contract.TerminationMessage {
	return contract.TerminationMessage{Result: &contract.Result{Step: 50, TotalSteps: 50, Epoch: 1.5, Metrics: metrics,
		ModelURI: modelURI, ModelDigest: "sha256:aa11",
		Checkpoints: []contract.Checkpoint{{Step: 50, URI: strings.TrimSuffix(modelURI, "/model") + "/checkpoints/step-00000050", Time: time.Now().UTC().Format(time.RFC3339)}}}}
}

// configOf reads the trainer configuration a run's Job mounts.
func configOf(t testing.TB, job *batchv1.Job) contract.RunConfig {
	t.Helper()
	var name string
	for _, v := range job.Spec.Template.Spec.Volumes {
		if v.Name == "config" {
			name = v.ConfigMap.Name
		}
	}
	var cm corev1.ConfigMap
	get(t, &cm, job.Namespace, name)
	var rc contract.RunConfig
	if err := json.Unmarshal([]byte(cm.Data["config.json"]), &rc); err != nil {
		t.Fatalf("config of %s: %v", job.Name, err)
	}
	if cm.Immutable == nil || !*cm.Immutable {
		t.Errorf("config ConfigMap %s is mutable", cm.Name)
	}
	return rc
}
