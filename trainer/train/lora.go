package train

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/preftune/preftune/trainer/checkpoint"
	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/model"
	"github.com/preftune/preftune/trainer/tokenizer"
)

// LoRA runs (spec.adapter). The starting model (SFT: model.from or a new model; DPO: reference.modelURI, with
// reference.adapterURI merged in when set) is the frozen base. A fresh adapter goes on it (model.Params.AddLoRA:
// PEFT's initialisation, B = 0), the optimiser holds the adapter's tensors only, and the DPO reference is the
// base with the adapter off (model.Params.BaseLogProbs), equal to the policy at step 0. Checkpoints hold the
// adapter and its AdamW state and, in state.json, the base's digest: a resume onto another base is refused. The
// run writes <out>/adapter/ in PEFT's layout and, unless output.mergedModel is false, <out>/model/ with the
// adapter merged.

// adapterDir is the adapter's directory under the output.
const adapterDir = "adapter"

// setupAdapter merges reference.adapterURI into a DPO run's starting model and puts the run's adapter on the
// policy. Unknown target modules and unusable adapters are invalid input.
func (r *runner) setupAdapter() error {
	if dir := r.cfg.ReferenceAdapterDir; r.cfg.Kind == contract.KindDPO && dir != "" {
		if err := r.policy.LoadAdapter(dir); err != nil {
			return invalid(ReasonReferenceUnreadable, "%s: %v", r.refAdapterField(), err)
		}
		r.policy.MergeLoRA()
		d, err := fileDigest(filepath.Join(dir, model.AdapterWeightsFile))
		if err != nil {
			return failed(ReasonReferenceUnreadable, "%s: %v", r.refAdapterField(), err)
		}
		r.refAdapterDigest = d
		r.progress.Event("reference-adapter-merged", map[string]any{"uri": r.cfg.Reference.AdapterURI, "commit": r.refAdapterCommit, "digest": d})
	}
	a := r.cfg.Adapter
	if a == nil {
		return nil
	}
	// The base: the starting weights' digest (and the merged reference adapter's), or for a model built from
	// scratch a digest of its weights.
	switch {
	case r.startDigest == "":
		r.baseDigest = r.policy.BaseDigest()
	case r.refAdapterDigest != "":
		h := sha256.Sum256([]byte(r.startDigest + "+" + r.refAdapterDigest))
		r.baseDigest = "sha256:" + hex.EncodeToString(h[:])
	default:
		r.baseDigest = r.startDigest
	}
	err := r.policy.AddLoRA(model.LoRA{Rank: a.Rank, Alpha: a.Alpha, Dropout: a.Dropout, Targets: a.TargetModules},
		uint64(r.cfg.Training.Seed))
	var te *model.TargetError
	if errors.As(err, &te) {
		return &FieldError{Field: "adapter", Reason: te.Error()}
	}
	if err != nil {
		return failed(ReasonTrainingFailed, "adapter: %v", err)
	}
	if r.cfg.Kind == contract.KindSFT && r.cfg.Model.Architecture != nil {
		r.warnings = append(r.warnings, "an adapter on a new model (model.architecture): its random weights stay frozen "+
			"and are saved nowhere but in the merged model/, the output to use; adapters are meant for a pretrained "+
			"model (model.from)")
	}
	if n, total := r.policy.NumTrainable(), r.policy.NumParams(); n >= total/2 {
		r.warnings = append(r.warnings, fmt.Sprintf("adapter.rank %d trains %d parameters, %.0f%% of the model's %d: "+
			"the rank is near the layers' widths, so the adapter saves little over full fine-tuning", a.Rank, n,
			100*float64(n)/float64(total), total))
	}
	r.progress.Event("adapter", map[string]any{"rank": a.Rank, "alpha": a.Alpha, "dropout": a.Dropout,
		"targetModules": targetsOrAll(a.TargetModules, r.policy.Family), "adaptedModules": len(r.policy.LoRAModules()), "trainableParameterCount": int64(r.policy.NumTrainable()),
		"parameterCount": int64(r.policy.NumParams()), "baseModelDigest": r.baseDigest})
	return nil
}

// checkReferenceAdapter reads a DPO run's reference adapter's adapter_config.json (model.ReadAdapterConfig: a
// plain LoRA adapter) before the base model is loaded, so that a directory or Hub repository that is not one fails
// at once. Its tensors are checked against the model when it is merged (setupAdapter).
func (r *runner) checkReferenceAdapter() error {
	if dir := r.cfg.ReferenceAdapterDir; r.cfg.Kind == contract.KindDPO && dir != "" {
		if _, err := model.ReadAdapterConfig(dir); err != nil {
			return invalid(ReasonReferenceUnreadable, "%s: %v", r.refAdapterField(), err)
		}
	}
	return nil
}

// refAdapterField names reference.adapterURI in errors: with the URI as given (and the Hub commit it resolved to)
// when the adapter was downloaded, since the directory the error names is then a scratch copy.
func (r *runner) refAdapterField() string {
	const field = "reference.adapterURI"
	u := r.cfg.Reference.AdapterURI
	switch {
	case r.refAdapterCommit != "":
		return fmt.Sprintf("%s %s (commit %s)", field, u, r.refAdapterCommit)
	case r.io.scratch != "" && strings.HasPrefix(r.cfg.ReferenceAdapterDir, r.io.scratch+string(filepath.Separator)):
		return field + " " + u
	}
	return field
}

// dropoutSeed is the seed of the adapter's dropout masks for micro-batch k of optimiser step `step` (counted
// from 0): a function of the run's seed and the position only, so a resumed run draws the masks the
// uninterrupted one would have drawn.
func dropoutSeed(seed int64, step, k int) uint64 {
	var buf [24]byte
	binary.LittleEndian.PutUint64(buf[0:], uint64(seed))
	binary.LittleEndian.PutUint64(buf[8:], uint64(step))
	binary.LittleEndian.PutUint64(buf[16:], uint64(k))
	h := sha256.Sum256(buf[:])
	return binary.LittleEndian.Uint64(h[:8])
}

// checkpointModel is what a checkpoint holds as its model: every weight for full fine-tuning; with an adapter,
// the adapter's tensors only (its names, module + .lora_A.weight / .lora_B.weight) beside the base's config.json
// and tokenizer files and the adapter's adapter_config.json.
func (r *runner) checkpointModel() (checkpoint.Model, error) {
	if _, ok := r.policy.LoRAConfig(); !ok {
		return modelFiles(r.policy, r.tok, r.sourceDir())
	}
	m, err := modelMeta(r.policy, r.tok, r.sourceDir())
	if err != nil {
		return m, err
	}
	for _, t := range r.policy.AdapterTensors() {
		m.Tensors = append(m.Tensors, checkpoint.Tensor{Name: t.Name, Shape: t.Shape, Data: t.Data})
	}
	tmp, err := os.MkdirTemp("", "preftune-adapter-")
	if err != nil {
		return m, err
	}
	defer os.RemoveAll(tmp)
	if _, err := r.policy.SaveAdapter(tmp, r.baseName()); err != nil {
		return m, err
	}
	cfg, err := os.ReadFile(filepath.Join(tmp, model.AdapterConfigFile))
	if err != nil {
		return m, err
	}
	if m.Files == nil {
		m.Files = map[string][]byte{}
	}
	m.Files[model.AdapterConfigFile] = cfg
	return m, nil
}

// baseName is the adapter's base_model_name_or_path: the starting model's URI as given, a file:// URI as its path
// (what PEFT's from_pretrained reads); "" from scratch.
func (r *runner) baseName() string {
	u := r.cfg.Model.From
	if r.cfg.Kind == contract.KindDPO && r.cfg.Reference != nil {
		u = r.cfg.Reference.ModelURI
	}
	if strings.HasPrefix(u, "file://") {
		if p, err := localPath(u); err == nil {
			return p
		}
	}
	return u
}

// checkBase refuses a checkpoint whose adapter belongs to another base model, or that holds an adapter when the
// run trains none (and the reverse).
func (r *runner) checkBase(where string, st checkpoint.State) error {
	switch {
	case st.BaseModelDigest == r.baseDigest:
		return nil
	case r.baseDigest == "":
		return invalid(ReasonCheckpointFailed, "checkpoint %s holds a LoRA adapter (of base model %s), but this run trains "+
			"every weight (no adapter): it cannot resume from it", where, st.BaseModelDigest)
	case st.BaseModelDigest == "":
		return invalid(ReasonCheckpointFailed, "checkpoint %s holds a whole model, but this run trains a LoRA adapter: "+
			"it cannot resume from it", where)
	}
	return invalid(ReasonCheckpointFailed, "checkpoint %s holds a LoRA adapter trained on base model %s, but this run's "+
		"base model is %s: an adapter only fits the weights it was trained on, so it is not resumed", where,
		st.BaseModelDigest, r.baseDigest)
}

// finishAdapter writes <out>/adapter/ (PEFT's layout) and uploads it for a remote output; it returns its URI.
// Beside adapter_config.json and adapter_model.safetensors it writes the base model's tokenizer files with the
// chat template the run rendered its rows with (writeChatTemplate), as PEFT's save_pretrained does when given the
// tokenizer, so that the adapter alone (a run with output.mergedModel false) keeps an override template.
func (r *runner) finishAdapter(ctx context.Context) (string, error) {
	dir := filepath.Join(r.cfg.OutputDir, adapterDir)
	if _, err := r.policy.SaveAdapter(dir, r.baseName()); err != nil {
		return "", failed(ReasonTrainingFailed, "saving the adapter: %v", err)
	}
	if err := r.writeAdapterTokenizer(dir); err != nil {
		return "", failed(ReasonTrainingFailed, "saving the adapter's tokenizer files: %v", err)
	}
	if r.refAdapterDigest != "" { // a DPO run whose reference adapter was merged in
		u := r.cfg.Reference.AdapterURI
		// PEFT's adapter_config.json names one base; this adapter was trained on that base with another adapter
		// merged in, which the file cannot say: a side file records it, and generate warns when it is missed.
		orUse := ", or use model/, the merged result"
		if !r.mergedModel() {
			orUse = " (output.mergedModel is false: no merged model/ was written)"
		}
		r.warnings = append(r.warnings, fmt.Sprintf("adapter/ was trained on the reference with reference.adapterURI %s "+
			"merged in, while its base_model_name_or_path names the base model alone: apply that adapter first, then "+
			"this one (generate --adapter %s --adapter <this adapter>)%s; %s records it", u, u, orUse, model.AdapterLineageFile))
		b, err := json.MarshalIndent(model.AdapterLineage{BaseModel: r.baseName(), AppliesAfter: []string{u}}, "", "  ")
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, model.AdapterLineageFile), append(b, '\n'), 0o644)
		}
		if err != nil {
			return "", failed(ReasonTrainingFailed, "saving the adapter's lineage: %v", err)
		}
	}
	if r.io.out == nil {
		return fileURI(dir), nil
	}
	if err := r.io.out.UploadDir(ctx, dir, adapterDir, model.AdapterWeightsFile); err != nil {
		return "", failed(ReasonTrainingFailed, "uploading the adapter: %v", err)
	}
	return r.io.out.URI(adapterDir), nil
}

// adapterTokenizerFiles are the tokenizer files an adapter directory gets from its base (hf.TokenizerFiles without
// generation_config.json, which belongs to the model).
var adapterTokenizerFiles = []string{tokenizer.FileName, tokenizer.ConfigFileName, "special_tokens_map.json", tokenizer.ChatTemplateFileName}

// writeAdapterTokenizer writes the base's tokenizer files (modelMeta's: copied from the source directory, or the
// byte tokenizer's) into the adapter directory dir, then the run's chat template into its tokenizer_config.json.
func (r *runner) writeAdapterTokenizer(dir string) error {
	m, err := modelMeta(r.policy, r.tok, r.sourceDir())
	if err != nil {
		return err
	}
	files := map[string][]byte{tokenizer.FileName: m.Tokenizer}
	for name, b := range m.Files {
		files[name] = b
	}
	for _, name := range adapterTokenizerFiles {
		if b, ok := files[name]; ok && len(b) > 0 {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				return err
			}
		}
	}
	return r.writeChatTemplate(dir)
}

// mergedModel says whether a run with an adapter writes model/ (output.mergedModel absent or true).
func (r *runner) mergedModel() bool {
	return r.cfg.Output.MergedModel == nil || *r.cfg.Output.MergedModel
}

// targetsOrAll is the adapter's target module names, the family's every projection when none were given.
func targetsOrAll(targets []string, f model.Family) []string {
	if len(targets) == 0 {
		return model.TargetModules(f)
	}
	return targets
}
