//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/preftune/preftune/api/v1alpha1"
	"github.com/preftune/preftune/trainer/checkpoint"
)

const gpuResource = "nvidia.com/gpu"

// TestInvalidDatasetNeverTrains: rows that do not parse keep a dataset from Ready, its status names their lines,
// and a run on it waits, saying why, without a Job.
func TestInvalidDatasetNeverTrains(t *testing.T) {
	t.Parallel()
	dataConfigMap(t, "bad-data", []byte(strings.Join([]string{
		`{"prompt":"1+1=","chosen":"2","rejected":"3"}`,
		`{"prompt":"2+2=","chosen":"4"}`,
		`{"prompt":"3+3=","chosen":"6","rejected":"5"}`,
		`this is not JSON`,
		`{"prompt":"4+4=","chosen":"8","rejected":"9"}`,
	}, "\n")+"\n"))
	dataset(t, "bad", "bad-data")
	var sft v1alpha1.SFTRun
	demoObject(t, "sft.yaml", &sft)
	sft.Name, sft.Spec.DatasetRef.Name, sft.Spec.Resources.GPUs = "on-bad-data", "bad", 0
	create(t, &sft)

	var ds v1alpha1.PreferenceDataset
	eventually(t, 3*time.Minute, "dataset bad is judged", func() (bool, string) {
		get(t, "bad", &ds)
		c := condition(ds.Status.Conditions, v1alpha1.ConditionReady)
		return c.Reason != "Validating" && c.Reason != "(not set)", c.Reason + ": " + c.Message
	})
	ready := condition(ds.Status.Conditions, v1alpha1.ConditionReady)
	if ready.Status != "False" || ready.Reason != "InvalidRows" {
		t.Fatalf("Ready = %s/%s (%s), want False/InvalidRows", ready.Status, ready.Reason, ready.Message)
	}
	var lines []int64
	for _, r := range ds.Status.InvalidRows {
		lines = append(lines, r.Line)
		if r.Reason == "" {
			t.Errorf("invalid row at line %d has no reason", r.Line)
		}
	}
	if !slices.Equal(lines, []int64{2, 4}) {
		t.Errorf("invalid rows at lines %v, want [2 4]: %+v", lines, ds.Status.InvalidRows)
	}
	for _, l := range []string{"2", "4"} {
		if !strings.Contains(ready.Message, l) {
			t.Errorf("Ready's message does not name line %s: %q", l, ready.Message)
		}
	}
	if ds.Status.Counts == nil || ds.Status.Counts.Invalid != 2 || ds.Status.Counts.Pairs != 3 {
		t.Errorf("counts %+v, want 3 pairs and 2 invalid", ds.Status.Counts)
	}

	// The run on it never reaches training: no Job, and its status says which dataset is wrong.
	eventually(t, time.Minute, "on-bad-data says its dataset is invalid", func() (bool, string) {
		get(t, sft.Name, &sft)
		c := condition(sft.Status.Conditions, v1alpha1.ConditionDatasetReady)
		return c.Reason == "DatasetInvalid", c.Reason + ": " + c.Message
	})
	time.Sleep(5 * time.Second) // a Job would have been made by now
	get(t, sft.Name, &sft)
	if jobs := ownedJobs(t, "SFTRun", sft.Name); len(jobs) != 0 || sft.Status.JobName != "" || sft.Status.Phase != v1alpha1.RunPhasePending {
		t.Errorf("a run on an invalid dataset: %d Jobs, jobName %q, phase %s; want none and Pending", len(jobs), sft.Status.JobName, sft.Status.Phase)
	}
	if msg := condition(sft.Status.Conditions, v1alpha1.ConditionDatasetReady).Message; !strings.Contains(msg, "bad") {
		t.Errorf("DatasetReady's message does not name the dataset: %q", msg)
	}
}

// TestGPUScheduling: a run asking for more GPUs than the node has stays Pending, and its status says why; deleting it
// removes its Job and pod (the real garbage collector).
func TestGPUScheduling(t *testing.T) {
	t.Parallel()
	var node corev1.Node
	var nodes corev1.NodeList
	if err := cl.List(context.Background(), &nodes); err != nil || len(nodes.Items) == 0 {
		t.Fatalf("nodes: %v (%d)", err, len(nodes.Items))
	}
	var most int64
	for _, n := range nodes.Items {
		if q, ok := n.Status.Allocatable[gpuResource]; ok && q.Value() > most {
			most, node = q.Value(), n
		}
	}
	if most == 0 {
		t.Fatalf("no node advertises %s (the local cluster's node does: hack/cluster/up.sh)", gpuResource)
	}
	lines := bytes.SplitAfter(demoData(t), []byte("\n"))
	dataConfigMap(t, "gpu-data", bytes.Join(lines[:50], nil))
	dataset(t, "gpu", "gpu-data")
	var sft v1alpha1.SFTRun
	demoObject(t, "sft.yaml", &sft)
	sft.Name, sft.Spec.DatasetRef.Name, sft.Spec.Resources.GPUs = "too-many-gpus", "gpu", int32(most+1)
	create(t, &sft)

	eventually(t, 3*time.Minute, "too-many-gpus says it cannot be scheduled", func() (bool, string) {
		get(t, sft.Name, &sft)
		c := condition(sft.Status.Conditions, v1alpha1.ConditionRunning)
		return c.Reason == "Unschedulable" && strings.Contains(c.Message, "Insufficient "+gpuResource), c.Reason + ": " + c.Message
	})
	if sft.Status.Phase != v1alpha1.RunPhasePending {
		t.Errorf("phase %s, want Pending", sft.Status.Phase)
	}
	jobs := ownedJobs(t, "SFTRun", sft.Name)
	if len(jobs) != 1 {
		t.Fatalf("%d Jobs, want 1", len(jobs))
	}
	pods := jobPods(t, jobs[0].Name)
	if len(pods) != 1 || pods[0].Spec.NodeName != "" {
		t.Fatalf("want one unscheduled pod, got %d (node %q)", len(pods), pods[0].Spec.NodeName)
	}
	if q := pods[0].Spec.Containers[0].Resources.Limits[gpuResource]; q.Value() != most+1 {
		t.Errorf("the trainer asks for %s %s, want %d", q.String(), gpuResource, most+1)
	}
	t.Logf("node %s has %d GPUs; the run asking for %d: %s", node.Name, most, most+1,
		condition(sft.Status.Conditions, v1alpha1.ConditionRunning).Message)

	deleteAndWait(t, &sft)
	eventually(t, 2*time.Minute, "the run's Job and pod are collected", func() (bool, string) {
		j, p := ownedJobs(t, "SFTRun", sft.Name), jobPods(t, jobs[0].Name)
		return len(j) == 0 && len(p) == 0, fmt.Sprintf("%d Jobs, %d pods left", len(j), len(p))
	})
}

// TestSFTThenDPO is the main job: a dataset, an SFT run and a DPO run from it, on GPUs, with the operator killed and
// upgraded during SFT and the trainer's pod killed during DPO.
func TestSFTThenDPO(t *testing.T) {
	t.Parallel()
	raw := demoData(t)
	dataConfigMap(t, "arith-data", raw)
	dataset(t, "arith", "arith-data")
	phases := recordPhases(t)

	// The demo's runs, checkpointing more often, on less CPU: a CPU limit slows the trainer without changing what it
	// computes, so that the faults below land while it trains, on fast machines too.
	var sft v1alpha1.SFTRun
	demoObject(t, "sft.yaml", &sft)
	sft.Spec.Training.CheckpointEvery = 25
	sft.Spec.Resources.CPU = ptr.To(resource.MustParse("200m"))
	create(t, &sft)
	var dpo v1alpha1.DPORun
	demoObject(t, "dpo.yaml", &dpo)
	dpo.Spec.Training.CheckpointEvery = 25
	dpo.Spec.Resources.CPU = ptr.To(resource.MustParse("250m"))
	create(t, &dpo)
	// Its twin trains the same run undisturbed (the node has a GPU for each): resuming must lose nothing, so both
	// end with the same weights.
	twin := &v1alpha1.DPORun{}
	demoObject(t, "dpo.yaml", twin)
	twin.Name, twin.Spec = "arith-dpo-twin", *dpo.Spec.DeepCopy()
	create(t, twin)

	t.Run("dataset Ready with statistics", func(t *testing.T) {
		var ds v1alpha1.PreferenceDataset
		eventually(t, 3*time.Minute, "arith Ready", func() (bool, string) {
			get(t, "arith", &ds)
			c := condition(ds.Status.Conditions, v1alpha1.ConditionReady)
			if c.Reason == "InvalidRows" || c.Reason == "InvalidSource" || c.Reason == "ValidationFailed" {
				t.Fatalf("arith: %s: %s", c.Reason, c.Message)
			}
			return c.Status == "True", c.Reason + ": " + c.Message
		})
		n := int64(bytes.Count(raw, []byte("\n")))
		c := ds.Status.Counts
		if c == nil || c.Total != n || c.Pairs != n || c.Invalid != 0 || c.Train+c.Eval != n || c.Eval == 0 {
			t.Errorf("counts %+v, want %d pairs split into train and eval, none invalid", c, n)
		}
		sum := sha256.Sum256(raw)
		if want := "sha256:" + hex.EncodeToString(sum[:]); ds.Status.Digest != want {
			t.Errorf("digest %s, want %s (sha256 of the data)", ds.Status.Digest, want)
		}
		if l := ds.Status.Lengths; l == nil || l.PromptMax == 0 || l.ChosenMax == 0 {
			t.Errorf("length statistics missing: %+v", l)
		}
	})

	var sftPod *corev1.Pod
	t.Run("SFT runs on a GPU and reports progress through the endpoint", func(t *testing.T) {
		eventually(t, 3*time.Minute, "arith-sft reports progress while its Job runs", func() (bool, string) {
			get(t, sft.Name, &sft)
			p := sft.Status.Progress
			if sft.Status.Phase == v1alpha1.RunPhaseSucceeded {
				t.Fatalf("arith-sft finished before any progress report was seen in its status")
			}
			if p == nil || sft.Status.JobName == "" {
				return false, fmt.Sprintf("phase %s, no progress yet", sft.Status.Phase)
			}
			// Before the trainer exits, only its reports to the operator's endpoint move status.progress.
			sftPod = runningPod(jobPods(t, sft.Status.JobName))
			return sftPod != nil && p.Step > 0 && p.Step < p.TotalSteps && sft.Status.Metrics != nil && sft.Status.Metrics.TrainLoss != "",
				fmt.Sprintf("phase %s, step %d/%d", sft.Status.Phase, p.Step, p.TotalSteps)
		})
		t.Logf("arith-sft mid-run: step %d/%d, loss %s, %s tokens/s", sft.Status.Progress.Step, sft.Status.Progress.TotalSteps,
			sft.Status.Metrics.TrainLoss, sft.Status.Progress.TokensPerSecond)
		if sftPod.Spec.NodeName == "" {
			t.Fatalf("pod %s has no node", sftPod.Name)
		}
		if q := sftPod.Spec.Containers[0].Resources.Limits[gpuResource]; q.Value() != 1 {
			t.Errorf("the trainer's limits hold %s %s, want 1", q.String(), gpuResource)
		}
		if logs := podLogs(t, sftPod.Name, sftPod.Spec.Containers[0].Name); !strings.Contains(logs, `"event":"device"`) ||
			!strings.Contains(logs, "computes on the CPU") {
			t.Errorf("the trainer's log does not say it computes on the CPU despite its GPU:\n%.2000s", logs)
		}
		// hack/cluster/deploy.sh passes the host's OPENBLAS_CORETYPE on (chart value trainer.env): the learning
		// figures below are then those of that kernel family.
		if want := os.Getenv("OPENBLAS_CORETYPE"); want != "" {
			got := ""
			for _, e := range sftPod.Spec.Containers[0].Env {
				if e.Name == "OPENBLAS_CORETYPE" {
					got = e.Value
				}
			}
			if got != want {
				t.Errorf("the trainer pod's OPENBLAS_CORETYPE is %q, want the host's %q (trainer.env)", got, want)
			}
		}
	})

	t.Run("operator deleted and upgraded mid-run", func(t *testing.T) {
		if sftPod == nil {
			t.Fatal("the SFT pod was not seen running (see the subtest above): no fault could be injected")
		}
		job := ownedJobs(t, "SFTRun", sft.Name)
		if len(job) != 1 {
			t.Fatalf("%d Jobs before the faults, want 1", len(job))
		}
		jobUID := job[0].UID
		get(t, sft.Name, &sft)
		stepBefore := sft.Status.Progress.Step
		old := operatorPods(t)
		for _, p := range old {
			if err := cl.Delete(context.Background(), &p); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, 2*time.Minute, "a new manager pod is Ready", func() (bool, string) {
			for _, p := range operatorPods(t) {
				if podReady(p) && !slices.ContainsFunc(old, func(o corev1.Pod) bool { return o.UID == p.UID }) {
					return true, ""
				}
			}
			return false, fmt.Sprintf("%d manager pods", len(operatorPods(t)))
		})
		// An upgrade that changes the manager's pod template: the Deployment rolls while the run trains.
		run(t, helmBin, "upgrade", release, filepath.Join(repo, "charts", "preftune"), "--namespace", operatorNS,
			"--reuse-values", "--set", "concurrency.runs=3", "--wait", "--timeout", "3m")
		var dep struct {
			Spec struct {
				Template struct {
					Spec struct{ Containers []struct{ Args []string } }
				}
			}
		}
		out := run(t, "kubectl", "-n", operatorNS, "get", "deploy", "-l", "app.kubernetes.io/name=preftune", "-o", "jsonpath={.items[0]}")
		if err := json.Unmarshal([]byte(out), &dep); err != nil {
			t.Fatal(err)
		}
		if args := strings.Join(dep.Spec.Template.Spec.Containers[0].Args, " "); !strings.Contains(args, "--max-concurrent-reconciles=3") {
			t.Errorf("the upgrade did not reach the manager's arguments: %s", args)
		}

		// The run went on undisturbed: the same Job, the same pod, never restarted, and status still moving.
		get(t, sft.Name, &sft)
		if sft.Status.Phase == v1alpha1.RunPhaseFailed {
			t.Fatalf("arith-sft failed: %+v", sft.Status.Conditions)
		}
		jobs := ownedJobs(t, "SFTRun", sft.Name)
		if len(jobs) != 1 || jobs[0].UID != jobUID {
			t.Fatalf("after the faults: %d Jobs (want the same one)", len(jobs))
		}
		var pod corev1.Pod
		if err := cl.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: sftPod.Name}, &pod); err != nil {
			t.Fatalf("the trainer pod: %v", err)
		}
		if pod.UID != sftPod.UID || pod.Status.ContainerStatuses[0].RestartCount != 0 {
			t.Errorf("the trainer pod was replaced or restarted")
		}
		// The upgraded manager takes the trainer's reports: status moves on while the run still trains.
		eventually(t, time.Minute, "the new manager writes arith-sft's progress", func() (bool, string) {
			get(t, sft.Name, &sft)
			if sft.Status.Phase == v1alpha1.RunPhaseSucceeded {
				t.Fatalf("arith-sft finished before progress was seen after the faults (step %d before them): "+
					"too fast for this test; lower its CPU limit", stepBefore)
			}
			p := sft.Status.Progress
			if p.Step == p.TotalSteps {
				t.Fatalf("arith-sft reached its last step during the faults (step %d before them): too fast for this "+
					"test; lower its CPU limit", stepBefore)
			}
			return p.Step > stepBefore, fmt.Sprintf("step %d (%d before the faults)", p.Step, stepBefore)
		})
		t.Logf("arith-sft: step %d before the faults, %d after", stepBefore, sft.Status.Progress.Step)
	})

	t.Run("SFT succeeds with falling loss and one Job", func(t *testing.T) {
		waitSucceeded(t, "SFTRun", sft.Name, func() *v1alpha1.RunStatus { get(t, sft.Name, &sft); return &sft.Status.RunStatus })
		if jobs := ownedJobs(t, "SFTRun", sft.Name); len(jobs) != 1 {
			t.Errorf("%d Jobs, want 1", len(jobs))
		}
		p := sft.Status.Progress
		if p == nil || p.Step != p.TotalSteps || p.Step != int64(*sft.Spec.Training.MaxSteps) {
			t.Errorf("progress %+v, want every step", p)
		}
		first, last := lossCurve(t, filepath.Join(hostPath(t, sft.Status.OutputURI), "metrics.jsonl"), "loss")
		if !(last < first/2) {
			t.Errorf("training loss %.3f at the start, %.3f at the end: not falling", first, last)
		}
		evalLoss, _ := strconv.ParseFloat(sft.Status.Metrics.EvalLoss, 64)
		if !(evalLoss > 0 && evalLoss < first/2) {
			t.Errorf("eval loss %s after a first training loss of %.3f", sft.Status.Metrics.EvalLoss, first)
		}
		t.Logf("arith-sft: training loss %.3f -> %.3f, eval loss %s", first, last, sft.Status.Metrics.EvalLoss)
		checkOutputs(t, sft.Status.RunStatus)
	})

	t.Run("the progress endpoint refuses a report without a pod-bound token", func(t *testing.T) {
		ctx := context.Background()
		// Through the apiserver's service proxy, which passes no credentials on: the manager must refuse it.
		path := fmt.Sprintf("/api/v1/namespaces/%s/services/https:%s-progress:progress/proxy/v1alpha1/progress/%s/sftruns/%s",
			operatorNS, release, ns, sft.Name)
		err := cs.CoreV1().RESTClient().Post().AbsPath(path).SetHeader("Content-Type", "application/json").
			Body([]byte(`{"step": 999999}`)).Do(ctx).Error()
		if !apierrors.IsUnauthorized(err) {
			t.Fatalf("an unauthenticated report got %v, want 401 Unauthorized", err)
		}
		metrics, err := cs.CoreV1().RESTClient().Get().AbsPath(fmt.Sprintf(
			"/api/v1/namespaces/%s/services/http:%s-controller-manager-metrics:metrics/proxy/metrics", operatorNS, release)).DoRaw(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(metrics), `preftune_progress_reports_rejected_total{reason="missing_token"}`) {
			t.Errorf("the refusal is not counted in preftune_progress_reports_rejected_total")
		}
		get(t, sft.Name, &sft)
		if sft.Status.Progress.Step == 999999 {
			t.Errorf("the refused report reached status")
		}
	})

	t.Run("DPO resumes after its pod is deleted", func(t *testing.T) {
		var pod *corev1.Pod
		eventually(t, 3*time.Minute, "arith-dpo has a checkpoint while training", func() (bool, string) {
			get(t, dpo.Name, &dpo)
			if dpo.Status.Phase == v1alpha1.RunPhaseSucceeded || dpo.Status.Phase == v1alpha1.RunPhaseFailed {
				t.Fatalf("arith-dpo ended (%s) before its pod could be deleted", dpo.Status.Phase)
			}
			if dpo.Status.JobName == "" || len(dpo.Status.Checkpoints) == 0 {
				return false, fmt.Sprintf("phase %s, %d checkpoints", dpo.Status.Phase, len(dpo.Status.Checkpoints))
			}
			pod = runningPod(jobPods(t, dpo.Status.JobName))
			return pod != nil, "no running pod"
		})
		at := dpo.Status.Checkpoints[len(dpo.Status.Checkpoints)-1].Step
		if err := cl.Delete(context.Background(), pod); err != nil {
			t.Fatal(err)
		}
		t.Logf("deleted %s after the checkpoint at step %d (progress at step %d)", pod.Name, at, dpo.Status.Progress.Step)
		waitSucceeded(t, "DPORun", dpo.Name, func() *v1alpha1.RunStatus { get(t, dpo.Name, &dpo); return &dpo.Status.RunStatus })
		if dpo.Status.ResumedFromStep < at || dpo.Status.Attempts < 2 {
			t.Errorf("resumedFromStep %d, attempts %d: want a resume from step %d or later on a second attempt",
				dpo.Status.ResumedFromStep, dpo.Status.Attempts, at)
		}
		if r := eventReasons(t, "DPORun", dpo.Name); !slices.Contains(r, "ResumedFromCheckpoint") {
			t.Errorf("no ResumedFromCheckpoint event: %v", r)
		}
		if jobs := ownedJobs(t, "DPORun", dpo.Name); len(jobs) != 1 {
			t.Errorf("%d Jobs, want 1", len(jobs))
		}
	})

	t.Run("DPO learns the preference", func(t *testing.T) {
		get(t, dpo.Name, &dpo)
		if dpo.Status.Phase != v1alpha1.RunPhaseSucceeded {
			t.Fatalf("arith-dpo is %s", dpo.Status.Phase)
		}
		m := dpo.Status.Metrics
		// The demo's threshold, with the margin hack/spread.sh measured across numeric paths (hack/demo/learning.env).
		minAcc := learningThreshold(t, "MIN_EVAL_REWARD_ACCURACY")
		acc, err := strconv.ParseFloat(m.EvalRewardAccuracy, 64)
		if err != nil || acc < minAcc {
			t.Errorf("eval reward accuracy %q, want >= %.2f", m.EvalRewardAccuracy, minAcc)
		}
		if dpo.Status.Reference == nil || dpo.Status.Reference.ModelDigest != sft.Status.ModelDigest {
			t.Errorf("the reference pinned is %+v, want the SFT model %s", dpo.Status.Reference, sft.Status.ModelDigest)
		}
		t.Logf("arith-dpo: eval reward accuracy %s, margin %s, loss %s", m.EvalRewardAccuracy, m.RewardMargin, m.Loss)
		// Greedy answers of the DPO model on the 100 distinct prompts (the demo's rule: the answer is the sum).
		minRule := learningThreshold(t, "MIN_RULE_RATE")
		if right, n := ruleRate(t, hostPath(t, dpo.Status.ModelURI)); float64(right) < minRule*float64(n) {
			t.Errorf("the DPO model answers %d/%d prompts right, want at least %.0f%%", right, n, 100*minRule)
		} else {
			t.Logf("arith-dpo: greedy answers right on %d/%d prompts", right, n)
		}
		waitSucceeded(t, "DPORun", twin.Name, func() *v1alpha1.RunStatus { get(t, twin.Name, twin); return &twin.Status.RunStatus })
		if twin.Status.Attempts != 1 || twin.Status.ModelDigest != dpo.Status.ModelDigest {
			t.Errorf("the run resumed after its pod was deleted ends with %s; its undisturbed twin (%d attempt) with %s",
				dpo.Status.ModelDigest, twin.Status.Attempts, twin.Status.ModelDigest)
		}
		checkOutputs(t, dpo.Status.RunStatus)
	})

	// Watched from creation to the end, through the operator's restarts and the trainer pod's deletion: a started
	// run never shows Pending again, a finished one never Running.
	t.Run("phases only move forward", func(t *testing.T) {
		phases.checkForward(t)
	})
}

// waitSucceeded waits for a run to succeed, failing at once when it fails.
func waitSucceeded(t *testing.T, kind, name string, status func() *v1alpha1.RunStatus) {
	t.Helper()
	eventually(t, 10*time.Minute, name+" succeeds", func() (bool, string) {
		st := status()
		if st.Phase == v1alpha1.RunPhaseFailed {
			t.Fatalf("%s %s failed: %+v", kind, name, condition(st.Conditions, v1alpha1.ConditionFailed))
		}
		step := int64(0)
		if st.Progress != nil {
			step = st.Progress.Step
		}
		return st.Phase == v1alpha1.RunPhaseSucceeded, fmt.Sprintf("phase %s at step %d", st.Phase, step)
	})
}

// lossCurve returns the first and last value of key among the training steps of a metrics.jsonl.
func lossCurve(t *testing.T, path, key string) (first, last float64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			continue
		}
		if v, ok := rec[key].(float64); ok {
			if n == 0 {
				first = v
			}
			last, n = v, n+1
		}
	}
	if n < 2 {
		t.Fatalf("%s: %d values of %s", path, n, key)
	}
	return first, last
}

// checkOutputs: every checkpoint in status is on the volume, complete, and its files match the digests of its COMPLETE
// marker; the final model's digest is the one in status; the trainer built from this checkout loads and runs it.
func checkOutputs(t *testing.T, st v1alpha1.RunStatus) {
	t.Helper()
	if len(st.Checkpoints) == 0 {
		t.Fatal("no checkpoints in status")
	}
	for _, c := range st.Checkpoints {
		dir := hostPath(t, c.URI)
		ck, err := checkpoint.Load(dir) // verifies each file against COMPLETE's sizes and sha256s
		if err != nil {
			t.Errorf("checkpoint %s: %v", c.URI, err)
			continue
		}
		if int64(ck.State.Step) != c.Step {
			t.Errorf("checkpoint %s holds step %d, status says %d", c.URI, ck.State.Step, c.Step)
		}
	}
	model := hostPath(t, st.ModelURI)
	if _, digest, err := checkpoint.LoadModel(model); err != nil || digest != st.ModelDigest {
		t.Errorf("model %s: digest %s (%v), status says %s", st.ModelURI, digest, err, st.ModelDigest)
	}
	if b, err := os.ReadFile(filepath.Join(model, "model.safetensors")); err == nil {
		sum := sha256.Sum256(b)
		if d := "sha256:" + hex.EncodeToString(sum[:]); d != st.ModelDigest {
			t.Errorf("sha256 of model.safetensors is %s, status says %s", d, st.ModelDigest)
		}
	} else {
		t.Error(err)
	}
	if out := run(t, trainerBin, "generate", "--model", model, "--prompt", "3+4=", "--max-new", "4"); strings.TrimSpace(out) == "" {
		t.Errorf("the trainer generated nothing from %s", model)
	}
	for _, p := range st.Plots {
		if fi, err := os.Stat(hostPath(t, p)); err != nil || fi.Size() == 0 {
			t.Errorf("plot %s: %v", p, err)
		}
	}
}
