package train

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/data"
	"github.com/preftune/preftune/trainer/demodata"
)

func TestMetricsLogDropsLinesAfterResume(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metrics.jsonl")
	l, err := openMetrics(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	for step := 1; step <= 5; step++ {
		if err := l.Log(Metrics{"step": float64(step), "loss": 1 / float64(step)}); err != nil {
			t.Fatal(err)
		}
	}
	l.Log(Metrics{"step": 6, "loss": math.NaN()})
	l.Close()
	// A torn line from a killed process.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"step": 7, "lo`)
	f.Close()

	l, err = openMetrics(path, 3)
	if err != nil {
		t.Fatal(err)
	}
	l.Log(Metrics{"step": 4, "loss": 0.2})
	l.Close()

	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	var steps []float64
	for _, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		steps = append(steps, m["step"].(float64))
	}
	if fmt.Sprint(steps) != "[1 2 3 4]" {
		t.Errorf("steps after resume at 3: %v", steps)
	}
}

func TestMetricsNaNIsNull(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metrics.jsonl")
	l, _ := openMetrics(path, 0)
	l.Log(Metrics{"step": 1, "loss": math.Inf(1)})
	l.Close()
	data, _ := os.ReadFile(path)
	if strings.TrimSpace(string(data)) != `{"loss":null,"step":1}` {
		t.Errorf("got %s", data)
	}
}

func TestTerminationMessageFits(t *testing.T) {
	r := &contract.Result{Step: 10, TotalSteps: 10, Metrics: map[string]float64{"loss": 0.5}}
	for i := 0; i < 200; i++ {
		r.Checkpoints = append(r.Checkpoints, contract.Checkpoint{Step: i, URI: "file:///out/checkpoints/step-" + fmt.Sprint(i)})
	}
	data, err := EncodeTermination(contract.TerminationMessage{Result: r})
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > contract.MaxTerminationMessageBytes {
		t.Fatalf("%d bytes", len(data))
	}
	var back contract.TerminationMessage
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	cps := back.Result.Checkpoints
	if len(cps) == 0 || cps[len(cps)-1].Step != 199 {
		t.Errorf("newest checkpoint lost: %v", cps)
	}

	long := strings.Repeat("é", 5000)
	data, err = EncodeTermination(contract.TerminationMessage{Error: &contract.Error{Reason: "X", Message: long}})
	if err != nil || len(data) > contract.MaxTerminationMessageBytes {
		t.Fatalf("%d bytes, %v", len(data), err)
	}
	if err := json.Unmarshal(data, &back); err != nil || !strings.HasSuffix(back.Error.Message, "[truncated]") {
		t.Errorf("truncated message: %v", err)
	}
}

func TestProgressFormats(t *testing.T) {
	var buf strings.Builder
	p := &jsonProgress{w: &buf}
	p.Step(3, 10, Metrics{"loss": 1.5, "grad_norm": math.NaN()})
	p.Step(3, 10, Metrics{"eval_loss": 1.2})
	p.Event("checkpoint", map[string]any{"step": 3})
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := []string{"step", "eval", "checkpoint"}
	for i, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if m["event"] != want[i] || m["time"] == nil {
			t.Errorf("line %d: %v, want event %s", i, m, want[i])
		}
	}
	if !strings.Contains(lines[0], `"loss":1.5`) || strings.Contains(lines[0], "grad_norm") || !strings.Contains(lines[0], `"total_steps":10`) {
		t.Errorf("step line %s", lines[0])
	}

	buf.Reset()
	bar := &barProgress{w: &buf}
	bar.Step(5, 10, Metrics{"loss": 0.25})
	if out := buf.String(); !strings.Contains(out, "[===============               ] 5/10 loss 0.2500") {
		t.Errorf("bar %q", out)
	}
}

func TestEpochsSetTotalSteps(t *testing.T) {
	dir := t.TempDir()
	rc := tinySFT(writeDemo(t, dir, 200, 2), filepath.Join(dir, "out"), 0)
	rc.Training.Epochs = 1
	rc.Training.GradientAccumulationSteps = 2
	cfg, err := NewConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// One epoch of the training rows in batches of 16, two batches a step.
	var train int
	for _, m := range readMetrics(t, filepath.Join(dir, "out")) {
		if _, ok := m["loss"]; ok {
			train++
		}
	}
	split, _ := data.Split(demodata.Generate(200, 2), rc.Dataset.EvalFraction, rc.Dataset.Seed)
	trainRows := split.Train
	batches := (len(trainRows) + 15) / 16
	steps := (batches + 1) / 2
	// An odd number of batches takes the last step's second batch from the next epoch.
	epoch := 1.0
	if batches%2 == 1 {
		epoch += float64(min(16, len(trainRows))) / float64(len(trainRows))
	}
	if res.TotalSteps != steps || train != steps || res.Step != steps || math.Abs(res.Epoch-epoch) > 1e-9 {
		t.Errorf("epochs 1 over %d rows: step %d of %d (%d logged), epoch %v; want %d steps, epoch %v",
			len(trainRows), res.Step, res.TotalSteps, train, res.Epoch, steps, epoch)
	}
}
