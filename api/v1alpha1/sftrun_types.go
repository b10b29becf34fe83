package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Tokenizer names a tokenizer the trainer knows.
// +kubebuilder:validation:Enum=byte
type Tokenizer string

// TokenizerByte is the byte-level tokenizer (256 bytes plus BOS, EOS and PAD).
const TokenizerByte Tokenizer = "byte"

// Architecture of a decoder-only transformer (GPT-2's layout) trained from scratch.
// +kubebuilder:validation:XValidation:rule="self.dModel % self.heads == 0",message="dModel must be a multiple of heads"
type Architecture struct {
	// layers is the number of transformer blocks.
	// +kubebuilder:default=4
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=96
	// +optional
	Layers int32 `json:"layers,omitempty"`

	// dModel is the width of the residual stream.
	// +kubebuilder:default=128
	// +kubebuilder:validation:Minimum=8
	// +kubebuilder:validation:Maximum=16384
	// +optional
	DModel int32 `json:"dModel,omitempty"`

	// heads is the number of attention heads; dModel must be a multiple of it.
	// +kubebuilder:default=4
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=256
	// +optional
	Heads int32 `json:"heads,omitempty"`

	// contextLength is the longest sequence (prompt and response, in tokens); longer ones lose the prompt's start.
	// +kubebuilder:default=128
	// +kubebuilder:validation:Minimum=8
	// +kubebuilder:validation:Maximum=65536
	// +optional
	ContextLength int32 `json:"contextLength,omitempty"`

	// tokenizer turns text into tokens.
	// +kubebuilder:default=byte
	// +optional
	Tokenizer Tokenizer `json:"tokenizer,omitempty"`
}

// ModelSource is an existing model to fine-tune.
// +kubebuilder:validation:XValidation:rule="has(self.uri) != has(self.sftRun)",message="exactly one of uri or sftRun must be set"
type ModelSource struct {
	// uri of a pretrained model directory in the Hugging Face layout, as save_pretrained writes it: config.json,
	// model.safetensors (or shards with model.safetensors.index.json; F32, BF16 or F16 weights), tokenizer.json,
	// tokenizer_config.json, special_tokens_map.json and generation_config.json. A model or checkpoint directory
	// the trainer wrote has the same layout. Schemes: s3:// (with ?endpoint=&region= for S3-compatible stores),
	// gs://, azblob://, file://, pvc://<claim>/<path> (the claim is mounted read-only), or hf://<org>/<name> with an
	// optional @<revision> (a branch, tag or commit; default main) for a model on the Hugging Face Hub.
	//
	// Credentials come from spec.output.secretRef, whose keys become the trainer's environment: AWS_*, GOOGLE_*,
	// AZURE_* for the stores, and HF_TOKEN for private or gated Hub models (the key passes through unchanged and
	// never appears in status or logs). The Hub endpoint is the manager's HF_ENDPOINT (set it with the manager's
	// --trainer-env, e.g. for a mirror); default https://huggingface.co. The commit an hf:// revision resolved to
	// and the digest of the weights downloaded are recorded in status.sourceModel, so the run can be repeated.
	//
	// Memory: full fine-tuning with AdamW in float32 needs about 16 bytes per parameter (weights 4, gradients 4,
	// AdamW's two moments 8) plus activations, which grow with batchSize x contextLength, and the vocabulary-sized
	// logits; a 135M-parameter model needs about 2.2 GB before activations. spec.resources.memory may be left
	// empty; when it is set, the trainer estimates its peak before loading the weights and fails at once with
	// reason InsufficientMemory, naming the figures, if the limit is below it.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^(s3|gs|azblob|https|file|pvc|hf)://.+$`
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('hf://') || self.matches('^hf://[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?(@[^@ ]+)?$')",message="an hf:// uri is hf://<org>/<name> with an optional @<revision>"
	// +optional
	URI string `json:"uri,omitempty"`

	// sftRun names a succeeded SFTRun in the same namespace whose model to start from.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	SFTRun string `json:"sftRun,omitempty"`
}

// ModelSpec is the starting model of an SFT run: a new architecture trained from scratch, or an existing
// (pretrained) model to fine-tune.
// +kubebuilder:validation:XValidation:rule="has(self.architecture) != has(self.from)",message="exactly one of architecture or from must be set"
type ModelSpec struct {
	// architecture of a model trained from scratch.
	// +optional
	Architecture *Architecture `json:"architecture,omitempty"`

	// from is an existing model to fine-tune: a pretrained model directory (uri) or a succeeded SFTRun's model.
	// +optional
	From *ModelSource `json:"from,omitempty"`

	// chatTemplate replaces the model's own chat template (tokenizer_config.json's chat_template) for rendering
	// conversational rows: inline text or a ConfigMap key. The template the run used is written into its output's
	// tokenizer_config.json, so a DPORun on this run and every downstream tool render with the same one.
	// +optional
	ChatTemplate *ChatTemplateSource `json:"chatTemplate,omitempty"`
}

// SFTRunSpec is a supervised fine-tuning run on prompt -> chosen.
// +kubebuilder:validation:XValidation:rule="!has(self.adapter) || has(self.model.from)",message="adapter needs a pretrained starting model (model.from): LoRA trains an adapter on frozen weights"
// +kubebuilder:validation:XValidation:rule="!has(self.output) || !has(self.output.mergedModel) || self.output.mergedModel || has(self.adapter)",message="output.mergedModel false applies only to runs with an adapter"
type SFTRunSpec struct {
	// model is the starting model.
	Model ModelSpec `json:"model"`

	RunSpec `json:",inline"`
}

// SFTMetrics are the latest metrics of an SFT run, as decimal strings.
type SFTMetrics struct {
	// trainLoss is the mean per-token loss on response tokens of the latest step.
	// +optional
	TrainLoss string `json:"trainLoss,omitempty"`
	// evalLoss is the mean per-token loss on the eval split at the latest evaluation.
	// +optional
	EvalLoss string `json:"evalLoss,omitempty"`
}

// SFTRunStatus is the observed state of an SFTRun.
type SFTRunStatus struct {
	RunStatus `json:",inline"`

	// metrics are the latest training and evaluation metrics.
	// +optional
	Metrics *SFTMetrics `json:"metrics,omitempty"`
}

// SFTRun fine-tunes a model on a PreferenceDataset's prompt -> chosen pairs in a GPU-scheduled batch Job.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=sft,categories=preftune
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Dataset",type=string,JSONPath=`.spec.datasetRef.name`
// +kubebuilder:printcolumn:name="Step",type=integer,JSONPath=`.status.progress.step`
// +kubebuilder:printcolumn:name="Progress",type=string,JSONPath=`.status.progress.percent`,description="percent of steps done"
// +kubebuilder:printcolumn:name="Loss",type=string,JSONPath=`.status.metrics.trainLoss`
// +kubebuilder:printcolumn:name="Eval Loss",type=string,JSONPath=`.status.metrics.evalLoss`
// +kubebuilder:printcolumn:name="Params",type=integer,JSONPath=`.status.parameterCount`,priority=1
// +kubebuilder:printcolumn:name="Trainable",type=integer,JSONPath=`.status.trainableParameterCount`,priority=1
// +kubebuilder:printcolumn:name="Model",type=string,JSONPath=`.status.modelURI`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.status) || !has(oldSelf.status.startTime) || (self.spec.model == oldSelf.spec.model && self.spec.datasetRef == oldSelf.spec.datasetRef && self.spec.training == oldSelf.spec.training && self.spec.resources == oldSelf.spec.resources && self.spec.output == oldSelf.spec.output && self.spec.maxRetries == oldSelf.spec.maxRetries && has(self.spec.adapter) == has(oldSelf.spec.adapter) && (!has(self.spec.adapter) || self.spec.adapter == oldSelf.spec.adapter) && has(self.spec.trainer) == has(oldSelf.spec.trainer) && (!has(self.spec.trainer) || self.spec.trainer == oldSelf.spec.trainer) && has(self.spec.activeDeadlineSeconds) == has(oldSelf.spec.activeDeadlineSeconds) && (!has(self.spec.activeDeadlineSeconds) || self.spec.activeDeadlineSeconds == oldSelf.spec.activeDeadlineSeconds) && has(self.spec.scheduling) == has(oldSelf.spec.scheduling) && (!has(self.spec.scheduling) || self.spec.scheduling == oldSelf.spec.scheduling))",message="the spec cannot change once the run has started (its Job exists); only suspend can"
type SFTRun struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   SFTRunSpec   `json:"spec"`
	Status SFTRunStatus `json:"status,omitempty"`
}

// SFTRunList is a list of SFTRuns.
//
// +kubebuilder:object:root=true
type SFTRunList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SFTRun `json:"items"`
}

func init() {
	SchemeBuilder.Register(&SFTRun{}, &SFTRunList{})
}
