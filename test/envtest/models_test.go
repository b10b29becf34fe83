package envtest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/preftune/preftune/api/v1alpha1"
	"github.com/preftune/preftune/controllers"
	"github.com/preftune/preftune/trainer/contract"
)

// Pretrained models (issue 10): spec.model.from.uri with hf://, training.checkpointsToKeep, the status fields that
// describe the model, and the failures a pretrained model brings (unsupported architecture, too little memory,
// the kernel's OOM killer).

var modelInvalidCases = []invalidCase{
	{"from.uri hf:// with a path inside the repository", "SFTRun",
		[]edit{{"spec.model.architecture", nil}, {"spec.model.from", map[string]any{"uri": "hf://org/name/model.safetensors"}}},
		[]string{"spec.model.from.uri", "an hf:// uri is hf://<org>/<name> with an optional @<revision>"}},
	{"from.uri hf:// with an empty revision", "SFTRun",
		[]edit{{"spec.model.architecture", nil}, {"spec.model.from", map[string]any{"uri": "hf://org/name@"}}},
		[]string{"spec.model.from.uri", "an hf:// uri is hf://<org>/<name> with an optional @<revision>"}},
	{"from.uri hf:// with a space in the name", "SFTRun",
		[]edit{{"spec.model.architecture", nil}, {"spec.model.from", map[string]any{"uri": "hf://org/my model"}}},
		[]string{"spec.model.from.uri", "an hf:// uri is hf://<org>/<name> with an optional @<revision>"}},
	{"from.uri hf:// and architecture", "SFTRun",
		[]edit{{"spec.model.from", map[string]any{"uri": "hf://HuggingFaceTB/SmolLM2-135M"}}},
		[]string{"spec.model", "exactly one of architecture or from must be set"}},
	{"from.uri hf:// and sftRun", "SFTRun",
		[]edit{{"spec.model.architecture", nil}, {"spec.model.from", map[string]any{"uri": "hf://HuggingFaceTB/SmolLM2-135M", "sftRun": "base"}}},
		[]string{"spec.model.from", "exactly one of uri or sftRun must be set"}},
	{"from.uri of an unknown scheme", "SFTRun",
		[]edit{{"spec.model.architecture", nil}, {"spec.model.from", map[string]any{"uri": "ftp://models/base"}}},
		[]string{"spec.model.from.uri", "should match"}},
	{"checkpointsToKeep 0", "SFTRun",
		[]edit{{"spec.training.checkpointsToKeep", int64(0)}},
		[]string{"spec.training.checkpointsToKeep", "should be greater than or equal to 1"}},
	{"checkpointsToKeep -1 (DPO)", "DPORun",
		[]edit{{"spec.training.checkpointsToKeep", int64(-1)}},
		[]string{"spec.training.checkpointsToKeep", "should be greater than or equal to 1"}},
}

var modelValidCases = []validCase{
	{"SFT from the Hub at a branch, default checkpointsToKeep", "SFTRun",
		[]edit{{"spec.model.architecture", nil}, {"spec.model.from", map[string]any{"uri": "hf://HuggingFaceTB/SmolLM2-135M@main"}}},
		map[string]any{"spec.model.from.uri": "hf://HuggingFaceTB/SmolLM2-135M@main", "spec.training.checkpointsToKeep": int64(2)}},
	{"SFT from the Hub at a commit and a pull-request ref, single-name repository", "SFTRun",
		[]edit{{"spec.model.architecture", nil}, {"spec.model.from", map[string]any{"uri": "hf://gpt2@refs/pr/1"}},
			{"spec.training.checkpointsToKeep", int64(1)}},
		map[string]any{"spec.model.from.uri": "hf://gpt2@refs/pr/1", "spec.training.checkpointsToKeep": int64(1)}},
	{"SFT from S3 with an endpoint, keeping 1000 checkpoints", "SFTRun",
		[]edit{{"spec.model.architecture", nil}, {"spec.model.from", map[string]any{"uri": "s3://models/smollm2-135m?endpoint=http://minio:9000&region=us-east-1"}},
			{"spec.training.checkpointsToKeep", int64(1000)}},
		map[string]any{"spec.training.checkpointsToKeep": int64(1000)}},
	{"DPO default checkpointsToKeep", "DPORun", nil,
		map[string]any{"spec.training.checkpointsToKeep": int64(2)}},
}

// TestModelSourceValidation checks the CEL and OpenAPI rules of model.from.uri and checkpointsToKeep against the
// apiserver, and that the objects at their edges are stored with the defaults.
func TestModelSourceValidation(t *testing.T) {
	ns := newNamespace(t)
	for i, tc := range modelInvalidCases {
		t.Run("invalid/"+tc.kind+"/"+tc.name, func(t *testing.T) { tc.check(t, ns, fmt.Sprintf("bad-model-%d", i)) })
	}
	for i, tc := range modelValidCases {
		t.Run("valid/"+tc.kind+"/"+tc.name, func(t *testing.T) { tc.check(t, ns, fmt.Sprintf("ok-model-%d", i)) })
	}
}

// TestKubectlExplainPretrainedModels: the documentation of model.from.uri (layout, schemes, credentials, the
// memory rule of thumb), checkpointsToKeep and the new status fields reaches kubectl explain, and the parameter
// count is a wide column of both run kinds.
func TestKubectlExplainPretrainedModels(t *testing.T) {
	kubectl := kubectlFor(t)
	explain := func(field string) string {
		t.Helper()
		var out string
		eventually(t, "kubectl explain "+field, func() error {
			var err error
			out, err = kubectl("explain", field)
			return err
		})
		return out
	}
	wantAll(t, "explain sftrun.spec.model.from.uri", explain("sftrun.spec.model.from.uri"),
		"FIELD: uri <string>", "pretrained model directory in the Hugging Face layout", "model.safetensors.index.json",
		"hf://<org>/<name>", "@<revision>", "HF_TOKEN", "spec.output.secretRef", "--trainer-env", "HF_ENDPOINT",
		"about 16 bytes per parameter", "InsufficientMemory", "status.sourceModel")
	wantAll(t, "explain sftrun.spec.training.checkpointsToKeep", explain("sftrun.spec.training.checkpointsToKeep"),
		"FIELD: checkpointsToKeep <integer>", "the newest complete checkpoint is never deleted", "status.checkpoints lists only those kept")
	wantAll(t, "explain dporun.spec.resources.memory", explain("dporun.spec.resources.memory"),
		"may be left empty", "16 bytes per parameter", "OutOfMemory")
	for _, kind := range []string{"sftrun", "dporun"} {
		wantAll(t, "explain "+kind+".status", explain(kind+".status"),
			"architecture", "parameterCount", "sourceModel", "modelDigest")
		wantAll(t, "explain "+kind+".status.sourceModel", explain(kind+".status.sourceModel"),
			"commit", "Hugging Face Hub commit", "digest", "uri")
	}

	ns := newNamespace(t)
	run := newSFTRun(ns, "smol", "arith")
	run.Spec.Model = v1alpha1.ModelSpec{From: &v1alpha1.ModelSource{URI: "hf://HuggingFaceTB/SmolLM2-135M"}}
	create(t, run)
	run.Status.Phase = v1alpha1.RunPhaseRunning
	run.Status.Architecture, run.Status.ParameterCount = "LlamaForCausalLM", 134515008
	if err := k8s.Status().Update(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	dpo := newDPORun(ns, "smol-dpo", "arith", "smol")
	create(t, dpo)
	dpo.Status.ParameterCount = 134515008
	if err := k8s.Status().Update(context.Background(), dpo); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"sftruns", "dporuns"} {
		var out string
		eventually(t, "kubectl get "+kind+" -o wide", func() error {
			var err error
			out, err = kubectl("get", "-n", ns, kind, "-o", "wide")
			return err
		})
		wantAll(t, "get "+kind+" -o wide", out, "PARAMS", "134515008")
		var narrow string
		eventually(t, "kubectl get "+kind, func() error {
			var err error
			narrow, err = kubectl("get", "-n", ns, kind)
			return err
		})
		if strings.Contains(narrow, "PARAMS") {
			t.Errorf("get %s shows the priority-1 column PARAMS:\n%s", kind, narrow)
		}
	}
}

// oomKill ends a pod's trainer container as the kubelet does when the kernel kills it for memory: reason
// OOMKilled, exit code 137, and the log tail as the message (FallbackToLogsOnError), the trainer had no chance to
// write its document.
func oomKill(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(pod), pod); err != nil {
		t.Fatal(err)
	}
	pod.Status.Phase = corev1.PodFailed
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: controllers.TrainerContainerName,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled",
			Message: "step 3 loss 2.1\nstep 4 loss 2.0", StartedAt: metav1.Now(), FinishedAt: metav1.Now()}}}}
	if err := k8s.Status().Update(context.Background(), pod); err != nil {
		t.Fatalf("oom-kill pod: %v", err)
	}
}

// TestRunKilledForMemory: a trainer pod the kernel kills for memory makes the run's Failed condition say
// OutOfMemory with the container's limit, while it retries and when the Job gives up.
func TestRunKilledForMemory(t *testing.T) {
	defer startManager(t)()
	ns := newNamespace(t)
	readyDataset(t, ns, "arith")
	run := newSFTRun(ns, "big", "arith")
	run.Spec.Model = v1alpha1.ModelSpec{From: &v1alpha1.ModelSource{URI: "hf://HuggingFaceTB/SmolLM2-135M"}}
	run.Spec.Resources.Memory = ptr.To(resource.MustParse("1Gi"))
	run.Spec.MaxRetries = 1
	create(t, run)
	job := waitForJob(t, ns, "SFTRun", "big")

	first := startPod(t, job, "a", corev1.PodRunning)
	oomKill(t, first)
	bumpJob(t, job, func(s *batchv1.JobStatus) { s.Failed = 1; s.Active = 0 })
	second := startPod(t, job, "b", corev1.PodRunning)
	eventually(t, "retrying after an OOM kill", func() error {
		get(t, run, ns, "big")
		if err := wantCondition(run.Status.Conditions, v1alpha1.ConditionFailed, metav1.ConditionFalse, "OutOfMemory"); err != nil {
			return err
		}
		if m := findCondition(run.Status.Conditions, "Failed").Message; !strings.Contains(m, "memory limit 1Gi") || !strings.Contains(m, "retrying") {
			return fmt.Errorf("message %q", m)
		}
		return nil
	})

	oomKill(t, second)
	failJob(t, job, "BackoffLimitExceeded", "Job has reached the specified backoff limit")
	eventually(t, "failed for memory", func() error {
		get(t, run, ns, "big")
		if err := wantCondition(run.Status.Conditions, v1alpha1.ConditionFailed, metav1.ConditionTrue, "OutOfMemory"); err != nil {
			return err
		}
		m := findCondition(run.Status.Conditions, "Failed").Message
		if !strings.Contains(m, "memory limit 1Gi (1073741824 bytes)") || !strings.Contains(m, "OOMKilled") || strings.Contains(m, "loss 2.0") {
			return fmt.Errorf("message %q: want the limit, not the log tail", m)
		}
		if run.Status.Phase != v1alpha1.RunPhaseFailed {
			return fmt.Errorf("phase %s", run.Status.Phase)
		}
		return nil
	})
	wantEvents(t, ns, "big", "Retrying", "Failed")
}

// TestPretrainedModelRuns: an SFTRun from an hf:// model hands the trainer the URI unchanged, checkpointsToKeep
// and the output Secret (whose HF_TOKEN key passes through as an environment variable); the trainer's failures
// ModelUnsupported and InsufficientMemory (exit code 3, hand-made termination messages) reach the Failed
// condition, and a success fills architecture, parameterCount and sourceModel.
func TestPretrainedModelRuns(t *testing.T) {
	defer startManager(t)()
	ns := newNamespace(t)
	readyDataset(t, ns, "arith")
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "hub", Namespace: ns}, StringData: map[string]string{"HF_TOKEN": "hf_xyz"}})

	newRun := func(name string) *v1alpha1.SFTRun {
		run := newSFTRun(ns, name, "arith")
		run.Spec.Model = v1alpha1.ModelSpec{From: &v1alpha1.ModelSource{URI: "hf://HuggingFaceTB/SmolLM2-135M@main"}}
		run.Spec.Output.SecretRef = &corev1.LocalObjectReference{Name: "hub"}
		create(t, run)
		return run
	}

	ok := newRun("smol")
	job := waitForJob(t, ns, "SFTRun", "smol")
	rc := configOf(t, job)
	if rc.Model.From != "hf://HuggingFaceTB/SmolLM2-135M@main" || rc.Model.Architecture != nil || rc.Training.CheckpointsToKeep != 2 {
		t.Errorf("trainer config model %+v checkpointsToKeep %d", rc.Model, rc.Training.CheckpointsToKeep)
	}
	c := job.Spec.Template.Spec.Containers[0]
	if len(c.EnvFrom) != 1 || c.EnvFrom[0].SecretRef == nil || c.EnvFrom[0].SecretRef.Name != "hub" {
		t.Errorf("the output Secret (HF_TOKEN) is not the trainer's environment: %+v", c.EnvFrom)
	}
	if _, ok := c.Resources.Requests[corev1.ResourceMemory]; ok {
		t.Errorf("memory requested though spec.resources.memory is empty: %v", c.Resources)
	}
	pod := startPod(t, job, "a", corev1.PodRunning)
	res := runResult("file:///mnt/pvc/outputs/preftune/"+ns+"/smol-x/model", map[string]float64{"loss": 1.5})
	res.Result.Architecture, res.Result.ParameterCount = "LlamaForCausalLM", 134515008
	res.Result.SourceURI, res.Result.SourceCommit, res.Result.SourceDigest = "hf://HuggingFaceTB/SmolLM2-135M@main", strings.Repeat("c0", 20), "sha256:5eed"
	finishPod(t, pod, 0, res)
	completeJob(t, job)
	eventually(t, "succeeded with the model described", func() error {
		get(t, ok, ns, "smol")
		if err := wantCondition(ok.Status.Conditions, v1alpha1.ConditionSucceeded, metav1.ConditionTrue, "TrainingSucceeded"); err != nil {
			return err
		}
		want := v1alpha1.SourceModelStatus{URI: "hf://HuggingFaceTB/SmolLM2-135M@main", Commit: strings.Repeat("c0", 20), Digest: "sha256:5eed"}
		if ok.Status.Architecture != "LlamaForCausalLM" || ok.Status.ParameterCount != 134515008 || ok.Status.SourceModel == nil || *ok.Status.SourceModel != want {
			return fmt.Errorf("architecture %q parameterCount %d sourceModel %+v", ok.Status.Architecture, ok.Status.ParameterCount, ok.Status.SourceModel)
		}
		return nil
	})

	for _, tc := range []struct{ name, reason, message string }{
		{"gemma", contract.ReasonModelUnsupported, `model.from: model architecture "GemmaForCausalLM" is not supported (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, GPT2LMHeadModel)`},
		{"tight", contract.ReasonInsufficientMemory, "estimated peak memory 3.10 GiB ... exceeds the container's memory limit of 2.00 GiB; batch size 2 would fit"},
	} {
		run := newRun(tc.name)
		job := waitForJob(t, ns, "SFTRun", tc.name)
		pod := startPod(t, job, "a", corev1.PodRunning)
		finishPod(t, pod, contract.ExitInvalidInput, contract.TerminationMessage{Error: &contract.Error{Reason: tc.reason, Message: tc.message}})
		failJob(t, job, "PodFailurePolicy", "Container trainer exited with code 3 matching FailJob rule at index 0")
		eventually(t, tc.name+" failed with "+tc.reason, func() error {
			get(t, run, ns, tc.name)
			if err := wantCondition(run.Status.Conditions, v1alpha1.ConditionFailed, metav1.ConditionTrue, tc.reason); err != nil {
				return err
			}
			if m := findCondition(run.Status.Conditions, "Failed").Message; !strings.Contains(m, tc.message) {
				return fmt.Errorf("message %q lacks the trainer's %q", m, tc.message)
			}
			return nil
		})
	}
}
