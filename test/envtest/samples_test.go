package envtest

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/data"
	"github.com/preftune/preftune/trainer/demodata"
)

func samplesDir() string { return filepath.Join(repo, "config", "samples") }

var documentSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// readSamples decodes every sample file named by config/samples/kustomization.yaml, in order.
func readSamples(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	var kust struct {
		Resources []string `json:"resources"`
	}
	b, err := os.ReadFile(filepath.Join(samplesDir(), "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &kust); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}

	// Every sample file is listed, and every listed file exists.
	files, err := filepath.Glob(filepath.Join(samplesDir(), "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var onDisk []string
	for _, f := range files {
		if base := filepath.Base(f); base != "kustomization.yaml" {
			onDisk = append(onDisk, base)
		}
	}
	listed := slices.Clone(kust.Resources)
	slices.Sort(listed)
	if !slices.Equal(listed, onDisk) {
		t.Errorf("kustomization.yaml lists %v; the folder holds %v", kust.Resources, onDisk)
	}

	var objs []*unstructured.Unstructured
	for _, name := range kust.Resources {
		b, err := os.ReadFile(filepath.Join(samplesDir(), name))
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range documentSeparator.Split(string(b), -1) {
			var m map[string]any
			if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
				t.Fatalf("%s document %d: %v", name, i+1, err)
			}
			if len(m) == 0 {
				continue // only comments
			}
			u := &unstructured.Unstructured{Object: m}
			if u.GetNamespace() != "" {
				t.Errorf("%s: %s %s sets a namespace; samples go into the namespace they are applied to", name, u.GetKind(), u.GetName())
			}
			objs = append(objs, u)
		}
	}
	return objs
}

// TestSamplesAreAccepted creates every sample in a fresh namespace through the API, as `kubectl apply` would.
func TestSamplesAreAccepted(t *testing.T) {
	objs := readSamples(t)
	ns := newNamespace(t)
	ctx := context.Background()
	var kinds []string
	for _, u := range objs {
		u.SetNamespace(ns)
		if err := k8s.Create(ctx, u); err != nil {
			t.Errorf("%s %s rejected: %v", u.GetKind(), u.GetName(), err)
			continue
		}
		kinds = append(kinds, u.GetKind())
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(u.GroupVersionKind())
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(u), got); err != nil {
			t.Errorf("read back %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
	want := []string{"ConfigMap", "PreferenceDataset", "SFTRun", "DPORun"}
	if !slices.Equal(kinds, want) {
		t.Errorf("created %v, want %v", kinds, want)
	}
}

// TestSamplesWithKubectlApply applies the kustomization as a user would (a server-side dry run, so nothing stays).
func TestSamplesWithKubectlApply(t *testing.T) {
	kubectl := kubectlFor(t)
	ns := newNamespace(t)
	out, err := kubectl("apply", "-k", samplesDir(), "-n", ns, "--dry-run=server")
	if err != nil {
		t.Fatal(err)
	}
	wantAll(t, "kubectl apply -k config/samples", out,
		"configmap/arith-data created (server dry run)",
		"preferencedataset.preftune.io/arith created (server dry run)",
		"sftrun.preftune.io/arith-sft created (server dry run)",
		"dporun.preftune.io/arith-dpo created (server dry run)")
}

// TestSamplesFitTogether checks the samples refer to each other by the right names and that the sample data is
// what the trainer reads as valid standard rows, each with the right sum chosen and a wrong one rejected.
func TestSamplesFitTogether(t *testing.T) {
	byKind := map[string]*unstructured.Unstructured{}
	for _, u := range readSamples(t) {
		if byKind[u.GetKind()] != nil {
			t.Fatalf("two %s samples", u.GetKind())
		}
		byKind[u.GetKind()] = u
	}
	str := func(u *unstructured.Unstructured, path ...string) string {
		t.Helper()
		if u == nil {
			t.Fatalf("missing sample for %v", path)
		}
		s, found, err := unstructured.NestedString(u.Object, path...)
		if err != nil || !found {
			t.Fatalf("%s %s: %s missing (%v)", u.GetKind(), u.GetName(), strings.Join(path, "."), err)
		}
		return s
	}
	cm, pds, sft, dpo := byKind["ConfigMap"], byKind["PreferenceDataset"], byKind["SFTRun"], byKind["DPORun"]
	if got := str(pds, "spec", "source", "configMap", "name"); got != cm.GetName() {
		t.Errorf("dataset reads ConfigMap %q, the sample ConfigMap is %q", got, cm.GetName())
	}
	for _, run := range []*unstructured.Unstructured{sft, dpo} {
		if got := str(run, "spec", "datasetRef", "name"); got != pds.GetName() {
			t.Errorf("%s trains on %q, the sample dataset is %q", run.GetKind(), got, pds.GetName())
		}
	}
	if got := str(dpo, "spec", "referenceRef", "sftRun"); got != sft.GetName() {
		t.Errorf("DPORun's reference is %q, the sample SFTRun is %q", got, sft.GetName())
	}
	if got := str(sft, "spec", "output", "uri"); got != "pvc://preftune-outputs/runs" {
		t.Errorf("SFTRun output.uri = %q", got)
	}

	key := str(pds, "spec", "source", "configMap", "key")
	text := str(cm, "data", key)
	path := filepath.Join(t.TempDir(), key)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := data.Inspect(path, contract.DatasetConfig{URI: "file://" + path, Format: str(pds, "spec", "format"), EvalFraction: 0.2, Seed: 1}, 0)
	if err != nil {
		t.Fatalf("trainer cannot read the sample data: %v", err)
	}
	if rep.Format != "standard" || rep.Counts.Invalid != 0 || rep.Counts.Pairs != 10 || rep.Counts.Train+rep.Counts.Eval != 10 {
		t.Errorf("trainer's report on the sample data: %+v", rep)
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	for line := 1; sc.Scan(); line++ {
		var row struct{ Prompt, Chosen, Rejected string }
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatalf("line %d: %v", line, err)
		}
		if !demodata.Check(row.Prompt, row.Chosen) {
			t.Errorf("line %d: chosen %q is not the sum of %q", line, row.Chosen, row.Prompt)
		}
		if demodata.Check(row.Prompt, row.Rejected) {
			t.Errorf("line %d: rejected %q is the right sum of %q", line, row.Rejected, row.Prompt)
		}
	}
}
