// Package train is the training loop of preftune-trainer: SFT and DPO steps with gradient accumulation, global-norm
// clipping, a warmup schedule and AdamW; evaluation on the held-out split; metrics.jsonl with TRL's names;
// checkpoints with bit-exact resume; a checkpoint on SIGTERM/SIGINT; the final model with its digest.
package train

import (
	"fmt"
	"math"
	"strings"

	"github.com/preftune/preftune/trainer/contract"
)

// Defaults applied by NewConfig where a RunConfig leaves a field at its zero value.
const (
	// DefaultGradClipNorm is TRL's max_grad_norm. A run cannot switch clipping off (zero means "default"), but a
	// very large value has the same effect.
	DefaultGradClipNorm = 1.0
	// DefaultCheckpointEvery is TRL's save_steps.
	DefaultCheckpointEvery = 500
	// DefaultCheckpointsToKeep is how many complete checkpoints a run keeps (TRL's save_total_limit, which
	// defaults to all; checkpoints of pretrained models are too large for that).
	DefaultCheckpointsToKeep = 2
	// DefaultBeta is TRL's DPO beta.
	DefaultBeta = 0.1
	// DefaultLossType is TRL's DPO loss type.
	DefaultLossType = "sigmoid"
	// DefaultSchedule is the learning-rate schedule after warmup.
	DefaultSchedule = "cosine"
	// DefaultMinLearningRateRatio is where cosine and linear decay end, as a share of the peak rate: 10%, the
	// floor the API has always documented (Hugging Face's schedulers decay to 0, which a run asks for with 0).
	DefaultMinLearningRateRatio = 0.1
	// KeepCheckpoints is how many of the newest checkpoints a result lists (the termination message is small).
	KeepCheckpoints = 3
)

// Config is a validated RunConfig with its defaults applied and its URIs resolved to local paths.
//
// Defaults (zero value in the RunConfig -> value used):
//   - training.gradientAccumulationSteps: 1
//   - training.lrSchedule: cosine
//   - training.minLearningRateRatio: absent -> 0.1 (cosine and linear end at 10% of learningRate)
//   - training.gradClipNorm: 1.0
//   - training.evalEvery: 0 keeps evaluation to the end of the run (when there is an eval split)
//   - training.checkpointEvery: 500 (and always at the end)
//   - training.checkpointsToKeep: 2 (see pruneCheckpoints)
//   - dataset.evalFraction: 0 holds nothing out (no eval metrics)
//   - dataset.invalidRows: Reject (any invalid row fails the run; Skip trains on the valid ones)
//   - model.architecture.tokenizer: byte
//   - dpo (absent): beta 0.1, lossType sigmoid; dpo.beta 0 -> 0.1, dpo.lossType "" -> sigmoid
//   - adapter.type: lora; adapter.alpha: 2 x rank; adapter.targetModules: every attention and MLP projection
//   - output.mergedModel (absent): true (with an adapter, model/ holds the merged model)
//
// Reference log-probabilities are always computed once, before training, with the forward-only graph: the
// reference is frozen and the model has no dropout, so this equals computing them on every step.
type Config struct {
	contract.RunConfig
	// DataPath, FromDir (SFT from a model directory), ReferenceDir (DPO) and OutputDir are local paths
	// resolved from the URIs of the RunConfig; each is "" for a remote URI (s3://, gs://, azblob://, https://
	// for the dataset) until Run downloads the input into a scratch directory or, for the output, trains there
	// and uploads.
	DataPath     string
	FromDir      string
	ReferenceDir string
	OutputDir    string
	// ReferenceAdapterDir is reference.adapterURI's local path ("" when unset, or remote until staged: a store's
	// directory, or a PEFT adapter repository on the Hub, hf://org/name[@revision]).
	ReferenceAdapterDir string
}

// FieldError is a configuration error naming the field (by its JSON path) that is wrong.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// NewConfig validates rc, applies the defaults and resolves the URIs. Errors are *FieldError.
func NewConfig(rc contract.RunConfig) (Config, error) {
	c := Config{RunConfig: rc}
	if rc.APIVersion != contract.APIVersion {
		return c, fieldErr("apiVersion", "is %q, want %q", rc.APIVersion, contract.APIVersion)
	}
	if rc.Kind != contract.KindSFT && rc.Kind != contract.KindDPO {
		return c, fieldErr("kind", "is %q, want %q or %q", rc.Kind, contract.KindSFT, contract.KindDPO)
	}
	var err error
	if c.DataPath, err = resolve(rc.Dataset.URI, true); err != nil {
		return c, fieldErr("dataset.uri", "%v", err)
	}
	if f := rc.Dataset.EvalFraction; f < 0 || f >= 1 {
		return c, fieldErr("dataset.evalFraction", "is %g, want 0 <= evalFraction < 1", f)
	}
	if d := rc.Dataset.Digest; d != "" && !validDigest(d) {
		return c, fieldErr("dataset.digest", "is %q, want sha256:<64 hex digits>", d)
	}
	if c.OutputDir, err = resolve(rc.Output.URI, false); err != nil {
		return c, fieldErr("output.uri", "%v", err)
	}
	if err := c.checkModel(); err != nil {
		return c, err
	}
	if err := c.checkTraining(); err != nil {
		return c, err
	}
	if err := c.checkAdapter(); err != nil {
		return c, err
	}
	if rc.Kind == contract.KindDPO {
		if err := c.checkDPO(); err != nil {
			return c, err
		}
	} else if rc.DPO != nil || rc.Reference != nil {
		return c, fieldErr("dpo", "dpo and reference are for kind dpo only")
	}
	return c, nil
}

func (c *Config) checkModel() error {
	m := c.Model
	if c.Kind == contract.KindDPO {
		if m.Architecture != nil || m.From != "" {
			return fieldErr("model", "must be empty for kind dpo: the policy starts from reference.modelURI")
		}
		return nil
	}
	if (m.Architecture == nil) == (m.From == "") {
		return fieldErr("model", "set exactly one of model.architecture and model.from")
	}
	if m.From != "" {
		dir, err := resolve(m.From, false)
		if err != nil {
			return fieldErr("model.from", "%v", err)
		}
		c.FromDir = dir
		return nil
	}
	a := *m.Architecture
	switch {
	case a.Layers < 1:
		return fieldErr("model.architecture.layers", "is %d, want >= 1", a.Layers)
	case a.Heads < 1:
		return fieldErr("model.architecture.heads", "is %d, want >= 1", a.Heads)
	case a.DModel < 1 || a.DModel%a.Heads != 0:
		return fieldErr("model.architecture.dModel", "is %d, want a positive multiple of heads (%d)", a.DModel, a.Heads)
	case a.ContextLength < 2:
		return fieldErr("model.architecture.contextLength", "is %d, want >= 2", a.ContextLength)
	}
	if a.Tokenizer == "" {
		a.Tokenizer = "byte"
	}
	if a.Tokenizer != "byte" {
		return fieldErr("model.architecture.tokenizer", "is %q, only \"byte\" is supported", a.Tokenizer)
	}
	c.Model.Architecture = &a
	return nil
}

func (c *Config) checkTraining() error {
	t := &c.Training
	if (t.MaxSteps > 0) == (t.Epochs > 0) {
		return fieldErr("training", "set exactly one of training.maxSteps and training.epochs (maxSteps %d, epochs %g)", t.MaxSteps, t.Epochs)
	}
	if t.MaxSteps < 0 {
		return fieldErr("training.maxSteps", "is %d, want >= 0", t.MaxSteps)
	}
	if t.Epochs < 0 {
		return fieldErr("training.epochs", "is %g, want >= 0", t.Epochs)
	}
	if t.BatchSize < 1 {
		return fieldErr("training.batchSize", "is %d, want >= 1", t.BatchSize)
	}
	if t.MaxLength < 0 || t.MaxLength == 1 {
		return fieldErr("training.maxLength", "is %d, want 0 (the model's max positions) or >= 2 tokens", t.MaxLength)
	}
	if t.GradientAccumulationSteps < 0 {
		return fieldErr("training.gradientAccumulationSteps", "is %d, want >= 1", t.GradientAccumulationSteps)
	}
	if t.GradientAccumulationSteps == 0 {
		t.GradientAccumulationSteps = 1
	}
	if c.Dataset.InvalidRows == "" {
		c.Dataset.InvalidRows = contract.InvalidRowsReject
	}
	if p := c.Dataset.InvalidRows; p != contract.InvalidRowsReject && p != contract.InvalidRowsSkip {
		return fieldErr("dataset.invalidRows", "is %q, want %s or %s", p, contract.InvalidRowsReject, contract.InvalidRowsSkip)
	}
	if !(t.LearningRate > 0) || t.LearningRate > 1 {
		return fieldErr("training.learningRate", "is %g, want 0 < learningRate <= 1", t.LearningRate)
	}
	if t.LRSchedule == "" {
		t.LRSchedule = DefaultSchedule
	}
	switch t.LRSchedule {
	case "cosine", "linear", "constant":
	default:
		return fieldErr("training.lrSchedule", "is %q, want cosine, linear or constant", t.LRSchedule)
	}
	if t.MinLearningRateRatio == nil {
		t.MinLearningRateRatio = ptrTo(DefaultMinLearningRateRatio)
	} else if r := *t.MinLearningRateRatio; !(r >= 0 && r <= 1) {
		return fieldErr("training.minLearningRateRatio", "is %g, want 0 <= minLearningRateRatio <= 1", r)
	} else {
		t.MinLearningRateRatio = ptrTo(r) // a copy: the caller's RunConfig keeps its own
	}
	if t.WarmupSteps < 0 {
		return fieldErr("training.warmupSteps", "is %d, want >= 0", t.WarmupSteps)
	}
	if t.WeightDecay < 0 {
		return fieldErr("training.weightDecay", "is %g, want >= 0", t.WeightDecay)
	}
	if t.GradClipNorm < 0 {
		return fieldErr("training.gradClipNorm", "is %g, want >= 0", t.GradClipNorm)
	}
	if t.GradClipNorm == 0 {
		t.GradClipNorm = DefaultGradClipNorm
	}
	if t.EvalEvery < 0 {
		return fieldErr("training.evalEvery", "is %d, want >= 0", t.EvalEvery)
	}
	if t.CheckpointEvery < 0 {
		return fieldErr("training.checkpointEvery", "is %d, want >= 0", t.CheckpointEvery)
	}
	if t.CheckpointEvery == 0 {
		t.CheckpointEvery = DefaultCheckpointEvery
	}
	if t.CheckpointsToKeep < 0 {
		return fieldErr("training.checkpointsToKeep", "is %d, want >= 1", t.CheckpointsToKeep)
	}
	if t.CheckpointsToKeep == 0 {
		t.CheckpointsToKeep = DefaultCheckpointsToKeep
	}
	return nil
}

func (c *Config) checkDPO() error {
	if c.Reference == nil || c.Reference.ModelURI == "" {
		return fieldErr("reference.modelURI", "is required for kind dpo")
	}
	dir, err := resolve(c.Reference.ModelURI, false)
	if err != nil {
		return fieldErr("reference.modelURI", "%v", err)
	}
	c.ReferenceDir = dir
	if u := c.Reference.AdapterURI; u != "" {
		if c.ReferenceAdapterDir, err = resolve(u, false); err != nil {
			return fieldErr("reference.adapterURI", "%v", err)
		}
	}
	d := contract.DPOConfig{}
	if c.DPO != nil {
		d = *c.DPO
	}
	if d.Beta < 0 {
		return fieldErr("dpo.beta", "is %g, want > 0", d.Beta)
	}
	if d.Beta == 0 {
		d.Beta = DefaultBeta
	}
	if d.LossType == "" {
		d.LossType = DefaultLossType
	}
	switch d.LossType {
	case "sigmoid", "ipo", "hinge", "robust":
	default:
		return fieldErr("dpo.lossType", "is %q, want sigmoid, ipo, hinge or robust", d.LossType)
	}
	if d.LabelSmoothing < 0 || d.LabelSmoothing >= 0.5 {
		return fieldErr("dpo.labelSmoothing", "is %g, want 0 <= labelSmoothing < 0.5", d.LabelSmoothing)
	}
	if d.LabelSmoothing > 0 && d.LossType != "sigmoid" && d.LossType != "robust" {
		return fieldErr("dpo.labelSmoothing", "applies to lossType sigmoid and robust only, not %q", d.LossType)
	}
	if d.RPOAlpha < 0 {
		return fieldErr("dpo.rpoAlpha", "is %g, want >= 0", d.RPOAlpha)
	}
	c.DPO = &d
	return nil
}

// MaxLoRARank is the largest adapter.rank accepted (the API's bound).
const MaxLoRARank = 1024

// checkAdapter validates adapter and fills its defaults (type lora, alpha 2 x rank) in a copy. The target
// modules are checked against the model's architecture once it is loaded.
func (c *Config) checkAdapter() error {
	if c.Adapter == nil {
		if c.Output.MergedModel != nil && !*c.Output.MergedModel {
			return fieldErr("output.mergedModel", "is false, but the run trains no adapter: its model/ is the model itself")
		}
		return nil
	}
	if c.Kind == contract.KindSFT && c.Model.Architecture != nil && c.Output.MergedModel != nil && !*c.Output.MergedModel {
		return fieldErr("output.mergedModel", "is false, but the model is new (model.architecture): its random starting "+
			"weights are saved nowhere, so the adapter alone could not be applied; keep the merged model, or start from a "+
			"saved model (model.from)")
	}
	a := *c.Adapter
	a.TargetModules = append([]string(nil), a.TargetModules...)
	if a.Type == "" {
		a.Type = contract.AdapterTypeLoRA
	}
	switch {
	case a.Type != contract.AdapterTypeLoRA:
		return fieldErr("adapter.type", "is %q, want %q", a.Type, contract.AdapterTypeLoRA)
	case a.Rank < 1 || a.Rank > MaxLoRARank:
		return fieldErr("adapter.rank", "is %d, want 1 <= rank <= %d", a.Rank, MaxLoRARank)
	case a.Alpha < 0 || math.IsNaN(a.Alpha) || math.IsInf(a.Alpha, 0):
		return fieldErr("adapter.alpha", "is %g, want > 0 (0: 2 x rank)", a.Alpha)
	case !(a.Dropout >= 0 && a.Dropout < 1):
		return fieldErr("adapter.dropout", "is %g, want 0 <= dropout < 1", a.Dropout)
	}
	if a.Alpha == 0 {
		a.Alpha = 2 * float64(a.Rank)
	}
	seen := map[string]bool{}
	for _, t := range a.TargetModules {
		if seen[t] {
			return fieldErr("adapter.targetModules", "names %q twice", t)
		}
		seen[t] = true
	}
	c.Adapter = &a
	return nil
}

func ptrTo[T any](v T) *T { return &v }

func validDigest(d string) bool {
	hex, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(hex) != 64 {
		return false
	}
	for _, r := range hex {
		if !strings.ContainsRune("0123456789abcdef", r) {
			return false
		}
	}
	return true
}
