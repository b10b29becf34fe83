package train

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/preftune/preftune/trainer/checkpoint"
	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/model"
)

func localPathOf(t *testing.T, uri string) string {
	t.Helper()
	p, err := localPath(uri)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func withAdapter(rc contract.RunConfig, a contract.AdapterConfig) contract.RunConfig {
	rc.Adapter = &a
	return rc
}

// TestLoRARun: LoRA SFT on a trained model stores only the adapter and its AdamW state in checkpoints, resumes
// bit for bit (dropout on), writes adapter/ and the merged model/, refuses a checkpoint of another base; LoRA
// DPO on base + that adapter (reference.adapterURI) starts at ln 2 and computes what DPO on the merged model
// does.
func TestLoRARun(t *testing.T) {
	dir := t.TempDir()
	dataPath := writeDemo(t, dir, 200, 21)
	base := mustRun(t, tinySFT(dataPath, filepath.Join(dir, "base"), 4))
	other := mustRun(t, tinySFT(dataPath, filepath.Join(dir, "other"), 5))

	const k = 3
	lora := contract.AdapterConfig{Rank: 4, Dropout: 0.1, TargetModules: []string{"c_attn", "c_fc"}}
	rc := func(out, from string) contract.RunConfig {
		c := withAdapter(tinySFT(dataPath, filepath.Join(dir, out), 2*k), lora)
		c.Model = contract.ModelConfig{From: from}
		c.Training.GradientAccumulationSteps = 2
		c.Training.CheckpointEvery = k
		c.Training.CheckpointsToKeep = 5
		c.Training.LearningRate = 1e-2
		return c
	}
	a := mustRun(t, rc("a", base.ModelURI))
	// 2 layers of width 32: c_attn 32 -> 96, c_fc 32 -> 128, rank 4.
	if want := int64(2 * 4 * ((32 + 96) + (32 + 128))); a.TrainableParameterCount != want || a.ParameterCount <= want {
		t.Errorf("trainable %d of %d parameters, want %d trainable", a.TrainableParameterCount, a.ParameterCount, want)
	}
	if a.AdapterURI == "" || a.ModelURI == "" {
		t.Fatalf("adapter %q, model %q: want both", a.AdapterURI, a.ModelURI)
	}
	adapterDir := localPathOf(t, a.AdapterURI)
	for _, f := range []string{model.AdapterConfigFile, model.AdapterWeightsFile} {
		if _, err := os.Stat(filepath.Join(adapterDir, f)); err != nil {
			t.Fatal(err)
		}
	}
	// The checkpoint holds the adapter's tensors and their moments only, and the base's digest.
	c, err := checkpoint.Load(checkpoint.Dir(filepath.Join(dir, "a"), 2*k))
	if err != nil {
		t.Fatal(err)
	}
	var names, moments []string
	var stateBytes int
	for _, tn := range c.Tensors {
		names = append(names, tn.Name)
	}
	for n, m := range c.Optimizer.ExpAvg {
		moments = append(moments, n)
		stateBytes += 4 * (len(m) + len(c.Optimizer.ExpAvgSq[n]))
	}
	slices.Sort(names)
	slices.Sort(moments)
	if len(names) != 8 || !slices.Equal(names, moments) {
		t.Fatalf("checkpoint tensors %v, optimiser moments %v: want the 8 adapter tensors in both", names, moments)
	}
	for _, n := range names {
		if !strings.HasSuffix(n, model.LoRASuffixA) && !strings.HasSuffix(n, model.LoRASuffixB) {
			t.Fatalf("checkpoint tensor %s is not an adapter tensor", n)
		}
	}
	if stateBytes != 8*int(a.TrainableParameterCount) {
		t.Errorf("optimiser state %d bytes, want 8 per trainable parameter (%d)", stateBytes, 8*a.TrainableParameterCount)
	}
	if _, _, _, err := LoadModelDir(checkpoint.Dir(filepath.Join(dir, "a"), 2*k)); err == nil || !strings.Contains(err.Error(), "LoRA adapter") {
		t.Errorf("LoadModelDir on an adapter checkpoint: %v, want a refusal naming the adapter", err)
	}
	if c.State.BaseModelDigest != base.ModelDigest {
		t.Errorf("checkpoint base digest %q, want the base model's %q", c.State.BaseModelDigest, base.ModelDigest)
	}
	t.Logf("trainable %d of %d parameters; AdamW state %d bytes", a.TrainableParameterCount, a.ParameterCount, stateBytes)

	// Same run stopped after step k and resumed: same losses, same adapter, same merged model.
	runUntil(t, rc("b", base.ModelURI), k)
	b := mustRun(t, rc("b", base.ModelURI))
	if b.ResumedFromStep != k {
		t.Errorf("resumed from step %d, want %d", b.ResumedFromStep, k)
	}
	checkSameRun(t, "LoRA stopped and resumed", a, b, filepath.Join(dir, "a"), filepath.Join(dir, "b"))
	wa, _ := os.ReadFile(filepath.Join(adapterDir, model.AdapterWeightsFile))
	wb, _ := os.ReadFile(filepath.Join(localPathOf(t, b.AdapterURI), model.AdapterWeightsFile))
	if len(wa) == 0 || !slices.Equal(wa, wb) {
		t.Error("resumed run wrote another adapter")
	}

	// A checkpoint of this adapter in the output of a run on another base is refused, naming both digests.
	cOut := filepath.Join(dir, "c")
	if err := os.MkdirAll(filepath.Join(cOut, "checkpoints"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(checkpoint.Dir(filepath.Join(dir, "a"), k), checkpoint.Dir(cOut, k)); err != nil {
		t.Fatal(err)
	}
	cfg, err := NewConfig(rc("c", other.ModelURI))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(t.Context(), cfg, Options{})
	var e *Error
	if !errors.As(err, &e) || e.Reason != ReasonCheckpointFailed || ExitCode(err) != contract.ExitInvalidInput ||
		!strings.Contains(err.Error(), base.ModelDigest) || !strings.Contains(err.Error(), other.ModelDigest) {
		t.Fatalf("resume onto another base: %v", err)
	}

	// LoRA DPO with the SFT adapter merged into the reference (lineage), against DPO on the merged model/.
	dpo := func(out string, ref contract.ReferenceConfig, merged bool) *contract.Result {
		c := withAdapter(tinyDPO(dataPath, "", filepath.Join(dir, out), 3), contract.AdapterConfig{Rank: 2})
		c.Reference = &ref
		c.Output.MergedModel = &merged
		return mustRun(t, c)
	}
	viaAdapter := dpo("dpo-lineage", contract.ReferenceConfig{ModelURI: base.ModelURI, AdapterURI: a.AdapterURI}, false)
	viaMerged := dpo("dpo-merged", contract.ReferenceConfig{ModelURI: a.ModelURI}, true)
	first := readMetrics(t, filepath.Join(dir, "dpo-lineage"))[0]
	if first["loss"] != math.Ln2 || first["rewards/chosen"] != 0 || first["rewards/margins"] != 0 {
		t.Errorf("first LoRA DPO step: loss %v, rewards/chosen %v, margins %v; want ln 2 exactly and zero rewards",
			first["loss"], first["rewards/chosen"], first["rewards/margins"])
	}
	la, lm := trainLosses(t, filepath.Join(dir, "dpo-lineage")), trainLosses(t, filepath.Join(dir, "dpo-merged"))
	if !slices.Equal(la, lm) {
		t.Errorf("DPO on base + adapter and on the merged model differ: %v vs %v", la, lm)
	}
	if viaAdapter.ModelURI != "" || viaAdapter.AdapterURI == "" || viaMerged.ModelURI == "" {
		t.Errorf("mergedModel false: model %q adapter %q; true: model %q", viaAdapter.ModelURI, viaAdapter.AdapterURI, viaMerged.ModelURI)
	}
	if _, err := os.Stat(filepath.Join(dir, "dpo-lineage", "model")); !os.IsNotExist(err) {
		t.Errorf("mergedModel false wrote model/ (%v)", err)
	}
}

// TestLoRARefusesUnknownTargets: an unknown module is invalid input before training, naming the known ones.
func TestLoRARefusesUnknownTargets(t *testing.T) {
	dir := t.TempDir()
	dataPath := writeDemo(t, dir, 50, 22)
	cfg, err := NewConfig(withAdapter(tinySFT(dataPath, filepath.Join(dir, "out"), 2), contract.AdapterConfig{Rank: 2,
		TargetModules: []string{"q_proj"}}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(t.Context(), cfg, Options{})
	if ExitCode(err) != contract.ExitInvalidInput || !strings.Contains(err.Error(), "c_attn, c_proj, c_fc") ||
		!strings.Contains(err.Error(), `"q_proj"`) {
		t.Fatalf("unknown target: %v (exit %d)", err, ExitCode(err))
	}
	if _, err := os.Stat(filepath.Join(dir, "out", "metrics.jsonl")); !os.IsNotExist(err) {
		t.Errorf("the run trained before refusing (%v)", err)
	}
	for _, bad := range []contract.AdapterConfig{{Rank: 0}, {Rank: 2000}, {Rank: 2, Dropout: 1}, {Type: "ia3", Rank: 2}} {
		if _, err := NewConfig(withAdapter(tinySFT(dataPath, dir, 2), bad)); err == nil {
			t.Errorf("adapter %+v accepted", bad)
		}
	}
	hub := tinyDPO(dataPath, dir, dir, 2)
	hub.Reference.AdapterURI = "hf://org/adapter@v1"
	if c, err := NewConfig(hub); err != nil || c.ReferenceAdapterDir != "" {
		t.Errorf("hf:// reference adapter: %v (local dir %q), want it accepted for download", err, c.ReferenceAdapterDir)
	}
	hub.Reference.AdapterURI = "hf://org/adapter/file"
	if _, err := NewConfig(hub); err == nil || !strings.Contains(err.Error(), "reference.adapterURI") {
		t.Errorf("hf://org/adapter/file reference adapter: %v, want an error naming reference.adapterURI", err)
	}
	c, err := NewConfig(withAdapter(tinySFT(dataPath, dir, 2), contract.AdapterConfig{Rank: 8}))
	if err != nil || c.Adapter.Alpha != 16 || c.Adapter.Type != contract.AdapterTypeLoRA {
		t.Errorf("defaults: %+v, %v; want alpha 16 (2 x rank), type lora", c.Adapter, err)
	}
}

// TestLoRAWarnings: an adapter on a new model's random weights, and a rank near the layers' widths, are said in
// the result's warnings; a modest adapter on a trained model warns of neither.
func TestLoRAWarnings(t *testing.T) {
	dir := t.TempDir()
	dataPath := writeDemo(t, dir, 60, 22)
	has := func(res *contract.Result, s string) bool { return hasWarning(res.Warnings, s) }
	res := mustRun(t, withAdapter(tinySFT(dataPath, filepath.Join(dir, "scratch"), 1), contract.AdapterConfig{Rank: 32}))
	if !has(res, "an adapter on a new model") || !has(res, "adapter.rank 32 trains") {
		t.Errorf("rank 32 on a new 32-wide model: warnings %q", res.Warnings)
	}
	base := mustRun(t, tinySFT(dataPath, filepath.Join(dir, "base"), 1))
	rc := withAdapter(tinySFT(dataPath, filepath.Join(dir, "lora"), 1), contract.AdapterConfig{Rank: 2})
	rc.Model = contract.ModelConfig{From: base.ModelURI}
	if res := mustRun(t, rc); has(res, "an adapter on a new model") || has(res, "adapter.rank") {
		t.Errorf("rank 2 on a trained model: warnings %q", res.Warnings)
	}
}
