// Package contract is the trainer contract: the only package that both the operator and the trainer import.
//
// The operator turns an SFTRun, a DPORun or a PreferenceDataset into one JSON document (RunConfig or
// DatasetConfig) that it mounts into the trainer's pod; the trainer reads it, does the work, and leaves one
// JSON document (TerminationMessage) in the pod's termination message, from which the operator computes status.
// Hyperparameters are floats here: the API keeps them as validated strings (Kubernetes conventions), and the
// operator parses them once when it builds the run's configuration.
//
// Keep this package small and free of dependencies: the operator must not link training code, and the trainer
// must not import the API or the controllers.
package contract

// APIVersion versions the documents in this package. A trainer refuses a document of another version.
const APIVersion = "contract.preftune.io/v1alpha1"

// Exit codes of the trainer. The operator's Job fails at once (no retry) on ExitInvalidInput.
const (
	ExitOK = 0
	// ExitFailed is any failure that may succeed on retry (I/O, out of memory, a bug).
	ExitFailed = 1
	// ExitUsage is a command line the trainer cannot parse.
	ExitUsage = 2
	// ExitInvalidInput is input that will never work: a bad dataset, a bad configuration, a changed digest.
	ExitInvalidInput = 3
)

// Reasons of failures the operator treats specially or documents (Error.Reason). The trainer may report others
// (InvalidConfig, InvalidDataset, DatasetChanged, ReferenceUnreadable, Interrupted, ...); the operator copies any
// reason into the run's Failed condition.
const (
	// ReasonModelUnsupported: the starting model's architecture (config.json) or one of its settings is not one
	// the trainer implements; the message names what was found and what is supported. Exit code ExitInvalidInput.
	ReasonModelUnsupported = "ModelUnsupported"
	// ReasonModelUnreadable: the starting model cannot be read (missing files, bad config.json, tensors of the
	// wrong shape).
	ReasonModelUnreadable = "ModelUnreadable"
	// ReasonInsufficientMemory: the container's memory limit is below the trainer's estimate of its peak; the
	// message gives both figures and what would fit. Exit code ExitInvalidInput: a retry cannot fit either.
	ReasonInsufficientMemory = "InsufficientMemory"
	// ReasonOutOfMemory is not written by the trainer: the operator sets it when the kernel killed the trainer's
	// container for memory (OOMKilled), with the container's memory limit in the message.
	ReasonOutOfMemory = "OutOfMemory"
)

// TerminationMessagePath is where the trainer writes its TerminationMessage; the operator sets it on the container.
const TerminationMessagePath = "/dev/termination-log"

// TrainerPath is where a trainer image holds the trainer. The operator runs it as the container's command, so one
// image can carry both the manager (its entrypoint) and the trainer.
const TrainerPath = "/preftune-trainer"

// MaxTerminationMessageBytes is the kubelet's limit for a termination message; documents stay well under it.
const MaxTerminationMessageBytes = 4096

// Kind of work.
type Kind string

const (
	KindSFT     Kind = "sft"
	KindDPO     Kind = "dpo"
	KindInspect Kind = "inspect"
)

// RunConfig is the whole configuration of one SFT or DPO run.
type RunConfig struct {
	APIVersion string `json:"apiVersion"`
	Kind       Kind   `json:"kind"`
	// Run identifies the custom resource that asked for this run (for logs and reports).
	Run RunRef `json:"run"`
	// Dataset is the data to train on.
	Dataset DatasetConfig `json:"dataset"`
	// Model is the starting model of an SFT run. Exactly one of Architecture and From is set.
	Model ModelConfig `json:"model,omitempty"`
	// Reference is the frozen reference model of a DPO run; the policy starts from the same weights.
	Reference *ReferenceConfig `json:"reference,omitempty"`
	// Training holds the optimisation settings.
	Training TrainingConfig `json:"training"`
	// DPO holds the preference-loss settings of a DPO run.
	DPO *DPOConfig `json:"dpo,omitempty"`
	// Adapter, when set, trains a LoRA adapter on the frozen starting model instead of every weight (PEFT's
	// method); nil is full fine-tuning.
	Adapter *AdapterConfig `json:"adapter,omitempty"`
	// Output is where checkpoints, the final model and metrics go.
	Output OutputConfig `json:"output"`
	// Resources is what the pod was given, for the trainer to report which device it computes on.
	Resources ResourcesConfig `json:"resources,omitempty"`
}

// ResourcesConfig describes the trainer pod's accelerators. Extended resources cannot reach a pod through the
// downward API, so the operator writes the count here.
type ResourcesConfig struct {
	// GPUs the pod holds (spec.resources.gpus).
	GPUs int32 `json:"gpus,omitempty"`
}

// RunRef names the custom resource behind a run.
type RunRef struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid"`
}

// DatasetConfig says where a dataset is and how to read it.
type DatasetConfig struct {
	// URI of the data: file:///path (also a mounted ConfigMap or PVC), or a storage URI the trainer supports.
	URI string `json:"uri"`
	// Format is auto, standard, implicitPrompt, conversational, sharegpt or chatPreference (preferences), or
	// sft for SFT rows (prompt/completion, messages, text).
	Format string `json:"format,omitempty"`
	// Field mapping for JSON rows whose field names differ from the format's.
	PromptField   string `json:"promptField,omitempty"`
	ChosenField   string `json:"chosenField,omitempty"`
	RejectedField string `json:"rejectedField,omitempty"`
	// EvalFraction of rows held out for evaluation, grouped by prompt where that reaches the fraction and by row
	// otherwise (DatasetReport.SplitBy says which).
	EvalFraction float64 `json:"evalFraction,omitempty"`
	// Seed of the split's hash.
	Seed int64 `json:"seed,omitempty"`
	// Digest, when set, is the sha256 ("sha256:<hex>") the data must still have; otherwise the run fails with
	// ExitInvalidInput and reason DatasetChanged.
	Digest string `json:"digest,omitempty"`
	// InvalidRows is what invalid rows do: InvalidRowsReject (default, also "") fails the dataset and the run;
	// InvalidRowsSkip leaves them out, counts them (Counts.Skipped) and names the first lines in the warnings.
	// A dataset without any valid row fails either way.
	InvalidRows string `json:"invalidRows,omitempty"`
}

// Values of DatasetConfig.InvalidRows (the API's spec.invalidRows).
const (
	InvalidRowsReject = "Reject"
	InvalidRowsSkip   = "Skip"
)

// ModelConfig is the starting point of an SFT run.
type ModelConfig struct {
	Architecture *Architecture `json:"architecture,omitempty"`
	// From is the URI of a model or checkpoint directory in the Hugging Face layout to start from: s3://, gs://,
	// azblob://, file:// (the operator maps pvc:// to file:// under the claim's mount), or hf://org/name[@revision]
	// for the Hugging Face Hub (endpoint $HF_ENDPOINT, token $HF_TOKEN from the pod's environment).
	From string `json:"from,omitempty"`
	// ChatTemplate, when set, is a Jinja chat template (the text, as tokenizer_config.json's chat_template holds
	// it) that replaces the model's own for rendering conversational rows; the operator resolves an inline template
	// or a ConfigMap key into this text. The template a run used is written into its output's
	// tokenizer_config.json. Empty: the model's own template (or, for a model without one, the trainer's built-in
	// fallback, see trainer/data).
	ChatTemplate string `json:"chatTemplate,omitempty"`
}

// AdapterConfig is a LoRA adapter (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models"; PEFT's
// LoraConfig): each target linear layer W (out x in) gets A (Rank x in) and B (out x Rank), B starting at zero, and
// computes W x + (Alpha/Rank) B A dropout(x).
type AdapterConfig struct {
	// Type is "lora", the only type.
	Type string `json:"type"`
	// Rank r of A and B, 1..1024.
	Rank int `json:"rank"`
	// Alpha scales the update by Alpha/Rank (PEFT's lora_alpha).
	Alpha float64 `json:"alpha"`
	// Dropout probability on the adapter's input during training, in [0, 1).
	Dropout float64 `json:"dropout,omitempty"`
	// TargetModules are the linear layers by their Hugging Face names (q_proj, k_proj, v_proj, o_proj, gate_proj,
	// up_proj, down_proj for Llama-family models; c_attn, c_proj, c_fc for GPT-2). Empty: every attention and MLP
	// projection of the architecture. An unknown name fails the run before training (ExitInvalidInput), naming
	// the known ones.
	TargetModules []string `json:"targetModules,omitempty"`
}

// AdapterTypeLoRA is AdapterConfig.Type for LoRA.
const AdapterTypeLoRA = "lora"

// Architecture of the decoder-only transformer.
type Architecture struct {
	Layers        int    `json:"layers"`
	DModel        int    `json:"dModel"`
	Heads         int    `json:"heads"`
	ContextLength int    `json:"contextLength"`
	Tokenizer     string `json:"tokenizer"`
}

// ReferenceConfig is the frozen reference model of a DPO run.
type ReferenceConfig struct {
	// ModelURI is the SFT model directory, pinned by the operator when the reference was resolved.
	ModelURI string `json:"modelURI"`
	// AdapterURI, when set, is a LoRA adapter directory (PEFT's layout) trained on ModelURI: the reference and the
	// policy's starting weights are ModelURI with this adapter merged in. Set when the SFT run wrote an adapter
	// and no merged model. Any URI ModelURI takes: a path, file://, a store, or hf://org/name[@revision] (a PEFT
	// adapter repository on the Hub).
	AdapterURI string `json:"adapterURI,omitempty"`
}

// TrainingConfig holds optimisation settings. Exactly one of MaxSteps and Epochs is positive.
//
// CheckpointsToKeep is how many complete checkpoints stay in the output: after a newer one completes, older complete
// ones beyond the count are deleted, and incomplete ones older than the newest complete one. The newest complete
// checkpoint is never deleted. 0 means the trainer's default (2).
type TrainingConfig struct {
	MaxSteps  int     `json:"maxSteps,omitempty"`
	Epochs    float64 `json:"epochs,omitempty"`
	BatchSize int     `json:"batchSize"`
	// MaxLength caps the sequence length in tokens (prompt and response together): the context is
	// min(the model's max positions, MaxLength); 0 means the model's max positions.
	MaxLength                 int     `json:"maxLength,omitempty"`
	CheckpointsToKeep         int     `json:"checkpointsToKeep,omitempty"`
	GradientAccumulationSteps int     `json:"gradientAccumulationSteps,omitempty"`
	LearningRate              float64 `json:"learningRate"`
	// LRSchedule after warmup: cosine (default), linear or constant.
	LRSchedule string `json:"lrSchedule,omitempty"`
	// MinLearningRateRatio is the rate cosine and linear decay reach at the last step, as a share of
	// LearningRate, in [0, 1]. Absent (nil) means the default, 0.1 (10% of the peak); 0 decays to 0 as Hugging
	// Face's schedulers do. Constant ignores it.
	MinLearningRateRatio *float64 `json:"minLearningRateRatio,omitempty"`
	WarmupSteps          int      `json:"warmupSteps,omitempty"`
	WeightDecay          float64  `json:"weightDecay,omitempty"`
	GradClipNorm         float64  `json:"gradClipNorm,omitempty"`
	EvalEvery            int      `json:"evalEvery,omitempty"`
	CheckpointEvery      int      `json:"checkpointEvery,omitempty"`
	Seed                 int64    `json:"seed,omitempty"`
}

// DPOConfig holds the preference-loss settings.
type DPOConfig struct {
	Beta float64 `json:"beta"`
	// LossType is sigmoid, ipo, hinge or robust.
	LossType string `json:"lossType"`
	// LabelSmoothing is cDPO's ε for sigmoid and robust's ε.
	LabelSmoothing float64 `json:"labelSmoothing,omitempty"`
	// RPOAlpha weighs an NLL term on the chosen response (mean per-token NLL) added to the loss; 0 disables it.
	RPOAlpha float64 `json:"rpoAlpha,omitempty"`
	// PrecomputeReferenceLogProbs computes the reference's log-probabilities once before training.
	PrecomputeReferenceLogProbs bool `json:"precomputeReferenceLogProbs"`
}

// OutputConfig says where outputs go. The trainer writes:
//
//	<uri>/checkpoints/step-<n>/   a complete checkpoint (COMPLETE is written last)
//	<uri>/model/                  the final model (model.safetensors, config.json, tokenizer.json)
//	<uri>/metrics.jsonl           one JSON object of metrics per logged step
//	<uri>/adapter/                with an adapter: adapter_config.json, adapter_model.safetensors (PEFT's layout)
//
// With an adapter, model/ holds the merged model unless MergedModel is false.
type OutputConfig struct {
	URI string `json:"uri"`
	// MergedModel, when false, leaves out model/ of a run that trains an adapter (nil or true: write it).
	MergedModel *bool `json:"mergedModel,omitempty"`
}

// InspectConfig is the input of a dataset validation (`preftune-trainer inspect-dataset --config`).
type InspectConfig struct {
	APIVersion string        `json:"apiVersion"`
	Kind       Kind          `json:"kind"`
	Dataset    DatasetConfig `json:"dataset"`
	// MaxInvalidRows bounds how many invalid rows the report lists (all are counted).
	MaxInvalidRows int `json:"maxInvalidRows,omitempty"`
	// Model, when set, is the model whose tokenizer and chat template the rows are inspected with: the report then
	// has token lengths and the truncation counts for its context. Its ChatTemplate overrides the model's.
	Model *ModelConfig `json:"model,omitempty"`
	// MaxLength is the run's training.maxLength for the truncation counts (0: the model's max positions).
	MaxLength int `json:"maxLength,omitempty"`
}

// TerminationMessage is what the trainer leaves in the pod's termination message: exactly one field is set.
type TerminationMessage struct {
	Result  *Result        `json:"result,omitempty"`
	Dataset *DatasetReport `json:"dataset,omitempty"`
	Error   *Error         `json:"error,omitempty"`
}

// Error is a failure the trainer explains.
type Error struct {
	// Reason is a CamelCase word, such as InvalidDataset, InvalidConfig, DatasetChanged, ReferenceUnreadable.
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// Result is the outcome of a finished run.
type Result struct {
	Step       int     `json:"step"`
	TotalSteps int     `json:"totalSteps"`
	Epoch      float64 `json:"epoch"`
	// Metrics by their TRL names: loss, eval_loss, rewards/accuracies, rewards/margins, rewards/chosen,
	// rewards/rejected, eval_rewards/accuracies, tokens_per_second, ...
	Metrics map[string]float64 `json:"metrics,omitempty"`
	// ModelURI is the final model directory; ModelDigest the sha256 of its weights file.
	ModelURI    string `json:"modelURI,omitempty"`
	ModelDigest string `json:"modelDigest,omitempty"`
	// Architecture of the model, as its config.json names it (LlamaForCausalLM, GPT2LMHeadModel, ...).
	Architecture string `json:"architecture,omitempty"`
	// ParameterCount is the number of the model's parameters (tied embeddings counted once).
	ParameterCount int64 `json:"parameterCount,omitempty"`
	// TrainableParameterCount is the number of parameters the run trained: ParameterCount for full fine-tuning,
	// the adapter's for LoRA.
	TrainableParameterCount int64 `json:"trainableParameterCount,omitempty"`
	// AdapterURI is the adapter directory of a run that trained one (PEFT's layout); ModelURI is then the merged
	// model, or empty when OutputConfig.MergedModel is false.
	AdapterURI string `json:"adapterURI,omitempty"`
	// Truncation counts what fitting the rows into the context changed (training and eval rows together).
	Truncation *Truncation `json:"truncation,omitempty"`
	// SourceURI is the starting model as given (SFT: model.from; DPO: reference.modelURI); empty from scratch.
	SourceURI string `json:"sourceURI,omitempty"`
	// SourceCommit is the Hub commit an hf:// SourceURI's revision resolved to (40 hex digits).
	SourceCommit string `json:"sourceCommit,omitempty"`
	// SourceDigest is "sha256:<hex>" of the starting model's weights as loaded.
	SourceDigest string `json:"sourceDigest,omitempty"`
	// SourceAdapterURI is a DPO run's reference.adapterURI as given, merged into the starting model;
	// SourceAdapterCommit the Hub commit an hf:// one's revision resolved to (40 hex digits); SourceAdapterDigest
	// "sha256:<hex>" of its adapter_model.safetensors as loaded.
	SourceAdapterURI    string `json:"sourceAdapterURI,omitempty"`
	SourceAdapterCommit string `json:"sourceAdapterCommit,omitempty"`
	SourceAdapterDigest string `json:"sourceAdapterDigest,omitempty"`
	// Checkpoints are the newest checkpoints written (at most a few, to keep the message small).
	Checkpoints []Checkpoint `json:"checkpoints,omitempty"`
	// ResumedFromStep is the checkpoint step this attempt resumed from (0: a fresh start).
	ResumedFromStep int `json:"resumedFromStep,omitempty"`
	// Warnings worth a user's attention, e.g. the mean eval chosen reward fell below zero.
	Warnings []string `json:"warnings,omitempty"`
	// Plots are the URIs of the training curves next to metrics.jsonl: loss.svg, and rewards.svg for DPO.
	Plots []string `json:"plots,omitempty"`
}

// Checkpoint is one complete checkpoint.
type Checkpoint struct {
	Step int    `json:"step"`
	URI  string `json:"uri"`
	// Time is RFC 3339.
	Time string `json:"time,omitempty"`
}

// DatasetReport is the outcome of a dataset inspection. It must fit a termination message with room to spare.
type DatasetReport struct {
	// Format detected or given.
	Format string `json:"format"`
	// Digest is "sha256:<hex>" of the raw bytes.
	Digest  string      `json:"digest"`
	Counts  Counts      `json:"counts"`
	Lengths LengthStats `json:"lengths"`
	// InvalidRows are the first invalid rows; Counts.Invalid counts all of them.
	InvalidRows []InvalidRow `json:"invalidRows,omitempty"`
	// SplitBy says how the train/eval split grouped the rows: "prompt" (every row of a prompt on one side) or
	// "row" (grouping by prompt could not reach the fraction: rows of one prompt may sit on both sides); empty
	// when nothing is held out.
	SplitBy string `json:"splitBy,omitempty"`
	// Tokens and Truncation are set when the inspection had a model (InspectConfig.Model): lengths in the model's
	// tokens as the template renders the rows, and what the run's context would truncate.
	Tokens     *LengthStats `json:"tokens,omitempty"`
	Truncation *Truncation  `json:"truncation,omitempty"`
	// ChosenLongerFraction is the share of pairs whose chosen response is longer than the rejected one.
	ChosenLongerFraction float64 `json:"chosenLongerFraction"`
	// Warnings, each a short sentence with a count, e.g. "3 exact duplicate rows".
	Warnings []string `json:"warnings,omitempty"`
}

// Counts of rows.
type Counts struct {
	// Total rows read (valid or not).
	Total int `json:"total"`
	// Pairs (or SFT examples) that are valid.
	Pairs   int `json:"pairs"`
	Train   int `json:"train"`
	Eval    int `json:"eval"`
	Invalid int `json:"invalid"`
	// Skipped invalid rows, left out because DatasetConfig.InvalidRows is Skip (0 otherwise).
	Skipped int `json:"skipped,omitempty"`
}

// LengthStats in bytes of the rendered text.
type LengthStats struct {
	PromptMean   float64 `json:"promptMean"`
	PromptMax    int     `json:"promptMax"`
	ChosenMean   float64 `json:"chosenMean"`
	ChosenMax    int     `json:"chosenMax"`
	RejectedMean float64 `json:"rejectedMean,omitempty"`
	RejectedMax  int     `json:"rejectedMax,omitempty"`
}

// Truncation counts what fitting rows into a context of ContextLength tokens changed. The prompt of a pair is cut
// once (keeping its end) so that chosen and rejected see the same prompt tokens; a response is cut at its end only
// when it does not fit on its own.
type Truncation struct {
	ContextLength int `json:"contextLength"`
	// RowsTruncated: rows (pairs or SFT examples) that lost any token.
	RowsTruncated int `json:"rowsTruncated"`
	// PromptsEmptied: rows whose whole prompt was cut.
	PromptsEmptied int `json:"promptsEmptied"`
	// ResponsesCut: responses (chosen and rejected counted apart) cut before their end token.
	ResponsesCut int `json:"responsesCut"`
	// IdenticalPairs: pairs whose chosen and rejected are the same tokens after truncation; they carry no
	// preference signal and are left out of training.
	IdenticalPairs int `json:"identicalPairs,omitempty"`
}

// InvalidRow names a bad row.
type InvalidRow struct {
	// Line is 1-based: the line in JSON Lines, the element's line in a JSON array.
	Line   int    `json:"line"`
	Field  string `json:"field,omitempty"`
	Reason string `json:"reason"`
}

// Progress reporting: the trainer pushes ProgressReports to the manager while it trains (see docs of the
// operator's progress endpoint). The pod gets the endpoint, a token and a CA through these environment variables;
// without ProgressURLEnv the trainer reports nothing.
const (
	// ProgressURLEnv is the full https URL to POST reports to.
	ProgressURLEnv = "PREFTUNE_PROGRESS_URL"
	// ProgressTokenFileEnv names the projected service-account token file; it is re-read for every report because
	// the kubelet rotates it.
	ProgressTokenFileEnv = "PREFTUNE_PROGRESS_TOKEN_FILE"
	// ProgressCAFileEnv names the PEM file of the CA that signed the endpoint's certificate.
	ProgressCAFileEnv = "PREFTUNE_PROGRESS_CA_FILE"
	// ProgressAttemptEnv, when set, is the attempt number the trainer reports (informational).
	ProgressAttemptEnv = "PREFTUNE_PROGRESS_ATTEMPT"
)

// ProgressReport is one snapshot of a training run in flight. Later reports replace earlier ones; the final result
// still travels in the termination message.
type ProgressReport struct {
	Step       int     `json:"step"`
	TotalSteps int     `json:"totalSteps"`
	Epoch      float64 `json:"epoch,omitempty"`
	// ETASeconds is the estimated time left; 0 when unknown.
	ETASeconds      float64 `json:"etaSeconds,omitempty"`
	TokensPerSecond float64 `json:"tokensPerSecond,omitempty"`
	// TrainMetrics and EvalMetrics are the newest values by their TRL names (loss, rewards/accuracies, ...;
	// eval_loss, eval_rewards/accuracies, ...).
	TrainMetrics map[string]float64 `json:"trainMetrics,omitempty"`
	EvalMetrics  map[string]float64 `json:"evalMetrics,omitempty"`
	// Checkpoints written since the attempt started (the newest few).
	Checkpoints []Checkpoint `json:"checkpoints,omitempty"`
	// ResumedFromStep is the checkpoint step this attempt resumed from (0: a fresh start).
	ResumedFromStep int `json:"resumedFromStep,omitempty"`
	// Architecture and ParameterCount describe the model being trained, once the trainer has loaded it (the
	// architecture only when the starting model's config.json names it).
	Architecture   string `json:"architecture,omitempty"`
	ParameterCount int64  `json:"parameterCount,omitempty"`
	// TrainableParameterCount is the parameters being trained (the adapter's with LoRA).
	TrainableParameterCount int64 `json:"trainableParameterCount,omitempty"`
	// OldestKeptStep, when positive, is the step of the oldest checkpoint training.checkpointsToKeep left in the
	// output: every checkpoint of an earlier step was deleted, so status drops them.
	OldestKeptStep int `json:"oldestKeptStep,omitempty"`
	// Attempt is the trainer's attempt number when it knows it (0: unknown).
	Attempt int `json:"attempt,omitempty"`
}

// MaxProgressReportBytes bounds a report's body; the manager refuses larger ones.
const MaxProgressReportBytes = 64 << 10
