package train

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/preftune/preftune/trainer/checkpoint"
	"github.com/preftune/preftune/trainer/contract"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// trainerBinary builds cmd/trainer once per test process.
func trainerBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		// Opening the command's sources ties go test's result cache to them: the binary is built from files this
		// package does not import.
		srcs, _ := filepath.Glob("../../cmd/trainer/*.go")
		for _, src := range srcs {
			if f, err := os.Open(src); err == nil {
				f.Close()
			}
		}
		if binDir, binErr = os.MkdirTemp("", "preftune-trainer-bin"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "preftune-trainer")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/preftune/preftune/cmd/trainer").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func sftArgs(dataPath, out string, steps int) []string {
	return []string{"sft", "--data", dataPath, "--out", out, "--steps", fmt.Sprint(steps), "--batch-size", "16",
		"--layers", "2", "--d-model", "32", "--heads", "4", "--context", "32", "--lr", "3e-3", "--warmup", "2",
		"--checkpoint-every", "5", "--seed", "7", "--split-seed", "1", "--eval-fraction", "0.1",
		"--termination-log", out + ".termination"}
}

// termination reads the termination message a run left beside its output.
func termination(t *testing.T, out string) contract.TerminationMessage {
	t.Helper()
	raw, err := os.ReadFile(out + ".termination")
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) > contract.MaxTerminationMessageBytes {
		t.Errorf("termination message of %d bytes", len(raw))
	}
	var msg contract.TerminationMessage
	if err := json.Unmarshal(raw, &msg); err != nil {
		t.Fatalf("termination message %s: %v", raw, err)
	}
	return msg
}

// waitFor polls until path exists or the process ends.
func waitFor(t *testing.T, path string, done <-chan struct{}) {
	t.Helper()
	deadline := time.After(2 * time.Minute)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		select {
		case <-done:
			t.Fatalf("the trainer ended before %s appeared", path)
		case <-deadline:
			t.Fatalf("%s did not appear", path)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// lastLoggedStep is the newest step in metrics.jsonl (a torn last line is ignored).
func lastLoggedStep(t *testing.T, out string) int {
	t.Helper()
	raw, _ := os.ReadFile(filepath.Join(out, "metrics.jsonl"))
	last := 0
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		var m struct{ Step int }
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			last = max(last, m.Step)
		}
	}
	return last
}

func newestComplete(t *testing.T, out string) int {
	t.Helper()
	l, err := checkpoint.Latest(out)
	if err != nil || l.Dir == "" {
		t.Fatalf("no complete checkpoint under %s: %v", out, err)
	}
	return l.Step
}

// start runs the trainer in the background; done closes when it has exited.
func start(t *testing.T, args []string) (*exec.Cmd, <-chan struct{}, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(trainerBinary(t), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	return cmd, done, &stderr
}

func TestProcessSIGTERMAndKillResume(t *testing.T) {
	dir := t.TempDir()
	dataPath := writeDemo(t, dir, 200, 5)
	const steps, every = 40, 5

	full := filepath.Join(dir, "full")
	if out, err := exec.Command(trainerBinary(t), sftArgs(dataPath, full, steps)...).CombinedOutput(); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, out)
	}
	want := termination(t, full).Result
	if want == nil || want.Step != steps || want.ModelDigest == "" {
		t.Fatalf("uninterrupted run result: %+v", want)
	}
	digest, err := fileDigest(filepath.Join(full, "model", checkpoint.ModelFile))
	if err != nil || digest != want.ModelDigest {
		t.Errorf("model digest %s, result says %s (%v)", digest, want.ModelDigest, err)
	}

	// SIGTERM: the trainer finishes its step, checkpoints it and exits non-zero so that the Job retries.
	out := filepath.Join(dir, "run")
	args := sftArgs(dataPath, out, steps)
	cmd, done, stderr := start(t, args)
	waitFor(t, filepath.Join(checkpoint.Dir(out, every), checkpoint.CompleteFile), done)
	cmd.Process.Signal(syscall.SIGTERM)
	<-done
	if code := cmd.ProcessState.ExitCode(); code != contract.ExitFailed {
		t.Fatalf("after SIGTERM: exit %d, want %d\n%s", code, contract.ExitFailed, stderr)
	}
	if msg := termination(t, out); msg.Error == nil || msg.Error.Reason != ReasonInterrupted {
		t.Errorf("after SIGTERM: termination message %+v", msg)
	}
	if logged, saved := lastLoggedStep(t, out), newestComplete(t, out); logged != saved {
		t.Errorf("after SIGTERM: steps logged up to %d but the newest checkpoint is at %d", logged, saved)
	}
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("stderr is not a terminal, so progress should be JSON lines; got %q", line)
			break
		}
	}

	// kill -9 after a further checkpoint: the steps since it are lost, at most `every` of them.
	cmd, done, _ = start(t, args)
	resumed := newestComplete(t, out)
	waitFor(t, filepath.Join(checkpoint.Dir(out, (resumed/every+1)*every), checkpoint.CompleteFile), done)
	cmd.Process.Kill()
	<-done
	killedAt, saved := lastLoggedStep(t, out), newestComplete(t, out)
	if killedAt-saved > every {
		t.Errorf("killed at step %d with the newest checkpoint at %d: lost more than %d steps", killedAt, saved, every)
	}
	if saved >= steps {
		t.Fatalf("the run finished (step %d) before it was killed; the test needs a longer run", saved)
	}

	// A half-written checkpoint newer than the last complete one (no COMPLETE, a truncated weights file) and the
	// leftover of an interrupted save must both be passed over.
	half := checkpoint.Dir(out, (saved/every+1)*every)
	if err := os.MkdirAll(half, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(half, checkpoint.ModelFile), []byte("\x10\x00\x00\x00"), 0o644)
	os.MkdirAll(filepath.Join(out, "checkpoints", ".tmp-step-99999999"), 0o755)

	cmd, done, stderr = start(t, args)
	<-done
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("restarted run: exit %d\n%s", code, stderr)
	}
	got := termination(t, out).Result
	if got == nil {
		t.Fatalf("restarted run: no result")
	}
	if got.ResumedFromStep != saved {
		t.Errorf("resumed from step %d, want the newest complete checkpoint %d", got.ResumedFromStep, saved)
	}
	if got.ModelDigest != want.ModelDigest {
		t.Errorf("after SIGTERM, kill -9 and two resumes the final weights differ: %s vs %s", got.ModelDigest, want.ModelDigest)
	}
	if lastLoggedStep(t, out) != steps || len(trainLosses(t, out)) != steps {
		t.Errorf("metrics.jsonl: %d training lines up to step %d, want one per step up to %d",
			len(trainLosses(t, out)), lastLoggedStep(t, out), steps)
	}
	if !strings.Contains(stderr.String(), `"event":"checkpoint-skipped"`) {
		t.Errorf("the half-written checkpoint was not reported as skipped:\n%s", stderr)
	}
	// The half-written checkpoint was replaced by a whole one (its step was saved again), and then pruned with the
	// others: checkpointsToKeep (default 2) leaves the two newest, and no leftover.
	if !strings.Contains(stderr.String(), fmt.Sprintf(`"dir":%q,"event":"checkpoint"`, fileURI(half))) {
		t.Errorf("the half-written checkpoint %s was not saved again:\n%s", half, stderr)
	}
	if got := listDir(t, filepath.Join(out, "checkpoints")); !slices.Equal(got, []string{stepName(steps - every), stepName(steps)}) {
		t.Errorf("checkpoints left %v, want the newest two (steps %d and %d)", got, steps-every, steps)
	}
	if n := len(got.Checkpoints); n == 0 || n > KeepCheckpoints || got.Checkpoints[n-1].Step != steps {
		t.Errorf("result lists checkpoints %+v", got.Checkpoints)
	}
}

func TestProcessBadDatasetIsInvalidInput(t *testing.T) {
	dir := t.TempDir()
	dataPath := filepath.Join(dir, "bad.jsonl")
	lines := `{"prompt": "1+1=", "chosen": "2", "rejected": "3"}
{"prompt": "1+2=", "chosen": "3", "rejected": "4"}
{"prompt": "1+3=", "rejected": "5"}
{"prompt": "1+4=", "chosen": "5", "rejected": "6"}
`
	if err := os.WriteFile(dataPath, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	cmd := exec.Command(trainerBinary(t), sftArgs(dataPath, out, 3)...)
	stderr, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != contract.ExitInvalidInput {
		t.Fatalf("bad dataset: %v, want exit %d\n%s", err, contract.ExitInvalidInput, stderr)
	}
	msg := termination(t, out)
	if msg.Error == nil || msg.Error.Reason != ReasonInvalidDataset || !strings.Contains(msg.Error.Message, "line 3") ||
		!strings.Contains(msg.Error.Message, "chosen") {
		t.Errorf("termination message %+v: want reason %s naming line 3 and field chosen", msg.Error, ReasonInvalidDataset)
	}

	// A malformed --config is invalid input too, with the reason InvalidConfig.
	cfgPath := filepath.Join(dir, "run.json")
	os.WriteFile(cfgPath, []byte(`{"apiVersion": "`+contract.APIVersion+`", "kind": "sft", "trainin": {}}`), 0o644)
	cmd = exec.Command(trainerBinary(t), "sft", "--config", cfgPath, "--termination-log", out+".termination")
	stderr, err = cmd.CombinedOutput()
	if !errors.As(err, &exit) || exit.ExitCode() != contract.ExitInvalidInput {
		t.Fatalf("bad config: %v, want exit %d\n%s", err, contract.ExitInvalidInput, stderr)
	}
	if msg := termination(t, out); msg.Error == nil || msg.Error.Reason != ReasonInvalidConfig || !strings.Contains(msg.Error.Message, "trainin") {
		t.Errorf("termination message %+v: want reason %s naming the unknown field", msg.Error, ReasonInvalidConfig)
	}

	// --config and run flags together is a usage error: two sources of truth.
	cmd = exec.Command(trainerBinary(t), "sft", "--config", cfgPath, "--steps", "3")
	stderr, _ = cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != contract.ExitUsage || !strings.Contains(string(stderr), "--steps") {
		t.Errorf("--config with --steps: exit %d, %q", cmd.ProcessState.ExitCode(), stderr)
	}
}

// TestProcessDPOFromConfigAndGenerate drives the CLI as the operator and a user do: sft with flags, dpo with a
// --config document naming the SFT model as its reference, then generate from the result.
func TestProcessDPOFromConfigAndGenerate(t *testing.T) {
	dir := t.TempDir()
	dataPath := writeDemo(t, dir, 100, 6)
	sftOut := filepath.Join(dir, "sft")
	if out, err := exec.Command(trainerBinary(t), sftArgs(dataPath, sftOut, 4)...).CombinedOutput(); err != nil {
		t.Fatalf("sft: %v\n%s", err, out)
	}
	rc := tinyDPO("file://"+dataPath, "file://"+filepath.Join(sftOut, "model"), "file://"+filepath.Join(dir, "dpo"), 3)
	rc.DPO.LossType = "ipo"
	raw, _ := json.Marshal(rc)
	cfgPath := filepath.Join(dir, "run.json")
	os.WriteFile(cfgPath, raw, 0o644)
	dpoOut := filepath.Join(dir, "dpo")
	if out, err := exec.Command(trainerBinary(t), "dpo", "--config", cfgPath, "--termination-log", dpoOut+".termination").CombinedOutput(); err != nil {
		t.Fatalf("dpo --config: %v\n%s", err, out)
	}
	res := termination(t, dpoOut).Result
	if res == nil || res.Step != 3 || res.Metrics["eval_rewards/accuracies"] < 0 || res.ModelURI != "file://"+filepath.Join(dpoOut, "model") {
		t.Fatalf("dpo result %+v", res)
	}
	// ipo's first loss is (0 - 1/(2β))² with β = 0.1: 25.
	if first := readMetrics(t, dpoOut)[0]["loss"]; first < 24.999 || first > 25.001 {
		t.Errorf("first ipo loss %v, want 25", first)
	}

	// generate: one prompt, greedy, as Complete gives it in process.
	modelDir := filepath.Join(dpoOut, "model")
	p, tok, _, err := LoadModelDir(modelDir)
	if err != nil {
		t.Fatal(err)
	}
	want, err := Complete(p, tok, "12+7=", 5, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := exec.Command(trainerBinary(t), "generate", "--model", modelDir, "--prompt", "12+7=", "--max-new", "5").Output()
	if err != nil || string(got) != want+"\n" {
		t.Errorf("generate --prompt: %q (%v), want %q", got, err, want+"\n")
	}

	// --prompts-file: JSON lines in and out; a line without a prompt fails with its number.
	prompts := filepath.Join(dir, "prompts.jsonl")
	os.WriteFile(prompts, []byte(`{"prompt": "12+7="}`+"\n\n"+`{"prompt": "3+4="}`+"\n"), 0o644)
	got, err = exec.Command(trainerBinary(t), "generate", "--model", modelDir, "--prompts-file", prompts, "--max-new", "5").Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(got)), "\n")
	var first struct{ Prompt, Completion string }
	if len(lines) != 2 || json.Unmarshal([]byte(lines[0]), &first) != nil || first.Prompt != "12+7=" || first.Completion != want {
		t.Errorf("generate --prompts-file: %q", got)
	}
	os.WriteFile(prompts, []byte(`{"prompt": "1+1="}`+"\n"+`{"text": "x"}`+"\n"), 0o644)
	cmd := exec.Command(trainerBinary(t), "generate", "--model", modelDir, "--prompts-file", prompts)
	out, err := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != contract.ExitInvalidInput || !strings.Contains(string(out), "line 2") {
		t.Errorf("bad prompts file: exit %d, %q", cmd.ProcessState.ExitCode(), out)
	}
}
