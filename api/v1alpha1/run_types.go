package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Hyperparameters and metrics are decimal strings, not floats (Kubernetes API conventions): these patterns
// validate them.
const (
	// DecimalPattern is a non-negative decimal number, optionally in exponent form ("0.1", "3e-4").
	DecimalPattern = `^(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$`
)

// DatasetReference names a PreferenceDataset in the run's namespace.
type DatasetReference struct {
	// name of the PreferenceDataset, in the same namespace as the run.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// LRSchedule is the learning-rate schedule after warmup.
// +kubebuilder:validation:Enum=cosine;linear;constant
type LRSchedule string

const (
	LRScheduleCosine   LRSchedule = "cosine"
	LRScheduleLinear   LRSchedule = "linear"
	LRScheduleConstant LRSchedule = "constant"
)

// TrainingSpec holds the optimisation settings of a run.
// +kubebuilder:validation:XValidation:rule="has(self.maxSteps) != has(self.epochs)",message="exactly one of maxSteps or epochs must be set"
type TrainingSpec struct {
	// maxSteps is the number of optimiser steps. Exactly one of maxSteps and epochs is set.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000000
	MaxSteps *int32 `json:"maxSteps,omitempty"`

	// epochs is the number of passes over the training split, as a decimal ("1", "2.5").
	// +optional
	// +kubebuilder:validation:Pattern=`^(0|[1-9][0-9]*)(\.[0-9]+)?$`
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="!self.matches('^(0|[1-9][0-9]*)([.][0-9]+)?([eE][-+]?[0-9]+)?$') || (double(self) > 0.0 && double(self) <= 1000.0)",message="epochs must be greater than 0 and at most 1000"
	Epochs *string `json:"epochs,omitempty"`

	// batchSize is the number of examples (SFT) or preference pairs (DPO) per micro-batch.
	// +kubebuilder:default=16
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4096
	// +optional
	BatchSize int32 `json:"batchSize,omitempty"`

	// gradientAccumulationSteps is the number of micro-batches whose gradients make one optimiser step.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1024
	// +optional
	GradientAccumulationSteps int32 `json:"gradientAccumulationSteps,omitempty"`

	// learningRate is AdamW's peak learning rate, as a decimal ("3e-4").
	// +kubebuilder:default="3e-4"
	// +kubebuilder:validation:Pattern=`^(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$`
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="!self.matches('^(0|[1-9][0-9]*)([.][0-9]+)?([eE][-+]?[0-9]+)?$') || (double(self) > 0.0 && double(self) <= 1.0)",message="learningRate must be greater than 0 and at most 1"
	// +optional
	LearningRate string `json:"learningRate,omitempty"`

	// lrSchedule is the decay after warmup: cosine (to 10% of the peak by default), linear (likewise) or
	// constant. Both decays end at minLearningRateRatio times learningRate.
	// +kubebuilder:default=cosine
	// +optional
	LRSchedule LRSchedule `json:"lrSchedule,omitempty"`

	// minLearningRateRatio is where cosine and linear decay end, as a share of learningRate, between 0 and 1
	// ("0.1": 10% of the peak, the default). "0" decays to 0 as Hugging Face's schedulers do; constant ignores it.
	// +kubebuilder:default="0.1"
	// +kubebuilder:validation:Pattern=`^(0(\.[0-9]+)?|1(\.0+)?)$`
	// +kubebuilder:validation:MaxLength=16
	// +optional
	MinLearningRateRatio string `json:"minLearningRateRatio,omitempty"`

	// warmupSteps is the number of steps of linear warmup from 0 to learningRate.
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10000000
	// +optional
	WarmupSteps int32 `json:"warmupSteps,omitempty"`

	// weightDecay is AdamW's decoupled weight decay, applied to weight matrices only.
	// +kubebuilder:default="0"
	// +kubebuilder:validation:Pattern=`^(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$`
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="!self.matches('^(0|[1-9][0-9]*)([.][0-9]+)?([eE][-+]?[0-9]+)?$') || (double(self) <= 1.0)",message="weightDecay must be at most 1"
	// +optional
	WeightDecay string `json:"weightDecay,omitempty"`

	// gradClipNorm clips the global gradient norm; "0" disables clipping.
	// +kubebuilder:default="1.0"
	// +kubebuilder:validation:Pattern=`^(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$`
	// +kubebuilder:validation:MaxLength=32
	// +optional
	GradClipNorm string `json:"gradClipNorm,omitempty"`

	// evalEvery is how many steps pass between evaluations on the eval split; 0 evaluates only at the end.
	// +kubebuilder:default=100
	// +kubebuilder:validation:Minimum=0
	// +optional
	EvalEvery int32 `json:"evalEvery,omitempty"`

	// checkpointEvery is how many steps pass between checkpoints; a lost pod loses at most this many steps.
	// 0 writes only the final checkpoint.
	// +kubebuilder:default=200
	// +kubebuilder:validation:Minimum=0
	// +optional
	CheckpointEvery int32 `json:"checkpointEvery,omitempty"`

	// checkpointsToKeep is how many complete checkpoints the run keeps. After a newer checkpoint completes, older
	// complete ones beyond this count are deleted from the output (in every store), and so are incomplete ones
	// (uploads or saves cut short) older than the newest complete one; the newest complete checkpoint is never
	// deleted, so a lost pod still resumes. status.checkpoints lists only those kept. Checkpoints of pretrained
	// models are large: weights and AdamW's moments take about 12 bytes per parameter.
	// +kubebuilder:default=2
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +optional
	CheckpointsToKeep int32 `json:"checkpointsToKeep,omitempty"`

	// maxLength caps a sequence (prompt and response together) in tokens: the context is the smaller of the model's
	// max positions and maxLength (absent: the model's). Each pair's prompt is cut once, keeping its end, so chosen
	// and rejected see the same prompt; a response is cut at its end only when it does not fit on its own. What
	// was cut is counted in status.truncation and the warnings.
	// At least 2: a sequence needs room for one token and the next one it predicts (the trainer refuses less).
	// +kubebuilder:validation:Minimum=2
	// +kubebuilder:validation:Maximum=1048576
	// +optional
	MaxLength *int32 `json:"maxLength,omitempty"`

	// seed makes the run reproducible: initialisation, data order and sampling.
	// +kubebuilder:default=42
	// +optional
	Seed int64 `json:"seed,omitempty"`
}

// ConfigMapKeyReference names one key of a ConfigMap in the object's namespace.
type ConfigMapKeyReference struct {
	// name of the ConfigMap.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// key in the ConfigMap's data.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key"`
}

// ChatTemplateSource is a Jinja chat template, as tokenizer_config.json's chat_template holds it: inline text or a
// ConfigMap key, exactly one.
// +kubebuilder:validation:XValidation:rule="has(self.inline) != has(self.configMapKeyRef)",message="exactly one of inline or configMapKeyRef must be set"
type ChatTemplateSource struct {
	// inline is the template's text.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=65536
	// +optional
	Inline string `json:"inline,omitempty"`

	// configMapKeyRef names a ConfigMap key holding the template's text. The operator reads it when it creates the
	// Job (the text is copied into the Job's configuration, so later changes do not affect a started run); while
	// the ConfigMap or the key is missing, the run waits with reason ChatTemplateNotFound and looks again every
	// few seconds.
	// +optional
	ConfigMapKeyRef *ConfigMapKeyReference `json:"configMapKeyRef,omitempty"`
}

// AdapterType names a parameter-efficient fine-tuning method.
// +kubebuilder:validation:Enum=lora
type AdapterType string

// AdapterTypeLoRA is LoRA (Hu et al. 2021), as Hugging Face PEFT implements it.
const AdapterTypeLoRA AdapterType = "lora"

// AdapterSpec trains a low-rank adapter on the frozen starting model instead of every weight (PEFT's LoraConfig):
// each target linear layer W (out x in) gets A (rank x in) and B (out x rank), B starting at zero, and computes
// W x + (alpha/rank) B A dropout(x). Only the adapter gets gradients and AdamW state (about 16 bytes per adapter
// parameter instead of per model parameter). The run writes the adapter in PEFT's layout under <output>/adapter/
// (status.adapterURI) and, unless spec.output.mergedModel is false, the merged model under <output>/model/.
type AdapterSpec struct {
	// type of adapter; lora is the only one.
	// +kubebuilder:default=lora
	// +optional
	Type AdapterType `json:"type,omitempty"`

	// rank r of A and B (PEFT's r).
	// +kubebuilder:default=16
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1024
	// +optional
	Rank int32 `json:"rank,omitempty"`

	// alpha scales the adapter's update by alpha/rank (PEFT's lora_alpha). Absent: 2 x rank, which the operator
	// fills in when it builds the trainer's configuration (a schema default cannot depend on rank).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65536
	// +optional
	Alpha *int32 `json:"alpha,omitempty"`

	// dropout is the probability of dropping an input of the adapter during training, a decimal in [0, 1)
	// (PEFT's lora_dropout); "0" (the default) disables it.
	// +kubebuilder:default="0"
	// +kubebuilder:validation:Pattern=`^(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$`
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="!self.matches('^(0|[1-9][0-9]*)([.][0-9]+)?([eE][-+]?[0-9]+)?$') || double(self) < 1.0",message="dropout must be below 1"
	// +optional
	Dropout string `json:"dropout,omitempty"`

	// targetModules are the linear layers that get an adapter, by their Hugging Face names: q_proj, k_proj,
	// v_proj, o_proj, gate_proj, up_proj, down_proj for Llama-family models; c_attn, c_proj, c_fc for GPT-2.
	// Empty (the default): every attention and MLP projection of the architecture. The trainer refuses a name the
	// architecture does not have before training (reason InvalidConfig), listing the names it knows.
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=128
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z_][A-Za-z0-9_.]*$`
	// +optional
	TargetModules []string `json:"targetModules,omitempty"`
}

// ResourcesSpec says what the trainer's pod asks for.
type ResourcesSpec struct {
	// gpus is the number of GPUs for the trainer; 0 runs on CPU.
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=64
	// +optional
	GPUs int32 `json:"gpus,omitempty"`

	// gpuResourceName is the extended resource that counts GPUs. Empty means the manager's default
	// (--gpu-resource-name, nvidia.com/gpu unless changed).
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$`
	// +optional
	GPUResourceName string `json:"gpuResourceName,omitempty"`

	// cpu request and limit of the trainer container.
	// +optional
	CPU *resource.Quantity `json:"cpu,omitempty"`

	// memory request and limit of the trainer container. It may be left empty (no request, no limit). Full
	// fine-tuning with AdamW in float32 needs about 16 bytes per parameter (weights, gradients, two moments; this
	// trainer 20: its compute graph keeps a second copy of the gradients), a DPO run 4 more for its reference
	// model, plus activations (growing with batchSize x context length) and the vocabulary-sized logits. With a limit, the trainer checks its estimated peak against it before loading the
	// model and fails with reason InsufficientMemory when it does not fit; a pod the kernel kills for memory shows
	// reason OutOfMemory with the limit in the run's Failed condition.
	// +optional
	Memory *resource.Quantity `json:"memory,omitempty"`
}

// SchedulingSpec places the trainer's pod.
type SchedulingSpec struct {
	// nodeSelector is copied to the trainer's pod.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// tolerations are added to the trainer's pod (a toleration for the GPU taint is added when gpus > 0).
	// +optional
	// +listType=atomic
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// affinity is copied to the trainer's pod.
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`

	// priorityClassName is copied to the trainer's pod.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	PriorityClassName string `json:"priorityClassName,omitempty"`

	// queueName is the Kueue LocalQueue that admits the run: it becomes the Job's kueue.x-k8s.io/queue-name label.
	// With Kueue, create the run with suspend: true and let Kueue unsuspend its Job.
	// +kubebuilder:validation:MaxLength=63
	// +optional
	QueueName string `json:"queueName,omitempty"`
}

// OutputSpec says where a run writes its outputs.
type OutputSpec struct {
	// uri is the base under which runs write (s3://, gs://, azblob://, file:// or pvc://<claim>/<path>). A run
	// writes checkpoints/, model/ and metrics.jsonl under <uri>/<namespace>/<name>-<uid prefix>, so two runs never
	// share a prefix; status.outputURI shows it. Empty means the manager's --default-output-uri.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^(s3|gs|azblob|file|pvc)://.+$`
	// +optional
	URI string `json:"uri,omitempty"`

	// secretRef names a Secret in the run's namespace with credentials for uri (for example AWS_ACCESS_KEY_ID and
	// AWS_SECRET_ACCESS_KEY); its keys become the trainer's environment. They never appear in status or logs.
	// +optional
	SecretRef *corev1.LocalObjectReference `json:"secretRef,omitempty"`

	// mergedModel, for a run with spec.adapter, also writes the starting model with the adapter merged in under
	// model/ (the layout of a pretrained model; status.modelURI). false writes only the adapter (status.adapterURI),
	// which needs the starting model to be used: a DPORun on such an SFTRun uses that SFTRun's starting model with
	// the adapter as its reference. Only runs with spec.adapter may set it to false.
	// +kubebuilder:default=true
	// +optional
	MergedModel *bool `json:"mergedModel,omitempty"`
}

// TrainerSpec overrides the trainer's container.
type TrainerSpec struct {
	// image overrides the manager's --trainer-image for this run. It must hold the trainer at /preftune-trainer,
	// which the operator runs as the container's command (the project's image holds it there).
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Image string `json:"image,omitempty"`
}

// RunSpec holds the fields that SFTRun and DPORun share.
type RunSpec struct {
	// datasetRef names the PreferenceDataset to train on. SFT trains on prompt -> chosen.
	DatasetRef DatasetReference `json:"datasetRef"`

	// training holds the optimisation settings.
	Training TrainingSpec `json:"training"`

	// resources says what the trainer's pod asks for.
	// +kubebuilder:default={}
	// +optional
	Resources ResourcesSpec `json:"resources"`

	// scheduling places the trainer's pod.
	// +optional
	Scheduling SchedulingSpec `json:"scheduling,omitempty"`

	// output says where the run writes checkpoints, the model and metrics.
	// +kubebuilder:default={}
	// +optional
	Output OutputSpec `json:"output"`

	// trainer overrides the trainer's container.
	// +optional
	Trainer TrainerSpec `json:"trainer,omitempty"`

	// adapter trains a LoRA adapter on the frozen starting model instead of every weight. Absent: full
	// fine-tuning.
	// +optional
	Adapter *AdapterSpec `json:"adapter,omitempty"`

	// maxRetries is how many times a failed trainer pod is retried (the Job's backoffLimit). Disruptions such as
	// preemption or eviction do not count; invalid input is never retried.
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	MaxRetries int32 `json:"maxRetries,omitempty"`

	// activeDeadlineSeconds bounds the run's wall time across all attempts; the run fails when it is exceeded.
	// +kubebuilder:validation:Minimum=1
	// +optional
	ActiveDeadlineSeconds *int64 `json:"activeDeadlineSeconds,omitempty"`

	// suspend stops the run's pod (progress since the last checkpoint is lost) or keeps it from starting; setting
	// it back to false resumes from the newest checkpoint. Kueue sets it on the Job, not here.
	// +kubebuilder:default=false
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// RunPhase summarises a run's conditions for printer columns.
// +kubebuilder:validation:Enum=Pending;Suspended;Running;Succeeded;Failed
type RunPhase string

const (
	RunPhasePending   RunPhase = "Pending"
	RunPhaseSuspended RunPhase = "Suspended"
	RunPhaseRunning   RunPhase = "Running"
	RunPhaseSucceeded RunPhase = "Succeeded"
	RunPhaseFailed    RunPhase = "Failed"
)

// Condition types of runs.
const (
	ConditionDatasetReady   = "DatasetReady"
	ConditionReferenceReady = "ReferenceReady"
	ConditionRunning        = "Running"
	ConditionSucceeded      = "Succeeded"
	ConditionFailed         = "Failed"
	ConditionSuspended      = "Suspended"
	ConditionReady          = "Ready"
)

// Progress of a training run.
type Progress struct {
	// step is the last completed optimiser step.
	Step int64 `json:"step"`
	// totalSteps is the number of steps the run will take.
	TotalSteps int64 `json:"totalSteps"`
	// epoch is the fractional number of passes over the training split so far.
	// +optional
	Epoch string `json:"epoch,omitempty"`
	// percent is step / totalSteps, 0 to 100.
	Percent int32 `json:"percent"`
	// etaSeconds is the estimated time to completion.
	// +optional
	ETASeconds *int64 `json:"etaSeconds,omitempty"`
	// tokensPerSecond is the recent training throughput.
	// +optional
	TokensPerSecond string `json:"tokensPerSecond,omitempty"`
	// lastUpdateTime is when progress was last reported.
	// +optional
	LastUpdateTime *metav1.Time `json:"lastUpdateTime,omitempty"`
}

// CheckpointStatus is one complete checkpoint.
type CheckpointStatus struct {
	// step the checkpoint was taken at.
	Step int64 `json:"step"`
	// uri of the checkpoint directory.
	URI string `json:"uri"`
	// time the checkpoint was completed.
	// +optional
	Time *metav1.Time `json:"time,omitempty"`
}

// SourceModelStatus identifies the starting model of a run, so that the run can be repeated.
type SourceModelStatus struct {
	// uri of the model as given (hf://org/name@revision, s3://..., pvc://...).
	// +optional
	URI string `json:"uri,omitempty"`
	// commit is the Hugging Face Hub commit (40 hex digits) an hf:// revision resolved to; every file was
	// downloaded at it. Empty for other schemes.
	// +optional
	Commit string `json:"commit,omitempty"`
	// digest ("sha256:...") of the starting model's weights.
	// +optional
	Digest string `json:"digest,omitempty"`
}

// TruncationStatus counts what fitting the rows into the context changed (the trainer's counts; for a run, the
// training and eval rows together).
type TruncationStatus struct {
	// contextLength in tokens: the smaller of the model's max positions and training.maxLength.
	ContextLength int64 `json:"contextLength"`
	// rowsTruncated: rows (pairs, or SFT examples) that lost any token.
	RowsTruncated int64 `json:"rowsTruncated"`
	// promptsEmptied: rows whose whole prompt was cut.
	PromptsEmptied int64 `json:"promptsEmptied"`
	// responsesCut: responses (chosen and rejected counted apart) cut before their end token.
	ResponsesCut int64 `json:"responsesCut"`
	// identicalPairs: pairs whose chosen and rejected are the same tokens after truncation; they carry no
	// preference and are left out of training.
	// +optional
	IdenticalPairs int64 `json:"identicalPairs,omitempty"`
}

// PinnedDataset records the dataset a run trains on, pinned when the run starts.
type PinnedDataset struct {
	// name of the PreferenceDataset.
	Name string `json:"name"`
	// digest ("sha256:...") of the data; the trainer refuses data with another digest.
	Digest string `json:"digest"`
}

// RunStatus holds the status fields that SFTRun and DPORun share.
type RunStatus struct {
	// conditions: DatasetReady, ReferenceReady (DPO), Running, Succeeded, Failed, Suspended.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// phase summarises the conditions for kubectl get.
	// +optional
	Phase RunPhase `json:"phase,omitempty"`

	// observedGeneration is the generation this status was computed from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// progress of training.
	// +optional
	Progress *Progress `json:"progress,omitempty"`

	// checkpoints are the newest complete checkpoints.
	// +optional
	// +listType=atomic
	Checkpoints []CheckpointStatus `json:"checkpoints,omitempty"`

	// plots are the run's pictures (loss.svg, and rewards.svg for DPO) next to its metrics.jsonl.
	// +optional
	// +listType=atomic
	Plots []string `json:"plots,omitempty"`

	// modelURI is the final model's directory, set when the run succeeded (with spec.adapter, the merged model;
	// empty when spec.output.mergedModel is false).
	// +optional
	ModelURI string `json:"modelURI,omitempty"`

	// modelDigest is the sha256 of the final model's weights.
	// +optional
	ModelDigest string `json:"modelDigest,omitempty"`

	// architecture of the model trained, as config.json names it (e.g. LlamaForCausalLM, GPT2LMHeadModel).
	// +optional
	Architecture string `json:"architecture,omitempty"`

	// parameterCount is the number of the model's parameters (tied embeddings counted once).
	// +optional
	ParameterCount int64 `json:"parameterCount,omitempty"`

	// trainableParameterCount is the number of parameters the run trains: parameterCount for full fine-tuning,
	// the adapter's with spec.adapter.
	// +optional
	TrainableParameterCount int64 `json:"trainableParameterCount,omitempty"`

	// adapterURI is the adapter's directory (PEFT's layout: adapter_config.json, adapter_model.safetensors), set
	// when a run with spec.adapter succeeded.
	// +optional
	AdapterURI string `json:"adapterURI,omitempty"`

	// truncation counts what fitting the rows into the run's context cut.
	// +optional
	Truncation *TruncationStatus `json:"truncation,omitempty"`

	// sourceModel is the model the run started from as the trainer resolved it (SFT: spec.model.from; DPO: the
	// reference model); empty for a model trained from scratch.
	// +optional
	SourceModel *SourceModelStatus `json:"sourceModel,omitempty"`

	// outputURI is the prefix the run writes under.
	// +optional
	OutputURI string `json:"outputURI,omitempty"`

	// dataset is the dataset pinned when the run started.
	// +optional
	Dataset *PinnedDataset `json:"dataset,omitempty"`

	// jobName is the batch Job that runs the trainer.
	// +optional
	JobName string `json:"jobName,omitempty"`

	// attempts counts the trainer pods started so far.
	// +optional
	Attempts int32 `json:"attempts,omitempty"`

	// resumedFromStep is the checkpoint step the last attempt resumed from.
	// +optional
	ResumedFromStep int64 `json:"resumedFromStep,omitempty"`

	// warnings the trainer raised, such as likelihood displacement in DPO.
	// +optional
	// +listType=atomic
	Warnings []string `json:"warnings,omitempty"`

	// startTime is when the run's Job was created.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// completionTime is when the run succeeded or failed.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
}
