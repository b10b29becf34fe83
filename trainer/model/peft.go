package model

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/preftune/preftune/trainer/hf"
	"github.com/preftune/preftune/trainer/internal/durable"
	"github.com/preftune/preftune/trainer/safetensors"
)

// PEFT's adapter directory (save_pretrained of a PeftModel with a LoraConfig):
//
//	adapter_config.json        peft_type "LORA", r, lora_alpha, lora_dropout, target_modules, base_model_name_or_path,
//	                           task_type "CAUSAL_LM", bias "none", fan_in_fan_out (true for GPT-2's Conv1D layers)
//	adapter_model.safetensors  base_model.model.<module>.lora_A.weight [r, in], ….lora_B.weight [out, r], F32
//
// PeftModel.from_pretrained(base, dir) loads it and computes W·x + (lora_alpha/r)·B·A·x on each target.
const (
	AdapterConfigFile  = "adapter_config.json"
	AdapterWeightsFile = "adapter_model.safetensors"
)

// AdapterConfig is adapter_config.json: the fields PEFT's LoraConfig writes that say how to apply the adapter
// (the others are written with PEFT's defaults).
type AdapterConfig struct {
	PEFTType            string          `json:"peft_type"`
	TaskType            string          `json:"task_type"`
	BaseModelNameOrPath string          `json:"base_model_name_or_path"`
	R                   int             `json:"r"`
	LoRAAlpha           float64         `json:"lora_alpha"`
	LoRADropout         float64         `json:"lora_dropout"`
	TargetModules       json.RawMessage `json:"target_modules"`
	Bias                string          `json:"bias"`
	FanInFanOut         bool            `json:"fan_in_fan_out"`
	InferenceMode       bool            `json:"inference_mode"`
	InitLoRAWeights     bool            `json:"init_lora_weights"`
	UseRSLoRA           bool            `json:"use_rslora"`
	UseDoRA             bool            `json:"use_dora"`
	ModulesToSave       []string        `json:"modules_to_save"`
	LayersToTransform   json.RawMessage `json:"layers_to_transform"`
	LayersPattern       json.RawMessage `json:"layers_pattern"`
	RankPattern         map[string]any  `json:"rank_pattern"`
	AlphaPattern        map[string]any  `json:"alpha_pattern"`
	Revision            *string         `json:"revision"`
	AutoMapping         json.RawMessage `json:"auto_mapping"`
	// LoRABias is PEFT's lora_bias (a bias on lora_B), not supported.
	LoRABias bool `json:"lora_bias,omitempty"`
}

// Targets returns target_modules as a list of module names (PEFT also accepts one string, a regular expression
// over module paths; only a plain module name is understood here).
func (c AdapterConfig) Targets() ([]string, error) {
	var list []string
	if err := json.Unmarshal(c.TargetModules, &list); err == nil {
		return list, nil
	}
	var one string
	if err := json.Unmarshal(c.TargetModules, &one); err == nil && one != "" && !strings.ContainsAny(one, `.*+?()[]|\^$`) {
		return []string{one}, nil
	}
	return nil, fmt.Errorf("field target_modules is %s: want a list of module names", c.TargetModules)
}

// SaveAdapter writes the adapter in PEFT's layout into dir (created; files replaced) and returns the weights
// file's digest. base is base_model_name_or_path (the starting model's URI).
func (p *Params) SaveAdapter(dir, base string) (string, error) {
	a := p.lora
	if a == nil {
		return "", fmt.Errorf("model: no adapter to save")
	}
	targets, _ := json.Marshal(a.moduleLeaves())
	cfg := AdapterConfig{PEFTType: "LORA", TaskType: "CAUSAL_LM", BaseModelNameOrPath: base, R: a.cfg.Rank,
		LoRAAlpha: a.cfg.Alpha, LoRADropout: a.cfg.Dropout, TargetModules: targets, Bias: "none",
		FanInFanOut: p.Family == GPT2, InferenceMode: true, InitLoRAWeights: true,
		LayersToTransform: json.RawMessage("null"), LayersPattern: json.RawMessage("null"),
		RankPattern: map[string]any{}, AlphaPattern: map[string]any{}, AutoMapping: json.RawMessage("null")}
	raw, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return "", err
	}
	var ts []safetensors.Tensor
	for _, t := range p.AdapterTensors() {
		ts = append(ts, safetensors.Tensor{Name: PEFTPrefix + t.Name, Shape: t.Shape, Data: t.Data, DType: safetensors.F32})
	}
	weights, err := safetensors.Encode(ts, map[string]string{"format": "pt"})
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := durable.WriteFile(filepath.Join(dir, AdapterConfigFile), append(raw, '\n')); err != nil {
		return "", err
	}
	if err := durable.WriteFile(filepath.Join(dir, AdapterWeightsFile), weights); err != nil {
		return "", err
	}
	if err := durable.SyncDir(dir); err != nil {
		return "", err
	}
	sum := sha256.Sum256(weights)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// ReadAdapterConfig reads and checks dir/adapter_config.json: a LoRA adapter this trainer can apply (bias none,
// no rsLoRA, DoRA, rank or alpha patterns, modules_to_save or layer selection).
func ReadAdapterConfig(dir string) (AdapterConfig, error) {
	var c AdapterConfig
	raw, err := os.ReadFile(filepath.Join(dir, AdapterConfigFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if _, serr := os.Stat(dir); serr != nil {
				return c, fmt.Errorf("adapter %s: no such directory", dir)
			}
			hint := ""
			if _, serr := os.Stat(filepath.Join(dir, "adapter", AdapterConfigFile)); serr == nil {
				hint = "; the run's adapter is in " + filepath.Join(dir, "adapter")
			}
			return c, fmt.Errorf("adapter %s: %s is missing (not a PEFT adapter directory%s)", dir, AdapterConfigFile, hint)
		}
		return c, fmt.Errorf("adapter %s: %w", dir, err)
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return c, fmt.Errorf("adapter %s: %s: %v", dir, AdapterConfigFile, err)
	}
	where := dir + "/" + AdapterConfigFile
	unsupported := func(field string, v any) error {
		return fmt.Errorf("adapter %s: field %s is %v: not supported (only plain LoRA adapters are)", where, field, v)
	}
	nonNull := func(r json.RawMessage) bool { s := strings.TrimSpace(string(r)); return s != "" && s != "null" }
	switch {
	case c.PEFTType != "LORA":
		return c, fmt.Errorf("adapter %s: field peft_type is %q, want LORA", where, c.PEFTType)
	case c.R < 1:
		return c, fmt.Errorf("adapter %s: field r is %d, want >= 1", where, c.R)
	case !(c.LoRAAlpha > 0):
		return c, fmt.Errorf("adapter %s: field lora_alpha is %v, want > 0", where, c.LoRAAlpha)
	case c.Bias != "" && c.Bias != "none":
		return c, unsupported("bias", c.Bias)
	case c.UseRSLoRA:
		return c, unsupported("use_rslora", true)
	case c.LoRABias:
		return c, unsupported("lora_bias", true)
	case c.UseDoRA:
		return c, unsupported("use_dora", true)
	case len(c.RankPattern) > 0:
		return c, unsupported("rank_pattern", c.RankPattern)
	case len(c.AlphaPattern) > 0:
		return c, unsupported("alpha_pattern", c.AlphaPattern)
	case len(c.ModulesToSave) > 0:
		return c, unsupported("modules_to_save", c.ModulesToSave)
	case nonNull(c.LayersToTransform):
		return c, unsupported("layers_to_transform", string(c.LayersToTransform))
	}
	if _, err := c.Targets(); err != nil {
		return c, fmt.Errorf("adapter %s: %v", where, err)
	}
	return c, nil
}

// AdapterLineageFile is the side file of an adapter trained on top of other adapters (a DPO run on a reference
// adapter), beside PEFT's files, which can name only one base (PEFT ignores it).
const AdapterLineageFile = "adapter_lineage.json"

// AdapterLineage is AdapterLineageFile's content: the base model (as base_model_name_or_path) and the adapters,
// by URI, that must be applied to it, in order, before this one.
type AdapterLineage struct {
	BaseModel    string   `json:"baseModel"`
	AppliesAfter []string `json:"appliesAfter"`
}

// ReadAdapterLineage reads dir's AdapterLineageFile; ok is false when there is none.
func ReadAdapterLineage(dir string) (l AdapterLineage, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, AdapterLineageFile))
	if errors.Is(err, os.ErrNotExist) {
		return l, false, nil
	}
	if err != nil {
		return l, false, err
	}
	if err := json.Unmarshal(b, &l); err != nil {
		return l, false, fmt.Errorf("adapter %s/%s: %v", dir, AdapterLineageFile, err)
	}
	return l, true, nil
}

// LoadAdapter puts the PEFT adapter of dir on the model (which must have none): the configuration from
// adapter_config.json, the tensors from adapter_model.safetensors (every target's lora_A and lora_B, with the
// shapes of this model's modules, finite). A LoRA run's checkpoint directory works too: it holds the adapter's
// tensors under the model's own names (no base_model.model. prefix) in model.safetensors beside
// adapter_config.json. MergeLoRA then folds it into the weights. Errors name the file and the field or tensor.
func (p *Params) LoadAdapter(dir string) error {
	c, err := ReadAdapterConfig(dir)
	if err != nil {
		return err
	}
	targets, _ := c.Targets()
	known := TargetModules(p.Family)
	for _, t := range targets {
		if !slices.Contains(known, t) {
			return fmt.Errorf("adapter %s/%s: target_modules names %q, which is not a linear layer of the %s architecture "+
				"(known: %s): an adapter for another architecture", dir, AdapterConfigFile, t, p.Family, strings.Join(known, ", "))
		}
	}
	if c.FanInFanOut != (p.Family == GPT2) {
		return fmt.Errorf("adapter %s/%s: field fan_in_fan_out is %v, but the %s model's linear layers need %v",
			dir, AdapterConfigFile, c.FanInFanOut, p.Family, p.Family == GPT2)
	}
	file, prefix := AdapterWeightsFile, PEFTPrefix
	if _, err := os.Stat(filepath.Join(dir, file)); errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(filepath.Join(dir, hf.WeightsFile)); err == nil {
			file, prefix = hf.WeightsFile, "" // a checkpoint of a LoRA run
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return fmt.Errorf("adapter %s: %w", dir, err)
	}
	st, _, err := safetensors.Decode(raw)
	if err != nil {
		return fmt.Errorf("adapter %s/%s: %w", dir, file, err)
	}
	if err := p.AddLoRA(LoRA{Rank: c.R, Alpha: c.LoRAAlpha, Dropout: c.LoRADropout, Targets: targets}, 0); err != nil {
		return fmt.Errorf("adapter %s: %w", dir, err)
	}
	ts := make([]Tensor, 0, len(st))
	for _, t := range st {
		name, ok := strings.CutPrefix(t.Name, prefix)
		if !ok {
			p.lora = nil
			return fmt.Errorf("adapter %s/%s: tensor %q does not start with %s", dir, file, t.Name, prefix)
		}
		ts = append(ts, Tensor{Name: name, Shape: t.Shape, Data: t.Data})
	}
	if err := p.SetAdapterTensors(ts); err != nil {
		p.lora = nil
		return fmt.Errorf("adapter %s/%s: %w", dir, file, err)
	}
	if len(p.lora.modules) == 0 {
		p.lora = nil
		return fmt.Errorf("adapter %s: no module of the model matches target_modules %v", dir, targets)
	}
	return nil
}
