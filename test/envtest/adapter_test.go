package envtest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/preftune/preftune/api/v1alpha1"
	"github.com/preftune/preftune/controllers"
	"github.com/preftune/preftune/trainer/contract"
)

// fromURI turns the base SFTRun (a model from scratch) into one that fine-tunes a pretrained model.
var fromURI = []edit{{"spec.model.architecture", nil}, {"spec.model.from", map[string]any{"uri": "hf://org/base"}}}

func with(base []edit, more ...edit) []edit { return append(append([]edit(nil), base...), more...) }

// adapterInvalidCases are the rejections of spec.adapter, spec.output.mergedModel, spec.model.chatTemplate,
// spec.training.maxLength and spec.inspection.
var adapterInvalidCases = []invalidCase{
	{"chatTemplate with inline and configMapKeyRef", "SFTRun",
		with(fromURI, edit{"spec.model.chatTemplate", map[string]any{"inline": "{{ x }}", "configMapKeyRef": map[string]any{"name": "t", "key": "k"}}}),
		[]string{"spec.model.chatTemplate", "exactly one of inline or configMapKeyRef must be set"}},
	{"chatTemplate with neither", "SFTRun",
		with(fromURI, edit{"spec.model.chatTemplate", map[string]any{}}),
		[]string{"spec.model.chatTemplate", "exactly one of inline or configMapKeyRef must be set"}},
	{"chatTemplate inline empty", "SFTRun",
		with(fromURI, edit{"spec.model.chatTemplate", map[string]any{"inline": ""}}),
		[]string{"spec.model.chatTemplate.inline", "at least 1 chars long"}},
	{"chatTemplate configMapKeyRef without key", "SFTRun",
		with(fromURI, edit{"spec.model.chatTemplate", map[string]any{"configMapKeyRef": map[string]any{"name": "t"}}}),
		[]string{"spec.model.chatTemplate.configMapKeyRef.key", "Required value"}},
	{"maxLength 1", "SFTRun",
		[]edit{{"spec.training.maxLength", int64(1)}},
		[]string{"spec.training.maxLength", "should be greater than or equal to 2"}},
	{"maxLength 0 (DPO)", "DPORun",
		[]edit{{"spec.training.maxLength", int64(0)}},
		[]string{"spec.training.maxLength", "should be greater than or equal to 2"}},
	{"adapter type ia3", "SFTRun",
		with(fromURI, edit{"spec.adapter", map[string]any{"type": "ia3"}}),
		[]string{"spec.adapter.type", "Unsupported value", `"ia3"`}},
	{"adapter rank 0", "SFTRun",
		with(fromURI, edit{"spec.adapter", map[string]any{"rank": int64(0)}}),
		[]string{"spec.adapter.rank", "should be greater than or equal to 1"}},
	{"adapter rank 1025", "DPORun",
		[]edit{{"spec.adapter", map[string]any{"rank": int64(1025)}}},
		[]string{"spec.adapter.rank", "should be less than or equal to 1024"}},
	{"adapter alpha 0", "DPORun",
		[]edit{{"spec.adapter", map[string]any{"alpha": int64(0)}}},
		[]string{"spec.adapter.alpha", "should be greater than or equal to 1"}},
	{"adapter dropout 1", "SFTRun",
		with(fromURI, edit{"spec.adapter", map[string]any{"dropout": "1"}}),
		[]string{"spec.adapter.dropout", "dropout must be below 1"}},
	{"adapter dropout 1.5", "DPORun",
		[]edit{{"spec.adapter", map[string]any{"dropout": "1.5"}}},
		[]string{"spec.adapter.dropout", "dropout must be below 1"}},
	{"adapter dropout negative", "DPORun",
		[]edit{{"spec.adapter", map[string]any{"dropout": "-0.1"}}},
		[]string{"spec.adapter.dropout", "should match"}},
	{"adapter target with a dash", "SFTRun",
		with(fromURI, edit{"spec.adapter", map[string]any{"targetModules": []any{"q_proj", "q-proj"}}}),
		[]string{"spec.adapter.targetModules[1]", "should match"}},
	{"adapter targets repeated", "DPORun",
		[]edit{{"spec.adapter", map[string]any{"targetModules": []any{"q_proj", "q_proj"}}}},
		[]string{"spec.adapter.targetModules[1]", "Duplicate value"}},
	{"adapter on a model trained from scratch", "SFTRun",
		[]edit{{"spec.adapter", map[string]any{}}},
		[]string{"spec", "adapter needs a pretrained starting model (model.from)"}},
	{"mergedModel false without an adapter", "SFTRun",
		with(fromURI, edit{"spec.output.mergedModel", false}),
		[]string{"spec", "output.mergedModel false applies only to runs with an adapter"}},
	{"mergedModel false without an adapter (DPO)", "DPORun",
		[]edit{{"spec.output.mergedModel", false}},
		[]string{"spec", "output.mergedModel false applies only to runs with an adapter"}},
	{"inspection without a model uri", "PreferenceDataset",
		[]edit{{"spec.inspection", map[string]any{"model": map[string]any{}}}},
		[]string{"spec.inspection.model.uri", "Required value"}},
	{"inspection model over http", "PreferenceDataset",
		[]edit{{"spec.inspection", map[string]any{"model": map[string]any{"uri": "http://models/base"}}}},
		[]string{"spec.inspection.model.uri", "should match"}},
	{"inspection maxLength 1", "PreferenceDataset",
		[]edit{{"spec.inspection", map[string]any{"model": map[string]any{"uri": "hf://org/base"}, "maxLength": int64(1)}}},
		[]string{"spec.inspection.maxLength", "should be greater than or equal to 2"}},
	{"inspection chatTemplate with both", "PreferenceDataset",
		[]edit{{"spec.inspection", map[string]any{"model": map[string]any{"uri": "hf://org/base",
			"chatTemplate": map[string]any{"inline": "x", "configMapKeyRef": map[string]any{"name": "t", "key": "k"}}}}}},
		[]string{"spec.inspection.model.chatTemplate", "exactly one of inline or configMapKeyRef must be set"}},
}

var adapterValidCases = []validCase{
	{"SFT adapter defaults", "SFTRun", with(fromURI, edit{"spec.adapter", map[string]any{}}),
		map[string]any{"spec.adapter.type": "lora", "spec.adapter.rank": int64(16), "spec.adapter.dropout": "0",
			"spec.output.mergedModel": true}},
	{"SFT adapter at its edges, adapter only, template from a ConfigMap, maxLength 2", "SFTRun",
		with(fromURI, edit{"spec.adapter", map[string]any{"rank": int64(1024), "alpha": int64(65536), "dropout": "0.999",
			"targetModules": []any{"q_proj", "v_proj", "mlp.down_proj"}}},
			edit{"spec.output.mergedModel", false}, edit{"spec.training.maxLength", int64(2)},
			edit{"spec.model.chatTemplate", map[string]any{"configMapKeyRef": map[string]any{"name": "templates", "key": "chatml.jinja"}}}),
		map[string]any{"spec.adapter.rank": int64(1024), "spec.adapter.alpha": int64(65536), "spec.adapter.dropout": "0.999",
			"spec.output.mergedModel": false, "spec.training.maxLength": int64(2),
			"spec.model.chatTemplate.configMapKeyRef.key": "chatml.jinja"}},
	{"SFT without adapter: merged model default, inline template", "SFTRun",
		with(fromURI, edit{"spec.model.chatTemplate", map[string]any{"inline": "{% for m in messages %}{{ m.content }}{% endfor %}"}}),
		map[string]any{"spec.output.mergedModel": true, "spec.model.chatTemplate.inline": "{% for m in messages %}{{ m.content }}{% endfor %}"}},
	{"DPO adapter rank 1, no alpha", "DPORun", []edit{{"spec.adapter", map[string]any{"rank": int64(1)}}},
		map[string]any{"spec.adapter.rank": int64(1), "spec.adapter.type": "lora", "spec.adapter.dropout": "0"}},
	{"dataset inspection on a claim with maxLength and a secret", "PreferenceDataset",
		[]edit{{"spec.inspection", map[string]any{"model": map[string]any{"uri": "pvc://models/qwen3"}, "maxLength": int64(4096),
			"secretRef": map[string]any{"name": "hub"}}}},
		map[string]any{"spec.inspection.model.uri": "pvc://models/qwen3", "spec.inspection.maxLength": int64(4096)}},
}

// TestAdapterAndTemplateFieldsValidation sends the cases above to the apiserver: each invalid object is refused
// naming the field and the rule, each valid one is stored with the schema's defaults.
func TestAdapterAndTemplateFieldsValidation(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	for i, tc := range adapterInvalidCases {
		t.Run("invalid/"+tc.kind+"/"+tc.name, func(t *testing.T) { tc.check(t, ns, fmt.Sprintf("bad-%d", i)) })
	}
	for i, tc := range adapterValidCases {
		t.Run("valid/"+tc.kind+"/"+tc.name, func(t *testing.T) { tc.check(t, ns, fmt.Sprintf("ok-%d", i)) })
	}

	// The adapter is part of the spec a started run keeps.
	run := newSFTRun(ns, "started", "arith")
	run.Spec.Model = v1alpha1.ModelSpec{From: &v1alpha1.ModelSource{URI: "hf://org/base"}}
	run.Spec.Adapter = &v1alpha1.AdapterSpec{Rank: 8}
	create(t, run)
	run.Status.StartTime = ptr.To(metav1.NewTime(time.Now().Truncate(time.Second)))
	if err := k8s.Status().Update(ctx, run); err != nil {
		t.Fatal(err)
	}
	get(t, run, ns, "started")
	run.Spec.Adapter.Rank = 32
	if err := k8s.Update(ctx, run); err == nil || !strings.Contains(err.Error(), startedMessage) {
		t.Errorf("changing the adapter of a started run: %v, want %q", err, startedMessage)
	}
	get(t, run, ns, "started")
	run.Spec.Adapter = nil
	if err := k8s.Update(ctx, run); err == nil || !strings.Contains(err.Error(), startedMessage) {
		t.Errorf("removing the adapter of a started run: %v, want %q", err, startedMessage)
	}
}

// TestLoRALineage plays an SFTRun with an adapter and a chat template from a ConfigMap, then a DPORun with an
// adapter on it: the SFTRun waits (ChatTemplateNotFound) until the ConfigMap key exists, its Job's configuration
// carries the template, maxLength, the adapter (alpha 2 x rank) and mergedModel false; its result's adapter,
// trainable parameters and truncation reach status; the DPORun's reference is the SFTRun's starting model with
// that adapter.
func TestLoRALineage(t *testing.T) {
	stop := startManager(t)
	defer stop()
	ns := newNamespace(t)
	readyDataset(t, ns, "arith")

	sft := newSFTRun(ns, "sft-lora", "arith")
	sft.Spec.Model = v1alpha1.ModelSpec{From: &v1alpha1.ModelSource{URI: "pvc://models/base"},
		ChatTemplate: &v1alpha1.ChatTemplateSource{ConfigMapKeyRef: &v1alpha1.ConfigMapKeyReference{Name: "templates", Key: "chatml.jinja"}}}
	sft.Spec.Adapter = &v1alpha1.AdapterSpec{Rank: 8, TargetModules: []string{"q_proj", "v_proj"}}
	sft.Spec.Output.MergedModel = ptr.To(false)
	sft.Spec.Training.MaxLength = ptr.To[int32](256)
	create(t, sft)

	var run v1alpha1.SFTRun
	eventually(t, "SFTRun waiting for its chat template", func() error {
		get(t, &run, ns, "sft-lora")
		if err := wantCondition(run.Status.Conditions, v1alpha1.ConditionRunning, metav1.ConditionFalse, controllers.ReasonChatTemplateNotFound); err != nil {
			return err
		}
		if msg := findCondition(run.Status.Conditions, v1alpha1.ConditionRunning).Message; !strings.Contains(msg, `spec.model.chatTemplate.configMapKeyRef: ConfigMap "templates" does not exist`) {
			return fmt.Errorf("message %q", msg)
		}
		return nil
	})
	wantEvents(t, ns, "sft-lora", controllers.ReasonChatTemplateNotFound)
	if jobs := ownedJobs(t, ns, "SFTRun", "sft-lora"); len(jobs) != 0 {
		t.Fatalf("%d Jobs before the template exists", len(jobs))
	}
	const tmpl = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
	create(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "templates", Namespace: ns}, Data: map[string]string{"chatml.jinja": tmpl}})
	job := waitForJob(t, ns, "SFTRun", "sft-lora") // found by the periodic look, nothing else changed

	cfg := configOf(t, job)
	if cfg.Model.ChatTemplate != tmpl || cfg.Model.From != "file:///mnt/pvc/models/base" || cfg.Training.MaxLength != 256 {
		t.Errorf("model %+v maxLength %d", cfg.Model, cfg.Training.MaxLength)
	}
	wantAdapter := &contract.AdapterConfig{Type: "lora", Rank: 8, Alpha: 16, TargetModules: []string{"q_proj", "v_proj"}}
	if cfg.Adapter == nil || fmt.Sprint(*cfg.Adapter) != fmt.Sprint(*wantAdapter) {
		t.Errorf("adapter %+v, want %+v", cfg.Adapter, wantAdapter)
	}
	if cfg.Output.MergedModel == nil || *cfg.Output.MergedModel {
		t.Errorf("output.mergedModel %v, want false", cfg.Output.MergedModel)
	}

	pod := startPod(t, job, "a", corev1.PodRunning)
	out := strings.TrimSuffix(cfg.Output.URI, "/")
	finishPod(t, pod, 0, contract.TerminationMessage{Result: &contract.Result{Step: 50, TotalSteps: 50,
		ParameterCount: 135_000_000, TrainableParameterCount: 460_800, AdapterURI: out + "/adapter",
		SourceURI: "file:///mnt/pvc/models/base", SourceDigest: "sha256:base",
		Truncation: &contract.Truncation{ContextLength: 256, RowsTruncated: 3, PromptsEmptied: 1, ResponsesCut: 2}}})
	completeJob(t, job)
	eventually(t, "SFTRun succeeded with an adapter", func() error {
		get(t, &run, ns, "sft-lora")
		if err := wantCondition(run.Status.Conditions, v1alpha1.ConditionSucceeded, metav1.ConditionTrue, "TrainingSucceeded"); err != nil {
			return err
		}
		st := run.Status
		if !strings.HasPrefix(st.AdapterURI, "pvc://outputs/preftune/"+ns+"/sft-lora-") || st.ModelURI != "" || st.TrainableParameterCount != 460_800 ||
			st.Truncation == nil || st.Truncation.RowsTruncated != 3 || st.Truncation.ContextLength != 256 {
			return fmt.Errorf("status adapter %q model %q trainable %d truncation %+v", st.AdapterURI, st.ModelURI, st.TrainableParameterCount, st.Truncation)
		}
		return nil
	})

	dpo := newDPORun(ns, "dpo-lora", "arith", "sft-lora")
	dpo.Spec.Adapter = &v1alpha1.AdapterSpec{Rank: 4, Alpha: ptr.To[int32](4), Dropout: "0.05"}
	create(t, dpo)
	dJob := waitForJob(t, ns, "DPORun", "dpo-lora")
	dcfg := configOf(t, dJob)
	wantRef := contract.ReferenceConfig{ModelURI: "file:///mnt/pvc/models/base", AdapterURI: "file:///mnt/pvc/" + strings.TrimPrefix(run.Status.AdapterURI, "pvc://")}
	if dcfg.Reference == nil || *dcfg.Reference != wantRef {
		t.Errorf("reference %+v, want %+v", dcfg.Reference, wantRef)
	}
	if a := dcfg.Adapter; a == nil || a.Rank != 4 || a.Alpha != 4 || a.Dropout != 0.05 || len(a.TargetModules) != 0 {
		t.Errorf("DPO adapter %+v", a)
	}
	if dcfg.Model.ChatTemplate != "" {
		t.Errorf("DPO got a chat template of its own: %q", dcfg.Model.ChatTemplate)
	}
	var d v1alpha1.DPORun
	eventually(t, "DPORun reference pinned with the adapter", func() error {
		get(t, &d, ns, "dpo-lora")
		p := d.Status.Reference
		if p == nil || p.ModelURI != "pvc://models/base" || p.AdapterURI != run.Status.AdapterURI || p.ModelDigest != "sha256:base" {
			return fmt.Errorf("reference %+v", p)
		}
		return wantCondition(d.Status.Conditions, v1alpha1.ConditionReferenceReady, metav1.ConditionTrue, "Pinned")
	})
}

// TestDatasetInspectionWithAModel: a dataset with spec.inspection waits (ChatTemplateNotFound, not validated)
// while its template's ConfigMap is missing, then validates with the model, the template and maxLength, and its
// status shows the token lengths and truncation counts the trainer reported.
func TestDatasetInspectionWithAModel(t *testing.T) {
	stop := startManager(t)
	defer stop()
	ns := newNamespace(t)
	create(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "inspect-data", Namespace: ns},
		Data: map[string]string{"train.jsonl": `{"prompt":"2+2=","chosen":"4","rejected":"5"}` + "\n"}})
	ds := &v1alpha1.PreferenceDataset{ObjectMeta: metav1.ObjectMeta{Name: "inspect", Namespace: ns},
		Spec: v1alpha1.PreferenceDatasetSpec{Source: v1alpha1.DatasetSource{ConfigMap: &v1alpha1.ConfigMapDataSource{Name: "inspect-data", Key: "train.jsonl"}},
			Inspection: &v1alpha1.DatasetInspection{MaxLength: ptr.To[int32](64),
				Model: v1alpha1.InspectionModel{URI: "hf://Qwen/Qwen3-0.6B", ChatTemplate: &v1alpha1.ChatTemplateSource{
					ConfigMapKeyRef: &v1alpha1.ConfigMapKeyReference{Name: "tmpl", Key: "t.jinja"}}}}}}
	create(t, ds)
	eventually(t, "dataset waiting for its template", func() error {
		get(t, ds, ns, "inspect")
		return wantCondition(ds.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, controllers.ReasonChatTemplateNotFound)
	})
	create(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "tmpl", Namespace: ns}, Data: map[string]string{"t.jinja": "TEMPLATE"}})
	job := waitForJob(t, ns, "PreferenceDataset", "inspect")
	ic := inspectConfigOf(t, ns, "inspect")
	if ic.Model == nil || ic.Model.From != "hf://Qwen/Qwen3-0.6B" || ic.Model.ChatTemplate != "TEMPLATE" || ic.MaxLength != 64 {
		t.Fatalf("inspect config model %+v maxLength %d", ic.Model, ic.MaxLength)
	}
	rep := datasetReport()
	rep.Dataset.Tokens = &contract.LengthStats{PromptMean: 12.5, PromptMax: 40, ChosenMean: 3, ChosenMax: 9, RejectedMean: 4, RejectedMax: 11}
	rep.Dataset.Truncation = &contract.Truncation{ContextLength: 64, RowsTruncated: 5, PromptsEmptied: 2, ResponsesCut: 1, IdenticalPairs: 1}
	pod := startPod(t, job, "v", corev1.PodRunning)
	finishPod(t, pod, 0, rep)
	completeJob(t, job)
	eventually(t, "dataset Ready with token statistics", func() error {
		get(t, ds, ns, "inspect")
		if err := wantCondition(ds.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, "Valid"); err != nil {
			return err
		}
		if tk := ds.Status.Tokens; tk == nil || tk.PromptMean != "12.5" || tk.PromptMax != 40 || tk.RejectedMax != 11 {
			return fmt.Errorf("tokens %+v", tk)
		}
		if tr := ds.Status.Truncation; tr == nil || *tr != (v1alpha1.TruncationStatus{ContextLength: 64, RowsTruncated: 5, PromptsEmptied: 2, ResponsesCut: 1, IdenticalPairs: 1}) {
			return fmt.Errorf("truncation %+v", tr)
		}
		return nil
	})
}

// TestKubectlExplainAdapterAndTemplate: the new fields' documentation reaches kubectl explain.
func TestKubectlExplainAdapterAndTemplate(t *testing.T) {
	kubectl := kubectlFor(t)
	explain := func(field string) string {
		t.Helper()
		var out string
		eventually(t, "kubectl explain "+field, func() error {
			var err error
			out, err = kubectl("explain", field)
			return err
		})
		return out
	}
	wantAll(t, "explain sftrun.spec.adapter", explain("sftrun.spec.adapter"),
		"FIELD: adapter <Object>", "LoRA adapter on the frozen starting model", "Absent: full fine-tuning",
		"rank", "alpha", "dropout", "targetModules", "type")
	wantAll(t, "explain dporun.spec.adapter.alpha", explain("dporun.spec.adapter.alpha"),
		"FIELD: alpha <integer>", "alpha/rank", "Absent: 2 x rank, which the operator fills in")
	wantAll(t, "explain sftrun.spec.adapter.type", explain("sftrun.spec.adapter.type"), "ENUM: lora")
	wantAll(t, "explain sftrun.spec.adapter.targetModules", explain("sftrun.spec.adapter.targetModules"),
		"q_proj", "every attention and MLP projection")
	wantAll(t, "explain sftrun.spec.output.mergedModel", explain("sftrun.spec.output.mergedModel"),
		"FIELD: mergedModel <boolean>", "status.adapterURI")
	wantAll(t, "explain sftrun.spec.model.chatTemplate", explain("sftrun.spec.model.chatTemplate"),
		"FIELD: chatTemplate <Object>", "inline", "configMapKeyRef", "tokenizer_config.json")
	wantAll(t, "explain sftrun.spec.training.maxLength", explain("sftrun.spec.training.maxLength"),
		"FIELD: maxLength <integer>", "in tokens", "status.truncation")
	wantAll(t, "explain dporun.spec.referenceRef.sftRun", explain("dporun.spec.referenceRef.sftRun"),
		"a DPORun has no chatTemplate of its own")
	wantAll(t, "explain preferencedataset.spec.inspection", explain("preferencedataset.spec.inspection"),
		"FIELD: inspection <Object>", "status.tokens", "model", "maxLength", "secretRef")
	wantAll(t, "explain sftrun.status.truncation", explain("sftrun.status.truncation"),
		"promptsEmptied", "responsesCut", "identicalPairs", "rowsTruncated")
	wantAll(t, "explain dporun.status.trainableParameterCount", explain("dporun.status.trainableParameterCount"),
		"parameterCount for full fine-tuning")

	// The trainable count is a wide column right after the parameter count; the dataset's truncated rows too.
	ns := newNamespace(t)
	run := newSFTRun(ns, "lora-cols", "arith")
	run.Spec.Model = v1alpha1.ModelSpec{From: &v1alpha1.ModelSource{URI: "hf://org/base"}}
	run.Spec.Adapter = &v1alpha1.AdapterSpec{}
	create(t, run)
	run.Status.ParameterCount, run.Status.TrainableParameterCount = 134515008, 4884480
	if err := k8s.Status().Update(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	var out string
	eventually(t, "kubectl get sftruns -o wide", func() error {
		var err error
		out, err = kubectl("get", "sftruns", "-n", ns, "-o", "wide")
		if err == nil && !strings.Contains(out, "4884480") {
			err = fmt.Errorf("no trainable count yet:\n%s", out)
		}
		return err
	})
	wantAll(t, "get sftruns -o wide", out, "PARAMS TRAINABLE MODEL", "134515008 4884480")
	newDataset(t, ns, "cols")
	eventually(t, "kubectl get pds -o wide", func() error {
		var err error
		out, err = kubectl("get", "pds", "-n", ns, "-o", "wide")
		return err
	})
	wantAll(t, "get pds -o wide", out, "SKIPPED TRUNCATED DIGEST")
}
