package controllers

import (
	"encoding/json"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/preftune/preftune/api/v1alpha1"
	"github.com/preftune/preftune/trainer/contract"
)

func testSFTRun(mutate func(*v1alpha1.SFTRun)) sftRun {
	r := &v1alpha1.SFTRun{
		ObjectMeta: metav1.ObjectMeta{Name: "tiny", Namespace: "team-a", UID: "0123abcd-ef45-6789-abcd-ef0123456789"},
		Spec: v1alpha1.SFTRunSpec{
			Model: v1alpha1.ModelSpec{Architecture: &v1alpha1.Architecture{Layers: 2, DModel: 64, Heads: 2, ContextLength: 32, Tokenizer: "byte"}},
			RunSpec: v1alpha1.RunSpec{
				DatasetRef: v1alpha1.DatasetReference{Name: "arith"},
				Training: v1alpha1.TrainingSpec{MaxSteps: ptr.To[int32](100), BatchSize: 16, LearningRate: "3e-4",
					GradientAccumulationSteps: 1, LRSchedule: "cosine", WeightDecay: "0.1", GradClipNorm: "1.0", EvalEvery: 10, CheckpointEvery: 20, CheckpointsToKeep: 3, Seed: 7},
				MaxRetries: 3,
			},
		},
	}
	if mutate != nil {
		mutate(r)
	}
	return sftRun{r}
}

func TestConstructRunJob(t *testing.T) {
	opts := Options{TrainerImage: "registry.local/preftune:v1", GPUResourceName: "nvidia.com/gpu"}
	cases := []struct {
		name  string
		run   sftRun
		check func(t *testing.T, job *batchv1.Job)
	}{
		{"defaults: one pod, restricted, no token, config mounted", testSFTRun(nil), func(t *testing.T, job *batchv1.Job) {
			if job.Name != "tiny-sft-0123a" || job.Namespace != "team-a" {
				t.Errorf("name = %s/%s", job.Namespace, job.Name)
			}
			if *job.Spec.Parallelism != 1 || *job.Spec.Completions != 1 || *job.Spec.BackoffLimit != 3 {
				t.Errorf("parallelism/completions/backoff = %d/%d/%d", *job.Spec.Parallelism, *job.Spec.Completions, *job.Spec.BackoffLimit)
			}
			if *job.Spec.Suspend {
				t.Error("job suspended without suspend or queue")
			}
			pod := job.Spec.Template.Spec
			if pod.RestartPolicy != corev1.RestartPolicyNever {
				t.Errorf("restartPolicy = %s", pod.RestartPolicy)
			}
			if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
				t.Error("service-account token is mounted")
			}
			c := pod.Containers[0]
			sc := c.SecurityContext
			if !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation || !*sc.RunAsNonRoot ||
				len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("container security context not restricted: %+v", sc)
			}
			if !*pod.SecurityContext.RunAsNonRoot || pod.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("pod security context not restricted: %+v", pod.SecurityContext)
			}
			if c.Image != "registry.local/preftune:v1" || strings.Join(c.Command, " ") != "/preftune-trainer" ||
				strings.Join(c.Args, " ") != "sft --config /etc/preftune/config.json" {
				t.Errorf("image %s command %v args %v", c.Image, c.Command, c.Args)
			}
			if c.TerminationMessagePath != contract.TerminationMessagePath || c.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError {
				t.Errorf("termination message %s %s", c.TerminationMessagePath, c.TerminationMessagePolicy)
			}
			if _, ok := c.Resources.Limits["nvidia.com/gpu"]; ok {
				t.Error("GPU limit without gpus")
			}
			if len(pod.Tolerations) != 0 {
				t.Errorf("tolerations without gpus: %v", pod.Tolerations)
			}
			if !hasMount(c, "config", "/etc/preftune") || !hasMount(c, "tmp", "/tmp") {
				t.Errorf("mounts = %v", c.VolumeMounts)
			}
			for k, v := range map[string]string{LabelManagedBy: "preftune-operator", LabelOwnerKind: "SFTRun", LabelOwnerName: "tiny", LabelName: "preftune"} {
				if job.Labels[k] != v || job.Spec.Template.Labels[k] != v {
					t.Errorf("label %s = %q (pod %q), want %q", k, job.Labels[k], job.Spec.Template.Labels[k], v)
				}
			}
			if len(job.OwnerReferences) != 1 || job.OwnerReferences[0].Kind != "SFTRun" || !*job.OwnerReferences[0].Controller {
				t.Errorf("owner = %+v", job.OwnerReferences)
			}
			pfp := job.Spec.PodFailurePolicy
			if pfp == nil || len(pfp.Rules) != 2 ||
				pfp.Rules[0].Action != batchv1.PodFailurePolicyActionFailJob || pfp.Rules[0].OnExitCodes.Values[0] != contract.ExitInvalidInput ||
				pfp.Rules[1].Action != batchv1.PodFailurePolicyActionIgnore || pfp.Rules[1].OnPodConditions[0].Type != corev1.DisruptionTarget {
				t.Errorf("podFailurePolicy = %+v", pfp)
			}
		}},
		{"gpus: limit on the named resource and a toleration for its taint", testSFTRun(func(r *v1alpha1.SFTRun) {
			r.Spec.Resources = v1alpha1.ResourcesSpec{GPUs: 2, GPUResourceName: "amd.com/gpu",
				CPU: ptr.To(resource.MustParse("4")), Memory: ptr.To(resource.MustParse("16Gi"))}
			r.Spec.Scheduling.Tolerations = []corev1.Toleration{{Key: "team", Operator: corev1.TolerationOpEqual, Value: "a", Effect: corev1.TaintEffectNoSchedule}}
		}), func(t *testing.T, job *batchv1.Job) {
			c := job.Spec.Template.Spec.Containers[0]
			if q := c.Resources.Limits["amd.com/gpu"]; q.Value() != 2 {
				t.Errorf("gpu limit = %v", c.Resources.Limits)
			}
			if q := c.Resources.Requests[corev1.ResourceMemory]; q.String() != "16Gi" {
				t.Errorf("memory request = %v", c.Resources.Requests)
			}
			tol := job.Spec.Template.Spec.Tolerations
			if len(tol) != 2 || tol[0].Key != "team" || tol[1].Key != "amd.com/gpu" || tol[1].Operator != corev1.TolerationOpExists {
				t.Errorf("tolerations = %+v", tol)
			}
		}},
		{"manager default GPU resource", testSFTRun(func(r *v1alpha1.SFTRun) { r.Spec.Resources.GPUs = 1 }), func(t *testing.T, job *batchv1.Job) {
			if q := job.Spec.Template.Spec.Containers[0].Resources.Limits["nvidia.com/gpu"]; q.Value() != 1 {
				t.Errorf("limits = %v", job.Spec.Template.Spec.Containers[0].Resources.Limits)
			}
		}},
		{"kueue: queue label on the Job only, created suspended", testSFTRun(func(r *v1alpha1.SFTRun) { r.Spec.Scheduling.QueueName = "gpu-queue" }), func(t *testing.T, job *batchv1.Job) {
			if job.Labels[LabelKueueQueueName] != "gpu-queue" {
				t.Errorf("labels = %v", job.Labels)
			}
			if _, ok := job.Spec.Template.Labels[LabelKueueQueueName]; ok {
				t.Error("queue label copied to the pod template")
			}
			if !*job.Spec.Suspend {
				t.Error("queued job not created suspended")
			}
		}},
		{"suspend passes through", testSFTRun(func(r *v1alpha1.SFTRun) { r.Spec.Suspend = true }), func(t *testing.T, job *batchv1.Job) {
			if !*job.Spec.Suspend {
				t.Error("not suspended")
			}
		}},
		{"scheduling, deadline, retries and image override", testSFTRun(func(r *v1alpha1.SFTRun) {
			r.Spec.Scheduling.NodeSelector = map[string]string{"pool": "gpu"}
			r.Spec.Scheduling.PriorityClassName = "high"
			r.Spec.ActiveDeadlineSeconds = ptr.To[int64](3600)
			r.Spec.MaxRetries = 0
			r.Spec.Trainer.Image = "mine:dev"
		}), func(t *testing.T, job *batchv1.Job) {
			p := job.Spec.Template.Spec
			if p.NodeSelector["pool"] != "gpu" || p.PriorityClassName != "high" || *job.Spec.ActiveDeadlineSeconds != 3600 ||
				*job.Spec.BackoffLimit != 0 || p.Containers[0].Image != "mine:dev" {
				t.Errorf("job = %+v", job.Spec)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := childName(tc.run.Name, "sft", string(tc.run.UID))
			job := constructRunJob(tc.run, "SFTRun", name, name+"-config", podStorage{}, nil, nil, opts, false, false)
			tc.check(t, job)
		})
	}
}

func hasMount(c corev1.Container, name, path string) bool {
	for _, m := range c.VolumeMounts {
		if m.Name == name && m.MountPath == path {
			return true
		}
	}
	return false
}

func TestChildNameIsDeterministicAndShort(t *testing.T) {
	long := strings.Repeat("a", 80)
	n1, n2 := childName(long, "dpo", "abcdef-123"), childName(long, "dpo", "abcdef-123")
	if n1 != n2 || len(n1) > 63 || !strings.HasSuffix(n1, "-dpo-abcde") {
		t.Errorf("childName = %q (%d), %q", n1, len(n1), n2)
	}
	if childName(long+"b", "dpo", "abcdef") == n1 {
		t.Error("different names collide")
	}
}

func TestStorageMapsPVCURIs(t *testing.T) {
	var st podStorage
	out, _ := st.mapURI("pvc://models/runs", false)
	ref, _ := st.mapURI("pvc://models/runs/ns/sft-1/model", true)
	ds, _ := st.mapURI("pvc://data/arith.jsonl", true)
	s3, _ := st.mapURI("s3://bucket/x", true)
	if out != "file:///mnt/pvc/models/runs" || ref != "file:///mnt/pvc/models/runs/ns/sft-1/model" || ds != "file:///mnt/pvc/data/arith.jsonl" || s3 != "s3://bucket/x" {
		t.Errorf("mapped: %s %s %s %s", out, ref, ds, s3)
	}
	vols, mounts := st.volumes()
	if len(vols) != 2 || len(mounts) != 2 {
		t.Fatalf("volumes %v mounts %v", vols, mounts)
	}
	// "data" sorts first; read-only. "models" is written to, so read-write even though one use is read-only.
	if vols[0].PersistentVolumeClaim.ClaimName != "data" || !mounts[0].ReadOnly || vols[1].PersistentVolumeClaim.ClaimName != "models" || mounts[1].ReadOnly {
		t.Errorf("volumes %+v mounts %+v", vols, mounts)
	}
	if got := unmapURI("file:///mnt/pvc/models/runs/ns/sft-1/model"); got != "pvc://models/runs/ns/sft-1/model" {
		t.Errorf("unmap = %s", got)
	}
	if _, err := st.mapURI("pvc:///x", true); err == nil {
		t.Error("pvc URI without a claim accepted")
	}
}

func TestRunConfigurationDocument(t *testing.T) {
	run := testSFTRun(nil)
	ds := &v1alpha1.PreferenceDataset{
		ObjectMeta: metav1.ObjectMeta{Name: "arith", Namespace: "team-a"},
		Spec: v1alpha1.PreferenceDatasetSpec{Source: v1alpha1.DatasetSource{ConfigMap: &v1alpha1.ConfigMapDataSource{Name: "arith-data", Key: "train.jsonl"}},
			Format: "standard", EvalFraction: "0.2", Seed: 3},
		Status: v1alpha1.PreferenceDatasetStatus{Digest: "sha256:abc"},
	}
	var st podStorage
	uri, cm, _, err := datasetSourceParams(ds, &st)
	if err != nil || uri != "file:///mnt/dataset/train.jsonl" || cm.Name != "arith-data" {
		t.Fatalf("dataset source: %s %v %v", uri, cm, err)
	}
	dc, err := datasetConfig(ds, uri)
	if err != nil || dc.EvalFraction != 0.2 || dc.Digest != "sha256:abc" || dc.Format != "standard" {
		t.Fatalf("dataset config %+v %v", dc, err)
	}
	tc, err := trainingConfig(run.Spec().Training)
	if err != nil || tc.MaxSteps != 100 || tc.LearningRate != 3e-4 || tc.WeightDecay != 0.1 || tc.GradClipNorm != 1 || tc.Seed != 7 ||
		tc.CheckpointEvery != 20 || tc.CheckpointsToKeep != 3 {
		t.Fatalf("training config %+v %v", tc, err)
	}
	out, err := outputURI(run, "pvc://outputs/preftune")
	if err != nil || out != "pvc://outputs/preftune/team-a/tiny-0123abcd" {
		t.Fatalf("output %s %v", out, err)
	}
	if _, err := outputURI(run, ""); err == nil {
		t.Error("no output and no default accepted")
	}
	cfg := contract.RunConfig{Dataset: dc, Training: tc}
	dep, err := run.resolveModel(t.Context(), nil, &cfg)
	if err != nil || !dep.ready || cfg.Model.Architecture.DModel != 64 {
		t.Fatalf("model: %+v %v", dep, err)
	}
	b, _ := json.Marshal(cfg)
	var back contract.RunConfig
	if err := json.Unmarshal(b, &back); err != nil || back.Model.Architecture.Layers != 2 {
		t.Fatalf("round trip: %v %+v", err, back)
	}

	dpo := dpoRun{&v1alpha1.DPORun{Spec: v1alpha1.DPORunSpec{Beta: "0.25", LossType: "robust", LabelSmoothing: "0.1", RPOAlpha: "1"}}}
	if err := dpo.configure(&cfg); err != nil || cfg.DPO.Beta != 0.25 || cfg.DPO.LossType != "robust" || cfg.DPO.LabelSmoothing != 0.1 ||
		cfg.DPO.RPOAlpha != 1 || !cfg.DPO.PrecomputeReferenceLogProbs {
		t.Fatalf("dpo config %+v %v", cfg.DPO, err)
	}
	if _, err := trainingConfig(v1alpha1.TrainingSpec{LearningRate: "fast"}); err == nil || !strings.Contains(err.Error(), "spec.training.learningRate") {
		t.Errorf("bad learning rate: %v", err)
	}
}

// spec.model.from.uri reaches the trainer's configuration as the trainer must see it: pvc:// mapped to the claim's
// read-only mount, every other scheme (hf:// included, with its revision) unchanged; no claim is mounted for them.
func TestModelFromURI(t *testing.T) {
	cases := []struct {
		uri, want string
		claim     string
	}{
		{"hf://HuggingFaceTB/SmolLM2-135M", "hf://HuggingFaceTB/SmolLM2-135M", ""},
		{"hf://karpathy/tinyllamas@0123456789abcdef0123456789abcdef01234567", "hf://karpathy/tinyllamas@0123456789abcdef0123456789abcdef01234567", ""},
		{"s3://models/smollm2-135m?endpoint=http://minio:9000&region=us-east-1", "s3://models/smollm2-135m?endpoint=http://minio:9000&region=us-east-1", ""},
		{"pvc://models/stories260K", "file:///mnt/pvc/models/stories260K", "models"},
		{"file:///models/stories260K", "file:///models/stories260K", ""},
	}
	for _, tc := range cases {
		t.Run(tc.uri, func(t *testing.T) {
			run := testSFTRun(func(r *v1alpha1.SFTRun) {
				r.Spec.Model = v1alpha1.ModelSpec{From: &v1alpha1.ModelSource{URI: tc.uri}}
			})
			var cfg contract.RunConfig
			dep, err := run.resolveModel(t.Context(), nil, &cfg)
			if err != nil || !dep.ready || cfg.Model.From != tc.uri || cfg.Model.Architecture != nil {
				t.Fatalf("resolveModel: %+v %v, model %+v", dep, err, cfg.Model)
			}
			var st podStorage
			got, err := st.mapURI(cfg.Model.From, true)
			if err != nil || got != tc.want {
				t.Fatalf("mapURI(%s) = %s, %v; want %s", cfg.Model.From, got, err, tc.want)
			}
			vols, mounts := st.volumes()
			if tc.claim == "" && len(vols) != 0 {
				t.Errorf("volumes %+v for a URI the trainer reads itself", vols)
			}
			if tc.claim != "" && (len(vols) != 1 || vols[0].PersistentVolumeClaim.ClaimName != tc.claim || !mounts[0].ReadOnly) {
				t.Errorf("volumes %+v mounts %+v, want claim %s read-only", vols, mounts, tc.claim)
			}
		})
	}
}

// TestTrainerEnv: the operator's --trainer-env reaches the trainer container after its own variables, which it
// cannot replace.
func TestTrainerEnv(t *testing.T) {
	opts := Options{TrainerImage: "registry.local/preftune:v1", TrainerEnv: []corev1.EnvVar{
		{Name: "OPENBLAS_CORETYPE", Value: "Haswell"}, {Name: "HOME", Value: "/root"}, {Name: "HF_ENDPOINT", Value: "https://hub.internal"}}}
	run := testSFTRun(nil)
	name := childName(run.Name, "sft", string(run.UID))
	job := constructRunJob(run, "SFTRun", name, name+"-config", podStorage{}, nil, nil, opts, false, false)
	got := map[string][]string{}
	for _, e := range job.Spec.Template.Spec.Containers[0].Env {
		got[e.Name] = append(got[e.Name], e.Value)
	}
	for name, want := range map[string]string{"OPENBLAS_CORETYPE": "Haswell", "HF_ENDPOINT": "https://hub.internal", "HOME": "/tmp"} {
		if v := got[name]; len(v) != 1 || v[0] != want {
			t.Errorf("%s = %v, want exactly [%s]", name, v, want)
		}
	}
}
