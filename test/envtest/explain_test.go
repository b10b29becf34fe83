package envtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/preftune/preftune/api/v1alpha1"
)

// kubectlFor returns a function that runs kubectl against the envtest apiserver as a cluster admin.
func kubectlFor(t *testing.T) func(args ...string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatalf("kubectl is not on PATH (%v): it is part of the build machine; install kubectl 1.32 or later", err)
	}
	user, err := testEnv.ControlPlane.AddUser(envtest.User{Name: "explain", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatalf("add kubectl user: %v", err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatalf("kubeconfig: %v", err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	return func(args ...string) (string, error) {
		args = append([]string{"--kubeconfig", path, "--cache-dir", filepath.Join(dir, "cache")}, args...)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		// A HOME of its own keeps kubectl away from the developer's ~/.kube.
		cmd.Env = append(os.Environ(), "HOME="+dir, "KUBECONFIG="+path)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return string(out), fmt.Errorf("kubectl %s: %v\n%s", strings.Join(args[4:], " "), err, out)
		}
		return string(out), nil
	}
}

// wantAll checks out holds every one of want, comparing with runs of spaces and newlines as one space: kubectl
// wraps descriptions at its own width.
func wantAll(t *testing.T, what, out string, want ...string) {
	t.Helper()
	flat := strings.Join(strings.Fields(out), " ")
	for _, w := range want {
		if !strings.Contains(flat, strings.Join(strings.Fields(w), " ")) {
			t.Errorf("%s: output lacks %q:\n%s", what, w, out)
		}
	}
}

// TestKubectlExplain checks the field documentation reaches users through the apiserver's OpenAPI.
func TestKubectlExplain(t *testing.T) {
	kubectl := kubectlFor(t)
	explain := func(field string) string {
		t.Helper()
		var out string
		// The apiserver publishes a new CRD's OpenAPI shortly after the CRD is established.
		eventually(t, "kubectl explain "+field, func() error {
			var err error
			out, err = kubectl("explain", field)
			return err
		})
		return out
	}

	out := explain("sftrun.spec.training")
	wantAll(t, "explain sftrun.spec.training", out,
		"KIND:", "SFTRun", "VERSION:", "v1alpha1", "FIELD: training <Object>",
		"training holds the optimisation settings",
		"learningRate", "AdamW's peak learning rate", "maxSteps", "epochs",
		"batchSize", "lrSchedule", "cosine", "warmupSteps", "checkpointEvery", "gradClipNorm")
	// The enum of lrSchedule is listed with its values.
	wantAll(t, "explain sftrun.spec.training.lrSchedule", explain("sftrun.spec.training.lrSchedule"),
		"FIELD: lrSchedule <string> ENUM: cosine linear constant", "cosine (to 10% of the peak by default)",
		"minLearningRateRatio")
	// The floor of the decay has its own field, whose default is the 10% lrSchedule documents.
	wantAll(t, "explain sftrun.spec.training.minLearningRateRatio", explain("sftrun.spec.training.minLearningRateRatio"),
		"FIELD: minLearningRateRatio <string>", "10% of the peak, the default", "decays to 0")
	wantAll(t, "explain preferencedataset.spec.invalidRows", explain("preferencedataset.spec.invalidRows"),
		"FIELD: invalidRows <string> ENUM: Reject Skip", "Reject (the default)", "status.counts.skipped")

	wantAll(t, "explain dporun.spec.beta", explain("dporun.spec.beta"),
		"DPORun", "FIELD: beta <string>", "beta scales the implicit reward", "closer to the reference")

	wantAll(t, "explain preferencedataset.status.invalidRows", explain("preferencedataset.status.invalidRows"),
		"PreferenceDataset", "FIELD: invalidRows <[]Object>", "invalidRows are the first invalid rows",
		"line", "1-based line", "field", "reason")

	// The short name works for explain too.
	wantAll(t, "explain sft.spec.model", explain("sft.spec.model"), "architecture", "from")
}

// TestKubectlGetColumns checks the printer columns, the short names and the preftune category.
func TestKubectlGetColumns(t *testing.T) {
	kubectl := kubectlFor(t)
	ns := newNamespace(t)
	ctx := context.Background()

	newDataset(t, ns, "arith")
	sft := newSFTRun(ns, "sft-tiny", "arith")
	create(t, sft)
	sft.Status.Phase = v1alpha1.RunPhaseRunning
	sft.Status.Progress = &v1alpha1.Progress{Step: 120, TotalSteps: 300, Percent: 40}
	sft.Status.Metrics = &v1alpha1.SFTMetrics{TrainLoss: "1.234", EvalLoss: "1.5"}
	sft.Status.StartTime = ptr.To(metav1.Now())
	if err := k8s.Status().Update(ctx, sft); err != nil {
		t.Fatalf("sft status: %v", err)
	}
	dpo := newDPORun(ns, "dpo-tiny", "arith", "sft-tiny")
	create(t, dpo)
	dpo.Status.Phase = v1alpha1.RunPhaseSucceeded
	dpo.Status.Progress = &v1alpha1.Progress{Step: 50, TotalSteps: 50, Percent: 100}
	dpo.Status.Metrics = &v1alpha1.DPOMetrics{Loss: "0.321", RewardAccuracy: "0.875", RewardMargin: "2.5"}
	if err := k8s.Status().Update(ctx, dpo); err != nil {
		t.Fatalf("dpo status: %v", err)
	}

	get := func(args ...string) string {
		t.Helper()
		var out string
		eventually(t, "kubectl get "+strings.Join(args, " "), func() error {
			var err error
			out, err = kubectl(append([]string{"get", "-n", ns}, args...)...)
			return err
		})
		return out
	}
	header := func(out, firstColumn string) []string {
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, firstColumn) {
				return strings.Fields(line)
			}
		}
		return nil
	}
	row := func(out, name string) []string {
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) > 0 && strings.HasSuffix(f[0], name) {
				return f
			}
		}
		return nil
	}

	out := get("sftruns")
	if h := strings.Join(header(out, "NAME"), " "); h != "NAME PHASE DATASET STEP PROGRESS LOSS EVAL LOSS AGE" {
		t.Errorf("sftruns header = %q:\n%s", h, out)
	}
	if r := row(out, "sft-tiny"); len(r) < 7 || strings.Join(r[1:7], " ") != "Running arith 120 40 1.234 1.5" {
		t.Errorf("sftruns row = %q:\n%s", r, out)
	}

	out = get("dporuns")
	if h := strings.Join(header(out, "NAME"), " "); h != "NAME PHASE REFERENCE STEP PROGRESS LOSS REWARD ACC MARGIN AGE" {
		t.Errorf("dporuns header = %q:\n%s", h, out)
	}
	if r := row(out, "dpo-tiny"); len(r) < 8 || strings.Join(r[1:8], " ") != "Succeeded sft-tiny 50 100 0.321 0.875 2.5" {
		t.Errorf("dporuns row = %q:\n%s", r, out)
	}

	out = get("pds")
	wantAll(t, "get pds", out, "NAME", "READY", "REASON", "FORMAT", "PAIRS", "TRAIN", "EVAL", "INVALID", "AGE", "arith")

	// The wide output adds the priority-1 columns.
	wantAll(t, "get dporuns -o wide", get("dporuns", "-o", "wide"), "EVAL ACC", "MODEL")

	// All three kinds at once, by plural and by short name: one table per kind.
	for _, kinds := range []string{"sftruns,dporuns,pds", "sft,dpo,pds"} {
		out = get(kinds)
		wantAll(t, "get "+kinds, out, "PHASE", "STEP", "PROGRESS", "LOSS", "REWARD ACC", "READY", "PAIRS",
			"sftrun.preftune.io/sft-tiny", "dporun.preftune.io/dpo-tiny", "preferencedataset.preftune.io/arith")
	}

	// The category lists every preftune object and nothing else (the dataset's ConfigMap stays out).
	out = get("preftune", "-o", "name")
	lines := strings.Fields(out)
	want := []string{"dporun.preftune.io/dpo-tiny", "preferencedataset.preftune.io/arith", "sftrun.preftune.io/sft-tiny"}
	if len(lines) != len(want) {
		t.Errorf("get preftune -o name = %q, want %q", lines, want)
	}
	wantAll(t, "get preftune -o name", out, want...)
	wantAll(t, "get preftune", get("preftune"), "PHASE", "REWARD ACC", "READY")
}
