package controllers

import (
	"context"
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/preftune/preftune/api/v1alpha1"
	"github.com/preftune/preftune/trainer/contract"
)

// +kubebuilder:rbac:groups=preftune.io,resources=sftruns;dporuns,verbs=get;list;watch
// +kubebuilder:rbac:groups=preftune.io,resources=sftruns/status;dporuns/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=preftune.io,resources=preferencedatasets,verbs=get;list;watch
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;create
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// RunReconciler reconciles one run kind (SFTRun or DPORun): it waits for the run's inputs, creates its Job once,
// keeps the Job's suspend in step with the run, and computes status from the Job and its pods.
type RunReconciler struct {
	client.Client
	Recorder events.EventRecorder
	Options  Options

	// APIReader reads what is not cached (chat template ConfigMaps); nil: the client.
	APIReader client.Reader

	kind   string
	suffix string
	newRun func() Run
	// progress holds the trainers' reports; nil when the progress endpoint is off.
	progress *progressStore
}

// NewSFTRunReconciler reconciles SFTRuns.
func NewSFTRunReconciler(c client.Client, rec events.EventRecorder, opts Options) *RunReconciler {
	return &RunReconciler{Client: c, Recorder: rec, Options: opts, kind: "SFTRun", suffix: "sft",
		newRun: func() Run { return sftRun{&v1alpha1.SFTRun{}} }}
}

// NewDPORunReconciler reconciles DPORuns.
func NewDPORunReconciler(c client.Client, rec events.EventRecorder, opts Options) *RunReconciler {
	return &RunReconciler{Client: c, Recorder: rec, Options: opts, kind: "DPORun", suffix: "dpo",
		newRun: func() Run { return dpoRun{&v1alpha1.DPORun{}} }}
}

// Reconcile fetches the run, observes its world, creates the Job when the inputs are ready, and writes status
// once, only when it changed.
func (r *RunReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	run := r.newRun()
	key := runKey{kind: r.kind, NamespacedName: req.NamespacedName}
	if err := r.Get(ctx, req.NamespacedName, run.Object()); err != nil {
		if apierrors.IsNotFound(err) {
			r.forgetRun(key)
			runPhases.forget(key)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !run.GetDeletionTimestamp().IsZero() {
		r.forgetRun(key)
		runPhases.forget(key)
		return ctrl.Result{}, nil // the Job and its pods go with the run (owner references)
	}
	before := run.copyRun()

	obs, err := r.observe(ctx, run)
	if err != nil {
		return ctrl.Result{}, err
	}
	if obs.job != nil {
		if err := r.syncSuspend(ctx, run, obs.job); err != nil {
			return ctrl.Result{}, err
		}
	}
	status, final := computeRunStatus(*run.Status(), obs)
	*run.Status() = status
	if final != nil && final.Result != nil {
		run.setResult(final.Result)
	}
	if finished := isTrue(status.Conditions, v1alpha1.ConditionSucceeded) || isTrue(status.Conditions, v1alpha1.ConditionFailed); finished {
		r.forgetRun(key)
	} else if r.progress != nil && obs.job != nil {
		if rep := r.progress.latest(key); rep != nil {
			applyReport(run, rep)
		}
	}
	runPhases.set(key, run.Status().Phase)
	r.recordTransitions(run, before)
	res := ctrl.Result{RequeueAfter: awaitingResult(obs)}
	if obs.blocked != nil {
		res.RequeueAfter = obs.blocked.retryAfter
	}
	if run.statusEqual(before) {
		return res, nil
	}
	if err := r.Status().Update(ctx, run.Object()); err != nil {
		return ctrl.Result{}, fmt.Errorf("update %s status: %w", r.kind, err)
	}
	return res, nil
}

// observe reads the run's Job and pods and, while it has no Job, its inputs; it creates the Job when they are
// ready. It only mutates the run's status to pin inputs (dataset digest, DPO reference).
func (r *RunReconciler) observe(ctx context.Context, run Run) (runObservation, error) {
	obs := runObservation{generation: run.GetGeneration(), now: metav1.Now(), runSuspended: run.Spec().Suspend}
	if isTrue(run.Status().Conditions, v1alpha1.ConditionSucceeded) || isTrue(run.Status().Conditions, v1alpha1.ConditionFailed) {
		return obs, nil
	}
	jobName := childName(run.GetName(), r.suffix, string(run.GetUID()))
	job, pods, err := r.getJob(ctx, run.GetNamespace(), jobName)
	if err != nil {
		return obs, err
	}
	obs.job, obs.pods = job, pods
	if job != nil {
		restorePins(run, job.Annotations)
		// Pinned inputs resolve without reads; the call keeps the kind's conditions set on every pass.
		obs.model, err = run.resolveModel(ctx, r.Client, &contract.RunConfig{})
		return obs, err
	}

	cfg := contract.RunConfig{APIVersion: contract.APIVersion, Kind: run.TrainerKind(),
		Run: contract.RunRef{Kind: r.kind, Namespace: run.GetNamespace(), Name: run.GetName(), UID: string(run.GetUID())}}
	ds, dsDep, err := r.datasetDependency(ctx, run)
	if err != nil {
		return obs, err
	}
	obs.dataset = dsDep
	if obs.model, err = run.resolveModel(ctx, r.Client, &cfg); err != nil {
		return obs, err
	}
	if !obs.dataset.ready || !obs.model.ready {
		return obs, nil
	}
	job, blocked, err := r.createJob(ctx, run, ds, cfg, jobName)
	if err != nil {
		return obs, err
	}
	obs.blocked, obs.job = blocked, job
	return obs, nil
}

func (r *RunReconciler) getJob(ctx context.Context, ns, name string) (*batchv1.Job, []corev1.Pod, error) {
	var job batchv1.Job
	if err := r.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &job); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil, nil
		}
		return nil, nil, fmt.Errorf("get Job %s: %w", name, err)
	}
	var pods corev1.PodList
	if err := r.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{LabelJobName: name}); err != nil {
		return nil, nil, fmt.Errorf("list pods of Job %s: %w", name, err)
	}
	sortPodsNewestFirst(pods.Items)
	return &job, pods.Items, nil
}

// datasetDependency reports whether the run's dataset is validated and Ready for its current generation.
func (r *RunReconciler) datasetDependency(ctx context.Context, run Run) (*v1alpha1.PreferenceDataset, dependency, error) {
	name := run.Spec().DatasetRef.Name
	var ds v1alpha1.PreferenceDataset
	if err := r.Get(ctx, types.NamespacedName{Namespace: run.GetNamespace(), Name: name}, &ds); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, dependency{reason: ReasonDatasetNotFound, message: fmt.Sprintf("PreferenceDataset %q does not exist", name)}, nil
		}
		return nil, dependency{}, fmt.Errorf("get PreferenceDataset %s: %w", name, err)
	}
	switch {
	case isTrue(ds.Status.Conditions, v1alpha1.ConditionReady) && ds.Status.ObservedGeneration == ds.Generation && ds.Status.Digest != "":
		return &ds, dependency{ready: true, reason: ReasonDatasetReady,
			message: fmt.Sprintf("PreferenceDataset %q is ready (%s)", name, ds.Status.Digest)}, nil
	case ds.Status.ObservedGeneration == ds.Generation && conditionReason(ds.Status.Conditions, v1alpha1.ConditionReady) == ReasonChatTemplateNotFound:
		return &ds, dependency{reason: ReasonDatasetNotReady, message: fmt.Sprintf("PreferenceDataset %q waits for its inspection's chat template: %s",
			name, conditionMessage(ds.Status.Conditions, v1alpha1.ConditionReady))}, nil
	case ds.Status.ObservedGeneration == ds.Generation && conditionReason(ds.Status.Conditions, v1alpha1.ConditionReady) != ReasonValidating &&
		conditionReason(ds.Status.Conditions, v1alpha1.ConditionReady) != "":
		return &ds, dependency{reason: ReasonDatasetInvalid,
			message: fmt.Sprintf("PreferenceDataset %q is not usable: %s", name, conditionMessage(ds.Status.Conditions, v1alpha1.ConditionReady))}, nil
	}
	return &ds, dependency{reason: ReasonDatasetNotReady, message: fmt.Sprintf("PreferenceDataset %q is being validated", name)}, nil
}

// createJob pins the dataset, writes the run's configuration and creates its Job. A Job that already exists (a
// manager restarted before its cache saw it) is read back, never created twice: the name is deterministic.
func (r *RunReconciler) createJob(ctx context.Context, run Run, ds *v1alpha1.PreferenceDataset, cfg contract.RunConfig, name string) (*batchv1.Job, *dependency, error) {
	text, missing, err := resolveChatTemplate(ctx, apiReader(r.APIReader, r.Client), run.GetNamespace(), "spec.model.chatTemplate", run.chatTemplate())
	if err != nil || missing != nil {
		return nil, missing, err
	}
	cfg.Model.ChatTemplate = text
	if r.progress != nil && !r.Options.Progress.certsReady() {
		return nil, &dependency{reason: ReasonWaitingForProgressCertificate, retryAfter: certsReadyPoll,
			message: "waiting for the manager's progress certificate (the rotator is creating or checking it) before creating the trainer Job, so the Job carries the CA the endpoint serves"}, nil
	}
	spec := run.Spec()
	out, err := outputURI(run, r.Options.DefaultOutputURI)
	if err != nil {
		return nil, &dependency{reason: "OutputNotConfigured", message: err.Error()}, nil
	}
	var st podStorage
	dsURI, dsCM, envFrom, err := datasetSourceParams(ds, &st)
	if err != nil {
		return nil, &dependency{reason: ReasonInvalidSpec, message: err.Error()}, nil
	}
	if cfg.Dataset, err = datasetConfig(ds, dsURI); err != nil {
		return nil, &dependency{reason: ReasonInvalidSpec, message: err.Error()}, nil
	}
	if cfg.Training, err = trainingConfig(spec.Training); err != nil {
		return nil, &dependency{reason: ReasonInvalidSpec, message: err.Error()}, nil
	}
	if err := run.configure(&cfg); err != nil {
		return nil, &dependency{reason: ReasonInvalidSpec, message: err.Error()}, nil
	}
	if cfg.Adapter, err = adapterConfig(spec.Adapter); err != nil {
		return nil, &dependency{reason: ReasonInvalidSpec, message: err.Error()}, nil
	}
	cfg.Output.MergedModel = spec.Output.MergedModel
	cfg.Resources.GPUs = spec.Resources.GPUs
	if cfg.Output.URI, err = st.mapURI(out, false); err != nil {
		return nil, &dependency{reason: ReasonInvalidSpec, message: err.Error()}, nil
	}
	if cfg.Model.From != "" {
		if cfg.Model.From, err = st.mapURI(cfg.Model.From, true); err != nil {
			return nil, &dependency{reason: ReasonInvalidSpec, message: err.Error()}, nil
		}
	}
	if cfg.Reference != nil {
		if cfg.Reference.ModelURI, err = st.mapURI(cfg.Reference.ModelURI, true); err != nil {
			return nil, &dependency{reason: ReasonInvalidSpec, message: err.Error()}, nil
		}
		if cfg.Reference.AdapterURI != "" {
			if cfg.Reference.AdapterURI, err = st.mapURI(cfg.Reference.AdapterURI, true); err != nil {
				return nil, &dependency{reason: ReasonInvalidSpec, message: err.Error()}, nil
			}
		}
	}
	doc, err := marshalConfig(cfg)
	if err != nil {
		return nil, nil, err
	}

	owner := *metav1.NewControllerRef(run.Object(), v1alpha1.GroupVersion.WithKind(r.kind))
	labels := standardLabels("trainer", r.kind, run.GetName())
	cm := buildConfigMap(name+"-config", run.GetNamespace(), labels, owner, doc)
	progressCA := r.Options.Progress.caPEM()
	if len(progressCA) > 0 && r.progress != nil {
		cm.Data[progressCAKey] = string(progressCA)
	}
	if err := r.Create(ctx, cm); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, nil, fmt.Errorf("create ConfigMap %s: %w", cm.Name, err)
	}
	st2 := run.Status()
	st2.Dataset = &v1alpha1.PinnedDataset{Name: ds.Name, Digest: ds.Status.Digest}
	st2.OutputURI = out
	if ref := run.Spec().Output.SecretRef; ref != nil {
		envFrom = append(envFrom, corev1.EnvFromSource{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: *ref}})
	}
	job := constructRunJob(run, r.kind, name, cm.Name, st, dsCM, envFrom, r.Options, r.progress != nil, len(progressCA) > 0)
	job.Annotations = pinAnnotations(run)
	if err := r.Create(ctx, job); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			return nil, nil, fmt.Errorf("create Job %s: %w", name, err)
		}
		if err := r.Get(ctx, client.ObjectKeyFromObject(job), job); err != nil {
			return nil, nil, fmt.Errorf("get Job %s: %w", name, err)
		}
		// Another manager created it: what it pinned wins.
		st2.Dataset, st2.OutputURI = nil, ""
		restorePins(run, job.Annotations)
	} else {
		r.Recorder.Eventf(run.Object(), job, corev1.EventTypeNormal, "JobCreated", "Create", "Created Job %s for %s training", name, cfg.Kind)
	}
	return job, nil, nil
}

// certsReadyPoll is how often a run waiting for the progress certificate looks again.
const certsReadyPoll = 2 * time.Second

// Annotations that record what a run's Job was created with.
const (
	annotationDataset       = "preftune.io/dataset"
	annotationDatasetDigest = "preftune.io/dataset-digest"
	annotationOutputURI     = "preftune.io/output-uri"
)

func pinAnnotations(run Run) map[string]string {
	st := run.Status()
	a := map[string]string{annotationOutputURI: st.OutputURI}
	if st.Dataset != nil {
		a[annotationDataset], a[annotationDatasetDigest] = st.Dataset.Name, st.Dataset.Digest
	}
	run.annotatePins(a)
	return a
}

func restorePins(run Run, a map[string]string) {
	st := run.Status()
	if st.Dataset == nil && a[annotationDatasetDigest] != "" {
		st.Dataset = &v1alpha1.PinnedDataset{Name: a[annotationDataset], Digest: a[annotationDatasetDigest]}
	}
	if st.OutputURI == "" {
		st.OutputURI = a[annotationOutputURI]
	}
	run.restorePins(a)
}

// constructRunJob builds a run's Job; it is pure, so tests check it without a cluster.
// With reporting, the pod gets the progress endpoint's URL and token (and, with progressCA, the CA's file).
func constructRunJob(run Run, kind, name, configMap string, st podStorage, dsCM *v1alpha1.ConfigMapDataSource, envFrom []corev1.EnvFromSource, opts Options, reporting, progressCA bool) *batchv1.Job {
	spec := run.Spec()
	labels := standardLabels("trainer", kind, run.GetName())
	if q := spec.Scheduling.QueueName; q != "" {
		labels[LabelKueueQueueName] = q
	}
	image := spec.Trainer.Image
	if image == "" {
		image = opts.TrainerImage
	}
	var ttl *int32
	if opts.JobTTL > 0 {
		ttl = ptr.To(int32(opts.JobTTL.Seconds()))
	}
	var progress *progressParams
	if reporting && opts.Progress.URL != "" {
		res := kindResource(kind)
		progress = &progressParams{url: opts.Progress.progressURL(res, run.GetNamespace(), run.GetName()),
			audience: ProgressAudience(res, run.GetNamespace(), run.GetName()), hasCA: progressCA}
	}
	return buildTrainerJob(jobParams{
		name: name, namespace: run.GetNamespace(), labels: labels,
		owner: *metav1.NewControllerRef(run.Object(), v1alpha1.GroupVersion.WithKind(kind)),
		image: image, pullPolicy: corev1.PullPolicy(opts.ImagePullPolicy), extraEnv: opts.TrainerEnv,
		args:          []string{string(run.TrainerKind())},
		configMapName: configMap, storage: st, datasetConfigMap: dsCM, envFrom: envFrom,
		backoffLimit: spec.MaxRetries, activeDeadline: spec.ActiveDeadlineSeconds,
		// Kueue admits a queued Job by unsuspending it, so a queued Job starts suspended.
		suspend: spec.Suspend || spec.Scheduling.QueueName != "",
		ttl:     ttl,
		gpus:    spec.Resources.GPUs, gpuResourceName: opts.gpuResourceName(spec.Resources.GPUResourceName),
		cpu: spec.Resources.CPU, memory: spec.Resources.Memory,
		scheduling: spec.Scheduling,
		progress:   progress,
	})
}

// syncSuspend keeps the Job's suspend in step with the run's. With a Kueue queue, Kueue owns unsuspending: the
// operator only suspends.
func (r *RunReconciler) syncSuspend(ctx context.Context, run Run, job *batchv1.Job) error {
	if jobCondition(job, batchv1.JobComplete) != nil || jobCondition(job, batchv1.JobFailed) != nil {
		return nil
	}
	want := run.Spec().Suspend
	have := job.Spec.Suspend != nil && *job.Spec.Suspend
	if want == have || (!want && run.Spec().Scheduling.QueueName != "") {
		return nil
	}
	patch := client.MergeFrom(job.DeepCopy())
	job.Spec.Suspend = ptr.To(want)
	if err := r.Patch(ctx, job, patch); err != nil {
		return fmt.Errorf("set suspend=%t on Job %s: %w", want, job.Name, err)
	}
	return nil
}

// SetupWithManager registers the reconciler: it owns Jobs, follows their pods, and is woken by the datasets and
// SFTRuns its runs reference.
func (r *RunReconciler) SetupWithManager(mgr ctrl.Manager, concurrency int) error {
	b := ctrl.NewControllerManagedBy(mgr).
		WithOptions(controller.Options{MaxConcurrentReconciles: concurrency}).
		Named(r.kind).
		For(r.newRun().Object()).
		Owns(&batchv1.Job{}).
		Watches(&corev1.Pod{}, podToOwner(mgr.GetClient(), r.kind)).
		Watches(&v1alpha1.PreferenceDataset{}, enqueueReferencing(mgr.GetClient(), r.newList, indexDatasetRef)).
		Watches(&v1alpha1.SFTRun{}, enqueueReferencing(mgr.GetClient(), r.newList, indexSFTRunRef))
	if r.progress != nil {
		// Accepted reports wake the run, at most once per interval (progressStore).
		b = b.WatchesRawSource(source.Channel(r.progress.channel(r.kind), &handler.EnqueueRequestForObject{}))
	}
	return b.Complete(r)
}

// forgetRun drops a finished or deleted run's reports and per-run gauges.
func (r *RunReconciler) forgetRun(k runKey) {
	if r.progress != nil {
		r.progress.forget(k)
	}
	deleteRunGauges(k)
}

// apiReader is r when set, else c.
func apiReader(r, c client.Reader) client.Reader {
	if r != nil {
		return r
	}
	return c
}

func (r *RunReconciler) newList() client.ObjectList {
	if r.kind == "SFTRun" {
		return &v1alpha1.SFTRunList{}
	}
	return &v1alpha1.DPORunList{}
}
