package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Labels and annotations the operator sets on the objects it creates.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelInstance  = "app.kubernetes.io/instance"
	LabelComponent = "app.kubernetes.io/component"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelPartOf    = "app.kubernetes.io/part-of"

	// LabelOwnerKind and LabelOwnerName say which custom resource a Job belongs to.
	LabelOwnerKind = "preftune.io/owner-kind"
	LabelOwnerName = "preftune.io/owner-name"

	// LabelKueueQueueName is the label Kueue reads to queue a Job.
	LabelKueueQueueName = "kueue.x-k8s.io/queue-name"

	// LabelJobName is the label the Job controller puts on its pods.
	LabelJobName = "batch.kubernetes.io/job-name"

	managedBy = "preftune-operator"

	// TrainerContainerName is the trainer's container in every Job.
	TrainerContainerName = "trainer"
)

func standardLabels(component, ownerKind, ownerName string) map[string]string {
	return map[string]string{
		LabelName:      "preftune",
		LabelPartOf:    "preftune",
		LabelComponent: component,
		LabelManagedBy: managedBy,
		LabelInstance:  truncateLabelValue(ownerName),
		LabelOwnerKind: ownerKind,
		LabelOwnerName: truncateLabelValue(ownerName),
	}
}

// childName builds a deterministic DNS-label name <base>-<suffix>-<uid prefix>: the same run always gets the same
// Job (so a restarted manager finds it instead of creating another), and a run recreated under the same name
// does not collide with its predecessor's Job while garbage collection removes it. Job names must fit a label
// value (63 characters) because the Job controller copies them into pod labels.
func childName(base, suffix, uid string) string {
	u := strings.ReplaceAll(uid, "-", "")
	if len(u) > 5 {
		u = u[:5]
	}
	tail := "-" + suffix
	if u != "" {
		tail += "-" + u
	}
	if len(base)+len(tail) > 63 {
		h := sha256.Sum256([]byte(base))
		keep := 63 - len(tail) - 7
		base = strings.TrimRight(base[:keep], "-.") + "-" + hex.EncodeToString(h[:])[:6]
	}
	return base + tail
}

func truncateLabelValue(v string) string {
	if len(v) <= 63 {
		return v
	}
	h := sha256.Sum256([]byte(v))
	return strings.TrimRight(v[:56], "-._") + "-" + hex.EncodeToString(h[:])[:6]
}
