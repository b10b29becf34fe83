package train

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/demodata"
)

// writeDemo writes n rows of the synthetic addition dataset and returns the file's path.
func writeDemo(t testing.TB, dir string, n int, seed uint64) string {
	t.Helper()
	path := filepath.Join(dir, "demo.jsonl")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := demodata.Write(f, demodata.Generate(n, seed)); err != nil {
		t.Fatal(err)
	}
	return path
}

// tinySFT is a run small enough for a test: 2 layers, width 32, context 32 (demodata fits the smallest bucket).
func tinySFT(dataPath, out string, steps int) contract.RunConfig {
	return contract.RunConfig{
		APIVersion: contract.APIVersion,
		Kind:       contract.KindSFT,
		Dataset:    contract.DatasetConfig{URI: dataPath, EvalFraction: 0.1, Seed: 1},
		Model: contract.ModelConfig{Architecture: &contract.Architecture{
			Layers: 2, DModel: 32, Heads: 4, ContextLength: 32,
		}},
		Training: contract.TrainingConfig{MaxSteps: steps, BatchSize: 16, LearningRate: 3e-3, WarmupSteps: 2,
			EvalEvery: steps, CheckpointEvery: steps, Seed: 7},
		Output: contract.OutputConfig{URI: out},
	}
}

func tinyDPO(dataPath, reference, out string, steps int) contract.RunConfig {
	rc := tinySFT(dataPath, out, steps)
	rc.Kind = contract.KindDPO
	rc.Model = contract.ModelConfig{}
	rc.Reference = &contract.ReferenceConfig{ModelURI: reference}
	rc.DPO = &contract.DPOConfig{Beta: 0.1, LossType: "sigmoid", PrecomputeReferenceLogProbs: true}
	rc.Training.LearningRate = 1e-3
	return rc
}

// mustRun validates and runs rc to the end.
func mustRun(t testing.TB, rc contract.RunConfig) *contract.Result {
	t.Helper()
	cfg, err := NewConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// readMetrics returns the lines of out/metrics.jsonl.
func readMetrics(t testing.TB, out string) []map[string]float64 {
	t.Helper()
	f, err := os.Open(filepath.Join(out, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []map[string]float64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]float64
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("metrics line %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	return lines
}

// trainLosses returns the training loss of each step, in order.
func trainLosses(t testing.TB, out string) []float64 {
	var ls []float64
	for _, m := range readMetrics(t, out) {
		if l, ok := m["loss"]; ok {
			ls = append(ls, l)
		}
	}
	return ls
}

// stopAt cancels the run's context once step is reported, as SIGTERM would.
type stopAt struct {
	step   int
	cancel context.CancelFunc
}

func (s *stopAt) Step(step, _ int, m Metrics) {
	if step >= s.step {
		s.cancel()
	}
}
func (s *stopAt) Event(string, map[string]any) {}
