package controllers

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/preftune/preftune/trainer/contract"
)

// terminated returns the trainer container's terminated state in pod, or nil while it has not terminated.
func terminated(pod *corev1.Pod) *corev1.ContainerStateTerminated {
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == TrainerContainerName && cs.State.Terminated != nil {
			return cs.State.Terminated
		}
	}
	return nil
}

// parseTerminationMessage reads the document the trainer left. A message that is not one (the container was
// killed before it wrote it, and the kubelet fell back to the log tail) becomes an Error carrying that text.
func parseTerminationMessage(msg string) contract.TerminationMessage {
	var tm contract.TerminationMessage
	trimmed := strings.TrimSpace(msg)
	if trimmed == "" {
		return tm
	}
	if err := json.Unmarshal([]byte(trimmed), &tm); err != nil || (tm.Result == nil && tm.Dataset == nil && tm.Error == nil) {
		return contract.TerminationMessage{Error: &contract.Error{Reason: "TrainerError", Message: lastLine(trimmed)}}
	}
	return tm
}

// lastLine keeps the end of a log tail: the error is usually the last thing printed.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	l := lines[len(lines)-1]
	if len(l) > 512 {
		l = l[len(l)-512:]
	}
	return l
}

// sortPodsNewestFirst orders pods by creation time, newest first, name as tie-breaker.
func sortPodsNewestFirst(pods []corev1.Pod) {
	sort.Slice(pods, func(i, j int) bool {
		ti, tj := pods[i].CreationTimestamp, pods[j].CreationTimestamp
		if !ti.Equal(&tj) {
			return tj.Before(&ti)
		}
		return pods[i].Name > pods[j].Name
	})
}

// podByPhase returns the newest pod in one of the phases.
func podByPhase(pods []corev1.Pod, phases ...corev1.PodPhase) *corev1.Pod {
	for i := range pods {
		for _, ph := range phases {
			if pods[i].Status.Phase == ph {
				return &pods[i]
			}
		}
	}
	return nil
}

// pendingReason explains why a pod has not started: unschedulable (e.g. not enough GPUs), image pull errors, ...
func pendingReason(pod *corev1.Pod) (reason, message string) {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return "Unschedulable", fmt.Sprintf("pod %s cannot be scheduled: %s", pod.Name, c.Message)
		}
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && w.Reason != "" && w.Reason != "ContainerCreating" {
			return w.Reason, fmt.Sprintf("pod %s: %s: %s", pod.Name, w.Reason, w.Message)
		}
	}
	return "PodPending", fmt.Sprintf("pod %s is pending", pod.Name)
}

// podFailure explains a failed trainer pod: OutOfMemory with the container's memory limit when the kernel killed it
// for memory (its log tail says nothing useful then), else the trainer's own error. ok is false when the pod says
// nothing (no terminated state, no message).
func podFailure(pod *corev1.Pod) (reason, message string, ok bool) {
	t := terminated(pod)
	if t == nil {
		return "", "", false
	}
	if t.Reason == "OOMKilled" {
		return contract.ReasonOutOfMemory, oomMessage(pod, t), true
	}
	tm := parseTerminationMessage(t.Message)
	if tm.Error == nil {
		return "", "", false
	}
	return tm.Error.Reason, tm.Error.Message, true
}

// oomMessage names the pod, the container's memory limit and what to do about it.
func oomMessage(pod *corev1.Pod, t *corev1.ContainerStateTerminated) string {
	limit := "no memory limit: the node ran out of memory"
	for _, c := range pod.Spec.Containers {
		if c.Name != TrainerContainerName {
			continue
		}
		if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
			limit = fmt.Sprintf("memory limit %s (%d bytes)", q.String(), q.Value())
		}
	}
	return fmt.Sprintf("the kernel killed the trainer in pod %s for memory (OOMKilled, exit code %d; %s): raise "+
		"spec.resources.memory (full fine-tuning with AdamW needs about 16 bytes per parameter plus activations) or "+
		"lower spec.training.batchSize", pod.Name, t.ExitCode, limit)
}
