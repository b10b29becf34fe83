package controllers

import (
	"encoding/json"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/preftune/preftune/api/v1alpha1"
	"github.com/preftune/preftune/trainer/contract"
)

// outputURI is where a run writes: <base>/<namespace>/<name>-<uid prefix>. The UID keeps two runs (also a run
// deleted and created again under the same name) from ever sharing a prefix.
func outputURI(run Run, defaultBase string) (string, error) {
	base := run.Spec().Output.URI
	if base == "" {
		base = defaultBase
	}
	if base == "" {
		return "", fmt.Errorf("spec.output.uri is empty and the manager has no --default-output-uri")
	}
	uid := strings.ReplaceAll(string(run.GetUID()), "-", "")
	if len(uid) > 8 {
		uid = uid[:8]
	}
	scheme, rest, _ := strings.Cut(base, "://")
	return scheme + "://" + strings.TrimSuffix(path.Join(rest, run.GetNamespace(), run.GetName()+"-"+uid), "/"), nil
}

// trainingConfig turns the API's training spec (decimal strings) into the contract's numbers.
func trainingConfig(t v1alpha1.TrainingSpec) (contract.TrainingConfig, error) {
	out := contract.TrainingConfig{
		BatchSize:                 int(t.BatchSize),
		GradientAccumulationSteps: int(t.GradientAccumulationSteps),
		LRSchedule:                string(t.LRSchedule),
		WarmupSteps:               int(t.WarmupSteps),
		EvalEvery:                 int(t.EvalEvery),
		CheckpointEvery:           int(t.CheckpointEvery),
		CheckpointsToKeep:         int(t.CheckpointsToKeep),
		Seed:                      t.Seed,
	}
	if t.MaxSteps != nil {
		out.MaxSteps = int(*t.MaxSteps)
	}
	if t.MaxLength != nil {
		out.MaxLength = int(*t.MaxLength)
	}
	var err error
	if t.Epochs != nil {
		if out.Epochs, err = parseDecimal("spec.training.epochs", *t.Epochs); err != nil {
			return out, err
		}
	}
	if out.LearningRate, err = parseDecimal("spec.training.learningRate", t.LearningRate); err != nil {
		return out, err
	}
	if out.WeightDecay, err = parseDecimal("spec.training.weightDecay", t.WeightDecay); err != nil {
		return out, err
	}
	if out.GradClipNorm, err = parseDecimal("spec.training.gradClipNorm", t.GradClipNorm); err != nil {
		return out, err
	}
	if t.MinLearningRateRatio != "" { // empty (an object stored before the field existed): the trainer's default
		r, err := parseDecimal("spec.training.minLearningRateRatio", t.MinLearningRateRatio)
		if err != nil {
			return out, err
		}
		out.MinLearningRateRatio = &r
	}
	return out, nil
}

// defaultAdapterRank is spec.adapter.rank's schema default, for objects stored before the field had it.
const defaultAdapterRank = 16

// adapterConfig turns spec.adapter into the contract's AdapterConfig (nil: full fine-tuning). alpha defaults to
// 2 x rank here: a schema default cannot depend on another field.
func adapterConfig(a *v1alpha1.AdapterSpec) (*contract.AdapterConfig, error) {
	if a == nil {
		return nil, nil
	}
	out := &contract.AdapterConfig{Type: string(a.Type), Rank: int(a.Rank), TargetModules: append([]string(nil), a.TargetModules...)}
	if out.Type == "" {
		out.Type = contract.AdapterTypeLoRA
	}
	if out.Type != contract.AdapterTypeLoRA {
		return nil, fmt.Errorf("spec.adapter.type: %q is not an adapter type the trainer knows (lora)", a.Type)
	}
	if out.Rank == 0 {
		out.Rank = defaultAdapterRank
	}
	out.Alpha = float64(2 * out.Rank)
	if a.Alpha != nil {
		out.Alpha = float64(*a.Alpha)
	}
	var err error
	if out.Dropout, err = parseDecimal("spec.adapter.dropout", a.Dropout); err != nil {
		return nil, err
	}
	if out.Dropout < 0 || out.Dropout >= 1 {
		return nil, fmt.Errorf("spec.adapter.dropout: %s is not in [0, 1)", a.Dropout)
	}
	return out, nil
}

// datasetConfig is the contract's view of a validated dataset, with the URI the trainer sees.
func datasetConfig(ds *v1alpha1.PreferenceDataset, uri string) (contract.DatasetConfig, error) {
	frac, err := parseDecimal("spec.evalFraction", ds.Spec.EvalFraction)
	if err != nil {
		return contract.DatasetConfig{}, err
	}
	out := contract.DatasetConfig{
		URI: uri, Format: string(ds.Spec.Format), EvalFraction: frac, Seed: ds.Spec.Seed, Digest: ds.Status.Digest,
		InvalidRows: string(ds.Spec.InvalidRows),
	}
	if fm := ds.Spec.FieldMapping; fm != nil {
		out.PromptField, out.ChosenField, out.RejectedField = fm.PromptField, fm.ChosenField, fm.RejectedField
	}
	return out, nil
}

func marshalConfig(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("marshal trainer configuration: %w", err)
	}
	return b, nil
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }
