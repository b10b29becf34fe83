package controllers

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/preftune/preftune/api/v1alpha1"
)

// transition is one event worth telling the user about.
type transition struct {
	eventType, reason, note string
}

// runTransitions lists the events between two statuses of a run: started, suspended, resumed, retrying,
// succeeded, failed, and inputs that block it. Pure, so it is table-tested.
func runTransitions(prev, next *v1alpha1.RunStatus) []transition {
	var out []transition
	changed := func(t string) (*metav1.Condition, bool) {
		n := meta.FindStatusCondition(next.Conditions, t)
		p := meta.FindStatusCondition(prev.Conditions, t)
		if n == nil {
			return nil, false
		}
		return n, p == nil || p.Status != n.Status || p.Reason != n.Reason
	}
	for _, t := range []string{v1alpha1.ConditionDatasetReady, v1alpha1.ConditionReferenceReady} {
		if c, ok := changed(t); ok && c.Status == metav1.ConditionFalse && c.Reason != ReasonDatasetNotReady && c.Reason != "ReferenceNotReady" {
			out = append(out, transition{corev1.EventTypeWarning, c.Reason, c.Message})
		}
	}
	if c, ok := changed(v1alpha1.ConditionRunning); ok {
		switch {
		case c.Status == metav1.ConditionTrue:
			out = append(out, transition{corev1.EventTypeNormal, "Started", c.Message})
		case c.Reason == "Unschedulable":
			out = append(out, transition{corev1.EventTypeWarning, "Unschedulable", c.Message})
		case c.Reason == ReasonWaitingForProgressCertificate:
			out = append(out, transition{corev1.EventTypeNormal, c.Reason, c.Message})
		case c.Reason == ReasonChatTemplateNotFound:
			out = append(out, transition{corev1.EventTypeWarning, c.Reason, c.Message})
		}
	}
	if c, ok := changed(v1alpha1.ConditionSuspended); ok && prev.Conditions != nil {
		if c.Status == metav1.ConditionTrue {
			out = append(out, transition{corev1.EventTypeNormal, "Suspended", c.Message})
		} else if meta.IsStatusConditionTrue(prev.Conditions, v1alpha1.ConditionSuspended) {
			out = append(out, transition{corev1.EventTypeNormal, "Resumed", "the run resumes from its newest checkpoint"})
		}
	}
	if c, ok := changed(v1alpha1.ConditionFailed); ok && c.Status == metav1.ConditionFalse && (c.Reason == ReasonRetrying || c.Reason == ReasonOutOfMemory) {
		out = append(out, transition{corev1.EventTypeWarning, "Retrying", c.Message})
	}
	if n := len(next.Checkpoints); n > 0 && (len(prev.Checkpoints) == 0 || next.Checkpoints[n-1].Step > prev.Checkpoints[len(prev.Checkpoints)-1].Step) {
		c := next.Checkpoints[n-1]
		out = append(out, transition{corev1.EventTypeNormal, "CheckpointWritten", fmt.Sprintf("checkpoint at step %d: %s", c.Step, c.URI)})
	}
	if next.ResumedFromStep > 0 && (next.ResumedFromStep != prev.ResumedFromStep || next.Attempts != prev.Attempts) {
		out = append(out, transition{corev1.EventTypeNormal, "ResumedFromCheckpoint",
			fmt.Sprintf("attempt %d resumed from the checkpoint at step %d", next.Attempts, next.ResumedFromStep)})
	}
	if c, ok := changed(v1alpha1.ConditionSucceeded); ok && c.Status == metav1.ConditionTrue {
		out = append(out, transition{corev1.EventTypeNormal, "Succeeded", c.Message})
	}
	if c, ok := changed(v1alpha1.ConditionFailed); ok && c.Status == metav1.ConditionTrue {
		out = append(out, transition{corev1.EventTypeWarning, "Failed", c.Reason + ": " + c.Message})
	}
	return out
}

func (r *RunReconciler) recordTransitions(run Run, before Run) {
	for _, t := range runTransitions(before.Status(), run.Status()) {
		r.Recorder.Eventf(run.Object(), nil, t.eventType, t.reason, t.reason, "%s", t.note)
	}
}
