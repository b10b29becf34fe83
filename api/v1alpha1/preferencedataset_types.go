package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DatasetFormat is how rows are laid out.
// +kubebuilder:validation:Enum=auto;standard;implicitPrompt;conversational;sharegpt;chatPreference
type DatasetFormat string

const (
	// DatasetFormatAuto detects the format from the first valid row.
	DatasetFormatAuto DatasetFormat = "auto"
	// DatasetFormatStandard rows are {prompt, chosen, rejected} strings.
	DatasetFormatStandard DatasetFormat = "standard"
	// DatasetFormatImplicitPrompt rows are {chosen, rejected}, two strings or two message lists; the prompt is
	// their longest common prefix (of text, or of leading messages).
	DatasetFormatImplicitPrompt DatasetFormat = "implicitPrompt"
	// DatasetFormatConversational rows hold prompt, chosen and rejected as lists of {role, content} messages.
	DatasetFormatConversational DatasetFormat = "conversational"
	// DatasetFormatShareGPT rows hold conversations [{from, value}] and chosen/rejected {from, value}.
	DatasetFormatShareGPT DatasetFormat = "sharegpt"
	// DatasetFormatChatPreference rows hold input.messages, preferred_output and non_preferred_output.
	DatasetFormatChatPreference DatasetFormat = "chatPreference"
)

// InvalidRowsPolicy says what invalid rows do to a dataset and to the runs that train on it.
// +kubebuilder:validation:Enum=Reject;Skip
type InvalidRowsPolicy string

const (
	// InvalidRowsReject makes a dataset with any invalid row not Ready, and a run on it fail.
	InvalidRowsReject InvalidRowsPolicy = "Reject"
	// InvalidRowsSkip leaves invalid rows out: the dataset is Ready when some row is valid, status.counts.skipped
	// counts the rows left out and status.invalidRows names the first of them; runs train on the valid rows and
	// say so in their warnings.
	InvalidRowsSkip InvalidRowsPolicy = "Skip"
)

// ConfigMapDataSource is a dataset stored in a ConfigMap key (small datasets; ConfigMaps hold at most 1 MiB).
type ConfigMapDataSource struct {
	// name of the ConfigMap in the dataset's namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// key of the data in the ConfigMap (JSON Lines or a JSON array).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key"`
}

// VolumeDataSource is a dataset file on a PersistentVolumeClaim.
type VolumeDataSource struct {
	// claimName of the PersistentVolumeClaim in the dataset's namespace; it is mounted read-only.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	ClaimName string `json:"claimName"`
	// path of the file inside the volume.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="!self.contains('..')",message="path must not contain '..'"
	Path string `json:"path"`
}

// DatasetSource says where the data is: exactly one of configMap, uri or volume.
// +kubebuilder:validation:XValidation:rule="(has(self.configMap) ? 1 : 0) + (has(self.uri) ? 1 : 0) + (has(self.volume) ? 1 : 0) == 1",message="exactly one of configMap, uri or volume must be set"
// +kubebuilder:validation:XValidation:rule="!has(self.secretRef) || has(self.uri)",message="secretRef applies only to uri"
type DatasetSource struct {
	// configMap holds the data in one key.
	// +optional
	ConfigMap *ConfigMapDataSource `json:"configMap,omitempty"`

	// uri of the data file: s3://, gs://, azblob://, https:// or file://.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^(s3|gs|azblob|https|file)://.+$`
	// +optional
	URI string `json:"uri,omitempty"`

	// secretRef names a Secret in the dataset's namespace with credentials for uri (for example
	// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY); its keys become the trainer's environment.
	// +optional
	SecretRef *corev1.LocalObjectReference `json:"secretRef,omitempty"`

	// volume is a file on a PersistentVolumeClaim.
	// +optional
	Volume *VolumeDataSource `json:"volume,omitempty"`
}

// FieldMapping renames the fields of standard rows, for data whose fields have other names.
type FieldMapping struct {
	// promptField is the field holding the prompt.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	PromptField string `json:"promptField,omitempty"`
	// chosenField is the field holding the preferred response.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	ChosenField string `json:"chosenField,omitempty"`
	// rejectedField is the field holding the dispreferred response.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	RejectedField string `json:"rejectedField,omitempty"`
}

// InspectionModel is the model whose tokenizer and chat template a dataset's validation reads the rows with.
type InspectionModel struct {
	// uri of a model directory in the Hugging Face layout (tokenizer.json, tokenizer_config.json and config.json
	// are read; the weights are not), with the schemes of SFTRun's spec.model.from.uri: s3://, gs://, azblob://,
	// https://, file://, pvc://<claim>/<path> (mounted read-only) or hf://<org>/<name>[@<revision>].
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^(s3|gs|azblob|https|file|pvc|hf)://.+$`
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('hf://') || self.matches('^hf://[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?(@[^@ ]+)?$')",message="an hf:// uri is hf://<org>/<name> with an optional @<revision>"
	URI string `json:"uri"`

	// chatTemplate replaces the model's own chat template, as an SFTRun's spec.model.chatTemplate does: set the
	// same one here to see the rows as that run will.
	// +optional
	ChatTemplate *ChatTemplateSource `json:"chatTemplate,omitempty"`
}

// DatasetInspection has the validation read the rows as a run on a given model will: rendered with the model's
// chat template, in the model's tokens, and fitted to a context.
type DatasetInspection struct {
	// model whose tokenizer and chat template render the rows. status.tokens then holds token lengths and
	// status.truncation what a run's context would cut.
	Model InspectionModel `json:"model"`

	// maxLength is the training.maxLength of the runs to come: the truncation counts are for a context of the
	// smaller of the model's max positions and maxLength (absent: the model's).
	// At least 2: a sequence needs room for one token and the next one it predicts (the trainer refuses less).
	// +kubebuilder:validation:Minimum=2
	// +kubebuilder:validation:Maximum=1048576
	// +optional
	MaxLength *int32 `json:"maxLength,omitempty"`

	// secretRef names a Secret in the dataset's namespace with credentials for model.uri (AWS_*, GOOGLE_*,
	// AZURE_*, HF_TOKEN); its keys become the validation's environment.
	// +optional
	SecretRef *corev1.LocalObjectReference `json:"secretRef,omitempty"`
}

// PreferenceDatasetSpec says where preference data is and how to read it.
type PreferenceDatasetSpec struct {
	// source of the data.
	Source DatasetSource `json:"source"`

	// format of the rows; auto detects it from the first valid row. implicitPrompt reads {chosen, rejected} as two
	// strings or as two message lists (TRL's conversational implicit prompt: the prompt is the shared leading
	// messages); one side may end where the other's reply starts (an empty response, counted in the warnings).
	// +kubebuilder:default=auto
	// +optional
	Format DatasetFormat `json:"format,omitempty"`

	// fieldMapping renames the fields of standard rows.
	// +optional
	FieldMapping *FieldMapping `json:"fieldMapping,omitempty"`

	// evalFraction of rows held out for evaluation, below 1 ("0.1"). Rows are grouped by prompt (ordered by a
	// seeded hash) so that no prompt lands in both splits; when that cannot come near the fraction (every row
	// shares a few prompts, or rows have none) they are grouped by row instead, identical rows still together.
	// status.splitBy says which.
	// +kubebuilder:default="0.1"
	// +kubebuilder:validation:Pattern=`^0(\.[0-9]+)?$`
	// +kubebuilder:validation:MaxLength=16
	// +optional
	EvalFraction string `json:"evalFraction,omitempty"`

	// seed of the split's hash.
	// +kubebuilder:default=0
	// +optional
	Seed int64 `json:"seed,omitempty"`

	// invalidRows is what invalid rows do: Reject (the default) makes the dataset not Ready; Skip leaves them
	// out, counts them in status.counts.skipped and names the first in status.invalidRows, and runs train on the
	// valid rows. The digest always covers the whole file.
	// +kubebuilder:default=Reject
	// +optional
	InvalidRows InvalidRowsPolicy `json:"invalidRows,omitempty"`

	// inspection, when set, also reads the rows with a model's tokenizer and chat template: token lengths
	// (status.tokens) and truncation counts for a context (status.truncation). Without it, lengths are in bytes of
	// the text only.
	// +optional
	Inspection *DatasetInspection `json:"inspection,omitempty"`
}

// DatasetCounts are row counts of a validated dataset.
type DatasetCounts struct {
	// total rows read, valid or not.
	Total int64 `json:"total"`
	// pairs are the valid rows.
	Pairs int64 `json:"pairs"`
	// train pairs after the split.
	Train int64 `json:"train"`
	// eval pairs after the split.
	Eval int64 `json:"eval"`
	// invalid rows; a dataset with any is not Ready unless spec.invalidRows is Skip.
	Invalid int64 `json:"invalid"`
	// skipped invalid rows, left out because spec.invalidRows is Skip.
	// +optional
	Skipped int64 `json:"skipped,omitempty"`
}

// InvalidRow names a row the trainer cannot use.
type InvalidRow struct {
	// line is the 1-based line where the row starts.
	Line int64 `json:"line"`
	// field that is wrong, when one is.
	// +optional
	Field string `json:"field,omitempty"`
	// reason in words.
	Reason string `json:"reason"`
}

// LengthStatistics are lengths in bytes of the rendered text.
type LengthStatistics struct {
	// promptMean is the mean prompt length.
	PromptMean string `json:"promptMean"`
	// promptMax is the longest prompt.
	PromptMax int64 `json:"promptMax"`
	// chosenMean is the mean chosen response length.
	ChosenMean string `json:"chosenMean"`
	// chosenMax is the longest chosen response.
	ChosenMax int64 `json:"chosenMax"`
	// rejectedMean is the mean rejected response length.
	RejectedMean string `json:"rejectedMean"`
	// rejectedMax is the longest rejected response.
	RejectedMax int64 `json:"rejectedMax"`
	// chosenLongerFraction is the share of pairs whose chosen response is longer than the rejected one; far from
	// 0.5 means the preference may be about length.
	ChosenLongerFraction string `json:"chosenLongerFraction"`
}

// TokenStatistics are lengths in tokens of the rows as the inspection's model sees them (its chat template
// rendering them, its tokenizer counting).
type TokenStatistics struct {
	// promptMean is the mean prompt length.
	PromptMean string `json:"promptMean"`
	// promptMax is the longest prompt.
	PromptMax int64 `json:"promptMax"`
	// chosenMean is the mean chosen response length.
	ChosenMean string `json:"chosenMean"`
	// chosenMax is the longest chosen response.
	ChosenMax int64 `json:"chosenMax"`
	// rejectedMean is the mean rejected response length.
	// +optional
	RejectedMean string `json:"rejectedMean,omitempty"`
	// rejectedMax is the longest rejected response.
	// +optional
	RejectedMax int64 `json:"rejectedMax,omitempty"`
}

// PreferenceDatasetStatus is the outcome of the latest validation.
type PreferenceDatasetStatus struct {
	// conditions: Ready (reasons Validating, Valid, InvalidRows, InvalidSource, ValidationFailed,
	// ChatTemplateNotFound).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the generation this status was computed from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// format detected or given.
	// +optional
	Format string `json:"format,omitempty"`

	// counts of rows.
	// +optional
	Counts *DatasetCounts `json:"counts,omitempty"`

	// invalidRows are the first invalid rows; counts.invalid counts all of them.
	// +optional
	// +listType=atomic
	InvalidRows []InvalidRow `json:"invalidRows,omitempty"`

	// splitBy says how the train/eval split grouped the rows: prompt (every row of a prompt on one side) or row
	// (grouping by prompt could not reach evalFraction, so a prompt may have rows on both sides).
	// +optional
	SplitBy string `json:"splitBy,omitempty"`

	// digest ("sha256:...") of the data as validated; runs pin it when they start.
	// +optional
	Digest string `json:"digest,omitempty"`

	// lengths of prompts and responses.
	// +optional
	Lengths *LengthStatistics `json:"lengths,omitempty"`

	// tokens are the lengths in the inspection model's tokens (spec.inspection).
	// +optional
	Tokens *TokenStatistics `json:"tokens,omitempty"`

	// truncation counts what the context of spec.inspection would cut.
	// +optional
	Truncation *TruncationStatus `json:"truncation,omitempty"`

	// warnings about the data: duplicates, chosen identical to rejected, length bias, personal data.
	// +optional
	// +listType=atomic
	Warnings []string `json:"warnings,omitempty"`

	// validationJobName is the Job that validated (or is validating) the data.
	// +optional
	ValidationJobName string `json:"validationJobName,omitempty"`

	// validatedTime is when the latest validation finished.
	// +optional
	ValidatedTime *metav1.Time `json:"validatedTime,omitempty"`
}

// PreferenceDataset is preference data (prompt, chosen, rejected) that runs train on. The operator validates it
// with a short Job and reports counts, a digest, statistics and bad rows.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=pds,categories=preftune
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Format",type=string,JSONPath=`.status.format`
// +kubebuilder:printcolumn:name="Pairs",type=integer,JSONPath=`.status.counts.pairs`
// +kubebuilder:printcolumn:name="Train",type=integer,JSONPath=`.status.counts.train`
// +kubebuilder:printcolumn:name="Eval",type=integer,JSONPath=`.status.counts.eval`
// +kubebuilder:printcolumn:name="Invalid",type=integer,JSONPath=`.status.counts.invalid`
// +kubebuilder:printcolumn:name="Skipped",type=integer,JSONPath=`.status.counts.skipped`,priority=1
// +kubebuilder:printcolumn:name="Truncated",type=integer,JSONPath=`.status.truncation.rowsTruncated`,priority=1,description="rows the inspection's context truncates"
// +kubebuilder:printcolumn:name="Digest",type=string,JSONPath=`.status.digest`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type PreferenceDataset struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   PreferenceDatasetSpec   `json:"spec"`
	Status PreferenceDatasetStatus `json:"status,omitempty"`
}

// PreferenceDatasetList is a list of PreferenceDatasets.
//
// +kubebuilder:object:root=true
type PreferenceDatasetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PreferenceDataset `json:"items"`
}

func init() {
	SchemeBuilder.Register(&PreferenceDataset{}, &PreferenceDatasetList{})
}
