//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/preftune/preftune/api/v1alpha1"
)

// eventually polls check every second until it reports done, failing the test with check's last words after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, check func() (done bool, detail string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var detail string
	for {
		var done bool
		done, detail = check()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last seen: %s", what, timeout, detail)
		}
		time.Sleep(time.Second)
	}
}

// demoObject reads one of the demo's manifests (hack/demo), which the end-to-end runs start from.
func demoObject(t *testing.T, file string, into client.Object) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, "hack", "demo", file))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, into); err != nil {
		t.Fatalf("hack/demo/%s: %v", file, err)
	}
	into.SetNamespace(ns)
}

func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := cl.Create(context.Background(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

func get(t *testing.T, name string, obj client.Object) {
	t.Helper()
	if err := cl.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, obj); err != nil {
		t.Fatalf("get %T %s: %v", obj, name, err)
	}
}

// dataConfigMap holds JSON lines under train.jsonl.
func dataConfigMap(t *testing.T, name string, lines []byte) {
	t.Helper()
	create(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Data: map[string]string{"train.jsonl": string(lines)}})
}

// dataset makes a PreferenceDataset over the ConfigMap cm.
func dataset(t *testing.T, name, cm string) *v1alpha1.PreferenceDataset {
	t.Helper()
	var ds v1alpha1.PreferenceDataset
	demoObject(t, "dataset.yaml", &ds)
	ds.Name = name
	ds.Spec.Source.ConfigMap.Name = cm
	create(t, &ds)
	return &ds
}

// demoData is the demo's synthetic dataset, written by the trainer this checkout builds.
func demoData(t *testing.T) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "arith.jsonl")
	run(t, trainerBin, "demo-data", "--out", out, "--n", "1000", "--difficulty", "1", "--seed", "1")
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", filepath.Base(name), strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func condition(conds []metav1.Condition, typ string) metav1.Condition {
	if c := meta.FindStatusCondition(conds, typ); c != nil {
		return *c
	}
	return metav1.Condition{Type: typ, Status: "Unknown", Reason: "(not set)"}
}

// ownedJobs lists the Jobs the operator made for a run or dataset, by its labels.
func ownedJobs(t *testing.T, kind, name string) []batchv1.Job {
	t.Helper()
	var jobs batchv1.JobList
	if err := cl.List(context.Background(), &jobs, client.InNamespace(ns),
		client.MatchingLabels{"preftune.io/owner-kind": kind, "preftune.io/owner-name": name}); err != nil {
		t.Fatal(err)
	}
	return jobs.Items
}

// jobPods lists a Job's pods (also the terminating ones).
func jobPods(t *testing.T, job string) []corev1.Pod {
	t.Helper()
	var pods corev1.PodList
	if err := cl.List(context.Background(), &pods, client.InNamespace(ns),
		client.MatchingLabels{"batch.kubernetes.io/job-name": job}); err != nil {
		t.Fatal(err)
	}
	return pods.Items
}

func runningPod(pods []corev1.Pod) *corev1.Pod {
	for i := range pods {
		if pods[i].Status.Phase == corev1.PodRunning && pods[i].DeletionTimestamp == nil {
			return &pods[i]
		}
	}
	return nil
}

// eventReasons lists the reasons of the events about an object, oldest first.
func eventReasons(t *testing.T, kind, name string) []string {
	t.Helper()
	var evs corev1.EventList
	if err := cl.List(context.Background(), &evs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs.Items {
		if e.InvolvedObject.Kind == kind && e.InvolvedObject.Name == name {
			out = append(out, e.Reason)
		}
	}
	return out
}

// operatorPods lists the manager's pods that are not being deleted.
func operatorPods(t *testing.T) []corev1.Pod {
	t.Helper()
	var pods corev1.PodList
	if err := cl.List(context.Background(), &pods, client.InNamespace(operatorNS),
		client.MatchingLabels{"app.kubernetes.io/name": "preftune"}); err != nil {
		t.Fatal(err)
	}
	var live []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			live = append(live, p)
		}
	}
	return live
}

func podReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podLogs returns a container's log.
func podLogs(t *testing.T, pod, container string) string {
	t.Helper()
	b, err := cs.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Container: container}).DoRaw(context.Background())
	if err != nil {
		t.Fatalf("logs of %s: %v", pod, err)
	}
	return string(b)
}

// hostPath is where a pvc:// URI on this run's claim is on this host.
func hostPath(t *testing.T, uri string) string {
	t.Helper()
	rest, ok := strings.CutPrefix(uri, "pvc://"+claim+"/")
	if !ok {
		t.Fatalf("URI %q is not on the claim %s", uri, claim)
	}
	return filepath.Join(hostDir, rest)
}

func deleteAndWait(t *testing.T, obj client.Object) {
	t.Helper()
	ctx := context.Background()
	if err := cl.Delete(ctx, obj, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	eventually(t, time.Minute, fmt.Sprintf("%s deleted", obj.GetName()), func() (bool, string) {
		err := cl.Get(ctx, client.ObjectKeyFromObject(obj), obj)
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
}

// phaseRecorder watches the SFTRuns and DPORuns of the test's namespace and keeps every phase each one shows, in
// order, as `kubectl get -w` or a GitOps health check would see them.
type phaseRecorder struct {
	mu     sync.Mutex
	phases map[string][]v1alpha1.RunPhase // "SFTRun/name" -> phases seen, consecutive repeats folded
	stop   context.CancelFunc
	done   sync.WaitGroup
}

func recordPhases(t *testing.T) *phaseRecorder {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &phaseRecorder{phases: map[string][]v1alpha1.RunPhase{}, stop: cancel}
	for _, list := range []client.ObjectList{&v1alpha1.SFTRunList{}, &v1alpha1.DPORunList{}} {
		w, err := wcl.Watch(ctx, list, client.InNamespace(ns))
		if err != nil {
			t.Fatalf("watch %T: %v", list, err)
		}
		r.done.Add(1)
		go func() {
			defer r.done.Done()
			defer w.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case ev, ok := <-w.ResultChan():
					if !ok {
						return
					}
					var key string
					var phase v1alpha1.RunPhase
					switch o := ev.Object.(type) {
					case *v1alpha1.SFTRun:
						key, phase = "SFTRun/"+o.Name, o.Status.Phase
					case *v1alpha1.DPORun:
						key, phase = "DPORun/"+o.Name, o.Status.Phase
					default:
						continue
					}
					if phase == "" {
						continue
					}
					r.mu.Lock()
					if s := r.phases[key]; len(s) == 0 || s[len(s)-1] != phase {
						r.phases[key] = append(s, phase)
					}
					r.mu.Unlock()
				}
			}
		}()
	}
	return r
}

// phaseRank orders the phases a run may pass through; Suspended is not ranked (a run is suspended when asked and
// then goes on where it was).
var phaseRank = map[v1alpha1.RunPhase]int{v1alpha1.RunPhasePending: 0, v1alpha1.RunPhaseRunning: 1,
	v1alpha1.RunPhaseSucceeded: 2, v1alpha1.RunPhaseFailed: 2}

// checkForward stops the recorder and fails the test for every run whose phase went backwards (a started run back
// to Pending, a finished one back to Running, ...), naming the sequence seen.
func (r *phaseRecorder) checkForward(t *testing.T) {
	t.Helper()
	r.stop()
	r.done.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	for key, seq := range r.phases {
		last := -1
		for _, p := range seq {
			rank, ok := phaseRank[p]
			if !ok {
				continue
			}
			if rank < last {
				t.Errorf("%s: phase went backwards: %v", key, seq)
				break
			}
			last = rank
		}
		t.Logf("%s phases: %v", key, seq)
	}
}

// learningThreshold reads one of the demo's learning thresholds from hack/demo/learning.env (KEY=VALUE lines).
func learningThreshold(t *testing.T, key string) float64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, "hack", "demo", "learning.env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && k == key {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("hack/demo/learning.env: %s: %v", key, err)
			}
			return f
		}
	}
	t.Fatalf("hack/demo/learning.env has no %s", key)
	return 0
}

// ruleRate runs the checkout's trainer greedily on the 100 distinct prompts of the demo's data (a+b= for single
// digits) with the model in dir and counts the answers that are the sum.
func ruleRate(t *testing.T, dir string) (right, n int) {
	t.Helper()
	var prompts bytes.Buffer
	for a := range 10 {
		for b := range 10 {
			fmt.Fprintf(&prompts, "{\"prompt\": \"%d+%d=\"}\n", a, b)
		}
	}
	file := filepath.Join(t.TempDir(), "prompts.jsonl")
	if err := os.WriteFile(file, prompts.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out := run(t, trainerBin, "generate", "--model", dir, "--prompts-file", file, "--max-new", "4")
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r struct{ Prompt, Completion string }
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("generate printed %q: %v", line, err)
		}
		var a, b int
		if _, err := fmt.Sscanf(r.Prompt, "%d+%d=", &a, &b); err != nil {
			t.Fatalf("prompt %q: %v", r.Prompt, err)
		}
		n++
		if strings.TrimSpace(r.Completion) == strconv.Itoa(a+b) {
			right++
		}
	}
	return right, n
}
