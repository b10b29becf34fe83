package controllers

import (
	"fmt"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/preftune/preftune/api/v1alpha1"
	"github.com/preftune/preftune/trainer/contract"
)

// Reasons of the dataset's Ready condition.
const (
	ReasonValidating       = "Validating"
	ReasonValid            = "Valid"
	ReasonInvalidRows      = "InvalidRows"
	ReasonInvalidSource    = "InvalidSource"
	ReasonValidationFailed = "ValidationFailed"
)

// datasetObservation is what one pass saw of a dataset's validation.
type datasetObservation struct {
	generation int64
	now        metav1.Time
	jobName    string
	// job is nil when it is not (or no longer) there.
	job  *batchv1.Job
	pods []corev1.Pod
	// blocked says why no validation Job can be created yet (a missing chat template).
	blocked *dependency
}

// validated reports whether status already holds the outcome of validating this generation with this Job, so no
// Job needs to run (its Job may be gone already).
func validated(st *v1alpha1.PreferenceDatasetStatus, generation int64, jobName string) bool {
	c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionReady)
	return c != nil && c.Reason != ReasonValidating && c.Reason != ReasonChatTemplateNotFound &&
		st.ObservedGeneration == generation && st.ValidationJobName == jobName
}

// reportGrace bounds how long a finished validation Job may go without a terminated pod in the cache. The Job's
// and the pod's informers are separate: the Job can be seen complete before its pod's final status (and its
// termination message) reaches the cache, so a finished Job without a terminated pod is still Validating until
// the grace has passed since the Job finished; the pod's update requeues the dataset (podToOwner).
const reportGrace = time.Minute

// computeDatasetStatus derives a dataset's status from its validation Job and pods. Pure. requeueAfter is
// positive while the status waits for a finished Job's pod: the reconciler comes back then, even when no pod
// event arrives.
func computeDatasetStatus(prev v1alpha1.PreferenceDatasetStatus, obs datasetObservation) (st v1alpha1.PreferenceDatasetStatus, requeueAfter time.Duration) {
	if validated(&prev, obs.generation, obs.jobName) {
		return prev, 0
	}
	st = *prev.DeepCopy()
	st.ObservedGeneration = obs.generation
	st.ValidationJobName = obs.jobName
	ready := func(ok bool, reason, msg string) {
		c := condition(v1alpha1.ConditionReady, ok, reason, msg, obs.generation)
		c.LastTransitionTime = obs.now
		meta.SetStatusCondition(&st.Conditions, c)
	}
	job := obs.job
	if job == nil && obs.blocked != nil {
		ready(false, obs.blocked.reason, obs.blocked.message)
		return st, obs.blocked.retryAfter
	}
	if job == nil {
		ready(false, ReasonValidating, "creating the validation Job")
		return st, 0
	}
	complete, failed := jobCondition(job, batchv1.JobComplete), jobCondition(job, batchv1.JobFailed)
	if complete == nil && failed == nil {
		msg := fmt.Sprintf("validation Job %s is running", job.Name)
		if pod := podByPhase(obs.pods, corev1.PodPending); pod != nil {
			if reason, m := pendingReason(pod); reason != "PodPending" {
				msg = m
			}
		}
		ready(false, ReasonValidating, msg)
		return st, 0
	}
	finished := complete
	phase := corev1.PodSucceeded
	if failed != nil {
		finished, phase = failed, corev1.PodFailed
	}
	var tm contract.TerminationMessage
	seen := false
	if pod := podByPhase(obs.pods, phase); pod != nil {
		if t := terminated(pod); t != nil {
			seen = true
			tm = parseTerminationMessage(t.Message)
		}
	}
	if !seen {
		if wait := reportWait(finished, obs.now); wait > 0 {
			ready(false, ReasonValidating, fmt.Sprintf("validation Job %s finished; waiting for its pod's report", job.Name))
			return st, wait
		}
	}
	st.ValidatedTime = &obs.now
	switch {
	case tm.Dataset != nil:
		applyDatasetReport(&st, tm.Dataset)
		c := tm.Dataset.Counts
		if c.Invalid > c.Skipped {
			ready(false, ReasonInvalidRows, invalidRowsMessage(tm.Dataset))
		} else if complete != nil {
			msg := fmt.Sprintf("%d pairs (%d train, %d eval), %s", c.Pairs, c.Train, c.Eval, tm.Dataset.Digest)
			if c.Skipped > 0 {
				msg += fmt.Sprintf("; %d invalid rows skipped (spec.invalidRows Skip): %s", c.Skipped, firstLines(tm.Dataset))
			}
			ready(true, ReasonValid, msg)
		} else {
			ready(false, ReasonValidationFailed, "the validation Job failed: "+failed.Message)
		}
	case tm.Error != nil:
		ready(false, ReasonInvalidSource, tm.Error.Reason+": "+tm.Error.Message)
	case failed != nil:
		ready(false, ReasonValidationFailed, fmt.Sprintf("the validation Job failed (%s): %s", failed.Reason, failed.Message))
	case !seen:
		ready(false, ReasonValidationFailed, fmt.Sprintf("the validation Job completed but its report could not be read from its pod (none seen terminated within %s)", reportGrace))
	default:
		ready(false, ReasonValidationFailed, "the validation Job completed but its report could not be read from its pod (its termination message holds none)")
	}
	return st, 0
}

// reportWait is how much longer to wait for the pod of a Job that finished: reportGrace after the Job's condition
// turned true. A condition without a time (never written so by the Job controller) gets no grace. Runs wait for
// their trainer's result the same way (awaitingResult).
func reportWait(finished *batchv1.JobCondition, now metav1.Time) time.Duration {
	if finished.LastTransitionTime.IsZero() {
		return 0
	}
	return finished.LastTransitionTime.Add(reportGrace).Sub(now.Time)
}

// invalidRowsMessage names the first bad lines, so `kubectl get -o wide` and events point at them.
func invalidRowsMessage(r *contract.DatasetReport) string {
	var parts []string
	for i, row := range r.InvalidRows {
		if i == 3 {
			break
		}
		s := fmt.Sprintf("line %d", row.Line)
		if row.Field != "" {
			s += " field " + row.Field
		}
		parts = append(parts, s+": "+row.Reason)
	}
	return fmt.Sprintf("%d of %d rows are invalid; %s", r.Counts.Invalid, r.Counts.Total, strings.Join(parts, "; "))
}

// firstLines names the first listed invalid rows' lines ("lines 2, 3").
func firstLines(r *contract.DatasetReport) string {
	var lines []string
	for _, row := range r.InvalidRows {
		lines = append(lines, fmt.Sprint(row.Line))
	}
	if len(lines) == 0 {
		return "see status.invalidRows"
	}
	s := "line "
	if len(lines) > 1 {
		s = "lines "
	}
	s += strings.Join(lines, ", ")
	if more := r.Counts.Skipped - len(lines); more > 0 {
		s += fmt.Sprintf(" and %d more", more)
	}
	return s
}

func applyDatasetReport(st *v1alpha1.PreferenceDatasetStatus, r *contract.DatasetReport) {
	st.Format = r.Format
	st.Digest = r.Digest
	st.Counts = &v1alpha1.DatasetCounts{
		Total: int64(r.Counts.Total), Pairs: int64(r.Counts.Pairs), Train: int64(r.Counts.Train),
		Eval: int64(r.Counts.Eval), Invalid: int64(r.Counts.Invalid), Skipped: int64(r.Counts.Skipped),
	}
	st.SplitBy = r.SplitBy
	st.Lengths = &v1alpha1.LengthStatistics{
		PromptMean: formatFloat(r.Lengths.PromptMean), PromptMax: int64(r.Lengths.PromptMax),
		ChosenMean: formatFloat(r.Lengths.ChosenMean), ChosenMax: int64(r.Lengths.ChosenMax),
		RejectedMean: formatFloat(r.Lengths.RejectedMean), RejectedMax: int64(r.Lengths.RejectedMax),
		ChosenLongerFraction: formatFloat(r.ChosenLongerFraction),
	}
	st.Tokens = nil
	if t := r.Tokens; t != nil {
		st.Tokens = &v1alpha1.TokenStatistics{PromptMean: formatFloat(t.PromptMean), PromptMax: int64(t.PromptMax),
			ChosenMean: formatFloat(t.ChosenMean), ChosenMax: int64(t.ChosenMax)}
		if t.RejectedMax > 0 || t.RejectedMean > 0 {
			st.Tokens.RejectedMean, st.Tokens.RejectedMax = formatFloat(t.RejectedMean), int64(t.RejectedMax)
		}
	}
	st.Truncation = truncationStatus(r.Truncation)
	st.InvalidRows = nil
	for _, row := range r.InvalidRows {
		st.InvalidRows = append(st.InvalidRows, v1alpha1.InvalidRow{Line: int64(row.Line), Field: row.Field, Reason: row.Reason})
	}
	st.Warnings = r.Warnings
}
