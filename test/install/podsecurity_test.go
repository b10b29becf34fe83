package install

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/preftune/preftune/api/v1alpha1"
	"github.com/preftune/preftune/controllers"
	"github.com/preftune/preftune/trainer/contract"
)

// TestPodSecurityRestricted creates, in a namespace that enforces Pod Security "restricted", a pod with the manager's
// pod spec from the rendered chart and a pod with the trainer's pod spec from a Job the controllers built. A
// privileged pod is rejected there first, so the check cannot pass by admitting everything.
func TestPodSecurityRestricted(t *testing.T) {
	ctx := context.Background()
	const ns = "preftune-restricted"
	restrictedNamespace(t, ns)

	privileged := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "privileged", Namespace: ns}, Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "c", Image: "busybox", SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)}}},
	}}
	err := k8s.Create(ctx, privileged)
	if err == nil || !strings.Contains(err.Error(), "violates PodSecurity") {
		t.Fatalf("a privileged pod in the restricted namespace: got %v, want a PodSecurity rejection", err)
	}

	// The manager, as the chart renders it.
	objs := decodeAll(t, helm(t, "template", "preftune", chartDir, "--namespace", ns))
	var dep struct {
		Spec struct {
			Template corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(find(t, objs, "Deployment").Object, &dep); err != nil {
		t.Fatalf("manager Deployment: %v", err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: dep.Spec.Template.Spec.ServiceAccountName, Namespace: ns}}
	if err := k8s.Create(ctx, sa); err != nil {
		t.Fatalf("service account: %v", err)
	}
	admit(t, ns, "manager", dep.Spec.Template.Spec)

	// The trainer, as the controllers build its Job: run them, let them make a dataset's validation Job, and admit a
	// pod with that Job's pod template.
	crds, err := envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{Paths: []string{filepath.Join(repo, "config", "crd", "bases")}, ErrorIfPathMissing: true})
	if err != nil {
		t.Fatalf("install CRDs: %v", err)
	}
	t.Cleanup(func() { uninstallCRDs(t, crds) })
	stop := startControllers(t)
	defer stop()

	create := func(o client.Object) {
		t.Helper()
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatalf("create %T: %v", o, err)
		}
	}
	create(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "arith-data", Namespace: ns},
		Data: map[string]string{"train.jsonl": `{"prompt":"2+2=","chosen":"4","rejected":"5"}` + "\n"}})
	create(&v1alpha1.PreferenceDataset{ObjectMeta: metav1.ObjectMeta{Name: "arith", Namespace: ns},
		Spec: v1alpha1.PreferenceDatasetSpec{Source: v1alpha1.DatasetSource{ConfigMap: &v1alpha1.ConfigMapDataSource{Name: "arith-data", Key: "train.jsonl"}}}})
	var job batchv1.Job
	eventually(t, "the dataset's validation Job", func() error {
		var jobs batchv1.JobList
		if err := k8s.List(ctx, &jobs, client.InNamespace(ns), client.MatchingLabels{controllers.LabelOwnerKind: "PreferenceDataset", controllers.LabelOwnerName: "arith"}); err != nil {
			return err
		}
		if len(jobs.Items) != 1 {
			return fmt.Errorf("%d Jobs", len(jobs.Items))
		}
		job = jobs.Items[0]
		return nil
	})
	checkNoToken(t, job.Spec.Template.Spec)
	// The validation pod, as the Job controller would create it; then the dataset is played through to Ready.
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: job.Name + "-v", Namespace: ns, Labels: map[string]string{controllers.LabelJobName: job.Name},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(&job, batchv1.SchemeGroupVersion.WithKind("Job"))}},
		Spec: *job.Spec.Template.Spec.DeepCopy(),
	}
	for k, v := range job.Spec.Template.Labels {
		pod.Labels[k] = v
	}
	if err := k8s.Create(ctx, pod); err != nil {
		t.Fatalf("the dataset validation pod is not admitted in a restricted namespace: %v", err)
	}
	playDatasetValid(t, &job, pod)

	// A GPU run writing to a PersistentVolumeClaim: its Job adds GPU resources, a toleration and the claim's volume.
	create(&v1alpha1.SFTRun{ObjectMeta: metav1.ObjectMeta{Name: "base", Namespace: ns},
		Spec: v1alpha1.SFTRunSpec{
			Model: v1alpha1.ModelSpec{Architecture: &v1alpha1.Architecture{}},
			RunSpec: v1alpha1.RunSpec{DatasetRef: v1alpha1.DatasetReference{Name: "arith"},
				Training:  v1alpha1.TrainingSpec{MaxSteps: ptr.To[int32](50)},
				Resources: v1alpha1.ResourcesSpec{GPUs: 1}},
		}})
	eventually(t, "the SFTRun's Job", func() error {
		var jobs batchv1.JobList
		if err := k8s.List(ctx, &jobs, client.InNamespace(ns), client.MatchingLabels{controllers.LabelOwnerKind: "SFTRun", controllers.LabelOwnerName: "base"}); err != nil {
			return err
		}
		if len(jobs.Items) != 1 {
			return fmt.Errorf("%d Jobs", len(jobs.Items))
		}
		job = jobs.Items[0]
		return nil
	})
	spec := job.Spec.Template.Spec
	if _, ok := spec.Containers[0].Resources.Limits["nvidia.com/gpu"]; !ok {
		t.Fatalf("the run's pod asks for no GPU: %v", spec.Containers[0].Resources)
	}
	checkNoToken(t, spec)
	admit(t, ns, "trainer", spec)
}

func checkNoToken(t testing.TB, spec corev1.PodSpec) {
	t.Helper()
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("the trainer pod mounts a service-account token: it needs no API access")
	}
}

// playDatasetValid stands in for the kubelet and the Job controller: the validation pod ends with a valid report
// and its Job completes, so the dataset becomes Ready.
func playDatasetValid(t testing.TB, job *batchv1.Job, pod *corev1.Pod) {
	t.Helper()
	ctx := context.Background()
	report, err := json.Marshal(contract.TerminationMessage{Dataset: &contract.DatasetReport{Format: "standard", Digest: "sha256:0f1e2d",
		Counts: contract.Counts{Total: 100, Pairs: 100, Train: 90, Eval: 10}}})
	if err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	pod.Status.Phase = corev1.PodSucceeded
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: controllers.TrainerContainerName,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Message: string(report), StartedAt: now, FinishedAt: now}}}}
	if err := k8s.Status().Update(ctx, pod); err != nil {
		t.Fatalf("finish the validation pod: %v", err)
	}
	eventually(t, "complete the validation Job", func() error {
		var cur batchv1.Job
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(job), &cur); err != nil {
			return err
		}
		cur.Status.StartTime, cur.Status.CompletionTime = &now, &now
		cur.Status.Succeeded, cur.Status.Ready, cur.Status.Terminating = 1, ptr.To[int32](0), ptr.To[int32](0)
		cur.Status.UncountedTerminatedPods = &batchv1.UncountedTerminatedPods{}
		cur.Status.Conditions = append(cur.Status.Conditions,
			batchv1.JobCondition{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, Reason: "CompletionsReached", LastTransitionTime: now, LastProbeTime: now},
			batchv1.JobCondition{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, Reason: "CompletionsReached", LastTransitionTime: now, LastProbeTime: now})
		return k8s.Status().Update(ctx, &cur)
	})
}

// admit creates a pod with spec in ns and fails the test if admission rejects it.
func admit(t testing.TB, ns, name string, spec corev1.PodSpec) {
	t.Helper()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: spec}
	if err := k8s.Create(context.Background(), pod); err != nil {
		t.Fatalf("the %s pod is not admitted in a restricted namespace: %v", name, err)
	}
}

// startControllers runs the operator's controllers as cmd/manager wires them and returns a function that stops them.
func startControllers(t testing.TB) func() {
	t.Helper()
	managed := labels.SelectorFromSet(labels.Set{controllers.LabelManagedBy: "preftune-operator"})
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:  scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}:  {Label: managed},
			&batchv1.Job{}: {Label: managed},
		}},
	})
	if err != nil {
		t.Fatalf("new manager: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	opts := controllers.Options{TrainerImage: "registry.test/preftune:test", GPUResourceName: "nvidia.com/gpu", DefaultOutputURI: "pvc://outputs/preftune"}
	if err := controllers.Setup(ctx, mgr, opts, controllers.Concurrency{Runs: 1, Datasets: 1}); err != nil {
		cancel()
		t.Fatalf("set up controllers: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	}
}

// uninstallCRDs deletes the CRDs and waits until they are gone, so that the Helm tests can install them again.
func uninstallCRDs(t testing.TB, crds []*apiextensionsv1.CustomResourceDefinition) {
	t.Helper()
	for _, crd := range crds {
		if err := k8s.Delete(context.Background(), crd); gone(err) != nil && err != nil {
			t.Errorf("delete CRD %s: %v", crd.Name, err)
		}
	}
	for _, crd := range crds {
		eventually(t, "CRD "+crd.Name+" deleted", func() error {
			return gone(k8s.Get(context.Background(), types.NamespacedName{Name: crd.Name}, &apiextensionsv1.CustomResourceDefinition{}))
		})
	}
}
