package controllers

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/preftune/preftune/api/v1alpha1"
	"github.com/preftune/preftune/trainer/contract"
)

var t0 = metav1.NewTime(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))

func job(suspended bool, conds ...batchv1.JobConditionType) *batchv1.Job {
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "r-sft-abcde", CreationTimestamp: t0}, Spec: batchv1.JobSpec{Suspend: ptr.To(suspended)}}
	for _, c := range conds {
		j.Status.Conditions = append(j.Status.Conditions, batchv1.JobCondition{Type: c, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded",
			Message: "Job has reached the specified backoff limit", LastTransitionTime: t0})
	}
	return j
}

// finishedLongAgo moves a Job's conditions reportGrace and more before t0: a pod not seen by then is gone.
func finishedLongAgo(j *batchv1.Job) *batchv1.Job {
	for i := range j.Status.Conditions {
		j.Status.Conditions[i].LastTransitionTime = metav1.NewTime(t0.Add(-2 * reportGrace))
	}
	return j
}

func pod(name string, phase corev1.PodPhase, exit int32, msg string) corev1.Pod {
	p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: t0}, Status: corev1.PodStatus{Phase: phase}}
	if phase == corev1.PodSucceeded || phase == corev1.PodFailed {
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: TrainerContainerName,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: exit, Message: msg}}}}
	}
	return p
}

// oomPod is a trainer pod the kernel killed for memory: reason OOMKilled, exit code 137, and a log tail as its
// message (the trainer had no chance to write its document).
func oomPod(name string, limit string) corev1.Pod {
	p := pod(name, corev1.PodFailed, 137, "step 12 loss 2.31\nstep 13 loss 2.29")
	p.Status.ContainerStatuses[0].State.Terminated.Reason = "OOMKilled"
	c := corev1.Container{Name: TrainerContainerName}
	if limit != "" {
		c.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(limit)}
	}
	p.Spec.Containers = []corev1.Container{c}
	return p
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

var ready = dependency{ready: true, reason: ReasonDatasetReady, message: "ready"}

func TestComputeRunStatus(t *testing.T) {
	result := mustJSON(contract.TerminationMessage{Result: &contract.Result{Step: 100, TotalSteps: 100, Epoch: 2,
		Metrics:  map[string]float64{"loss": 0.51234, "eval_loss": 0.61, "tokens_per_second": 4100},
		ModelURI: "file:///mnt/pvc/out/team-a/r-1/model", ModelDigest: "sha256:feed",
		Plots:        []string{"file:///mnt/pvc/out/team-a/r-1/loss.svg"},
		Checkpoints:  []contract.Checkpoint{{Step: 50, URI: "file:///mnt/pvc/out/team-a/r-1/checkpoints/step-00000050", Time: "2026-11-26T12:01:00Z"}},
		Architecture: "LlamaForCausalLM", ParameterCount: 134515008,
		SourceURI: "hf://HuggingFaceTB/SmolLM2-135M@main", SourceCommit: "93efa2f097d58c2a74874c7e644dbc9b0cee75a2", SourceDigest: "sha256:5eed",
	}})
	unsupported := mustJSON(contract.TerminationMessage{Error: &contract.Error{Reason: contract.ReasonModelUnsupported,
		Message: `model.from: config.json: architecture "GemmaForCausalLM" is not supported (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, GPT2LMHeadModel)`}})
	noMemory := mustJSON(contract.TerminationMessage{Error: &contract.Error{Reason: contract.ReasonInsufficientMemory,
		Message: "estimated peak 3.1 GiB exceeds the container's memory limit 2 GiB; batchSize 2 would fit"}})
	invalid := mustJSON(contract.TerminationMessage{Error: &contract.Error{Reason: "DatasetChanged", Message: "dataset digest is sha256:b, pinned sha256:a"}})
	unschedulable := pod("p1", corev1.PodPending, 0, "")
	unschedulable.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable",
		Message: "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."}}

	cases := []struct {
		name    string
		prev    v1alpha1.RunStatus
		obs     runObservation
		phase   v1alpha1.RunPhase
		want    map[string]string // condition type -> "Status/Reason"
		msgHas  map[string]string // condition type -> substring of message
		extra   func(t *testing.T, st v1alpha1.RunStatus)
		hasDone bool
	}{
		{name: "waits for a missing dataset",
			obs:   runObservation{dataset: dependency{reason: ReasonDatasetNotFound, message: `PreferenceDataset "d" does not exist`}, model: dependency{ready: true}},
			phase: v1alpha1.RunPhasePending,
			want: map[string]string{"DatasetReady": "False/DatasetNotFound", "Running": "False/WaitingForInputs", "Succeeded": "False/InProgress",
				"Failed": "False/InProgress", "Suspended": "False/NotSuspended"},
			msgHas: map[string]string{"Running": `"d" does not exist`}},
		{name: "DPO waits on a failed reference",
			obs:   runObservation{dataset: ready, model: dependency{condition: "ReferenceReady", reason: "ReferenceFailed", message: `SFTRun "s" failed`}},
			phase: v1alpha1.RunPhasePending,
			want:  map[string]string{"DatasetReady": "True/DatasetReady", "ReferenceReady": "False/ReferenceFailed", "Running": "False/WaitingForInputs"}},
		{name: "no output configured blocks with a reason",
			obs:   runObservation{dataset: ready, model: dependency{ready: true}, blocked: &dependency{reason: "OutputNotConfigured", message: "no output"}},
			phase: v1alpha1.RunPhasePending,
			want:  map[string]string{"Running": "False/OutputNotConfigured", "Failed": "False/InProgress"}},
		{name: "invalid spec fails",
			obs:   runObservation{dataset: ready, model: dependency{ready: true}, blocked: &dependency{reason: ReasonInvalidSpec, message: "spec.beta: bad"}},
			phase: v1alpha1.RunPhaseFailed,
			want:  map[string]string{"Failed": "True/InvalidSpec"}},
		{name: "pod pending unschedulable says why",
			prev:   v1alpha1.RunStatus{Dataset: &v1alpha1.PinnedDataset{Name: "d", Digest: "sha256:a"}},
			obs:    runObservation{job: job(false), pods: []corev1.Pod{unschedulable}},
			phase:  v1alpha1.RunPhasePending,
			want:   map[string]string{"DatasetReady": "True/Pinned", "Running": "False/Unschedulable"},
			msgHas: map[string]string{"Running": "Insufficient nvidia.com/gpu"}},
		{name: "running pod",
			obs:   runObservation{job: job(false), pods: []corev1.Pod{pod("p1", corev1.PodRunning, 0, "")}},
			phase: v1alpha1.RunPhaseRunning,
			want:  map[string]string{"Running": "True/TrainerRunning"},
			extra: func(t *testing.T, st v1alpha1.RunStatus) {
				if st.JobName != "r-sft-abcde" || st.Attempts != 1 || st.StartTime == nil {
					t.Errorf("job name %q attempts %d start %v", st.JobName, st.Attempts, st.StartTime)
				}
			}},
		{name: "retrying after a failed attempt",
			obs: runObservation{job: func() *batchv1.Job { j := job(false); j.Status.Failed = 1; j.Status.Active = 1; return j }(),
				pods: []corev1.Pod{pod("p2", corev1.PodRunning, 0, ""), pod("p1", corev1.PodFailed, 1, "out of memory")}},
			phase: v1alpha1.RunPhaseRunning,
			want:  map[string]string{"Running": "True/TrainerRunning", "Failed": "False/Retrying"},
			extra: func(t *testing.T, st v1alpha1.RunStatus) {
				if st.Attempts != 2 {
					t.Errorf("attempts = %d", st.Attempts)
				}
			}},
		{name: "retrying after the kernel killed the trainer for memory",
			obs: runObservation{job: func() *batchv1.Job { j := job(false); j.Status.Failed = 1; j.Status.Active = 1; return j }(),
				pods: []corev1.Pod{pod("p2", corev1.PodRunning, 0, ""), oomPod("p1", "2Gi")}},
			phase:  v1alpha1.RunPhaseRunning,
			want:   map[string]string{"Running": "True/TrainerRunning", "Failed": "False/OutOfMemory"},
			msgHas: map[string]string{"Failed": "memory limit 2Gi (2147483648 bytes)"}},
		{name: "failed: killed for memory shows OutOfMemory and the limit, not the log tail",
			obs:    runObservation{job: job(false, batchv1.JobFailed), pods: []corev1.Pod{oomPod("p1", "512Mi")}},
			phase:  v1alpha1.RunPhaseFailed,
			want:   map[string]string{"Failed": "True/OutOfMemory", "Running": "False/RunFailed"},
			msgHas: map[string]string{"Failed": "pod p1 for memory (OOMKilled, exit code 137; memory limit 512Mi"},
			extra: func(t *testing.T, st v1alpha1.RunStatus) {
				if m := meta.FindStatusCondition(st.Conditions, "Failed").Message; strings.Contains(m, "loss") {
					t.Errorf("Failed message carries the log tail: %q", m)
				}
			}},
		{name: "failed: killed for memory without a limit says the node ran out",
			obs:    runObservation{job: job(false, batchv1.JobFailed), pods: []corev1.Pod{oomPod("p1", "")}},
			phase:  v1alpha1.RunPhaseFailed,
			want:   map[string]string{"Failed": "True/OutOfMemory"},
			msgHas: map[string]string{"Failed": "no memory limit"}},
		{name: "failed: unsupported model architecture (exit code 3)",
			obs:    runObservation{job: job(false, batchv1.JobFailed), pods: []corev1.Pod{pod("p1", corev1.PodFailed, contract.ExitInvalidInput, unsupported)}},
			phase:  v1alpha1.RunPhaseFailed,
			want:   map[string]string{"Failed": "True/ModelUnsupported"},
			msgHas: map[string]string{"Failed": `"GemmaForCausalLM" is not supported`}},
		{name: "failed: the trainer's memory check (exit code 3)",
			obs:    runObservation{job: job(false, batchv1.JobFailed), pods: []corev1.Pod{pod("p1", corev1.PodFailed, contract.ExitInvalidInput, noMemory)}},
			phase:  v1alpha1.RunPhaseFailed,
			want:   map[string]string{"Failed": "True/InsufficientMemory"},
			msgHas: map[string]string{"Failed": "batchSize 2 would fit"}},
		{name: "pod done, Job not yet complete: still Running",
			obs:   runObservation{job: job(false), pods: []corev1.Pod{pod("p1", corev1.PodSucceeded, 0, result)}},
			phase: v1alpha1.RunPhaseRunning,
			want:  map[string]string{"Running": "False/TrainerFinished", "Succeeded": "False/InProgress"}},
		{name: "between attempts: the pod was deleted and the next is not there yet",
			prev:  v1alpha1.RunStatus{Phase: v1alpha1.RunPhaseRunning},
			obs:   runObservation{job: job(false)},
			phase: v1alpha1.RunPhaseRunning,
			want:  map[string]string{"Running": "False/Starting"}},
		{name: "a started run's next pod pending is still Running",
			prev:  v1alpha1.RunStatus{Progress: &v1alpha1.Progress{Step: 40}},
			obs:   runObservation{job: func() *batchv1.Job { j := job(false); j.Status.Failed = 1; return j }(), pods: []corev1.Pod{unschedulable, pod("p0", corev1.PodFailed, 1, "")}},
			phase: v1alpha1.RunPhaseRunning,
			want:  map[string]string{"Running": "False/Unschedulable", "Failed": "False/Retrying"}},
		{name: "suspended by the user",
			obs:   runObservation{runSuspended: true, job: job(true)},
			phase: v1alpha1.RunPhaseSuspended,
			want:  map[string]string{"Suspended": "True/SuspendedByUser", "Running": "False/Suspended"}},
		{name: "held by a queue",
			obs:   runObservation{job: job(true)},
			phase: v1alpha1.RunPhaseSuspended,
			want:  map[string]string{"Suspended": "True/WaitingForAdmission"}},
		{name: "succeeded with the trainer's result",
			obs:   runObservation{now: t0, job: job(false, batchv1.JobComplete), pods: []corev1.Pod{pod("p1", corev1.PodSucceeded, 0, result)}},
			phase: v1alpha1.RunPhaseSucceeded, hasDone: true,
			want: map[string]string{"Succeeded": "True/TrainingSucceeded", "Running": "False/Completed", "Failed": "False/Completed"},
			extra: func(t *testing.T, st v1alpha1.RunStatus) {
				if st.ModelURI != "pvc://out/team-a/r-1/model" || st.ModelDigest != "sha256:feed" || st.Progress.Percent != 100 ||
					st.Progress.Step != 100 || len(st.Checkpoints) != 1 || st.Checkpoints[0].URI != "pvc://out/team-a/r-1/checkpoints/step-00000050" ||
					st.Checkpoints[0].Time == nil || st.CompletionTime == nil || st.Progress.TokensPerSecond != "4100" ||
					len(st.Plots) != 1 || st.Plots[0] != "pvc://out/team-a/r-1/loss.svg" {
					t.Errorf("status = %+v progress %+v", st, st.Progress)
				}
				want := v1alpha1.SourceModelStatus{URI: "hf://HuggingFaceTB/SmolLM2-135M@main", Commit: "93efa2f097d58c2a74874c7e644dbc9b0cee75a2", Digest: "sha256:5eed"}
				if st.Architecture != "LlamaForCausalLM" || st.ParameterCount != 134515008 || st.SourceModel == nil || *st.SourceModel != want {
					t.Errorf("architecture %q parameterCount %d sourceModel %+v", st.Architecture, st.ParameterCount, st.SourceModel)
				}
			}},
		{name: "succeeded but the pod is gone",
			obs:   runObservation{job: finishedLongAgo(job(false, batchv1.JobComplete))},
			phase: v1alpha1.RunPhaseSucceeded, hasDone: true,
			want: map[string]string{"Succeeded": "True/ResultMissing"}},
		{name: "complete, the pod's end not in the cache yet",
			obs:   runObservation{job: job(false, batchv1.JobComplete), pods: []corev1.Pod{pod("p1", corev1.PodRunning, 0, "")}},
			phase: v1alpha1.RunPhaseRunning,
			want:  map[string]string{"Running": "False/TrainerFinished", "Succeeded": "False/InProgress", "Failed": "False/InProgress"}},
		{name: "failed, the pod's end not in the cache yet",
			obs:   runObservation{job: job(false, batchv1.JobFailed)},
			phase: v1alpha1.RunPhasePending,
			want:  map[string]string{"Running": "False/TrainerFinished", "Succeeded": "False/InProgress", "Failed": "False/InProgress"}},
		{name: "failed with the trainer's reason",
			obs:    runObservation{job: job(false, batchv1.JobFailed), pods: []corev1.Pod{pod("p1", corev1.PodFailed, 3, invalid)}},
			phase:  v1alpha1.RunPhaseFailed,
			want:   map[string]string{"Failed": "True/DatasetChanged", "Succeeded": "False/RunFailed", "Running": "False/RunFailed"},
			msgHas: map[string]string{"Failed": "pinned sha256:a"}},
		{name: "failed with a log tail instead of a document",
			obs:    runObservation{job: job(false, batchv1.JobFailed), pods: []corev1.Pod{pod("p1", corev1.PodFailed, 137, "step 40\nsignal: killed")}},
			phase:  v1alpha1.RunPhaseFailed,
			want:   map[string]string{"Failed": "True/TrainerError"},
			msgHas: map[string]string{"Failed": "signal: killed"}},
		{name: "a finished run keeps its status when the Job is gone",
			prev: v1alpha1.RunStatus{ModelURI: "s3://b/m", Conditions: []metav1.Condition{
				{Type: "Succeeded", Status: metav1.ConditionTrue, Reason: ReasonTrainingSucceeded}}},
			obs:   runObservation{generation: 2},
			phase: "", // phase is kept as it was
			want:  map[string]string{"Succeeded": "True/TrainingSucceeded"},
			extra: func(t *testing.T, st v1alpha1.RunStatus) {
				if st.ModelURI != "s3://b/m" || st.ObservedGeneration != 2 || st.Conditions[0].ObservedGeneration != 2 {
					t.Errorf("status = %+v", st)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.obs.now.IsZero() {
				tc.obs.now = t0
			}
			st, final := computeRunStatus(tc.prev, tc.obs)
			if st.Phase != tc.phase {
				t.Errorf("phase = %q, want %q", st.Phase, tc.phase)
			}
			for typ, want := range tc.want {
				c := meta.FindStatusCondition(st.Conditions, typ)
				if c == nil {
					t.Errorf("condition %s missing", typ)
					continue
				}
				if got := string(c.Status) + "/" + c.Reason; got != want {
					t.Errorf("%s = %s (%s), want %s", typ, got, c.Message, want)
				}
				if sub, ok := tc.msgHas[typ]; ok && !strings.Contains(c.Message, sub) {
					t.Errorf("%s message %q lacks %q", typ, c.Message, sub)
				}
			}
			if (final != nil) != tc.hasDone {
				t.Errorf("final document = %v, want one: %v", final, tc.hasDone)
			}
			if tc.extra != nil {
				tc.extra(t, st)
			}
			// Every non-terminal pass sets all owned conditions.
			if tc.prev.Conditions == nil {
				for _, typ := range []string{"DatasetReady", "Running", "Succeeded", "Failed", "Suspended"} {
					if meta.FindStatusCondition(st.Conditions, typ) == nil {
						t.Errorf("condition %s not set", typ)
					}
				}
			}
			again, _ := computeRunStatus(tc.prev, tc.obs)
			if !equalJSON(st, again) {
				t.Error("computeRunStatus is not deterministic")
			}
		})
	}
}

func TestRunTransitions(t *testing.T) {
	running, _ := computeRunStatus(v1alpha1.RunStatus{}, runObservation{now: t0, job: job(false), pods: []corev1.Pod{pod("p", corev1.PodRunning, 0, "")}})
	pending, _ := computeRunStatus(v1alpha1.RunStatus{}, runObservation{now: t0, job: job(false)})
	suspended, _ := computeRunStatus(running, runObservation{now: t0, runSuspended: true, job: job(true)})
	resumed, _ := computeRunStatus(suspended, runObservation{now: t0, job: job(false), pods: []corev1.Pod{pod("p2", corev1.PodRunning, 0, "")}})
	failed, _ := computeRunStatus(running, runObservation{now: t0, job: finishedLongAgo(job(false, batchv1.JobFailed))})
	oomRetry, _ := computeRunStatus(running, runObservation{now: t0, job: func() *batchv1.Job { j := job(false); j.Status.Failed = 1; return j }(),
		pods: []corev1.Pod{oomPod("p", "1Gi")}})
	checkpointed := *running.DeepCopy()
	checkpointed.Checkpoints = []v1alpha1.CheckpointStatus{{Step: 50, URI: "s3://b/r/checkpoints/step-00000050"}}
	checkpointed2 := *checkpointed.DeepCopy()
	checkpointed2.Checkpoints = append(checkpointed2.Checkpoints, v1alpha1.CheckpointStatus{Step: 100, URI: "s3://b/r/checkpoints/step-00000100"})
	resumedAttempt := *checkpointed2.DeepCopy()
	resumedAttempt.Attempts, resumedAttempt.ResumedFromStep = 2, 100
	cases := []struct {
		name       string
		prev, next v1alpha1.RunStatus
		want       []string
	}{
		{"started", pending, running, []string{"Started"}},
		{"suspended", running, suspended, []string{"Suspended"}},
		{"resumed", suspended, resumed, []string{"Started", "Resumed"}},
		{"failed", running, failed, []string{"Failed"}},
		{"an attempt killed for memory", running, oomRetry, []string{"Retrying"}},
		{"nothing changed", running, running, nil},
		{"first checkpoint", running, checkpointed, []string{"CheckpointWritten"}},
		{"newer checkpoint", checkpointed, checkpointed2, []string{"CheckpointWritten"}},
		{"same checkpoints", checkpointed2, checkpointed2, nil},
		{"an attempt resumed from a checkpoint", checkpointed2, resumedAttempt, []string{"ResumedFromCheckpoint"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, tr := range runTransitions(&tc.prev, &tc.next) {
				got = append(got, tr.reason)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("events = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestComputeDatasetStatus(t *testing.T) {
	report := contract.DatasetReport{Format: "standard", Digest: "sha256:d1", Counts: contract.Counts{Total: 10, Pairs: 10, Train: 9, Eval: 1},
		Lengths: contract.LengthStats{PromptMean: 6.5, PromptMax: 8, ChosenMean: 2, ChosenMax: 3}, ChosenLongerFraction: 0.1,
		Warnings: []string{"1 exact duplicate row"}}
	bad := report
	bad.Counts.Invalid, bad.Counts.Pairs = 2, 8
	bad.InvalidRows = []contract.InvalidRow{{Line: 3, Field: "chosen", Reason: "missing"}, {Line: 7, Reason: "invalid JSON at column 4"}}
	cases := []struct {
		name   string
		obs    datasetObservation
		want   string
		msgHas string
	}{
		{"no job yet", datasetObservation{}, "False/Validating", ""},
		{"running", datasetObservation{job: job(false)}, "False/Validating", "running"},
		{"valid", datasetObservation{job: job(false, batchv1.JobComplete), pods: []corev1.Pod{pod("p", corev1.PodSucceeded, 0, mustJSON(contract.TerminationMessage{Dataset: &report}))}}, "True/Valid", "10 pairs"},
		{"invalid rows name the lines", datasetObservation{job: job(false, batchv1.JobFailed), pods: []corev1.Pod{pod("p", corev1.PodFailed, 3, mustJSON(contract.TerminationMessage{Dataset: &bad}))}}, "False/InvalidRows", "line 3 field chosen: missing; line 7: invalid JSON"},
		{"unreadable source", datasetObservation{job: job(false, batchv1.JobFailed), pods: []corev1.Pod{pod("p", corev1.PodFailed, 3, mustJSON(contract.TerminationMessage{Error: &contract.Error{Reason: "InvalidDataset", Message: "no such file"}}))}}, "False/InvalidSource", "no such file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.obs.generation, tc.obs.jobName, tc.obs.now = 1, "d-validate-g1-abcde", t0
			st, _ := computeDatasetStatus(v1alpha1.PreferenceDatasetStatus{}, tc.obs)
			c := meta.FindStatusCondition(st.Conditions, "Ready")
			if got := string(c.Status) + "/" + c.Reason; got != tc.want || !strings.Contains(c.Message, tc.msgHas) {
				t.Errorf("Ready = %s %q, want %s containing %q", got, c.Message, tc.want, tc.msgHas)
			}
			if st.ObservedGeneration != 1 || st.ValidationJobName != "d-validate-g1-abcde" {
				t.Errorf("generation %d job %s", st.ObservedGeneration, st.ValidationJobName)
			}
			if tc.want == "True/Valid" && (st.Digest != "sha256:d1" || st.Counts.Train != 9 || st.Lengths.PromptMean != "6.5" || len(st.Warnings) != 1) {
				t.Errorf("status = %+v", st)
			}
			if tc.want == "False/InvalidRows" && (len(st.InvalidRows) != 2 || st.InvalidRows[0].Line != 3 || st.Counts.Invalid != 2) {
				t.Errorf("invalid rows = %+v", st.InvalidRows)
			}
			// A validated generation is never validated again, even when its Job is gone.
			if tc.want != "False/Validating" {
				again, _ := computeDatasetStatus(st, datasetObservation{generation: 1, jobName: tc.obs.jobName, now: t0})
				if !equalJSON(again, st) {
					t.Error("validated status changed without a new generation")
				}
			}
		})
	}
}

// TestRunPhaseOnlyMovesForward feeds a run's whole life, as the reconciler sees it pass after pass (each status the
// next pass's prev), and checks that the phase never goes back: Pending, Running, then Succeeded.
func TestRunPhaseOnlyMovesForward(t *testing.T) {
	result := mustJSON(contract.TerminationMessage{Result: &contract.Result{Step: 10, TotalSteps: 10}})
	withFailed := func(n int32) *batchv1.Job { j := job(false); j.Status.Failed = n; return j }
	passes := []runObservation{
		{dataset: dependency{reason: ReasonDatasetNotReady, message: "validating"}, model: dependency{ready: true}},
		{dataset: ready, model: dependency{ready: true}},
		{job: job(false)},
		{job: job(false), pods: []corev1.Pod{pod("p1", corev1.PodPending, 0, "")}},
		{job: job(false), pods: []corev1.Pod{pod("p1", corev1.PodRunning, 0, "")}},
		{job: job(false)}, // the pod was deleted; the Job has not made the next one yet
		{job: withFailed(1), pods: []corev1.Pod{pod("p2", corev1.PodPending, 0, "")}},
		{job: withFailed(1), pods: []corev1.Pod{pod("p2", corev1.PodRunning, 0, "")}},
		{job: withFailed(1), pods: []corev1.Pod{pod("p2", corev1.PodSucceeded, 0, result)}}, // Job not complete yet
		{job: job(false, batchv1.JobComplete), pods: []corev1.Pod{pod("p2", corev1.PodSucceeded, 0, result)}},
	}
	order := map[v1alpha1.RunPhase]int{v1alpha1.RunPhasePending: 0, v1alpha1.RunPhaseRunning: 1, v1alpha1.RunPhaseSucceeded: 2}
	var st v1alpha1.RunStatus
	var seen []v1alpha1.RunPhase
	for i, obs := range passes {
		obs.now = t0
		st, _ = computeRunStatus(st, obs)
		seen = append(seen, st.Phase)
		if i > 0 && order[st.Phase] < order[seen[i-1]] {
			t.Fatalf("pass %d: phase went back from %s to %s (phases %v)", i, seen[i-1], st.Phase, seen)
		}
	}
	if seen[0] != v1alpha1.RunPhasePending || seen[4] != v1alpha1.RunPhaseRunning || st.Phase != v1alpha1.RunPhaseSucceeded {
		t.Errorf("phases %v: want Pending first, Running once the pod runs, Succeeded last", seen)
	}
}

// TestAwaitingResult: how long a pass asks to come back for a finished Job whose pod's end is not yet seen.
func TestAwaitingResult(t *testing.T) {
	at := func(d time.Duration) metav1.Time { return metav1.NewTime(t0.Add(d)) }
	done := pod("p", corev1.PodSucceeded, 0, "{}")
	cases := []struct {
		name string
		obs  runObservation
		want time.Duration
	}{
		{"no Job", runObservation{now: t0}, 0},
		{"Job running", runObservation{now: t0, job: job(false)}, 0},
		{"complete, no pod, 10 s later", runObservation{now: at(10 * time.Second), job: job(false, batchv1.JobComplete)}, reportGrace - 10*time.Second},
		{"complete, pod terminated", runObservation{now: at(time.Second), job: job(false, batchv1.JobComplete), pods: []corev1.Pod{done}}, 0},
		{"failed, succeeded pod does not count", runObservation{now: t0, job: job(false, batchv1.JobFailed), pods: []corev1.Pod{done}}, reportGrace},
		{"complete, grace over", runObservation{now: at(reportGrace + time.Second), job: job(false, batchv1.JobComplete)}, 0},
	}
	for _, tc := range cases {
		if got := awaitingResult(tc.obs); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}
