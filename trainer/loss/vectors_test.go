package loss

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// vectorsPath is the golden file in the read-only shared folder beside the repository.
var vectorsPath = filepath.Join("..", "..", "..", "shared", "testdata", "dpo_loss_vectors.json")

type vectorCase struct {
	Name           string             `json:"name"`
	PolicyChosen   float64            `json:"policy_chosen_logp"`
	PolicyRejected float64            `json:"policy_rejected_logp"`
	RefChosen      float64            `json:"ref_chosen_logp"`
	RefRejected    float64            `json:"ref_rejected_logp"`
	Beta           float64            `json:"beta"`
	LabelSmoothing float64            `json:"label_smoothing"`
	Expected       map[string]float64 `json:"expected"`
}

func loadVectors(t *testing.T) []vectorCase {
	t.Helper()
	raw, err := os.ReadFile(vectorsPath)
	if os.IsNotExist(err) {
		t.Skipf("golden DPO vectors not present at %s", vectorsPath)
	}
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Cases []vectorCase `json:"cases"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v", vectorsPath, err)
	}
	if len(doc.Cases) == 0 {
		t.Fatalf("%s has no cases", vectorsPath)
	}
	return doc.Cases
}

// closeTo is 1e-9 relative, or 1e-12 absolute for values near zero.
func closeTo(got, want float64) bool {
	d := math.Abs(got - want)
	return d <= 1e-12 || d <= 1e-9*math.Abs(want)
}

// smoothingSuffix checks that a key such as "cdpo_label_smoothing_0_1" names the case's ε.
func smoothingSuffix(t *testing.T, key string, eps float64) {
	t.Helper()
	i := strings.Index(key, "label_smoothing_")
	if i < 0 {
		return
	}
	v, err := strconv.ParseFloat(strings.Replace(key[i+len("label_smoothing_"):], "_", ".", 1), 64)
	if err != nil || v != eps {
		t.Fatalf("key %q does not match the case's label_smoothing %v", key, eps)
	}
}

func TestGoldenVectors(t *testing.T) {
	for _, c := range loadVectors(t) {
		t.Run(c.Name, func(t *testing.T) {
			if len(c.Expected) == 0 {
				t.Fatal("case has no expected values")
			}
			pair := func(cfg DPOConfig) PairResult {
				if err := cfg.Validate(); err != nil {
					t.Fatal(err)
				}
				return DPOPair(cfg, c.PolicyChosen, c.PolicyRejected, c.RefChosen, c.RefRejected)
			}
			sig := pair(DPOConfig{Beta: c.Beta, LossType: LossSigmoid})
			cdpo := pair(DPOConfig{Beta: c.Beta, LossType: LossSigmoid, LabelSmoothing: c.LabelSmoothing})
			ipo := pair(DPOConfig{Beta: c.Beta, LossType: LossIPO})
			for key, want := range c.Expected {
				smoothingSuffix(t, key, c.LabelSmoothing)
				var got []float64
				switch {
				case key == "sigmoid":
					got = []float64{sig.Loss}
				case strings.HasPrefix(key, "cdpo_label_smoothing_"):
					got = []float64{cdpo.Loss}
				case key == "ipo":
					got = []float64{ipo.Loss}
				case strings.HasPrefix(key, "robust_label_smoothing_"):
					got = []float64{pair(DPOConfig{Beta: c.Beta, LossType: LossRobust, LabelSmoothing: c.LabelSmoothing}).Loss}
				case key == "hinge":
					got = []float64{pair(DPOConfig{Beta: c.Beta, LossType: LossHinge}).Loss}
				case key == "reference_free_sigmoid":
					got = []float64{pair(DPOConfig{Beta: c.Beta, LossType: LossSigmoid, ReferenceFree: true}).Loss}
				case key == "chosen_reward":
					got = []float64{sig.ChosenReward, cdpo.ChosenReward, ipo.ChosenReward}
				case key == "rejected_reward":
					got = []float64{sig.RejectedReward, cdpo.RejectedReward, ipo.RejectedReward}
				case key == "margin":
					got = []float64{sig.Margin, cdpo.Margin, ipo.Margin}
				case key == "accuracy":
					got = []float64{sig.Accuracy, cdpo.Accuracy, ipo.Accuracy}
				case key == "dloss_dpolicy_chosen_sigmoid":
					got = []float64{sig.DPolicyChosen, -sig.DPolicyRejected}
				case key == "dloss_dpolicy_chosen_cdpo":
					got = []float64{cdpo.DPolicyChosen, -cdpo.DPolicyRejected}
				case key == "dloss_dpolicy_chosen_ipo":
					got = []float64{ipo.DPolicyChosen, -ipo.DPolicyRejected}
				default:
					t.Errorf("expected key %q is not checked by this test: extend it", key)
					continue
				}
				for _, g := range got {
					if !closeTo(g, want) {
						t.Errorf("%s: got %.17g, want %.17g", key, g, want)
					}
				}
			}
		})
	}
}
