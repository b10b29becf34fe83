package controllers

import (
	"context"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/preftune/preftune/api/v1alpha1"
)

// TestPodOwnerRequests: a validation or trainer pod's changes requeue the custom resource that owns its Job, also
// when the owner's name is too long for a label (the label then holds a shortened name that names nothing).
func TestPodOwnerRequests(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := batchv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	longName := strings.Repeat("d", 100)
	ds := &v1alpha1.PreferenceDataset{ObjectMeta: metav1.ObjectMeta{Name: longName, Namespace: "ns", UID: "u1"}}
	jobName := childName(longName, "validate-g1", "u1")
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: jobName, Namespace: "ns",
		OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(ds, v1alpha1.GroupVersion.WithKind("PreferenceDataset"))}}}
	jobs := fake.NewClientBuilder().WithScheme(scheme).WithObjects(j).Build()
	podOf := func(kind, owner, job string) *corev1.Pod {
		l := standardLabels("dataset-validation", kind, owner)
		l[LabelJobName] = job
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Labels: l}}
	}
	cases := []struct {
		name string
		kind string
		pod  *corev1.Pod
		want string
	}{
		{"long owner name, from the Job's controller", "PreferenceDataset", podOf("PreferenceDataset", longName, jobName), longName},
		{"short owner name, Job not in the cache", "PreferenceDataset", podOf("PreferenceDataset", "arith", "gone"), "arith"},
		{"long owner name, Job not in the cache", "PreferenceDataset", podOf("PreferenceDataset", longName, "gone"), ""},
		{"another kind's pod", "SFTRun", podOf("PreferenceDataset", "arith", jobName), ""},
		{"a pod the operator did not make", "PreferenceDataset", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "ns"}}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reqs := podOwnerRequests(context.Background(), jobs, tc.kind, tc.pod)
			got := ""
			if len(reqs) == 1 {
				got = reqs[0].Name
				if reqs[0].Namespace != "ns" {
					t.Errorf("namespace %q", reqs[0].Namespace)
				}
			} else if len(reqs) > 1 {
				t.Fatalf("%d requests", len(reqs))
			}
			if got != tc.want {
				t.Errorf("owner %q, want %q", got, tc.want)
			}
		})
	}
}
