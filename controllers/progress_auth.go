package controllers

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create

// Extra keys the apiserver puts on the user of a pod-bound service-account token.
const (
	extraPodName = "authentication.kubernetes.io/pod-name"
	extraPodUID  = "authentication.kubernetes.io/pod-uid"
)

// Rejection reasons, the label values of preftune_progress_reports_rejected_total.
const (
	rejectMissingToken = "missing_token"
	rejectInvalidToken = "invalid_token"
	rejectNotPodBound  = "not_pod_bound"
	rejectOtherRun     = "other_run"
	rejectReviewError  = "review_error"
	rejectRunNotFound  = "run_not_found"
	rejectRunFinished  = "run_finished"
	rejectBadRequest   = "bad_request"
)

// ProgressAudience is the token audience of a run's reports: a token minted for one run is useless for another,
// and useless against the Kubernetes API.
func ProgressAudience(resource, namespace, name string) string {
	return "preftune.io/" + resource + "/" + namespace + "/" + name
}

// rejection is a refused report: the HTTP status and the metric's reason.
type rejection struct {
	code   int
	reason string
	msg    string
}

func (r *rejection) Error() string { return r.msg }

func reject(code int, reason, format string, args ...any) *rejection {
	return &rejection{code: code, reason: reason, msg: fmt.Sprintf(format, args...)}
}

// progressAuthenticator checks a report's bearer token: the apiserver must accept it for the run's audience, it
// must be bound to a pod, and that pod must be one of the run's current Job.
type progressAuthenticator struct {
	// reviewer creates TokenReviews.
	reviewer client.Client
	// pods reads from the manager's cache first and from the apiserver when the cache has not seen a new pod yet.
	pods, podsDirect client.Reader
}

// bearerToken extracts the token of an Authorization header.
func bearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") {
		return ""
	}
	return strings.TrimSpace(h[7:])
}

// authenticate returns the pod the token is bound to, checked against the run's current Job.
func (a *progressAuthenticator) authenticate(ctx context.Context, token, audience, namespace, jobName string) (*corev1.Pod, *rejection) {
	if token == "" {
		return nil, reject(http.StatusUnauthorized, rejectMissingToken, "no bearer token")
	}
	tr := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: []string{audience}}}
	if err := a.reviewer.Create(ctx, tr); err != nil {
		return nil, reject(http.StatusServiceUnavailable, rejectReviewError, "token review failed: %v", err)
	}
	if !tr.Status.Authenticated {
		// Garbage, expired, revoked (its pod is gone) or minted for another audience: the apiserver does not say
		// which, and neither do we.
		return nil, reject(http.StatusUnauthorized, rejectInvalidToken, "token not valid for audience %s", audience)
	}
	u := tr.Status.User
	podName, podUID := firstExtra(u.Extra, extraPodName), firstExtra(u.Extra, extraPodUID)
	saNamespace := ""
	if parts := strings.Split(u.Username, ":"); len(parts) == 4 && parts[0] == "system" && parts[1] == "serviceaccount" {
		saNamespace = parts[2]
	}
	if podName == "" || podUID == "" || saNamespace == "" {
		return nil, reject(http.StatusForbidden, rejectNotPodBound, "token of %s is not bound to a pod", u.Username)
	}
	if saNamespace != namespace {
		return nil, reject(http.StatusForbidden, rejectOtherRun, "token belongs to a pod in namespace %s", saNamespace)
	}
	if jobName == "" {
		return nil, reject(http.StatusForbidden, rejectOtherRun, "the run has no Job yet")
	}
	pod, err := a.getPod(ctx, types.NamespacedName{Namespace: namespace, Name: podName})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, reject(http.StatusForbidden, rejectOtherRun, "pod %s no longer exists", podName)
		}
		return nil, reject(http.StatusServiceUnavailable, rejectReviewError, "get pod %s: %v", podName, err)
	}
	if string(pod.UID) != podUID {
		return nil, reject(http.StatusForbidden, rejectOtherRun, "pod %s was replaced", podName)
	}
	if pod.Labels[LabelJobName] != jobName {
		return nil, reject(http.StatusForbidden, rejectOtherRun, "pod %s does not belong to Job %s", podName, jobName)
	}
	return pod, nil
}

func (a *progressAuthenticator) getPod(ctx context.Context, key types.NamespacedName) (*corev1.Pod, error) {
	var pod corev1.Pod
	err := a.pods.Get(ctx, key, &pod)
	if apierrors.IsNotFound(err) && a.podsDirect != nil {
		err = a.podsDirect.Get(ctx, key, &pod)
	}
	return &pod, err
}

func firstExtra(extra map[string]authenticationv1.ExtraValue, key string) string {
	if v := extra[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}
