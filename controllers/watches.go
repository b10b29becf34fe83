package controllers

import (
	"context"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/preftune/preftune/api/v1alpha1"
)

// Field indexes: which runs name a dataset, and which runs name an SFTRun (DPO reference or SFT starting model).
const (
	indexDatasetRef = "spec.datasetRef.name"
	indexSFTRunRef  = "preftune.io/sftRunRef"
)

// SetupIndexes registers the field indexes the watches use. Call it once per manager, before the controllers.
func SetupIndexes(ctx context.Context, mgr ctrl.Manager) error {
	fi := mgr.GetFieldIndexer()
	if err := fi.IndexField(ctx, &v1alpha1.SFTRun{}, indexDatasetRef, func(o client.Object) []string {
		return []string{o.(*v1alpha1.SFTRun).Spec.DatasetRef.Name}
	}); err != nil {
		return err
	}
	if err := fi.IndexField(ctx, &v1alpha1.DPORun{}, indexDatasetRef, func(o client.Object) []string {
		return []string{o.(*v1alpha1.DPORun).Spec.DatasetRef.Name}
	}); err != nil {
		return err
	}
	if err := fi.IndexField(ctx, &v1alpha1.SFTRun{}, indexSFTRunRef, func(o client.Object) []string {
		if f := o.(*v1alpha1.SFTRun).Spec.Model.From; f != nil && f.SFTRun != "" {
			return []string{f.SFTRun}
		}
		return nil
	}); err != nil {
		return err
	}
	return fi.IndexField(ctx, &v1alpha1.DPORun{}, indexSFTRunRef, func(o client.Object) []string {
		return []string{o.(*v1alpha1.DPORun).Spec.ReferenceRef.SFTRun}
	})
}

// enqueueReferencing maps a dataset or SFTRun to the runs of one kind that reference it by name.
func enqueueReferencing(c client.Client, newList func() client.ObjectList, index string) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		list := newList()
		if err := c.List(ctx, list, client.InNamespace(o.GetNamespace()), client.MatchingFields{index: o.GetName()}); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "List referencing runs", "index", index, "name", o.GetName())
			return nil
		}
		var reqs []reconcile.Request
		switch l := list.(type) {
		case *v1alpha1.SFTRunList:
			for _, it := range l.Items {
				reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: it.Namespace, Name: it.Name}})
			}
		case *v1alpha1.DPORunList:
			for _, it := range l.Items {
				reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: it.Namespace, Name: it.Name}})
			}
		}
		return reqs
	})
}

// podToOwner maps a trainer pod to the custom resource of kind that owns its Job, so pod changes (scheduling,
// running, the final status with the trainer's report) reach the owner without a Job change. The owner is the
// Job's controller (read from the cache); the owner-name label stands in when the Job is not there, and only when
// it is the whole name (labels hold 63 characters: longer names are shortened with a hash).
func podToOwner(jobs client.Reader, kind string) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		return podOwnerRequests(ctx, jobs, kind, o)
	})
}

func podOwnerRequests(ctx context.Context, jobs client.Reader, kind string, o client.Object) []reconcile.Request {
	l := o.GetLabels()
	if l[LabelOwnerKind] != kind || l[LabelManagedBy] != managedBy || l[LabelOwnerName] == "" {
		return nil
	}
	name := ownerOfJob(ctx, jobs, o.GetNamespace(), l[LabelJobName], kind)
	if name == "" && len(l[LabelOwnerName]) < 63 {
		name = l[LabelOwnerName]
	}
	if name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}}}
}

// ownerOfJob is the name of the Job's controller when it is of kind, "" when the Job or its owner is unknown.
func ownerOfJob(ctx context.Context, jobs client.Reader, ns, job, kind string) string {
	if job == "" || jobs == nil {
		return ""
	}
	var j batchv1.Job
	if err := jobs.Get(ctx, types.NamespacedName{Namespace: ns, Name: job}, &j); err != nil {
		return ""
	}
	if ref := metav1.GetControllerOf(&j); ref != nil && ref.Kind == kind && ref.APIVersion == v1alpha1.GroupVersion.String() {
		return ref.Name
	}
	return ""
}
