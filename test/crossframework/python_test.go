package crossframework

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Paths relative to this package's directory, where go test runs.
const (
	installScript = "../../hack/install-torch.sh"
	refScript     = "gpt2_ref.py"
)

var (
	torchOnce   sync.Once
	torchPython string
	torchErr    string
)

// findTorch returns the interpreter that imports torch and numpy, installing Debian's python3-torch with
// hack/install-torch.sh when none does. It skips the test only when that fails (no apt, no root, no network).
func findTorch(t *testing.T) string {
	t.Helper()
	torchOnce.Do(func() {
		for _, py := range []string{"/usr/bin/python3", "python3"} {
			if exec.Command(py, "-c", "import torch, numpy").Run() == nil {
				torchPython = py
				return
			}
		}
		var stderr bytes.Buffer
		cmd := exec.Command("bash", installScript)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		lines := strings.Fields(string(out))
		if err != nil || len(lines) == 0 {
			torchErr = strings.TrimSpace(stderr.String())
			return
		}
		torchPython = lines[len(lines)-1]
	})
	if torchPython == "" {
		t.Skipf("no python3 imports torch and %s could not install python3-torch: %s", installScript, torchErr)
	}
	return torchPython
}

// refBatch is gpt2_ref.py's input (see its docstring).
type refBatch struct {
	Inputs   [][]int    `json:"inputs"`
	Targets  [][]int    `json:"targets"`
	Mask     [][]int    `json:"mask"`
	SFTGrads bool       `json:"sft_grads"`
	DPO      []refDPOIn `json:"dpo,omitempty"`
	Generate []refGenIn `json:"generate,omitempty"`
}

type refGenIn struct {
	Prompt      []int     `json:"prompt"`
	MaxNew      int       `json:"max_new"`
	Stop        int       `json:"stop"`
	Temperature float64   `json:"temperature"`
	Uniforms    []float64 `json:"uniforms,omitempty"`
}

type refDPOIn struct {
	ChosenRows     []int     `json:"chosen_rows"`
	RejectedRows   []int     `json:"rejected_rows"`
	RefChosen      []float64 `json:"ref_chosen"`
	RefRejected    []float64 `json:"ref_rejected"`
	Beta           float64   `json:"beta"`
	LossType       string    `json:"loss_type"`
	LabelSmoothing float64   `json:"label_smoothing"`
	RPOAlpha       float64   `json:"rpo_alpha"`
	Grads          bool      `json:"grads"`
}

// refOutput is gpt2_ref.py's output.
type refOutput struct {
	Shape     []int                `json:"shape"`
	Logits    []float64            `json:"logits"`
	Logp      []float64            `json:"logp"`
	TokenLogp []float64            `json:"token_logp"`
	SeqLogp   []float64            `json:"seq_logp"`
	SeqTokens []int                `json:"seq_tokens"`
	SFTLoss   float64              `json:"sft_loss"`
	SFTGrads  map[string][]float64 `json:"sft_grads"`
	DPO       []refDPOOut          `json:"dpo"`
	Generate  []struct {
		Tokens  []int     `json:"tokens"`
		Margins []float64 `json:"margins"`
	} `json:"generate"`
}

type refDPOOut struct {
	Loss            float64              `json:"loss"`
	PreferenceLoss  float64              `json:"preference_loss"`
	NLL             float64              `json:"nll"`
	Losses          []float64            `json:"losses"`
	ChosenRewards   []float64            `json:"chosen_rewards"`
	RejectedRewards []float64            `json:"rejected_rewards"`
	Accuracy        float64              `json:"accuracy"`
	Margin          float64              `json:"margin"`
	Grads           map[string][]float64 `json:"grads"`
}

// runReference runs gpt2_ref.py in float64 on the model directory and the batch.
func runReference(t *testing.T, py, modelDir string, b refBatch) refOutput {
	t.Helper()
	buf, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "batch.json")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	// Reading the script here makes go test's cache key include it: a changed reference reruns the test.
	if _, err := os.ReadFile(refScript); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(py, refScript, "--dtype", "float64", modelDir, path)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("gpt2_ref.py: %v\n%s", err, stderr.String())
	}
	var res refOutput
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("gpt2_ref.py printed something that is not its JSON: %v", err)
	}
	return res
}
