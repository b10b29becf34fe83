package controllers

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/preftune/preftune/api/v1alpha1"
	"github.com/preftune/preftune/trainer/contract"
)

// TestAdapterConfig: spec.adapter reaches the trainer as the contract's AdapterConfig; alpha absent is 2 x rank
// (the operator's default, which the schema cannot express); the schema's defaults stand in for objects stored
// before them.
func TestAdapterConfig(t *testing.T) {
	cases := []struct {
		name    string
		spec    *v1alpha1.AdapterSpec
		want    *contract.AdapterConfig
		wantErr string
	}{
		{"no adapter is full fine-tuning", nil, nil, ""},
		{"schema defaults, alpha 2 x rank", &v1alpha1.AdapterSpec{Type: "lora", Rank: 16, Dropout: "0"},
			&contract.AdapterConfig{Type: "lora", Rank: 16, Alpha: 32}, ""},
		{"rank 8 without alpha", &v1alpha1.AdapterSpec{Type: "lora", Rank: 8, Dropout: "0.05"},
			&contract.AdapterConfig{Type: "lora", Rank: 8, Alpha: 16, Dropout: 0.05}, ""},
		{"alpha given", &v1alpha1.AdapterSpec{Type: "lora", Rank: 64, Alpha: ptr.To[int32](16), Dropout: "0.1", TargetModules: []string{"q_proj", "v_proj"}},
			&contract.AdapterConfig{Type: "lora", Rank: 64, Alpha: 16, Dropout: 0.1, TargetModules: []string{"q_proj", "v_proj"}}, ""},
		{"stored before the defaults", &v1alpha1.AdapterSpec{},
			&contract.AdapterConfig{Type: "lora", Rank: 16, Alpha: 32}, ""},
		{"dropout 1", &v1alpha1.AdapterSpec{Rank: 4, Dropout: "1"}, nil, "spec.adapter.dropout"},
		{"dropout not a number", &v1alpha1.AdapterSpec{Rank: 4, Dropout: "x"}, nil, "spec.adapter.dropout"},
		{"unknown type", &v1alpha1.AdapterSpec{Type: "ia3", Rank: 4}, nil, "spec.adapter.type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := adapterConfig(tc.spec)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !equalJSON(got, tc.want) {
				t.Errorf("adapter = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestPinReference: a DPORun's reference is the SFTRun's model when it wrote one (merged or fully trained);
// when it wrote only an adapter, the SFTRun's starting model (at its Hub commit) with that adapter.
func TestPinReference(t *testing.T) {
	succeeded := func(mutate func(*v1alpha1.SFTRun)) *v1alpha1.SFTRun {
		r := &v1alpha1.SFTRun{ObjectMeta: metav1.ObjectMeta{Name: "sft", UID: "u-1"}}
		r.Spec.Model.From = &v1alpha1.ModelSource{URI: "hf://org/base@main"}
		mutate(r)
		return r
	}
	cases := []struct {
		name       string
		ref        *v1alpha1.SFTRun
		wantModel  string
		wantAdapt  string
		wantDigest string
		wantReason string
	}{
		{"full fine-tuning", succeeded(func(r *v1alpha1.SFTRun) {
			r.Status.ModelURI, r.Status.ModelDigest = "pvc://out/sft/model", "sha256:m"
		}), "pvc://out/sft/model", "", "sha256:m", ""},
		{"adapter and merged model: the merged model", succeeded(func(r *v1alpha1.SFTRun) {
			r.Status.ModelURI, r.Status.AdapterURI, r.Status.ModelDigest = "pvc://out/sft/model", "pvc://out/sft/adapter", "sha256:m"
		}), "pvc://out/sft/model", "", "sha256:m", ""},
		{"adapter only: the starting model at its commit with the adapter", succeeded(func(r *v1alpha1.SFTRun) {
			r.Status.AdapterURI = "pvc://out/sft/adapter"
			r.Status.SourceModel = &v1alpha1.SourceModelStatus{URI: "hf://org/base@main", Commit: strings.Repeat("a", 40), Digest: "sha256:b"}
		}), "hf://org/base@" + strings.Repeat("a", 40), "pvc://out/sft/adapter", "sha256:b", ""},
		{"adapter only, starting model on a claim", succeeded(func(r *v1alpha1.SFTRun) {
			r.Spec.Model.From.URI = "pvc://models/base"
			r.Status.AdapterURI = "pvc://out/sft/adapter"
			r.Status.SourceModel = &v1alpha1.SourceModelStatus{URI: "pvc://models/base"}
		}), "pvc://models/base", "pvc://out/sft/adapter", "", ""},
		{"adapter only, source not in status: spec's uri", succeeded(func(r *v1alpha1.SFTRun) {
			r.Status.AdapterURI = "s3://b/sft/adapter"
		}), "hf://org/base@main", "s3://b/sft/adapter", "", ""},
		{"adapter only, base unknown", succeeded(func(r *v1alpha1.SFTRun) {
			r.Spec.Model.From = &v1alpha1.ModelSource{SFTRun: "earlier"}
			r.Status.AdapterURI = "s3://b/sft/adapter"
		}), "", "", "", "ReferenceBaseUnknown"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, dep := pinReference(tc.ref)
			if tc.wantReason != "" {
				if p != nil || dep.reason != tc.wantReason || dep.condition != v1alpha1.ConditionReferenceReady {
					t.Fatalf("pinned %+v, dependency %+v; want %s", p, dep, tc.wantReason)
				}
				return
			}
			if p == nil || p.ModelURI != tc.wantModel || p.AdapterURI != tc.wantAdapt || p.ModelDigest != tc.wantDigest || p.SFTRun != "sft" || p.UID != "u-1" {
				t.Fatalf("pinned %+v, want model %s adapter %q digest %q", p, tc.wantModel, tc.wantAdapt, tc.wantDigest)
			}
			// The pin survives a lost status write: it is read back from the Job's annotations.
			a := map[string]string{}
			dpoRun{&v1alpha1.DPORun{Status: v1alpha1.DPORunStatus{Reference: p}}}.annotatePins(a)
			back := dpoRun{&v1alpha1.DPORun{}}
			back.restorePins(a)
			if !equalJSON(back.DPORun.Status.Reference, &v1alpha1.PinnedReference{SFTRun: p.SFTRun, UID: p.UID, ModelURI: p.ModelURI, AdapterURI: p.AdapterURI}) {
				t.Errorf("restored %+v from %v", back.DPORun.Status.Reference, a)
			}
		})
	}
}

// TestChatTemplateFromConfigMap: a ConfigMap key resolves to its text; a missing ConfigMap, key, binary or empty
// value is a ChatTemplateNotFound dependency naming the field and asking to look again.
func TestChatTemplateFromConfigMap(t *testing.T) {
	ref := &v1alpha1.ConfigMapKeyReference{Name: "templates", Key: "chatml.jinja"}
	tmpl := "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
	cm := func(data map[string]string, binary map[string][]byte) *corev1.ConfigMap {
		return &corev1.ConfigMap{Data: data, BinaryData: binary}
	}
	cases := []struct {
		name    string
		cm      *corev1.ConfigMap
		want    string
		missing string
	}{
		{"present", cm(map[string]string{"chatml.jinja": tmpl}, nil), tmpl, ""},
		{"no ConfigMap", nil, "", `ConfigMap "templates" does not exist`},
		{"no key", cm(map[string]string{"other": "x"}, nil), "", `ConfigMap "templates" has no key "chatml.jinja"`},
		{"binary key", cm(nil, map[string][]byte{"chatml.jinja": []byte(tmpl)}), "", "binaryData"},
		{"empty value", cm(map[string]string{"chatml.jinja": ""}, nil), "", "is empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, dep := chatTemplateFromConfigMap("spec.model.chatTemplate", ref, tc.cm)
			if tc.missing == "" {
				if dep != nil || got != tc.want {
					t.Fatalf("text %q dependency %+v", got, dep)
				}
				return
			}
			if dep == nil || dep.reason != ReasonChatTemplateNotFound || dep.retryAfter <= 0 ||
				!strings.Contains(dep.message, "spec.model.chatTemplate.configMapKeyRef") || !strings.Contains(dep.message, tc.missing) {
				t.Fatalf("dependency %+v, want ChatTemplateNotFound naming %q", dep, tc.missing)
			}
		})
	}
	// Inline text needs no read.
	text, dep, err := resolveChatTemplate(context.Background(), nil, "ns", "spec.model.chatTemplate", &v1alpha1.ChatTemplateSource{Inline: tmpl})
	if err != nil || dep != nil || text != tmpl {
		t.Errorf("inline: %q %+v %v", text, dep, err)
	}
}

// TestRunResultWithAdapter: the trainer's adapter, trainable parameters and truncation counts reach status, and
// the Succeeded message says where the outputs are.
func TestRunResultWithAdapter(t *testing.T) {
	res := contract.Result{Step: 10, TotalSteps: 10, ParameterCount: 135_000_000, TrainableParameterCount: 4_884_480,
		AdapterURI: "file:///mnt/pvc/out/ns/sft-1/adapter",
		Truncation: &contract.Truncation{ContextLength: 512, RowsTruncated: 7, PromptsEmptied: 1, ResponsesCut: 3, IdenticalPairs: 2}}
	for _, merged := range []bool{true, false} {
		r := res
		if merged {
			r.ModelURI = "file:///mnt/pvc/out/ns/sft-1/model"
		}
		obs := runObservation{now: t0, job: job(false, "Complete"), pods: []corev1.Pod{pod("p", corev1.PodSucceeded, 0, mustJSON(contract.TerminationMessage{Result: &r}))}}
		st, _ := computeRunStatus(v1alpha1.RunStatus{}, obs)
		if st.AdapterURI != "pvc://out/ns/sft-1/adapter" || st.TrainableParameterCount != 4_884_480 || st.ParameterCount != 135_000_000 {
			t.Errorf("merged %t: status %+v", merged, st)
		}
		if st.Truncation == nil || *st.Truncation != (v1alpha1.TruncationStatus{ContextLength: 512, RowsTruncated: 7, PromptsEmptied: 1, ResponsesCut: 3, IdenticalPairs: 2}) {
			t.Errorf("truncation %+v", st.Truncation)
		}
		c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionSucceeded)
		want := "adapter at pvc://out/ns/sft-1/adapter (no merged model)"
		if merged {
			want = "adapter at pvc://out/ns/sft-1/adapter, merged model at pvc://out/ns/sft-1/model"
		}
		if c == nil || c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, want) {
			t.Errorf("merged %t: Succeeded %+v, want %q", merged, c, want)
		}
	}
}

// TestValidationJobWithInspection: spec.inspection gives the validation the model (a claim mounted read-only,
// the URI mapped), the resolved chat template, the context's maxLength and the model's credentials.
func TestValidationJobWithInspection(t *testing.T) {
	ds := &v1alpha1.PreferenceDataset{ObjectMeta: metav1.ObjectMeta{Name: "prefs", Namespace: "ns", UID: "u"},
		Spec: v1alpha1.PreferenceDatasetSpec{Source: v1alpha1.DatasetSource{ConfigMap: &v1alpha1.ConfigMapDataSource{Name: "d", Key: "k"}},
			EvalFraction: "0.1",
			Inspection: &v1alpha1.DatasetInspection{Model: v1alpha1.InspectionModel{URI: "pvc://models/qwen3"},
				MaxLength: ptr.To[int32](1024), SecretRef: &corev1.LocalObjectReference{Name: "hub"}}}}
	job, cm, err := constructValidationJob(ds, "prefs-validate-g1-u", "TEMPLATE", Options{TrainerImage: "img"})
	if err != nil {
		t.Fatal(err)
	}
	var ic contract.InspectConfig
	if err := json.Unmarshal([]byte(cm.Data[configFileName]), &ic); err != nil {
		t.Fatal(err)
	}
	if ic.Model == nil || ic.Model.From != "file:///mnt/pvc/models/qwen3" || ic.Model.ChatTemplate != "TEMPLATE" || ic.MaxLength != 1024 {
		t.Fatalf("inspect config %+v model %+v", ic, ic.Model)
	}
	c := job.Spec.Template.Spec.Containers[0]
	mounted := false
	for _, m := range c.VolumeMounts {
		mounted = mounted || (m.MountPath == "/mnt/pvc/models" && m.ReadOnly)
	}
	if !mounted {
		t.Errorf("model claim not mounted read-only: %+v", c.VolumeMounts)
	}
	secret := false
	for _, e := range c.EnvFrom {
		secret = secret || (e.SecretRef != nil && e.SecretRef.Name == "hub")
	}
	if !secret {
		t.Errorf("envFrom %+v lacks the inspection's secret", c.EnvFrom)
	}
	// Without inspection nothing of it appears.
	ds.Spec.Inspection = nil
	_, cm, _ = constructValidationJob(ds, "prefs-validate-g2-u", "", Options{TrainerImage: "img"})
	ic = contract.InspectConfig{}
	_ = json.Unmarshal([]byte(cm.Data[configFileName]), &ic)
	if ic.Model != nil || ic.MaxLength != 0 {
		t.Errorf("inspect config without inspection %+v", ic)
	}
}

// TestDatasetStatusTokens: token lengths and truncation counts of an inspection with a model reach status.
func TestDatasetStatusTokens(t *testing.T) {
	rep := contract.DatasetReport{Format: "conversational", Digest: "sha256:ab", Counts: contract.Counts{Total: 4, Pairs: 4, Train: 4},
		Tokens:     &contract.LengthStats{PromptMean: 41.5, PromptMax: 90, ChosenMean: 12.25, ChosenMax: 30, RejectedMean: 9, RejectedMax: 20},
		Truncation: &contract.Truncation{ContextLength: 64, RowsTruncated: 2, PromptsEmptied: 1, ResponsesCut: 1}}
	st, _ := computeDatasetStatus(v1alpha1.PreferenceDatasetStatus{}, finishedValidation(rep, true))
	want := &v1alpha1.TokenStatistics{PromptMean: "41.5", PromptMax: 90, ChosenMean: "12.25", ChosenMax: 30, RejectedMean: "9", RejectedMax: 20}
	if !equalJSON(st.Tokens, want) {
		t.Errorf("tokens %+v, want %+v", st.Tokens, want)
	}
	if st.Truncation == nil || *st.Truncation != (v1alpha1.TruncationStatus{ContextLength: 64, RowsTruncated: 2, PromptsEmptied: 1, ResponsesCut: 1}) {
		t.Errorf("truncation %+v", st.Truncation)
	}
	rep.Tokens, rep.Truncation = nil, nil
	st, _ = computeDatasetStatus(v1alpha1.PreferenceDatasetStatus{}, finishedValidation(rep, true))
	if st.Tokens != nil || st.Truncation != nil {
		t.Errorf("without a model: tokens %+v truncation %+v", st.Tokens, st.Truncation)
	}
}
