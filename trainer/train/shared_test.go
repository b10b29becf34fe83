package train

import (
	"os"
	"path/filepath"
	"testing"
)

// sharedData is the real public data outside the project (see ../shared/data/README.md).
const sharedData = "../../../shared/data"

// TestRealDataShortRuns runs a few SFT and DPO steps on real chat preference data (orca DPO pairs): long rows
// truncated to the context, several length buckets, the chat format read by auto-detection, multi-byte text.
func TestRealDataShortRuns(t *testing.T) {
	path := filepath.Join(sharedData, "orca-dpo-pairs", "validation.jsonl")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("real data not available at %s: %v", path, err)
	}
	dir := t.TempDir()
	sftCfg := tinySFT(path, filepath.Join(dir, "sft"), 3)
	sftCfg.Model.Architecture.ContextLength = 64
	sftCfg.Training.BatchSize = 8
	sftCfg.Dataset.EvalFraction = 0.05
	sft := mustRun(t, sftCfg)
	if !(sft.Metrics["eval_loss"] > 0) || !(sft.Metrics["loss"] > 0) {
		t.Errorf("SFT on orca pairs: metrics %v", sft.Metrics)
	}
	dpoCfg := tinyDPO(path, sft.ModelURI, filepath.Join(dir, "dpo"), 2)
	dpoCfg.Training.BatchSize = 8
	dpoCfg.Dataset.EvalFraction = 0.05
	dpo := mustRun(t, dpoCfg)
	acc, ok := dpo.Metrics["eval_rewards/accuracies"]
	if !ok || acc < 0 || acc > 1 || dpo.Step != 2 {
		t.Errorf("DPO on orca pairs: step %d, metrics %v", dpo.Step, dpo.Metrics)
	}
}
