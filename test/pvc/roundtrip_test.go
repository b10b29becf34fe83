// Package pvc checks that datasets, checkpoints and models round-trip through pvc:// URIs: the operator maps a
// user's pvc://claim/path to the path where it mounts the claim in the trainer's pod, the trainer reads and
// writes plain files there, and the URIs it reports map back to pvc:// in status. A temporary folder stands in
// for the mount (as the kubelet's bind mount would): the mapping code is the operator's own.
package pvc

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/preftune/preftune/controllers"
	"github.com/preftune/preftune/trainer/checkpoint"
	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/demodata"
	"github.com/preftune/preftune/trainer/train"
)

const mountRoot = "file:///mnt/pvc/"

// mounted maps a user's URI to the trainer's view, then to the folder standing in for the mounted claims.
func mounted(t *testing.T, root, userURI string) string {
	t.Helper()
	u, err := controllers.TrainerURI(userURI)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(u, mountRoot) {
		t.Fatalf("%s maps to %s, not under %s", userURI, u, mountRoot)
	}
	return "file://" + filepath.Join(root, strings.TrimPrefix(u, mountRoot))
}

// reported maps a URI the trainer reported back through the mount to the user's form.
func reported(root, uri string) string {
	return controllers.UserURI(strings.Replace(uri, "file://"+root+"/", mountRoot, 1))
}

func TestPVCRoundTrip(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	rows, err := demodata.Config{Difficulty: 1}.Generate(300, 1)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(root, "data", "arith.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if err := demodata.Write(f, rows); err != nil {
		t.Fatal(err)
	}
	f.Close()

	sft := contract.RunConfig{APIVersion: contract.APIVersion, Kind: contract.KindSFT,
		Dataset:  contract.DatasetConfig{URI: mounted(t, root, "pvc://data/arith.jsonl"), EvalFraction: 0.1, Seed: 1},
		Model:    contract.ModelConfig{Architecture: &contract.Architecture{Layers: 1, DModel: 16, Heads: 2, ContextLength: 16}},
		Training: contract.TrainingConfig{MaxSteps: 4, BatchSize: 8, LearningRate: 3e-3, CheckpointEvery: 2, EvalEvery: 4, Seed: 1},
		Output:   contract.OutputConfig{URI: mounted(t, root, "pvc://outputs/runs/team-a/base-1")},
	}
	sftRes := run(t, sft)
	if got := reported(root, sftRes.ModelURI); got != "pvc://outputs/runs/team-a/base-1/model" {
		t.Errorf("SFT model URI in status = %s", got)
	}
	if len(sftRes.Checkpoints) != 2 || reported(root, sftRes.Checkpoints[1].URI) != "pvc://outputs/runs/team-a/base-1/checkpoints/step-00000004" {
		t.Errorf("SFT checkpoints = %+v", sftRes.Checkpoints)
	}
	// The model on the volume is what the result says, byte for byte.
	_, digest, err := checkpoint.LoadModel(filepath.Join(root, "outputs", "runs", "team-a", "base-1", "model"))
	if err != nil || digest != sftRes.ModelDigest {
		t.Errorf("model on the volume: digest %s, result %s, err %v", digest, sftRes.ModelDigest, err)
	}

	// The DPO run reads its reference through the pinned pvc:// model URI, as the operator passes it.
	dpo := sft
	dpo.Kind, dpo.Model = contract.KindDPO, contract.ModelConfig{}
	dpo.Reference = &contract.ReferenceConfig{ModelURI: mounted(t, root, reported(root, sftRes.ModelURI))}
	dpo.DPO = &contract.DPOConfig{Beta: 0.1, LossType: "sigmoid", PrecomputeReferenceLogProbs: true}
	dpo.Output.URI = mounted(t, root, "pvc://outputs/runs/team-a/aligned-1")
	dpoRes := run(t, dpo)
	if got := reported(root, dpoRes.ModelURI); got != "pvc://outputs/runs/team-a/aligned-1/model" {
		t.Errorf("DPO model URI in status = %s", got)
	}
	for _, p := range dpoRes.Plots {
		if u := reported(root, p); !strings.HasPrefix(u, "pvc://outputs/runs/team-a/aligned-1/") {
			t.Errorf("plot URI %s is outside the run's prefix", u)
		}
	}
}

func run(t *testing.T, rc contract.RunConfig) *contract.Result {
	t.Helper()
	cfg, err := train.NewConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	res, err := train.Run(context.Background(), cfg, train.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}
