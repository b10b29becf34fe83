package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/preftune/preftune/api/v1alpha1"
)

// ReasonChatTemplateNotFound: the ConfigMap or key a chatTemplate names is missing; the run (Running) or dataset
// (Ready) waits and looks again every chatTemplatePoll.
const ReasonChatTemplateNotFound = "ChatTemplateNotFound"

// chatTemplatePoll is how often a missing chat template ConfigMap is looked for again. ConfigMaps are read
// directly (not cached: a cache of every ConfigMap in the cluster would cost memory for a rare read), so nothing
// wakes the object when one appears.
const chatTemplatePoll = 10 * time.Second

// resolveChatTemplate returns a chat template's text: the inline text, or the ConfigMap key's value read through
// reader. A missing ConfigMap or key is a dependency (not ready, reason ChatTemplateNotFound, naming field);
// other read errors are returned.
func resolveChatTemplate(ctx context.Context, reader client.Reader, namespace, field string, src *v1alpha1.ChatTemplateSource) (string, *dependency, error) {
	if src == nil {
		return "", nil, nil
	}
	ref := src.ConfigMapKeyRef
	if ref == nil {
		return src.Inline, nil, nil
	}
	var cm corev1.ConfigMap
	err := reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: ref.Name}, &cm)
	if err != nil && !apierrors.IsNotFound(err) {
		return "", nil, fmt.Errorf("get ConfigMap %s named by %s.configMapKeyRef: %w", ref.Name, field, err)
	}
	var found *corev1.ConfigMap
	if err == nil {
		found = &cm
	}
	text, dep := chatTemplateFromConfigMap(field, ref, found)
	return text, dep, nil
}

// chatTemplateFromConfigMap reads the key from cm (nil: the ConfigMap does not exist). Pure.
func chatTemplateFromConfigMap(field string, ref *v1alpha1.ConfigMapKeyReference, cm *corev1.ConfigMap) (string, *dependency) {
	missing := func(msg string) *dependency {
		return &dependency{reason: ReasonChatTemplateNotFound, retryAfter: chatTemplatePoll,
			message: fmt.Sprintf("%s.configMapKeyRef: %s", field, msg)}
	}
	if cm == nil {
		return "", missing(fmt.Sprintf("ConfigMap %q does not exist", ref.Name))
	}
	text, ok := cm.Data[ref.Key]
	if !ok {
		if _, binary := cm.BinaryData[ref.Key]; binary {
			return "", missing(fmt.Sprintf("key %q of ConfigMap %q is in binaryData; a chat template must be text (data)", ref.Key, ref.Name))
		}
		return "", missing(fmt.Sprintf("ConfigMap %q has no key %q", ref.Name, ref.Key))
	}
	if text == "" {
		return "", missing(fmt.Sprintf("key %q of ConfigMap %q is empty", ref.Key, ref.Name))
	}
	return text, nil
}
