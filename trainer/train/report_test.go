package train

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
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
