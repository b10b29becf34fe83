package train

import (
	"errors"
	"strings"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
)

func validSFT() contract.RunConfig {
	return contract.RunConfig{
		APIVersion: contract.APIVersion,
		Kind:       contract.KindSFT,
		Dataset:    contract.DatasetConfig{URI: "file:///data/train.jsonl", EvalFraction: 0.1},
		Model: contract.ModelConfig{Architecture: &contract.Architecture{
			Layers: 2, DModel: 32, Heads: 4, ContextLength: 64,
		}},
		Training: contract.TrainingConfig{MaxSteps: 10, BatchSize: 4, LearningRate: 1e-3},
		Output:   contract.OutputConfig{URI: "/tmp/out"},
	}
}

func validDPO() contract.RunConfig {
	rc := validSFT()
	rc.Kind = contract.KindDPO
	rc.Model = contract.ModelConfig{}
	rc.Reference = &contract.ReferenceConfig{ModelURI: "file:///models/sft"}
	return rc
}

func TestNewConfigDefaults(t *testing.T) {
	c, err := NewConfig(validSFT())
	if err != nil {
		t.Fatal(err)
	}
	tr := c.Training
	if tr.GradientAccumulationSteps != 1 || tr.LRSchedule != "cosine" || tr.GradClipNorm != DefaultGradClipNorm ||
		tr.CheckpointEvery != DefaultCheckpointEvery {
		t.Errorf("defaults not applied: %+v", tr)
	}
	if c.Model.Architecture.Tokenizer != "byte" {
		t.Errorf("tokenizer default %q", c.Model.Architecture.Tokenizer)
	}
	if c.DataPath != "/data/train.jsonl" || c.OutputDir != "/tmp/out" {
		t.Errorf("paths: data %q out %q", c.DataPath, c.OutputDir)
	}

	d, err := NewConfig(validDPO())
	if err != nil {
		t.Fatal(err)
	}
	if d.DPO == nil || d.DPO.Beta != DefaultBeta || d.DPO.LossType != "sigmoid" || d.ReferenceDir != "/models/sft" {
		t.Errorf("dpo defaults: %+v ref %q", d.DPO, d.ReferenceDir)
	}
}

func TestNewConfigErrorsNameTheField(t *testing.T) {
	cases := []struct {
		field  string
		mutate func(*contract.RunConfig)
	}{
		{"apiVersion", func(r *contract.RunConfig) { r.APIVersion = "v0" }},
		{"kind", func(r *contract.RunConfig) { r.Kind = "rlhf" }},
		{"dataset.uri", func(r *contract.RunConfig) { r.Dataset.URI = "" }},
		{"dataset.uri", func(r *contract.RunConfig) { r.Dataset.URI = "ftp://bucket/x" }},
		{"dataset.evalFraction", func(r *contract.RunConfig) { r.Dataset.EvalFraction = 1 }},
		{"dataset.digest", func(r *contract.RunConfig) { r.Dataset.Digest = "md5:abc" }},
		{"output.uri", func(r *contract.RunConfig) { r.Output.URI = "https://example.com/o" }},
		{"output.uri", func(r *contract.RunConfig) { r.Output.URI = "gs:///no-bucket" }},
		{"model", func(r *contract.RunConfig) { r.Model.From = "/m" }},
		{"model", func(r *contract.RunConfig) { r.Model.Architecture = nil }},
		{"model.architecture.layers", func(r *contract.RunConfig) { r.Model.Architecture.Layers = 0 }},
		{"model.architecture.heads", func(r *contract.RunConfig) { r.Model.Architecture.Heads = 0 }},
		{"model.architecture.dModel", func(r *contract.RunConfig) { r.Model.Architecture.DModel = 30 }},
		{"model.architecture.contextLength", func(r *contract.RunConfig) { r.Model.Architecture.ContextLength = 1 }},
		{"model.architecture.tokenizer", func(r *contract.RunConfig) { r.Model.Architecture.Tokenizer = "bpe" }},
		{"training", func(r *contract.RunConfig) { r.Training.Epochs = 1 }},
		{"training", func(r *contract.RunConfig) { r.Training.MaxSteps = 0 }},
		{"training.batchSize", func(r *contract.RunConfig) { r.Training.BatchSize = 0 }},
		// An adapter alone on a new model's random weights, which are saved nowhere.
		{"output.mergedModel", func(r *contract.RunConfig) {
			r.Adapter = &contract.AdapterConfig{Rank: 4}
			r.Output.MergedModel = ptrTo(false)
		}},
		{"training.gradientAccumulationSteps", func(r *contract.RunConfig) { r.Training.GradientAccumulationSteps = -1 }},
		{"training.learningRate", func(r *contract.RunConfig) { r.Training.LearningRate = 0 }},
		{"training.lrSchedule", func(r *contract.RunConfig) { r.Training.LRSchedule = "step" }},
		{"training.warmupSteps", func(r *contract.RunConfig) { r.Training.WarmupSteps = -1 }},
		{"training.weightDecay", func(r *contract.RunConfig) { r.Training.WeightDecay = -0.1 }},
		{"training.gradClipNorm", func(r *contract.RunConfig) { r.Training.GradClipNorm = -1 }},
		{"training.evalEvery", func(r *contract.RunConfig) { r.Training.EvalEvery = -1 }},
		{"training.checkpointEvery", func(r *contract.RunConfig) { r.Training.CheckpointEvery = -1 }},
		{"dpo", func(r *contract.RunConfig) { r.DPO = &contract.DPOConfig{Beta: 0.1} }},
	}
	for _, tc := range cases {
		rc := validSFT()
		a := *rc.Model.Architecture
		rc.Model.Architecture = &a
		tc.mutate(&rc)
		checkFieldError(t, rc, tc.field)
	}

	dpoCases := []struct {
		field  string
		mutate func(*contract.RunConfig)
	}{
		{"reference.modelURI", func(r *contract.RunConfig) { r.Reference = nil }},
		{"reference.modelURI", func(r *contract.RunConfig) { r.Reference.ModelURI = "http://x/y" }},
		{"model", func(r *contract.RunConfig) { r.Model.From = "/m" }},
		{"dpo.beta", func(r *contract.RunConfig) { r.DPO = &contract.DPOConfig{Beta: -1} }},
		{"dpo.lossType", func(r *contract.RunConfig) { r.DPO = &contract.DPOConfig{LossType: "kto"} }},
		{"dpo.labelSmoothing", func(r *contract.RunConfig) { r.DPO = &contract.DPOConfig{LabelSmoothing: 0.5} }},
		{"dpo.labelSmoothing", func(r *contract.RunConfig) { r.DPO = &contract.DPOConfig{LossType: "ipo", LabelSmoothing: 0.1} }},
		{"dpo.rpoAlpha", func(r *contract.RunConfig) { r.DPO = &contract.DPOConfig{RPOAlpha: -1} }},
	}
	for _, tc := range dpoCases {
		rc := validDPO()
		tc.mutate(&rc)
		checkFieldError(t, rc, tc.field)
	}
}

func checkFieldError(t *testing.T, rc contract.RunConfig, field string) {
	t.Helper()
	_, err := NewConfig(rc)
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Errorf("want a FieldError naming %s, got %v", field, err)
		return
	}
	if fe.Field != field || !strings.HasPrefix(err.Error(), field+": ") {
		t.Errorf("error %q names %q, want %q", err, fe.Field, field)
	}
	if ExitCode(err) != contract.ExitInvalidInput || ErrorMessage(err).Reason != ReasonInvalidConfig {
		t.Errorf("%s: exit code %d reason %q", field, ExitCode(err), ErrorMessage(err).Reason)
	}
}

func TestLocalPath(t *testing.T) {
	for uri, want := range map[string]string{
		"file:///a/b":          "/a/b",
		"file://localhost/a/b": "/a/b",
		"rel/dir/":             "rel/dir",
		"/abs":                 "/abs",
	} {
		got, err := localPath(uri)
		if err != nil || got != want {
			t.Errorf("localPath(%q) = %q, %v; want %q", uri, got, err, want)
		}
	}
	for _, bad := range []string{"", "file://host/a", "s3://b/k", "file://"} {
		if _, err := localPath(bad); err == nil {
			t.Errorf("localPath(%q) accepted", bad)
		}
	}
}
