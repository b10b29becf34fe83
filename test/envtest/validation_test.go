package envtest

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/preftune/preftune/api/v1alpha1"
)

// The validation tests build objects as plain maps, not typed structs: the typed fields carry omitempty, so a
// typed 0 (layers, batchSize, gpus) would be dropped and then defaulted instead of reaching the validation.

// baseObject is a valid object of kind that the cases below spoil one field at a time.
func baseObject(kind string) map[string]any {
	var spec map[string]any
	switch kind {
	case "PreferenceDataset":
		spec = map[string]any{"source": map[string]any{"configMap": map[string]any{"name": "data", "key": "train.jsonl"}}}
	case "SFTRun":
		spec = map[string]any{
			"model":      map[string]any{"architecture": map[string]any{"layers": int64(2), "dModel": int64(64), "heads": int64(2), "contextLength": int64(32)}},
			"datasetRef": map[string]any{"name": "arith"},
			"training":   map[string]any{"maxSteps": int64(10)},
		}
	case "DPORun":
		spec = map[string]any{
			"referenceRef": map[string]any{"sftRun": "sft"},
			"datasetRef":   map[string]any{"name": "arith"},
			"training":     map[string]any{"maxSteps": int64(10)},
		}
	default:
		panic("unknown kind " + kind)
	}
	return map[string]any{"apiVersion": v1alpha1.GroupVersion.String(), "kind": kind, "spec": spec}
}

// set puts v at a dotted path, creating maps on the way.
func set(obj map[string]any, path string, v any) {
	keys := strings.Split(path, ".")
	m := obj
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[keys[len(keys)-1]] = v
}

// del removes the field at a dotted path.
func del(obj map[string]any, path string) {
	keys := strings.Split(path, ".")
	m := obj
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			return
		}
		m = next
	}
	delete(m, keys[len(keys)-1])
}

// edit is one change to a base object: a value to set, or nil to delete the field.
type edit struct {
	path  string
	value any
}

func apply(obj map[string]any, edits []edit) {
	for _, e := range edits {
		if e.value == nil {
			del(obj, e.path)
		} else {
			set(obj, e.path, e.value)
		}
	}
}

type invalidCase struct {
	name  string
	kind  string
	edits []edit
	// want are substrings the apiserver's error must hold: the field path and the message.
	want []string
}

var invalidCases = []invalidCase{
	// PreferenceDataset
	{"invalidRows not Reject or Skip", "PreferenceDataset",
		[]edit{{"spec.invalidRows", "Ignore"}},
		[]string{"spec.invalidRows", "Unsupported value"}},
	{"minLearningRateRatio above 1", "SFTRun",
		[]edit{{"spec.training.minLearningRateRatio", "1.5"}},
		[]string{"spec.training.minLearningRateRatio"}},
	{"minLearningRateRatio negative", "DPORun",
		[]edit{{"spec.training.minLearningRateRatio", "-0.1"}},
		[]string{"spec.training.minLearningRateRatio"}},
	{"source with none of configMap, uri, volume", "PreferenceDataset",
		[]edit{{"spec.source.configMap", nil}},
		[]string{"spec.source", "exactly one of configMap, uri or volume must be set"}},
	{"source with configMap and uri", "PreferenceDataset",
		[]edit{{"spec.source.uri", "s3://bucket/train.jsonl"}},
		[]string{"spec.source", "exactly one of configMap, uri or volume must be set"}},
	{"source with uri and volume", "PreferenceDataset",
		[]edit{{"spec.source.configMap", nil}, {"spec.source.uri", "s3://bucket/train.jsonl"},
			{"spec.source.volume", map[string]any{"claimName": "data", "path": "train.jsonl"}}},
		[]string{"spec.source", "exactly one of configMap, uri or volume must be set"}},
	{"source with all three", "PreferenceDataset",
		[]edit{{"spec.source.uri", "gs://bucket/train.jsonl"},
			{"spec.source.volume", map[string]any{"claimName": "data", "path": "train.jsonl"}}},
		[]string{"spec.source", "exactly one of configMap, uri or volume must be set"}},
	{"secretRef without uri", "PreferenceDataset",
		[]edit{{"spec.source.secretRef", map[string]any{"name": "creds"}}},
		[]string{"spec.source", "secretRef applies only to uri"}},
	{"uri with http scheme", "PreferenceDataset",
		[]edit{{"spec.source.configMap", nil}, {"spec.source.uri", "http://example.com/train.jsonl"}},
		[]string{"spec.source.uri", "should match"}},
	{"uri with no path after the scheme", "PreferenceDataset",
		[]edit{{"spec.source.configMap", nil}, {"spec.source.uri", "s3://"}},
		[]string{"spec.source.uri", "should match"}},
	{"format outside the enum", "PreferenceDataset",
		[]edit{{"spec.format", "csv"}},
		[]string{"spec.format", "Unsupported value", `"csv"`}},
	{"evalFraction 1.5", "PreferenceDataset",
		[]edit{{"spec.evalFraction", "1.5"}},
		[]string{"spec.evalFraction", "should match"}},
	{"evalFraction abc", "PreferenceDataset",
		[]edit{{"spec.evalFraction", "abc"}},
		[]string{"spec.evalFraction", "should match"}},
	{"volume path with ..", "PreferenceDataset",
		[]edit{{"spec.source.configMap", nil}, {"spec.source.volume", map[string]any{"claimName": "data", "path": "sets/../../etc/passwd"}}},
		[]string{"spec.source.volume.path", "path must not contain '..'"}},
	{"configMap key with a slash", "PreferenceDataset",
		[]edit{{"spec.source.configMap.key", "a/b.jsonl"}},
		[]string{"spec.source.configMap.key", "should match"}},
	{"missing source", "PreferenceDataset",
		[]edit{{"spec.source", nil}},
		[]string{"spec.source", "Required value"}},

	// SFTRun model
	{"model with architecture and from", "SFTRun",
		[]edit{{"spec.model.from", map[string]any{"sftRun": "base"}}},
		[]string{"spec.model", "exactly one of architecture or from must be set"}},
	{"model with neither architecture nor from", "SFTRun",
		[]edit{{"spec.model.architecture", nil}},
		[]string{"spec.model", "exactly one of architecture or from must be set"}},
	{"from with uri and sftRun", "SFTRun",
		[]edit{{"spec.model.architecture", nil}, {"spec.model.from", map[string]any{"uri": "s3://models/base", "sftRun": "base"}}},
		[]string{"spec.model.from", "exactly one of uri or sftRun must be set"}},
	{"from with neither uri nor sftRun", "SFTRun",
		[]edit{{"spec.model.architecture", nil}, {"spec.model.from", map[string]any{}}},
		[]string{"spec.model.from", "exactly one of uri or sftRun must be set"}},
	{"from.uri with http scheme", "SFTRun",
		[]edit{{"spec.model.architecture", nil}, {"spec.model.from", map[string]any{"uri": "http://models/base"}}},
		[]string{"spec.model.from.uri", "should match"}},
	{"dModel not a multiple of heads", "SFTRun",
		[]edit{{"spec.model.architecture.heads", int64(3)}},
		[]string{"spec.model.architecture", "dModel must be a multiple of heads"}},
	{"layers 0", "SFTRun",
		[]edit{{"spec.model.architecture.layers", int64(0)}},
		[]string{"spec.model.architecture.layers", "should be greater than or equal to 1"}},
	{"contextLength above 65536", "SFTRun",
		[]edit{{"spec.model.architecture.contextLength", int64(65537)}},
		[]string{"spec.model.architecture.contextLength", "should be less than or equal to 65536"}},
	{"tokenizer outside the enum", "SFTRun",
		[]edit{{"spec.model.architecture.tokenizer", "bpe"}},
		[]string{"spec.model.architecture.tokenizer", "Unsupported value"}},

	// Training, shared by both kinds (tested on SFTRun, and on DPORun where it matters).
	{"maxSteps and epochs", "SFTRun",
		[]edit{{"spec.training.epochs", "2"}},
		[]string{"spec.training", "exactly one of maxSteps or epochs must be set"}},
	{"neither maxSteps nor epochs", "SFTRun",
		[]edit{{"spec.training.maxSteps", nil}},
		[]string{"spec.training", "exactly one of maxSteps or epochs must be set"}},
	{"neither maxSteps nor epochs (DPO)", "DPORun",
		[]edit{{"spec.training.maxSteps", nil}},
		[]string{"spec.training", "exactly one of maxSteps or epochs must be set"}},
	{"epochs 0", "SFTRun",
		[]edit{{"spec.training.maxSteps", nil}, {"spec.training.epochs", "0"}},
		[]string{"spec.training.epochs", "epochs must be greater than 0 and at most 1000"}},
	{"epochs 1000.5", "SFTRun",
		[]edit{{"spec.training.maxSteps", nil}, {"spec.training.epochs", "1000.5"}},
		[]string{"spec.training.epochs", "epochs must be greater than 0 and at most 1000"}},
	{"maxSteps 0", "SFTRun",
		[]edit{{"spec.training.maxSteps", int64(0)}},
		[]string{"spec.training.maxSteps", "should be greater than or equal to 1"}},
	{"learningRate 0", "SFTRun",
		[]edit{{"spec.training.learningRate", "0"}},
		[]string{"spec.training.learningRate", "learningRate must be greater than 0 and at most 1"}},
	{"learningRate -1", "SFTRun",
		[]edit{{"spec.training.learningRate", "-1"}},
		[]string{"spec.training.learningRate", "should match"}},
	{"learningRate 1e", "SFTRun",
		[]edit{{"spec.training.learningRate", "1e"}},
		[]string{"spec.training.learningRate", "should match"}},
	{"learningRate 2", "SFTRun",
		[]edit{{"spec.training.learningRate", "2"}},
		[]string{"spec.training.learningRate", "learningRate must be greater than 0 and at most 1"}},
	{"learningRate 1.0000001", "DPORun",
		[]edit{{"spec.training.learningRate", "1.0000001"}},
		[]string{"spec.training.learningRate", "learningRate must be greater than 0 and at most 1"}},
	{"batchSize 0", "SFTRun",
		[]edit{{"spec.training.batchSize", int64(0)}},
		[]string{"spec.training.batchSize", "should be greater than or equal to 1"}},
	{"batchSize 4097", "DPORun",
		[]edit{{"spec.training.batchSize", int64(4097)}},
		[]string{"spec.training.batchSize", "should be less than or equal to 4096"}},
	{"negative warmupSteps", "SFTRun",
		[]edit{{"spec.training.warmupSteps", int64(-1)}},
		[]string{"spec.training.warmupSteps", "should be greater than or equal to 0"}},
	{"lrSchedule outside the enum", "SFTRun",
		[]edit{{"spec.training.lrSchedule", "exponential"}},
		[]string{"spec.training.lrSchedule", "Unsupported value", `"exponential"`}},
	{"weightDecay 2", "SFTRun",
		[]edit{{"spec.training.weightDecay", "2"}},
		[]string{"spec.training.weightDecay", "weightDecay must be at most 1"}},
	{"gradClipNorm negative", "SFTRun",
		[]edit{{"spec.training.gradClipNorm", "-1"}},
		[]string{"spec.training.gradClipNorm", "should match"}},

	// Resources, output, retries, references.
	{"gpus 65", "SFTRun",
		[]edit{{"spec.resources.gpus", int64(65)}},
		[]string{"spec.resources.gpus", "should be less than or equal to 64"}},
	{"negative gpus", "DPORun",
		[]edit{{"spec.resources.gpus", int64(-1)}},
		[]string{"spec.resources.gpus", "should be greater than or equal to 0"}},
	{"gpuResourceName with capitals and two slashes", "SFTRun",
		[]edit{{"spec.resources.gpuResourceName", "Nvidia.com/gpu/x"}},
		[]string{"spec.resources.gpuResourceName", "should match"}},
	{"output.uri with http scheme", "SFTRun",
		[]edit{{"spec.output.uri", "http://example.com/out"}},
		[]string{"spec.output.uri", "should match"}},
	{"output.uri with https scheme (not writable)", "DPORun",
		[]edit{{"spec.output.uri", "https://example.com/out"}},
		[]string{"spec.output.uri", "should match"}},
	{"missing datasetRef", "SFTRun",
		[]edit{{"spec.datasetRef", nil}},
		[]string{"spec.datasetRef", "Required value"}},
	{"empty datasetRef name", "DPORun",
		[]edit{{"spec.datasetRef.name", ""}},
		[]string{"spec.datasetRef.name", "should be at least 1 chars long"}},

	// DPORun
	{"lossType outside the enum", "DPORun",
		[]edit{{"spec.lossType", "kto"}},
		[]string{"spec.lossType", "Unsupported value", `"kto"`}},
	{"beta 0", "DPORun",
		[]edit{{"spec.beta", "0"}},
		[]string{"spec.beta", "beta must be greater than 0 and at most 100"}},
	{"beta 101", "DPORun",
		[]edit{{"spec.beta", "101"}},
		[]string{"spec.beta", "beta must be greater than 0 and at most 100"}},
	{"beta -0.1", "DPORun",
		[]edit{{"spec.beta", "-0.1"}},
		[]string{"spec.beta", "should match"}},
	{"labelSmoothing 0.5", "DPORun",
		[]edit{{"spec.labelSmoothing", "0.5"}},
		[]string{"spec.labelSmoothing", "labelSmoothing must be below 0.5"}},
	{"labelSmoothing with ipo", "DPORun",
		[]edit{{"spec.lossType", "ipo"}, {"spec.labelSmoothing", "0.1"}},
		[]string{"spec", "labelSmoothing applies only to the sigmoid and robust losses"}},
	{"labelSmoothing with hinge", "DPORun",
		[]edit{{"spec.lossType", "hinge"}, {"spec.labelSmoothing", "0.2"}},
		[]string{"spec", "labelSmoothing applies only to the sigmoid and robust losses"}},
	{"rpoAlpha 101", "DPORun",
		[]edit{{"spec.rpoAlpha", "101"}},
		[]string{"spec.rpoAlpha", "rpoAlpha must be at most 100"}},
	{"missing referenceRef", "DPORun",
		[]edit{{"spec.referenceRef", nil}},
		[]string{"spec.referenceRef", "Required value"}},
	{"empty referenceRef.sftRun", "DPORun",
		[]edit{{"spec.referenceRef.sftRun", ""}},
		[]string{"spec.referenceRef.sftRun", "should be at least 1 chars long"}},
	{"maxRetries 101", "DPORun",
		[]edit{{"spec.maxRetries", int64(101)}},
		[]string{"spec.maxRetries", "should be less than or equal to 100"}},
	{"negative maxRetries", "SFTRun",
		[]edit{{"spec.maxRetries", int64(-1)}},
		[]string{"spec.maxRetries", "should be greater than or equal to 0"}},
	{"activeDeadlineSeconds 0", "DPORun",
		[]edit{{"spec.activeDeadlineSeconds", int64(0)}},
		[]string{"spec.activeDeadlineSeconds", "should be greater than or equal to 1"}},
	{"activeDeadlineSeconds 0 (SFT)", "SFTRun",
		[]edit{{"spec.activeDeadlineSeconds", int64(0)}},
		[]string{"spec.activeDeadlineSeconds", "should be greater than or equal to 1"}},
}

// TestInvalidObjectsAreRejected sends each invalid object to the apiserver, which must refuse it with an Invalid
// error naming the field and the rule.
func TestInvalidObjectsAreRejected(t *testing.T) {
	ns := newNamespace(t)
	for i, tc := range invalidCases {
		t.Run(tc.kind+"/"+tc.name, func(t *testing.T) { tc.check(t, ns, fmt.Sprintf("bad-%d", i)) })
	}
}

// check creates the case's object as name in ns: the apiserver must refuse it with an Invalid error holding each
// of want.
func (tc invalidCase) check(t *testing.T, ns, name string) {
	t.Helper()
	obj := baseObject(tc.kind)
	apply(obj, tc.edits)
	u := &unstructured.Unstructured{Object: obj}
	u.SetNamespace(ns)
	u.SetName(name)
	err := k8s.Create(context.Background(), u)
	if err == nil {
		t.Fatalf("accepted; want an error with %q", tc.want)
	}
	t.Logf("rejected: %v", err)
	if !apierrors.IsInvalid(err) {
		t.Errorf("error is %v (reason %s), want Invalid", err, apierrors.ReasonForError(err))
	}
	for _, w := range tc.want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

// The base objects themselves must be valid, or every invalid case above proves nothing.
func TestBaseObjectsAreValid(t *testing.T) {
	ns := newNamespace(t)
	for _, kind := range []string{"PreferenceDataset", "SFTRun", "DPORun"} {
		u := &unstructured.Unstructured{Object: baseObject(kind)}
		u.SetNamespace(ns)
		u.SetName("base")
		if err := k8s.Create(context.Background(), u); err != nil {
			t.Errorf("base %s rejected: %v", kind, err)
		}
	}
}

type validCase struct {
	name  string
	kind  string
	edits []edit
	// want are values the stored object must hold at dotted paths: the defaults and the edge values kept as given.
	want map[string]any
}

var validCases = []validCase{
	{"dataset defaults", "PreferenceDataset", nil,
		map[string]any{"spec.format": "auto", "spec.evalFraction": "0.1", "spec.seed": int64(0), "spec.invalidRows": "Reject"}},
	{"dataset skipping invalid rows", "PreferenceDataset", []edit{{"spec.invalidRows", "Skip"}},
		map[string]any{"spec.invalidRows": "Skip"}},
	{"SFT learning-rate floor defaults to 10%", "SFTRun", nil,
		map[string]any{"spec.training.minLearningRateRatio": "0.1"}},
	{"SFT learning-rate floor at its edges", "SFTRun", []edit{{"spec.training.minLearningRateRatio", "0"}},
		map[string]any{"spec.training.minLearningRateRatio": "0"}},
	{"DPO learning-rate floor 1", "DPORun", []edit{{"spec.training.minLearningRateRatio", "1.0"}},
		map[string]any{"spec.training.minLearningRateRatio": "1.0"}},
	{"dataset from uri with secretRef and evalFraction 0", "PreferenceDataset",
		[]edit{{"spec.source.configMap", nil}, {"spec.source.uri", "s3://bucket/prefs/train.jsonl"},
			{"spec.source.secretRef", map[string]any{"name": "creds"}}, {"spec.evalFraction", "0"}},
		map[string]any{"spec.evalFraction": "0", "spec.source.secretRef.name": "creds"}},
	{"dataset from https with evalFraction 0.999", "PreferenceDataset",
		[]edit{{"spec.source.configMap", nil}, {"spec.source.uri", "https://example.com/d.json"},
			{"spec.evalFraction", "0.999"}, {"spec.format", "chatPreference"}},
		map[string]any{"spec.evalFraction": "0.999", "spec.format": "chatPreference"}},
	{"dataset on a volume with a nested path and field mapping", "PreferenceDataset",
		[]edit{{"spec.source.configMap", nil}, {"spec.source.volume", map[string]any{"claimName": "data", "path": "/sets/v1.2/train.jsonl"}},
			{"spec.format", "standard"}, {"spec.fieldMapping", map[string]any{"promptField": "question", "chosenField": "good", "rejectedField": "bad"}}},
		map[string]any{"spec.source.volume.path": "/sets/v1.2/train.jsonl", "spec.fieldMapping.promptField": "question"}},

	{"SFT defaults", "SFTRun", []edit{{"spec.model.architecture", map[string]any{}}},
		map[string]any{
			"spec.training.learningRate": "3e-4", "spec.training.batchSize": int64(16), "spec.training.lrSchedule": "cosine",
			"spec.training.gradientAccumulationSteps": int64(1), "spec.training.warmupSteps": int64(0),
			"spec.training.weightDecay": "0", "spec.training.gradClipNorm": "1.0", "spec.training.evalEvery": int64(100),
			"spec.training.checkpointEvery": int64(200), "spec.training.seed": int64(42),
			"spec.maxRetries": int64(3), "spec.suspend": false, "spec.resources.gpus": int64(0),
			"spec.model.architecture.layers": int64(4), "spec.model.architecture.dModel": int64(128),
			"spec.model.architecture.heads": int64(4), "spec.model.architecture.contextLength": int64(128),
			"spec.model.architecture.tokenizer": "byte",
		}},
	{"SFT at the upper bounds", "SFTRun",
		[]edit{{"spec.model.architecture", map[string]any{"layers": int64(96), "dModel": int64(16384), "heads": int64(256), "contextLength": int64(65536)}},
			{"spec.training.learningRate", "1"}, {"spec.training.batchSize", int64(4096)}, {"spec.resources.gpus", int64(64)},
			{"spec.maxRetries", int64(100)}, {"spec.training.weightDecay", "1"}, {"spec.training.maxSteps", int64(10000000)}},
		map[string]any{"spec.training.learningRate": "1", "spec.training.batchSize": int64(4096), "spec.resources.gpus": int64(64),
			"spec.maxRetries": int64(100), "spec.model.architecture.contextLength": int64(65536)}},
	{"SFT at the lower bounds", "SFTRun",
		[]edit{{"spec.model.architecture", map[string]any{"layers": int64(1), "dModel": int64(8), "heads": int64(8), "contextLength": int64(8)}},
			{"spec.training.learningRate", "1E-10"}, {"spec.training.batchSize", int64(1)}, {"spec.maxRetries", int64(0)},
			{"spec.activeDeadlineSeconds", int64(1)}, {"spec.training.maxSteps", int64(1)}, {"spec.training.checkpointEvery", int64(0)},
			{"spec.training.gradClipNorm", "0"}},
		// An explicit 0 is kept; the default (3) applies only when the field is absent.
		map[string]any{"spec.maxRetries": int64(0), "spec.training.learningRate": "1E-10", "spec.activeDeadlineSeconds": int64(1),
			"spec.training.checkpointEvery": int64(0)}},
	{"SFT by epochs from a model uri on a pvc, with a GPU resource name", "SFTRun",
		[]edit{{"spec.model.architecture", nil}, {"spec.model.from", map[string]any{"uri": "pvc://models/base"}},
			{"spec.training.maxSteps", nil}, {"spec.training.epochs", "1000"}, {"spec.training.lrSchedule", "constant"},
			{"spec.resources.gpuResourceName", "amd.com/gpu"}, {"spec.output.uri", "pvc://preftune-outputs/runs"}},
		map[string]any{"spec.training.epochs": "1000", "spec.resources.gpuResourceName": "amd.com/gpu", "spec.output.uri": "pvc://preftune-outputs/runs"}},
	{"SFT from another SFTRun, 0.5 epochs", "SFTRun",
		[]edit{{"spec.model.architecture", nil}, {"spec.model.from", map[string]any{"sftRun": "base"}},
			{"spec.training.maxSteps", nil}, {"spec.training.epochs", "0.5"}, {"spec.suspend", true}},
		map[string]any{"spec.training.epochs": "0.5", "spec.suspend": true, "spec.model.from.sftRun": "base"}},

	{"DPO defaults", "DPORun", nil,
		map[string]any{"spec.beta": "0.1", "spec.lossType": "sigmoid", "spec.labelSmoothing": "0", "spec.rpoAlpha": "0",
			"spec.precomputeReferenceLogProbs": true, "spec.maxRetries": int64(3), "spec.training.batchSize": int64(16),
			"spec.training.learningRate": "3e-4"}},
	{"DPO ipo without smoothing, beta 100", "DPORun",
		[]edit{{"spec.lossType", "ipo"}, {"spec.beta", "100"}, {"spec.labelSmoothing", "0"}},
		map[string]any{"spec.lossType": "ipo", "spec.beta": "100"}},
	{"DPO robust with labelSmoothing 0.49", "DPORun",
		[]edit{{"spec.lossType", "robust"}, {"spec.labelSmoothing", "0.49"}, {"spec.rpoAlpha", "100"}},
		map[string]any{"spec.labelSmoothing": "0.49", "spec.rpoAlpha": "100"}},
	{"DPO cDPO (sigmoid with smoothing), tiny beta, no precompute", "DPORun",
		[]edit{{"spec.labelSmoothing", "0.1"}, {"spec.beta", "1e-3"}, {"spec.precomputeReferenceLogProbs", false}},
		map[string]any{"spec.labelSmoothing": "0.1", "spec.beta": "1e-3", "spec.precomputeReferenceLogProbs": false}},
	{"DPO hinge by epochs", "DPORun",
		[]edit{{"spec.lossType", "hinge"}, {"spec.training.maxSteps", nil}, {"spec.training.epochs", "3"}},
		map[string]any{"spec.lossType": "hinge", "spec.training.epochs": "3", "spec.beta": "0.1"}},
}

// TestValidEdgeObjectsAreAccepted creates objects at the edges of the rules and checks the stored objects hold
// the defaults and the given values.
func TestValidEdgeObjectsAreAccepted(t *testing.T) {
	ns := newNamespace(t)
	for i, tc := range validCases {
		t.Run(tc.kind+"/"+tc.name, func(t *testing.T) { tc.check(t, ns, fmt.Sprintf("ok-%d", i)) })
	}
}

// check creates the case's object as name in ns: the apiserver must accept it and store want at its paths.
func (tc validCase) check(t *testing.T, ns, name string) {
	t.Helper()
	obj := baseObject(tc.kind)
	apply(obj, tc.edits)
	u := &unstructured.Unstructured{Object: obj}
	u.SetNamespace(ns)
	u.SetName(name)
	ctx := context.Background()
	if err := k8s.Create(ctx, u); err != nil {
		t.Fatalf("rejected: %v", err)
	}
	got := &unstructured.Unstructured{}
	got.SetGroupVersionKind(u.GroupVersionKind())
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(u), got); err != nil {
		t.Fatal(err)
	}
	for path, want := range tc.want {
		v, found, err := unstructured.NestedFieldNoCopy(got.Object, strings.Split(path, ".")...)
		if err != nil || !found {
			t.Errorf("%s: missing (%v)", path, err)
			continue
		}
		if !reflect.DeepEqual(v, want) {
			t.Errorf("%s = %#v, want %#v", path, v, want)
		}
	}
}

const startedMessage = "cannot change once the run has started"

// TestStartedRunsKeepTheirSpec checks the transition rules: once status.startTime is set (the Job exists), only
// suspend may change: the operator does not carry later changes into the Job, so the schema refuses them rather
// than accept and ignore them. Before it, the spec is free.
func TestStartedRunsKeepTheirSpec(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()

	// update re-reads obj, applies change and updates; it retries only on conflicts.
	update := func(t *testing.T, obj client.Object, change func()) error {
		t.Helper()
		for {
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
				t.Fatal(err)
			}
			change()
			err := k8s.Update(ctx, obj)
			if !apierrors.IsConflict(err) {
				return err
			}
		}
	}
	wantRejected := func(t *testing.T, what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s was accepted on a started run", what)
			return
		}
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), startedMessage) {
			t.Errorf("%s: error %v, want Invalid with %q", what, err, startedMessage)
		}
	}
	wantAccepted := func(t *testing.T, what string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
	start := func(t *testing.T, obj client.Object, setStart func(*metav1.Time)) {
		t.Helper()
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			t.Fatal(err)
		}
		setStart(ptr.To(metav1.NewTime(time.Now().Truncate(time.Second))))
		if err := k8s.Status().Update(ctx, obj); err != nil {
			t.Fatalf("set status.startTime: %v", err)
		}
	}

	t.Run("SFTRun", func(t *testing.T) {
		run := newSFTRun(ns, "sft", "arith")
		create(t, run)

		// Before the start, anything may change, even with other status fields set.
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(run), run); err != nil {
			t.Fatal(err)
		}
		run.Status.Phase = v1alpha1.RunPhasePending
		if err := k8s.Status().Update(ctx, run); err != nil {
			t.Fatalf("set phase: %v", err)
		}
		wantAccepted(t, "training before the start", update(t, run, func() { run.Spec.Training.LearningRate = "1e-3" }))
		wantAccepted(t, "model before the start", update(t, run, func() { run.Spec.Model.Architecture.Layers = 3 }))

		start(t, run, func(ts *metav1.Time) { run.Status.StartTime = ts })

		wantRejected(t, "training.learningRate", update(t, run, func() { run.Spec.Training.LearningRate = "2e-3" }))
		wantRejected(t, "training.maxSteps", update(t, run, func() { run.Spec.Training.MaxSteps = ptr.To[int32](99) }))
		wantRejected(t, "model", update(t, run, func() { run.Spec.Model.Architecture.Layers = 5 }))
		wantRejected(t, "datasetRef", update(t, run, func() { run.Spec.DatasetRef.Name = "other" }))
		wantRejected(t, "resources", update(t, run, func() { run.Spec.Resources.GPUs = 1 }))
		wantRejected(t, "output", update(t, run, func() { run.Spec.Output.URI = "s3://elsewhere/runs" }))
		wantRejected(t, "trainer.image", update(t, run, func() { run.Spec.Trainer.Image = "other:tag" }))
		wantRejected(t, "maxRetries", update(t, run, func() { run.Spec.MaxRetries = 7 }))
		wantRejected(t, "activeDeadlineSeconds", update(t, run, func() { run.Spec.ActiveDeadlineSeconds = ptr.To[int64](60) }))
		wantRejected(t, "scheduling", update(t, run, func() {
			run.Spec.Scheduling.NodeSelector = map[string]string{"pool": "gpu"}
			run.Spec.Scheduling.QueueName = "team-a"
		}))
		wantAccepted(t, "suspend", update(t, run, func() { run.Spec.Suspend = true }))
		get(t, run, ns, "sft")
		if run.Spec.Training.LearningRate != "1e-3" || !run.Spec.Suspend || run.Spec.Scheduling.NodeSelector != nil {
			t.Errorf("stored spec = %+v", run.Spec)
		}
	})

	t.Run("DPORun", func(t *testing.T) {
		run := newDPORun(ns, "dpo", "arith", "sft")
		create(t, run)
		wantAccepted(t, "beta before the start", update(t, run, func() { run.Spec.Beta = "0.2" }))
		wantAccepted(t, "training before the start", update(t, run, func() { run.Spec.Training.BatchSize = 8 }))

		start(t, run, func(ts *metav1.Time) { run.Status.StartTime = ts })

		wantRejected(t, "beta", update(t, run, func() { run.Spec.Beta = "0.5" }))
		wantRejected(t, "training.batchSize", update(t, run, func() { run.Spec.Training.BatchSize = 4 }))
		wantRejected(t, "lossType", update(t, run, func() { run.Spec.LossType = v1alpha1.DPOLossIPO }))
		wantRejected(t, "labelSmoothing", update(t, run, func() { run.Spec.LabelSmoothing = "0.1" }))
		wantRejected(t, "rpoAlpha", update(t, run, func() { run.Spec.RPOAlpha = "1" }))
		wantRejected(t, "precomputeReferenceLogProbs", update(t, run, func() { run.Spec.PrecomputeReferenceLogProbs = ptr.To(false) }))
		wantRejected(t, "referenceRef", update(t, run, func() { run.Spec.ReferenceRef.SFTRun = "other" }))
		wantRejected(t, "datasetRef", update(t, run, func() { run.Spec.DatasetRef.Name = "other" }))
		wantRejected(t, "scheduling", update(t, run, func() { run.Spec.Scheduling.PriorityClassName = "high" }))
		wantAccepted(t, "suspend", update(t, run, func() { run.Spec.Suspend = true }))
		get(t, run, ns, "dpo")
		if run.Spec.Beta != "0.2" || run.Spec.Training.BatchSize != 8 || !run.Spec.Suspend || run.Spec.Scheduling.PriorityClassName != "" {
			t.Errorf("stored spec = %+v", run.Spec)
		}
	})
}
