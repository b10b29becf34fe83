package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DPOLossType is the preference loss.
// +kubebuilder:validation:Enum=sigmoid;ipo;hinge;robust
type DPOLossType string

const (
	DPOLossSigmoid DPOLossType = "sigmoid"
	DPOLossIPO     DPOLossType = "ipo"
	DPOLossHinge   DPOLossType = "hinge"
	DPOLossRobust  DPOLossType = "robust"
)

// ReferenceReference names the frozen reference model of a DPO run.
type ReferenceReference struct {
	// sftRun names an SFTRun in the same namespace. The DPORun waits until it has succeeded, then pins its model:
	// its merged model, or, when it wrote only an adapter (output.mergedModel false), its starting model with that
	// adapter. The SFTRun's output carries the chat template it trained with (tokenizer_config.json), and DPO
	// renders rows with it: a DPORun has no chatTemplate of its own, so reference and policy always agree.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	SFTRun string `json:"sftRun"`
}

// DPORunSpec is a Direct Preference Optimization run: the policy starts from the reference SFT model and learns
// from prompt/chosen/rejected pairs, with the SFT model frozen as the reference. No reward model, no sampling.
// +kubebuilder:validation:XValidation:rule="!has(self.output) || !has(self.output.mergedModel) || self.output.mergedModel || has(self.adapter)",message="output.mergedModel false applies only to runs with an adapter"
// +kubebuilder:validation:XValidation:rule="self.lossType in ['sigmoid', 'robust'] || !self.labelSmoothing.matches('^(0|[1-9][0-9]*)([.][0-9]+)?([eE][-+]?[0-9]+)?$') || double(self.labelSmoothing) == 0.0",message="labelSmoothing applies only to the sigmoid and robust losses"
type DPORunSpec struct {
	// referenceRef names the SFTRun whose model is the reference and the starting policy.
	ReferenceRef ReferenceReference `json:"referenceRef"`

	// beta scales the implicit reward: higher keeps the policy closer to the reference.
	// +kubebuilder:default="0.1"
	// +kubebuilder:validation:Pattern=`^(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$`
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="!self.matches('^(0|[1-9][0-9]*)([.][0-9]+)?([eE][-+]?[0-9]+)?$') || (double(self) > 0.0 && double(self) <= 100.0)",message="beta must be greater than 0 and at most 100"
	// +optional
	Beta string `json:"beta,omitempty"`

	// lossType is the preference loss: sigmoid (DPO; cDPO with labelSmoothing), ipo, hinge (SLiC) or robust.
	// ipo is fed per-token averaged log-probabilities of the responses (as TRL does), the others their sums, so
	// beta means the same as in TRL for each.
	// +kubebuilder:default=sigmoid
	// +optional
	LossType DPOLossType `json:"lossType,omitempty"`

	// labelSmoothing is the assumed share of flipped labels (cDPO and robust), below 0.5.
	// +kubebuilder:default="0"
	// +kubebuilder:validation:Pattern=`^(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$`
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="!self.matches('^(0|[1-9][0-9]*)([.][0-9]+)?([eE][-+]?[0-9]+)?$') || (double(self) < 0.5)",message="labelSmoothing must be below 0.5"
	// +optional
	LabelSmoothing string `json:"labelSmoothing,omitempty"`

	// rpoAlpha weighs an NLL term on the chosen response (mean per-token) added to the loss (TRL's rpo_alpha). It
	// counters likelihood displacement, where plain DPO lowers the probability of the preferred answers; "0"
	// disables it.
	// +kubebuilder:default="0"
	// +kubebuilder:validation:Pattern=`^(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$`
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="!self.matches('^(0|[1-9][0-9]*)([.][0-9]+)?([eE][-+]?[0-9]+)?$') || (double(self) <= 100.0)",message="rpoAlpha must be at most 100"
	// +optional
	RPOAlpha string `json:"rpoAlpha,omitempty"`

	// precomputeReferenceLogProbs computes the reference's log-probabilities once before training, so the
	// reference model is not kept in memory during training.
	// +kubebuilder:default=true
	// +optional
	PrecomputeReferenceLogProbs *bool `json:"precomputeReferenceLogProbs,omitempty"`

	RunSpec `json:",inline"`
}

// DPOMetrics are the latest metrics of a DPO run, as decimal strings.
type DPOMetrics struct {
	// loss is the preference loss of the latest step.
	// +optional
	Loss string `json:"loss,omitempty"`
	// rewardAccuracy is the share of pairs whose chosen reward beats the rejected one (latest step).
	// +optional
	RewardAccuracy string `json:"rewardAccuracy,omitempty"`
	// rewardMargin is the mean chosen minus rejected reward (latest step).
	// +optional
	RewardMargin string `json:"rewardMargin,omitempty"`
	// chosenReward is the mean β·(log π(chosen) − log ref(chosen)) (latest step).
	// +optional
	ChosenReward string `json:"chosenReward,omitempty"`
	// rejectedReward is the mean β·(log π(rejected) − log ref(rejected)) (latest step).
	// +optional
	RejectedReward string `json:"rejectedReward,omitempty"`
	// evalLoss is the preference loss on the eval split at the latest evaluation.
	// +optional
	EvalLoss string `json:"evalLoss,omitempty"`
	// evalRewardAccuracy is the reward accuracy on the eval split at the latest evaluation.
	// +optional
	EvalRewardAccuracy string `json:"evalRewardAccuracy,omitempty"`
}

// PinnedReference records the reference model, pinned when it was first resolved: later changes to the SFTRun
// do not affect the DPORun.
type PinnedReference struct {
	// sftRun is the SFTRun's name.
	SFTRun string `json:"sftRun"`
	// uid is the SFTRun's UID when it was pinned.
	UID string `json:"uid"`
	// modelURI is the SFTRun's model at that time.
	ModelURI string `json:"modelURI"`
	// modelDigest is that model's sha256, when known.
	// +optional
	ModelDigest string `json:"modelDigest,omitempty"`
	// adapterURI is the SFTRun's adapter when it wrote no merged model: the reference is modelURI (the SFTRun's
	// starting model) with this adapter merged in.
	// +optional
	AdapterURI string `json:"adapterURI,omitempty"`
}

// DPORunStatus is the observed state of a DPORun.
type DPORunStatus struct {
	RunStatus `json:",inline"`

	// reference is the pinned reference model.
	// +optional
	Reference *PinnedReference `json:"reference,omitempty"`

	// metrics are the latest training and evaluation metrics.
	// +optional
	Metrics *DPOMetrics `json:"metrics,omitempty"`
}

// DPORun trains a policy with Direct Preference Optimization against a frozen SFT reference, in a GPU-scheduled
// batch Job.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=dpo,categories=preftune
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Reference",type=string,JSONPath=`.spec.referenceRef.sftRun`
// +kubebuilder:printcolumn:name="Step",type=integer,JSONPath=`.status.progress.step`
// +kubebuilder:printcolumn:name="Progress",type=string,JSONPath=`.status.progress.percent`,description="percent of steps done"
// +kubebuilder:printcolumn:name="Loss",type=string,JSONPath=`.status.metrics.loss`
// +kubebuilder:printcolumn:name="Reward Acc",type=string,JSONPath=`.status.metrics.rewardAccuracy`
// +kubebuilder:printcolumn:name="Margin",type=string,JSONPath=`.status.metrics.rewardMargin`
// +kubebuilder:printcolumn:name="Eval Acc",type=string,JSONPath=`.status.metrics.evalRewardAccuracy`,priority=1
// +kubebuilder:printcolumn:name="Params",type=integer,JSONPath=`.status.parameterCount`,priority=1
// +kubebuilder:printcolumn:name="Trainable",type=integer,JSONPath=`.status.trainableParameterCount`,priority=1
// +kubebuilder:printcolumn:name="Model",type=string,JSONPath=`.status.modelURI`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.status) || !has(oldSelf.status.startTime) || (self.spec.referenceRef == oldSelf.spec.referenceRef && self.spec.beta == oldSelf.spec.beta && self.spec.lossType == oldSelf.spec.lossType && self.spec.labelSmoothing == oldSelf.spec.labelSmoothing && self.spec.rpoAlpha == oldSelf.spec.rpoAlpha && self.spec.precomputeReferenceLogProbs == oldSelf.spec.precomputeReferenceLogProbs && self.spec.datasetRef == oldSelf.spec.datasetRef && self.spec.training == oldSelf.spec.training && self.spec.resources == oldSelf.spec.resources && self.spec.output == oldSelf.spec.output && self.spec.maxRetries == oldSelf.spec.maxRetries && has(self.spec.adapter) == has(oldSelf.spec.adapter) && (!has(self.spec.adapter) || self.spec.adapter == oldSelf.spec.adapter) && has(self.spec.trainer) == has(oldSelf.spec.trainer) && (!has(self.spec.trainer) || self.spec.trainer == oldSelf.spec.trainer) && has(self.spec.activeDeadlineSeconds) == has(oldSelf.spec.activeDeadlineSeconds) && (!has(self.spec.activeDeadlineSeconds) || self.spec.activeDeadlineSeconds == oldSelf.spec.activeDeadlineSeconds) && has(self.spec.scheduling) == has(oldSelf.spec.scheduling) && (!has(self.spec.scheduling) || self.spec.scheduling == oldSelf.spec.scheduling))",message="the spec cannot change once the run has started (its Job exists); only suspend can"
type DPORun struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   DPORunSpec   `json:"spec"`
	Status DPORunStatus `json:"status,omitempty"`
}

// DPORunList is a list of DPORuns.
//
// +kubebuilder:object:root=true
type DPORunList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DPORun `json:"items"`
}

func init() {
	SchemeBuilder.Register(&DPORun{}, &DPORunList{})
}
