package controllers

import (
	"context"
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"

	"github.com/preftune/preftune/api/v1alpha1"
	"github.com/preftune/preftune/trainer/contract"
)

// +kubebuilder:rbac:groups=preftune.io,resources=preferencedatasets,verbs=get;list;watch
// +kubebuilder:rbac:groups=preftune.io,resources=preferencedatasets/status,verbs=get;update;patch

// maxReportedInvalidRows bounds the invalid rows listed in status (all are counted); it keeps the trainer's report
// well inside a termination message.
const maxReportedInvalidRows = 10

// validationDeadline bounds a validation Job.
const validationDeadline = 15 * time.Minute

// DatasetReconciler validates PreferenceDatasets with a short Job running `preftune-trainer inspect-dataset` and
// turns its report into status.
type DatasetReconciler struct {
	client.Client
	// APIReader reads what is not cached (chat template ConfigMaps); nil: the client.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Options   Options
}

// Reconcile validates each generation of a dataset once.
func (r *DatasetReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var ds v1alpha1.PreferenceDataset
	if err := r.Get(ctx, req.NamespacedName, &ds); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !ds.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	jobName := validationJobName(&ds)
	obs := datasetObservation{generation: ds.Generation, now: metav1.Now(), jobName: jobName}
	if !validated(&ds.Status, ds.Generation, jobName) {
		job, pods, blocked, err := r.ensureValidationJob(ctx, &ds, jobName)
		if err != nil {
			return ctrl.Result{}, err
		}
		obs.job, obs.pods, obs.blocked = job, pods, blocked
	}
	status, requeueAfter := computeDatasetStatus(ds.Status, obs)
	res := ctrl.Result{RequeueAfter: requeueAfter}
	if equalJSON(status, ds.Status) {
		return res, nil
	}
	r.recordDatasetTransition(&ds, &status)
	ds.Status = status
	if err := r.Status().Update(ctx, &ds); err != nil {
		return ctrl.Result{}, fmt.Errorf("update PreferenceDataset status: %w", err)
	}
	return res, nil
}

// validationJobName is deterministic per generation: a new spec gets a new validation, a restarted manager finds
// the Job it already created.
func validationJobName(ds *v1alpha1.PreferenceDataset) string {
	return childName(ds.Name, fmt.Sprintf("validate-g%d", ds.Generation), string(ds.UID))
}

// ensureValidationJob returns the validation Job and its pods, creating the Job when missing. blocked says why no
// Job can be created yet (a missing chat template ConfigMap).
func (r *DatasetReconciler) ensureValidationJob(ctx context.Context, ds *v1alpha1.PreferenceDataset, name string) (*batchv1.Job, []corev1.Pod, *dependency, error) {
	var job batchv1.Job
	err := r.Get(ctx, client.ObjectKey{Namespace: ds.Namespace, Name: name}, &job)
	if err == nil {
		var pods corev1.PodList
		if err := r.List(ctx, &pods, client.InNamespace(ds.Namespace), client.MatchingLabels{LabelJobName: name}); err != nil {
			return nil, nil, nil, fmt.Errorf("list pods of Job %s: %w", name, err)
		}
		sortPodsNewestFirst(pods.Items)
		return &job, pods.Items, nil, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, nil, nil, fmt.Errorf("get Job %s: %w", name, err)
	}
	var template string
	if in := ds.Spec.Inspection; in != nil {
		var missing *dependency
		template, missing, err = resolveChatTemplate(ctx, apiReader(r.APIReader, r.Client), ds.Namespace, "spec.inspection.model.chatTemplate", in.Model.ChatTemplate)
		if err != nil || missing != nil {
			return nil, nil, missing, err
		}
	}
	newJob, cm, err := constructValidationJob(ds, name, template, r.Options)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := r.Create(ctx, cm); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, nil, nil, fmt.Errorf("create ConfigMap %s: %w", cm.Name, err)
	}
	if err := r.Create(ctx, newJob); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return nil, nil, nil, nil // the cache lags behind; the Job's event brings us back
		}
		return nil, nil, nil, fmt.Errorf("create Job %s: %w", name, err)
	}
	ctrl.LoggerFrom(ctx).Info("Created validation Job", "job", name)
	return newJob, nil, nil, nil
}

// constructValidationJob builds the validation Job and its configuration; chatTemplate is the resolved text of
// spec.inspection.model.chatTemplate ("" for none). Pure.
func constructValidationJob(ds *v1alpha1.PreferenceDataset, name, chatTemplate string, opts Options) (*batchv1.Job, *corev1.ConfigMap, error) {
	var st podStorage
	uri, cm, envFrom, err := datasetSourceParams(ds, &st)
	if err != nil {
		return nil, nil, err
	}
	dc, err := datasetConfig(ds, uri)
	if err != nil {
		return nil, nil, err
	}
	dc.Digest = "" // validation computes the digest
	ic := contract.InspectConfig{APIVersion: contract.APIVersion, Kind: contract.KindInspect,
		Dataset: dc, MaxInvalidRows: maxReportedInvalidRows}
	if in := ds.Spec.Inspection; in != nil {
		from, err := st.mapURI(in.Model.URI, true)
		if err != nil {
			return nil, nil, fmt.Errorf("spec.inspection.model.uri: %w", err)
		}
		ic.Model = &contract.ModelConfig{From: from, ChatTemplate: chatTemplate}
		if in.MaxLength != nil {
			ic.MaxLength = int(*in.MaxLength)
		}
		if in.SecretRef != nil {
			envFrom = append(envFrom, corev1.EnvFromSource{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: *in.SecretRef}})
		}
	}
	doc, err := marshalConfig(ic)
	if err != nil {
		return nil, nil, err
	}
	owner := *metav1.NewControllerRef(ds, v1alpha1.GroupVersion.WithKind("PreferenceDataset"))
	labels := standardLabels("dataset-validation", "PreferenceDataset", ds.Name)
	config := buildConfigMap(name+"-config", ds.Namespace, labels, owner, doc)
	var ttl *int32
	if opts.JobTTL > 0 {
		ttl = ptr.To(int32(opts.JobTTL.Seconds()))
	}
	job := buildTrainerJob(jobParams{
		name: name, namespace: ds.Namespace, labels: labels, owner: owner,
		image: opts.TrainerImage, pullPolicy: corev1.PullPolicy(opts.ImagePullPolicy), extraEnv: opts.TrainerEnv,
		args: []string{"inspect-dataset"}, configMapName: config.Name,
		storage: st, datasetConfigMap: cm, envFrom: envFrom,
		// Reading may fail for passing reasons (network, storage); bad data fails at once (pod failure policy).
		backoffLimit:   2,
		activeDeadline: ptr.To(int64(validationDeadline.Seconds())),
		ttl:            ttl,
	})
	return job, config, nil
}

func (r *DatasetReconciler) recordDatasetTransition(ds *v1alpha1.PreferenceDataset, next *v1alpha1.PreferenceDatasetStatus) {
	n := meta.FindStatusCondition(next.Conditions, v1alpha1.ConditionReady)
	p := meta.FindStatusCondition(ds.Status.Conditions, v1alpha1.ConditionReady)
	if n == nil || (p != nil && p.Reason == n.Reason && p.Status == n.Status) {
		return
	}
	switch {
	case n.Status == metav1.ConditionTrue:
		r.Recorder.Eventf(ds, nil, corev1.EventTypeNormal, "Validated", "Validate", "%s", n.Message)
	case n.Reason == ReasonValidating:
		r.Recorder.Eventf(ds, nil, corev1.EventTypeNormal, "Validating", "Validate", "%s", n.Message)
	default:
		r.Recorder.Eventf(ds, nil, corev1.EventTypeWarning, n.Reason, "Validate", "%s", n.Message)
	}
}

// SetupWithManager registers the reconciler.
func (r *DatasetReconciler) SetupWithManager(mgr ctrl.Manager, concurrency int) error {
	return ctrl.NewControllerManagedBy(mgr).
		WithOptions(controller.Options{MaxConcurrentReconciles: concurrency}).
		Named("PreferenceDataset").
		For(&v1alpha1.PreferenceDataset{}).
		Owns(&batchv1.Job{}).
		Watches(&corev1.Pod{}, podToOwner(mgr.GetClient(), "PreferenceDataset")).
		Complete(r)
}
