package controllers

import (
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/preftune/preftune/api/v1alpha1"
	"github.com/preftune/preftune/trainer/contract"
)

// Reasons of run conditions.
const (
	ReasonPinned            = "Pinned"
	ReasonDatasetNotFound   = "DatasetNotFound"
	ReasonDatasetNotReady   = "DatasetNotReady"
	ReasonDatasetInvalid    = "DatasetInvalid"
	ReasonDatasetReady      = "DatasetReady"
	ReasonWaitingForInputs  = "WaitingForInputs"
	ReasonInvalidSpec       = "InvalidSpec"
	ReasonStarting          = "Starting"
	ReasonTrainerRunning    = "TrainerRunning"
	ReasonSuspended         = "Suspended"
	ReasonNotSuspended      = "NotSuspended"
	ReasonSuspendedByUser   = "SuspendedByUser"
	ReasonWaitingAdmission  = "WaitingForAdmission"
	ReasonCompleted         = "Completed"
	ReasonInProgress        = "InProgress"
	ReasonRetrying          = "Retrying"
	ReasonTrainingSucceeded = "TrainingSucceeded"
	ReasonResultMissing     = "ResultMissing"
	ReasonJobFailed         = "JobFailed"
	ReasonRunFailed         = "RunFailed"
	ReasonTrainerFinished   = "TrainerFinished"
	ReasonRestarting        = "Restarting"
	// ReasonWaitingForProgressCertificate: the run's Job waits until the progress endpoint's certificate is ready.
	ReasonWaitingForProgressCertificate = "WaitingForProgressCertificate"
	// ReasonOutOfMemory: the kernel killed the trainer for memory (its container's reason is OOMKilled).
	ReasonOutOfMemory = contract.ReasonOutOfMemory
)

// maxStatusCheckpoints bounds status.checkpoints: the newest few are what users act on.
const maxStatusCheckpoints = 5

// runObservation is what one reconcile pass saw of a run's world.
type runObservation struct {
	generation int64
	now        metav1.Time
	// dataset is the DatasetReady state before the run is pinned to a dataset.
	dataset dependency
	// model is the kind's own input: DPO's reference (ReferenceReady) or SFT's model.from.sftRun.
	model dependency
	// blocked explains why no Job can be created although inputs are ready (e.g. no output configured).
	blocked      *dependency
	runSuspended bool
	job          *batchv1.Job
	// pods of the Job, newest first.
	pods []corev1.Pod
}

// computeRunStatus derives a run's status from what was observed. It is pure: the same observation gives the same
// status. It returns the trainer's final document when the run has just finished, so the caller can copy the
// kind's metrics.
func computeRunStatus(prev v1alpha1.RunStatus, obs runObservation) (v1alpha1.RunStatus, *contract.TerminationMessage) {
	st := *prev.DeepCopy()
	st.ObservedGeneration = obs.generation
	set := func(c metav1.Condition) {
		c.ObservedGeneration = obs.generation
		c.LastTransitionTime = obs.now // kept by SetStatusCondition unless the status flips; keeps this function pure
		meta.SetStatusCondition(&st.Conditions, c)
	}
	if isTrue(prev.Conditions, v1alpha1.ConditionSucceeded) || isTrue(prev.Conditions, v1alpha1.ConditionFailed) {
		// Finished runs keep their status; their Job may already be gone (ttlSecondsAfterFinished).
		for i := range st.Conditions {
			st.Conditions[i].ObservedGeneration = obs.generation
		}
		return st, nil
	}

	if st.Dataset != nil {
		set(condition(v1alpha1.ConditionDatasetReady, true, ReasonPinned,
			fmt.Sprintf("dataset %q pinned at digest %s", st.Dataset.Name, st.Dataset.Digest), 0))
	} else if obs.dataset.reason != "" {
		set(condition(v1alpha1.ConditionDatasetReady, obs.dataset.ready, obs.dataset.reason, obs.dataset.message, 0))
	} else {
		// A Job from before pins were recorded on Jobs: it runs, but what it pinned is unknown.
		set(condition(v1alpha1.ConditionDatasetReady, obs.job != nil, "PinUnknown", "the dataset's pinned digest is not recorded", 0))
	}
	if obs.model.condition != "" {
		set(condition(obs.model.condition, obs.model.ready, obs.model.reason, obs.model.message, 0))
	}

	jobSuspended := obs.job != nil && obs.job.Spec.Suspend != nil && *obs.job.Spec.Suspend
	switch {
	case obs.runSuspended:
		set(condition(v1alpha1.ConditionSuspended, true, ReasonSuspendedByUser, "spec.suspend is true", 0))
	case jobSuspended:
		set(condition(v1alpha1.ConditionSuspended, true, ReasonWaitingAdmission, "the Job is suspended until its queue admits it", 0))
	default:
		set(condition(v1alpha1.ConditionSuspended, false, ReasonNotSuspended, "", 0))
	}

	var final *contract.TerminationMessage
	if obs.job == nil {
		running := waitingCondition(obs)
		set(running)
		failed := running.Reason == ReasonInvalidSpec
		set(condition(v1alpha1.ConditionSucceeded, false, ReasonInProgress, "", 0))
		if failed {
			set(condition(v1alpha1.ConditionFailed, true, ReasonInvalidSpec, running.Message, 0))
			st.CompletionTime = &obs.now
		} else {
			set(condition(v1alpha1.ConditionFailed, false, ReasonInProgress, "", 0))
		}
	} else {
		if st.StartTime == nil {
			t := obs.job.CreationTimestamp
			st.StartTime = &t
		}
		st.JobName = obs.job.Name
		st.Attempts = max(st.Attempts, attempts(obs.job, obs.pods))
		final = jobConditions(&st, obs, set, jobSuspended)
	}
	st.Phase = phase(st.Conditions, started(prev, st, obs.pods))
	return st, final
}

// started reports whether the run's trainer has ever run: the previous phase was Running, the trainer reported
// progress (status.progress is only ever written from its reports), or a pod of its Job has run. A started run's
// phase never goes back to Pending: between two attempts, and between the pod's exit and the Job's completion, it
// stays Running while the Running condition says what is happening.
func started(prev, st v1alpha1.RunStatus, pods []corev1.Pod) bool {
	if prev.Phase == v1alpha1.RunPhaseRunning || st.Progress != nil {
		return true
	}
	return podByPhase(pods, corev1.PodRunning, corev1.PodSucceeded, corev1.PodFailed) != nil
}

// waitingCondition is the Running condition of a run without a Job: what it waits for, first things first.
func waitingCondition(obs runObservation) metav1.Condition {
	switch {
	case obs.model.reason == ReasonInvalidSpec:
		return condition(v1alpha1.ConditionRunning, false, ReasonInvalidSpec, obs.model.message, 0)
	case obs.blocked != nil && obs.blocked.reason == ReasonInvalidSpec:
		return condition(v1alpha1.ConditionRunning, false, ReasonInvalidSpec, obs.blocked.message, 0)
	case !obs.dataset.ready:
		return condition(v1alpha1.ConditionRunning, false, ReasonWaitingForInputs, "waiting for the dataset: "+obs.dataset.message, 0)
	case !obs.model.ready:
		return condition(v1alpha1.ConditionRunning, false, ReasonWaitingForInputs, obs.model.message, 0)
	case obs.blocked != nil:
		return condition(v1alpha1.ConditionRunning, false, obs.blocked.reason, obs.blocked.message, 0)
	}
	return condition(v1alpha1.ConditionRunning, false, ReasonStarting, "creating the trainer Job", 0)
}

// jobConditions sets Running, Succeeded and Failed from the Job and its pods.
func jobConditions(st *v1alpha1.RunStatus, obs runObservation, set func(metav1.Condition), jobSuspended bool) *contract.TerminationMessage {
	job := obs.job
	if awaitingResult(obs) > 0 {
		// The Job finished, but the cache has not shown its pod's end yet: a run's outcome is final, so wait for it.
		set(condition(v1alpha1.ConditionRunning, false, ReasonTrainerFinished,
			"the Job finished; waiting for the trainer's result from its pod", 0))
		set(condition(v1alpha1.ConditionSucceeded, false, ReasonInProgress, "", 0))
		set(condition(v1alpha1.ConditionFailed, false, ReasonInProgress, "", 0))
		return nil
	}
	if c := jobCondition(job, batchv1.JobComplete); c != nil {
		var tm contract.TerminationMessage
		if pod := podByPhase(obs.pods, corev1.PodSucceeded); pod != nil {
			if t := terminated(pod); t != nil {
				tm = parseTerminationMessage(t.Message)
			}
		}
		set(condition(v1alpha1.ConditionRunning, false, ReasonCompleted, "the trainer finished", 0))
		set(condition(v1alpha1.ConditionFailed, false, ReasonCompleted, "", 0))
		if tm.Result == nil {
			set(condition(v1alpha1.ConditionSucceeded, true, ReasonResultMissing,
				"the Job completed but the trainer's result could not be read from its pod", 0))
		} else {
			applyResult(st, tm.Result, obs.now)
			set(condition(v1alpha1.ConditionSucceeded, true, ReasonTrainingSucceeded, succeededMessage(st, tm.Result.Step), 0))
		}
		st.CompletionTime = completionTime(c, obs.now)
		return &tm
	}
	if c := jobCondition(job, batchv1.JobFailed); c != nil {
		reason, msg := c.Reason, c.Message
		if reason == "" {
			reason = ReasonJobFailed
		}
		if pod := podByPhase(obs.pods, corev1.PodFailed); pod != nil {
			if r, m, ok := podFailure(pod); ok {
				reason, msg = r, fmt.Sprintf("%s (Job: %s)", m, c.Message)
			}
		}
		set(condition(v1alpha1.ConditionRunning, false, ReasonRunFailed, "the trainer failed", 0))
		set(condition(v1alpha1.ConditionSucceeded, false, ReasonRunFailed, "", 0))
		set(condition(v1alpha1.ConditionFailed, true, reason, msg, 0))
		st.CompletionTime = completionTime(c, obs.now)
		return nil
	}

	set(condition(v1alpha1.ConditionSucceeded, false, ReasonInProgress, "", 0))
	if failedPod := podByPhase(obs.pods, corev1.PodFailed); failedPod != nil && job.Status.Failed > 0 {
		reason, msg := ReasonRetrying, fmt.Sprintf("attempt %d failed", job.Status.Failed)
		if r, m, ok := podFailure(failedPod); ok {
			msg += ": " + m
			if r == ReasonOutOfMemory {
				reason = r // the one failure users must act on (more memory, a smaller batch) before it repeats
			}
		}
		set(condition(v1alpha1.ConditionFailed, false, reason, msg+"; retrying", 0))
	} else {
		set(condition(v1alpha1.ConditionFailed, false, ReasonInProgress, "", 0))
	}
	switch running, pending := podByPhase(obs.pods, corev1.PodRunning), podByPhase(obs.pods, corev1.PodPending); {
	case jobSuspended:
		set(condition(v1alpha1.ConditionRunning, false, ReasonSuspended, "the Job is suspended", 0))
	case running != nil:
		set(condition(v1alpha1.ConditionRunning, true, ReasonTrainerRunning,
			fmt.Sprintf("pod %s is training (attempt %d)", running.Name, st.Attempts), 0))
	case pending != nil:
		reason, msg := pendingReason(pending)
		set(condition(v1alpha1.ConditionRunning, false, reason, msg, 0))
	case podByPhase(obs.pods, corev1.PodSucceeded) != nil:
		// The pod is done and the Job controller has not yet marked the Job complete (a second or two).
		set(condition(v1alpha1.ConditionRunning, false, ReasonTrainerFinished,
			"the trainer finished; waiting for the Job to complete", 0))
	case podByPhase(obs.pods, corev1.PodFailed) != nil || job.Status.Failed > 0:
		set(condition(v1alpha1.ConditionRunning, false, ReasonRestarting,
			"an attempt ended; waiting for the Job to start the next pod", 0))
	default:
		set(condition(v1alpha1.ConditionRunning, false, ReasonStarting, "waiting for the Job to start a pod", 0))
	}
	return nil
}

// succeededMessage says where the outputs are: the model, the adapter, or both.
func succeededMessage(st *v1alpha1.RunStatus, steps int) string {
	switch {
	case st.AdapterURI != "" && st.ModelURI != "":
		return fmt.Sprintf("trained %d steps; adapter at %s, merged model at %s", steps, st.AdapterURI, st.ModelURI)
	case st.AdapterURI != "":
		return fmt.Sprintf("trained %d steps; adapter at %s (no merged model)", steps, st.AdapterURI)
	}
	return fmt.Sprintf("trained %d steps; model at %s", steps, st.ModelURI)
}

// awaitingResult is how much longer a run waits for the pod of its finished Job: the Job's and the pod's
// informers are separate, so the Job can be seen complete (or failed) before its pod's terminated state, which
// holds the trainer's result (or its error, or OOMKilled). Until reportGrace has passed since the Job finished, a
// run without such a pod is not finished; 0 when nothing is awaited.
func awaitingResult(obs runObservation) time.Duration {
	if obs.job == nil {
		return 0
	}
	finished, phase := jobCondition(obs.job, batchv1.JobComplete), corev1.PodSucceeded
	if finished == nil {
		finished, phase = jobCondition(obs.job, batchv1.JobFailed), corev1.PodFailed
	}
	if finished == nil {
		return 0
	}
	if pod := podByPhase(obs.pods, phase); pod != nil && terminated(pod) != nil {
		return 0
	}
	return max(0, reportWait(finished, obs.now))
}

// applyResult copies the shared part of the trainer's result into status.
func applyResult(st *v1alpha1.RunStatus, res *contract.Result, now metav1.Time) {
	pct := int32(100)
	if res.TotalSteps > 0 {
		pct = int32(min(100, 100*res.Step/res.TotalSteps))
	}
	st.Progress = &v1alpha1.Progress{
		Step: int64(res.Step), TotalSteps: int64(res.TotalSteps), Percent: pct,
		Epoch:          formatFloat(res.Epoch),
		LastUpdateTime: &now,
	}
	if tps, ok := res.Metrics["tokens_per_second"]; ok {
		st.Progress.TokensPerSecond = formatFloat(tps)
	}
	st.Progress.ETASeconds = nil
	st.ModelURI = unmapURI(res.ModelURI)
	st.ModelDigest = res.ModelDigest
	st.Architecture = res.Architecture
	st.ParameterCount = res.ParameterCount
	st.TrainableParameterCount = res.TrainableParameterCount
	st.AdapterURI = unmapURI(res.AdapterURI)
	st.Truncation = truncationStatus(res.Truncation)
	st.SourceModel = nil
	if res.SourceURI != "" || res.SourceCommit != "" || res.SourceDigest != "" {
		st.SourceModel = &v1alpha1.SourceModelStatus{URI: unmapURI(res.SourceURI), Commit: res.SourceCommit, Digest: res.SourceDigest}
	}
	st.ResumedFromStep = int64(res.ResumedFromStep)
	st.Warnings = res.Warnings
	st.Plots = nil
	for _, u := range res.Plots {
		st.Plots = append(st.Plots, unmapURI(u))
	}
	st.Checkpoints = nil
	for _, c := range res.Checkpoints {
		cs := v1alpha1.CheckpointStatus{Step: int64(c.Step), URI: unmapURI(c.URI)}
		if t, err := time.Parse(time.RFC3339, c.Time); err == nil {
			mt := metav1.NewTime(t)
			cs.Time = &mt
		}
		st.Checkpoints = append(st.Checkpoints, cs)
	}
	if n := len(st.Checkpoints); n > maxStatusCheckpoints {
		st.Checkpoints = st.Checkpoints[n-maxStatusCheckpoints:]
	}
}

// truncationStatus is the API's form of the trainer's truncation counts (nil stays nil).
func truncationStatus(t *contract.Truncation) *v1alpha1.TruncationStatus {
	if t == nil {
		return nil
	}
	return &v1alpha1.TruncationStatus{ContextLength: int64(t.ContextLength), RowsTruncated: int64(t.RowsTruncated),
		PromptsEmptied: int64(t.PromptsEmptied), ResponsesCut: int64(t.ResponsesCut), IdenticalPairs: int64(t.IdenticalPairs)}
}

func formatFloat(v float64) string {
	return fmt.Sprintf("%.4g", v)
}

func jobCondition(job *batchv1.Job, t batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range job.Status.Conditions {
		if c := &job.Status.Conditions[i]; c.Type == t && c.Status == corev1.ConditionTrue {
			return c
		}
	}
	return nil
}

func completionTime(c *batchv1.JobCondition, now metav1.Time) *metav1.Time {
	if !c.LastTransitionTime.IsZero() {
		t := c.LastTransitionTime
		return &t
	}
	return &now
}

// attempts counts trainer pods started: the Job's counters, or the pods seen when those lag behind. Pods the
// pod-failure policy ignores (disruptions) are not in the Job's failed counter but still were attempts.
func attempts(job *batchv1.Job, pods []corev1.Pod) int32 {
	n := job.Status.Failed + job.Status.Succeeded + job.Status.Active
	return max(n, int32(len(pods)))
}

// phase summarises conditions for printer columns. Phases only move forward (Pending, Running, then Succeeded or
// Failed; Suspended when asked): once started (see started) a run that is not suspended or finished is Running,
// even while its Running condition is False between attempts.
func phase(conds []metav1.Condition, started bool) v1alpha1.RunPhase {
	switch {
	case isTrue(conds, v1alpha1.ConditionFailed):
		return v1alpha1.RunPhaseFailed
	case isTrue(conds, v1alpha1.ConditionSucceeded):
		return v1alpha1.RunPhaseSucceeded
	case isTrue(conds, v1alpha1.ConditionSuspended):
		return v1alpha1.RunPhaseSuspended
	case isTrue(conds, v1alpha1.ConditionRunning), started:
		return v1alpha1.RunPhaseRunning
	}
	return v1alpha1.RunPhasePending
}
