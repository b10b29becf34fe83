package install

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current chart")

func TestHelmLint(t *testing.T) {
	out := helm(t, "lint", "--strict", chartDir)
	if !strings.Contains(out, "0 chart(s) failed") {
		t.Fatalf("helm lint:\n%s", out)
	}
	// The optional parts must lint as well.
	helm(t, "lint", "--strict", chartDir, "-f", filepath.Join("test", "install", "testdata", "values-custom.yaml"))
}

// goldenCases are rendered with helm template and compared with testdata/golden/<name>.yaml.
var goldenCases = map[string][]string{
	"default": nil,
	"custom":  {"-f", filepath.Join("test", "install", "testdata", "values-custom.yaml")},
}

func TestHelmTemplateGolden(t *testing.T) {
	for name, args := range goldenCases {
		t.Run(name, func(t *testing.T) {
			got := elideCRDSpecs(helm(t, append([]string{"template", "preftune", chartDir, "--namespace", "preftune-system"}, args...)...))
			path := filepath.Join("testdata", "golden", name+".yaml")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run `go test ./test/install -run TestHelmTemplateGolden -update`)", err)
			}
			if got != string(want) {
				t.Fatalf("helm template differs from %s (if the change is intended, rerun with -update):\n%s", path, lineDiff(string(want), got))
			}
		})
	}
}

// elideCRDSpecs replaces the CRDs' specs, generated from the API types, by a note: the golden files follow the
// chart's templating, not the API, whose changes TestChartCRDsMatchConfig checks instead.
func elideCRDSpecs(rendered string) string {
	docs := strings.Split(rendered, "\n---\n")
	for i, d := range docs {
		if !strings.Contains(d, "\nkind: CustomResourceDefinition\n") {
			continue
		}
		if j := strings.Index(d, "\nspec:\n"); j >= 0 {
			docs[i] = d[:j] + "\nspec: {} # elided: equal to config/crd/bases (TestChartCRDsMatchConfig)\n"
		}
	}
	return strings.Join(docs, "\n---\n")
}

// TestChartCRDsMatchConfig checks the chart's CRDs are config/crd/bases', spec for spec.
func TestChartCRDsMatchConfig(t *testing.T) {
	rendered := map[string]any{}
	for _, o := range decodeAll(t, helm(t, "template", "preftune", chartDir)) {
		if o.GetKind() == "CustomResourceDefinition" {
			rendered[o.GetName()] = o.Object["spec"]
		}
	}
	files, err := filepath.Glob(filepath.Join(repo, "config", "crd", "bases", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("config/crd/bases: %v (%d files)", err, len(files))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range decodeAll(t, string(b)) {
			got, ok := rendered[o.GetName()]
			if !ok {
				t.Errorf("the chart lacks CRD %s (run make chart)", o.GetName())
				continue
			}
			if !reflect.DeepEqual(got, o.Object["spec"]) {
				t.Errorf("the chart's CRD %s differs from %s: run make chart", o.GetName(), filepath.Base(f))
			}
			delete(rendered, o.GetName())
		}
	}
	for name := range rendered {
		t.Errorf("the chart has CRD %s that config/crd/bases has not", name)
	}
}

// TestHelmTemplateValues checks that the values reach the objects they are meant for.
func TestHelmTemplateValues(t *testing.T) {
	objs := decodeAll(t, helm(t, "template", "rel", chartDir, "--namespace", "ml",
		"-f", filepath.Join("test", "install", "testdata", "values-custom.yaml")))
	dep := find(t, objs, "Deployment")
	if dep.GetName() != "rel-preftune-controller-manager" || dep.GetNamespace() != "ml" {
		t.Fatalf("Deployment is %s/%s, want ml/rel-preftune-controller-manager", dep.GetNamespace(), dep.GetName())
	}
	// Decoded through JSON, numbers are float64.
	if r, _, _ := unstructured.NestedFieldNoCopy(dep.Object, "spec", "replicas"); r != float64(2) {
		t.Errorf("replicas = %v, want 2", r)
	}
	ctr := container(t, dep)
	if img := ctr["image"]; img != "registry.example/ml/preftune@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" {
		t.Errorf("image = %v, want the digest", img)
	}
	args := strs(ctr["args"])
	for _, want := range []string{
		"--leader-elect", "--trainer-image=registry.example/ml/trainer:v2", "--trainer-image-pull-policy=Always",
		"--gpu-resource-name=amd.com/gpu", "--default-output-uri=s3://bucket/runs", "--job-ttl=30m",
		"--metrics-bind-address=:9090", "--max-concurrent-reconciles=8", "--zap-log-level=debug",
		// The progress endpoint's Service follows the release's name.
		"--progress-service=rel-preftune-progress",
	} {
		if !slices.Contains(args, want) {
			t.Errorf("manager args %q lack %q", args, want)
		}
	}
	if lim, _, _ := unstructured.NestedString(ctr, "resources", "limits", "memory"); lim != "1Gi" {
		t.Errorf("memory limit = %q, want 1Gi", lim)
	}
	sm := find(t, objs, "ServiceMonitor")
	if l := sm.GetLabels()["release"]; l != "prometheus" {
		t.Errorf("ServiceMonitor label release = %q, want prometheus", l)
	}
	np := find(t, objs, "NetworkPolicy")
	// The metrics and probes rule takes the values' peers; the progress rule keeps its trainer-pod selector.
	if rules, _, _ := unstructured.NestedSlice(np.Object, "spec", "ingress"); len(rules) != 2 || rules[0].(map[string]any)["from"] == nil {
		t.Errorf("NetworkPolicy ingress %v: want the metrics rule with the values' from peers and the progress rule", rules)
	}

	// Switches off: no metrics Service, no NetworkPolicy, no CRDs, no leader election.
	objs = decodeAll(t, helm(t, "template", "preftune", chartDir, "--set", "metrics.enabled=false,networkPolicy.enabled=false,crds.install=false,leaderElection.enabled=false"))
	for _, o := range objs {
		switch {
		case o.GetKind() == "Service" && o.GetName() == "preftune-controller-manager-metrics",
			o.GetKind() == "NetworkPolicy", o.GetKind() == "CustomResourceDefinition", o.GetKind() == "ServiceMonitor":
			t.Errorf("%s %s rendered though switched off", o.GetKind(), o.GetName())
		}
	}
	args = strs(container(t, find(t, objs, "Deployment"))["args"])
	if slices.Contains(args, "--leader-elect") || !slices.Contains(args, "--metrics-bind-address=0") {
		t.Errorf("args %q: want no --leader-elect and metrics off", args)
	}
	// crds.keep=false drops the resource policy.
	for _, o := range decodeAll(t, helm(t, "template", "preftune", chartDir, "--set", "crds.keep=false")) {
		if o.GetKind() == "CustomResourceDefinition" && o.GetAnnotations()["helm.sh/resource-policy"] != "" {
			t.Errorf("CRD %s keeps helm.sh/resource-policy with crds.keep=false", o.GetName())
		}
	}
}

// TestRBACLeastPrivilege checks the rendered chart's and config/rbac's rules: verbs and resources are listed, with
// no wildcard and no verb that grants more than it names.
func TestRBACLeastPrivilege(t *testing.T) {
	objs := decodeAll(t, helm(t, "template", "preftune", chartDir, "--namespace", "preftune-system"))
	kustomized, err := runCmd("kubectl", "kustomize", "config/default")
	if err != nil {
		t.Fatalf("kubectl kustomize config/default: %v", err)
	}
	for source, objs := range map[string][]*unstructured.Unstructured{"chart": objs, "config/default": decodeAll(t, kustomized)} {
		kinds := map[string]int{}
		for _, o := range objs {
			if o.GetKind() == "ClusterRole" || o.GetKind() == "Role" {
				kinds[o.GetKind()]++
				checkRules(t, o)
			}
		}
		if kinds["ClusterRole"] != 1 || kinds["Role"] == 0 {
			t.Errorf("%s: want one ClusterRole and the namespaced Roles, got %v", source, kinds)
		}
	}
	// The manager's ServiceAccount is bound to exactly these two roles.
	for _, o := range objs {
		if o.GetKind() == "ClusterRoleBinding" || o.GetKind() == "RoleBinding" {
			subj, _, _ := unstructured.NestedSlice(o.Object, "subjects")
			if len(subj) != 1 || subj[0].(map[string]any)["name"] != "preftune-controller-manager" || subj[0].(map[string]any)["kind"] != "ServiceAccount" {
				t.Errorf("%s %s binds %v, want only the manager's ServiceAccount", o.GetKind(), o.GetName(), subj)
			}
		}
	}
}

func checkRules(t *testing.T, role *unstructured.Unstructured) {
	t.Helper()
	rules, _, _ := unstructured.NestedSlice(role.Object, "rules")
	if len(rules) == 0 {
		t.Errorf("%s %s has no rules", role.GetKind(), role.GetName())
	}
	for i, r := range rules {
		rule := r.(map[string]any)
		for _, field := range []string{"apiGroups", "resources", "verbs"} {
			vals := strs(rule[field])
			if field != "apiGroups" && len(vals) == 0 {
				t.Errorf("%s %s rule %d lists no %s", role.GetKind(), role.GetName(), i, field)
			}
			for _, v := range vals {
				if strings.Contains(v, "*") {
					t.Errorf("%s %s rule %d: wildcard %s %q", role.GetKind(), role.GetName(), i, field, v)
				}
				if field == "verbs" && (v == "escalate" || v == "bind" || v == "impersonate") {
					t.Errorf("%s %s rule %d grants %q", role.GetKind(), role.GetName(), i, v)
				}
			}
		}
		if _, ok := rule["nonResourceURLs"]; ok {
			t.Errorf("%s %s rule %d grants nonResourceURLs", role.GetKind(), role.GetName(), i)
		}
		// No cluster-wide access to Secrets: the trainer gets credentials through envFrom, resolved by the kubelet;
		// the manager keeps its progress endpoint's certificate in a Secret of its own namespace (a Role).
		if role.GetKind() == "ClusterRole" && slices.Contains(strs(rule["resources"]), "secrets") {
			t.Errorf("%s %s rule %d grants access to secrets in every namespace", role.GetKind(), role.GetName(), i)
		}
	}
}

func container(t testing.TB, dep *unstructured.Unstructured) map[string]any {
	t.Helper()
	ctrs, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	if len(ctrs) != 1 {
		t.Fatalf("Deployment %s has %d containers, want 1", dep.GetName(), len(ctrs))
	}
	return ctrs[0].(map[string]any)
}

func strs(v any) []string {
	l, _ := v.([]any)
	var out []string
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// lineDiff shows the first differing lines, enough to see what changed.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n- %s\n+ %s\n", i+1, wl, gl)
			if shown++; shown == 10 {
				break
			}
		}
	}
	return b.String()
}
