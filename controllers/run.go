package controllers

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/preftune/preftune/api/v1alpha1"
	"github.com/preftune/preftune/trainer/contract"
)

// Run is what the run reconciler needs of an SFTRun or a DPORun, so that one reconciler serves both (the idea of
// Kueue's jobframework.GenericJob). Each kind adds only what differs: its dependencies beyond the dataset, its
// part of the trainer configuration, and its metrics.
type Run interface {
	client.Object
	// Object is the API object itself (*SFTRun or *DPORun), for the client and the event recorder, which look at
	// its concrete type.
	Object() client.Object
	// Kind is the API kind, "SFTRun" or "DPORun".
	Kind() string
	TrainerKind() contract.Kind
	Spec() *v1alpha1.RunSpec
	Status() *v1alpha1.RunStatus
	// resolveModel checks the kind's own inputs (DPO: the reference SFTRun; SFT: model.from.sftRun) and, when they
	// are ready, fills cfg with them. The dependency is reported through the returned state; an error is a
	// failure to read, to be retried.
	resolveModel(ctx context.Context, c client.Reader, cfg *contract.RunConfig) (dependency, error)
	// configure fills the kind's hyperparameters into cfg.
	configure(cfg *contract.RunConfig) error
	// chatTemplate is the kind's chat template override (SFT: spec.model.chatTemplate); nil for none.
	chatTemplate() *v1alpha1.ChatTemplateSource
	// setResult copies a finished run's metrics into the kind's status.
	setResult(res *contract.Result)
	// annotatePins records on the Job the inputs pinned for it, and restorePins reads them back into status: the
	// Job is the record of what the run trains on, even when a status write was lost (a manager that stopped
	// between creating the Job and writing status).
	annotatePins(annotations map[string]string)
	restorePins(annotations map[string]string)
	// copyRun returns a deep copy, for comparing status before and after a pass.
	copyRun() Run
	// statusEqual compares the whole status (shared and kind-specific parts) with another run's.
	statusEqual(other Run) bool
}

// dependency is the state of one input a run waits for.
type dependency struct {
	// condition is the condition type that reports it ("" when the kind reports it through Running only).
	condition string
	ready     bool
	reason    string
	message   string
	// retryAfter, when positive, asks for another pass then: nothing watched will say when it is ready.
	retryAfter time.Duration
}

func parseDecimal(field, s string) (float64, error) {
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a decimal number", field, s)
	}
	return v, nil
}

// sftRun adapts v1alpha1.SFTRun to Run.
type sftRun struct{ *v1alpha1.SFTRun }

func (r sftRun) Kind() string                { return "SFTRun" }
func (r sftRun) TrainerKind() contract.Kind  { return contract.KindSFT }
func (r sftRun) Spec() *v1alpha1.RunSpec     { return &r.SFTRun.Spec.RunSpec }
func (r sftRun) Status() *v1alpha1.RunStatus { return &r.SFTRun.Status.RunStatus }
func (r sftRun) copyRun() Run                { return sftRun{r.DeepCopy()} }
func (r sftRun) Object() client.Object       { return r.SFTRun }
func (r sftRun) statusEqual(o Run) bool {
	other, ok := o.(sftRun)
	return ok && equalJSON(r.SFTRun.Status, other.SFTRun.Status)
}

func (r sftRun) resolveModel(ctx context.Context, c client.Reader, cfg *contract.RunConfig) (dependency, error) {
	m := r.SFTRun.Spec.Model
	if a := m.Architecture; a != nil {
		cfg.Model.Architecture = &contract.Architecture{
			Layers: int(a.Layers), DModel: int(a.DModel), Heads: int(a.Heads),
			ContextLength: int(a.ContextLength), Tokenizer: string(a.Tokenizer),
		}
		return dependency{ready: true}, nil
	}
	if m.From == nil {
		return dependency{reason: "InvalidSpec", message: "spec.model needs architecture or from"}, nil
	}
	if m.From.URI != "" {
		cfg.Model.From = m.From.URI
		return dependency{ready: true}, nil
	}
	var src v1alpha1.SFTRun
	err := c.Get(ctx, types.NamespacedName{Namespace: r.Namespace, Name: m.From.SFTRun}, &src)
	switch {
	case apierrors.IsNotFound(err):
		return dependency{reason: "ModelNotFound", message: fmt.Sprintf("SFTRun %q named by spec.model.from.sftRun does not exist", m.From.SFTRun)}, nil
	case err != nil:
		return dependency{}, fmt.Errorf("get SFTRun %s: %w", m.From.SFTRun, err)
	case !isTrue(src.Status.Conditions, v1alpha1.ConditionSucceeded) || (src.Status.ModelURI == "" && src.Status.AdapterURI == ""):
		return dependency{reason: "WaitingForModel", message: fmt.Sprintf("waiting for SFTRun %q to succeed", m.From.SFTRun)}, nil
	case src.Status.ModelURI == "":
		return dependency{reason: "ModelNotMerged", message: fmt.Sprintf("SFTRun %q wrote only an adapter (%s; spec.output.mergedModel false): "+
			"start from its starting model with a DPORun, or from a run that writes a merged model", m.From.SFTRun, src.Status.AdapterURI)}, nil
	}
	cfg.Model.From = src.Status.ModelURI
	return dependency{ready: true}, nil
}

func (r sftRun) configure(*contract.RunConfig) error { return nil }

func (r sftRun) chatTemplate() *v1alpha1.ChatTemplateSource { return r.SFTRun.Spec.Model.ChatTemplate }

func (r sftRun) annotatePins(map[string]string) {}
func (r sftRun) restorePins(map[string]string)  {}

func (r sftRun) setResult(res *contract.Result) {
	m := &v1alpha1.SFTMetrics{
		TrainLoss: formatMetric(res.Metrics, "loss"),
		EvalLoss:  formatMetric(res.Metrics, "eval_loss"),
	}
	r.SFTRun.Status.Metrics = m
}

// dpoRun adapts v1alpha1.DPORun to Run.
type dpoRun struct{ *v1alpha1.DPORun }

func (r dpoRun) Kind() string                { return "DPORun" }
func (r dpoRun) TrainerKind() contract.Kind  { return contract.KindDPO }
func (r dpoRun) Spec() *v1alpha1.RunSpec     { return &r.DPORun.Spec.RunSpec }
func (r dpoRun) Status() *v1alpha1.RunStatus { return &r.DPORun.Status.RunStatus }
func (r dpoRun) copyRun() Run                { return dpoRun{r.DeepCopy()} }
func (r dpoRun) Object() client.Object       { return r.DPORun }
func (r dpoRun) statusEqual(o Run) bool {
	other, ok := o.(dpoRun)
	return ok && equalJSON(r.DPORun.Status, other.DPORun.Status)
}

// resolveModel waits for the reference SFTRun to succeed and pins its model the first time; from then on the
// pinned model is used whatever happens to the SFTRun.
func (r dpoRun) resolveModel(ctx context.Context, c client.Reader, cfg *contract.RunConfig) (dependency, error) {
	name := r.DPORun.Spec.ReferenceRef.SFTRun
	if pinned := r.DPORun.Status.Reference; pinned != nil {
		cfg.Reference = &contract.ReferenceConfig{ModelURI: pinned.ModelURI, AdapterURI: pinned.AdapterURI}
		return dependency{condition: v1alpha1.ConditionReferenceReady, ready: true, reason: "Pinned", message: pinnedMessage(pinned)}, nil
	}
	var ref v1alpha1.SFTRun
	err := c.Get(ctx, types.NamespacedName{Namespace: r.Namespace, Name: name}, &ref)
	switch {
	case apierrors.IsNotFound(err):
		return dependency{condition: v1alpha1.ConditionReferenceReady, reason: "ReferenceNotFound",
			message: fmt.Sprintf("SFTRun %q does not exist", name)}, nil
	case err != nil:
		return dependency{}, fmt.Errorf("get SFTRun %s: %w", name, err)
	case isTrue(ref.Status.Conditions, v1alpha1.ConditionFailed):
		return dependency{condition: v1alpha1.ConditionReferenceReady, reason: "ReferenceFailed",
			message: fmt.Sprintf("SFTRun %q failed: %s", name, conditionMessage(ref.Status.Conditions, v1alpha1.ConditionFailed))}, nil
	case !isTrue(ref.Status.Conditions, v1alpha1.ConditionSucceeded) || (ref.Status.ModelURI == "" && ref.Status.AdapterURI == ""):
		return dependency{condition: v1alpha1.ConditionReferenceReady, reason: "ReferenceNotReady",
			message: fmt.Sprintf("waiting for SFTRun %q to succeed", name)}, nil
	}
	pinned, dep := pinReference(&ref)
	if pinned == nil {
		return dep, nil
	}
	r.DPORun.Status.Reference = pinned
	cfg.Reference = &contract.ReferenceConfig{ModelURI: pinned.ModelURI, AdapterURI: pinned.AdapterURI}
	return dependency{condition: v1alpha1.ConditionReferenceReady, ready: true, reason: "Pinned", message: pinnedMessage(pinned)}, nil
}

// pinReference pins a succeeded SFTRun's output as a DPO reference: its merged (or fully trained) model, or, when
// it wrote only an adapter, its starting model with the adapter. The starting model is pinned at the Hub commit
// its revision resolved to, so the adapter meets the weights it was trained on. Pure.
func pinReference(ref *v1alpha1.SFTRun) (*v1alpha1.PinnedReference, dependency) {
	p := &v1alpha1.PinnedReference{SFTRun: ref.Name, UID: string(ref.UID), ModelURI: ref.Status.ModelURI, ModelDigest: ref.Status.ModelDigest}
	if p.ModelURI != "" {
		return p, dependency{}
	}
	base := ""
	if sm := ref.Status.SourceModel; sm != nil {
		base = pinHubRevision(sm.URI, sm.Commit)
	}
	if base == "" && ref.Spec.Model.From != nil {
		base = ref.Spec.Model.From.URI
	}
	if base == "" {
		return nil, dependency{condition: v1alpha1.ConditionReferenceReady, reason: "ReferenceBaseUnknown",
			message: fmt.Sprintf("SFTRun %q wrote only an adapter (%s) and its starting model is not recorded (status.sourceModel)", ref.Name, ref.Status.AdapterURI)}
	}
	p.ModelURI, p.AdapterURI = base, ref.Status.AdapterURI
	if sm := ref.Status.SourceModel; sm != nil {
		p.ModelDigest = sm.Digest
	}
	return p, dependency{}
}

// pinHubRevision replaces an hf:// URI's revision by the commit it resolved to ("" commit: uri unchanged).
func pinHubRevision(uri, commit string) string {
	if commit == "" || !strings.HasPrefix(uri, "hf://") {
		return uri
	}
	repo, _, _ := strings.Cut(uri, "@")
	return repo + "@" + commit
}

func pinnedMessage(p *v1alpha1.PinnedReference) string {
	if p.AdapterURI != "" {
		return fmt.Sprintf("reference pinned to SFTRun %q (uid %s): model %s with adapter %s", p.SFTRun, p.UID, p.ModelURI, p.AdapterURI)
	}
	return fmt.Sprintf("reference pinned to SFTRun %q (uid %s) model %s", p.SFTRun, p.UID, p.ModelURI)
}

// Annotations that record a DPO Job's pinned reference.
const (
	annotationReferenceRun     = "preftune.io/reference-sftrun"
	annotationReferenceUID     = "preftune.io/reference-uid"
	annotationReferenceModel   = "preftune.io/reference-model-uri"
	annotationReferenceAdapter = "preftune.io/reference-adapter-uri"
)

func (r dpoRun) annotatePins(a map[string]string) {
	if p := r.DPORun.Status.Reference; p != nil {
		a[annotationReferenceRun], a[annotationReferenceUID], a[annotationReferenceModel] = p.SFTRun, p.UID, p.ModelURI
		if p.AdapterURI != "" {
			a[annotationReferenceAdapter] = p.AdapterURI
		}
	}
}

func (r dpoRun) restorePins(a map[string]string) {
	if r.DPORun.Status.Reference == nil && a[annotationReferenceModel] != "" {
		r.DPORun.Status.Reference = &v1alpha1.PinnedReference{SFTRun: a[annotationReferenceRun], UID: a[annotationReferenceUID],
			ModelURI: a[annotationReferenceModel], AdapterURI: a[annotationReferenceAdapter]}
	}
}

// chatTemplate: a DPORun renders with the template its reference SFTRun wrote into its output.
func (r dpoRun) chatTemplate() *v1alpha1.ChatTemplateSource { return nil }

func (r dpoRun) configure(cfg *contract.RunConfig) error {
	s := r.DPORun.Spec
	beta, err := parseDecimal("spec.beta", s.Beta)
	if err != nil {
		return err
	}
	ls, err := parseDecimal("spec.labelSmoothing", s.LabelSmoothing)
	if err != nil {
		return err
	}
	alpha, err := parseDecimal("spec.rpoAlpha", s.RPOAlpha)
	if err != nil {
		return err
	}
	precompute := s.PrecomputeReferenceLogProbs == nil || *s.PrecomputeReferenceLogProbs
	cfg.DPO = &contract.DPOConfig{Beta: beta, LossType: string(s.LossType), LabelSmoothing: ls, RPOAlpha: alpha,
		PrecomputeReferenceLogProbs: precompute}
	return nil
}

func (r dpoRun) setResult(res *contract.Result) {
	r.DPORun.Status.Metrics = &v1alpha1.DPOMetrics{
		Loss:               formatMetric(res.Metrics, "loss"),
		RewardAccuracy:     formatMetric(res.Metrics, "rewards/accuracies"),
		RewardMargin:       formatMetric(res.Metrics, "rewards/margins"),
		ChosenReward:       formatMetric(res.Metrics, "rewards/chosen"),
		RejectedReward:     formatMetric(res.Metrics, "rewards/rejected"),
		EvalLoss:           formatMetric(res.Metrics, "eval_loss"),
		EvalRewardAccuracy: formatMetric(res.Metrics, "eval_rewards/accuracies"),
	}
}

// formatMetric renders a metric with four significant digits, "" when absent.
func formatMetric(m map[string]float64, key string) string {
	v, ok := m[key]
	if !ok {
		return ""
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}
