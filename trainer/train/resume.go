package train

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/preftune/preftune/trainer/checkpoint"
	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/data"
	"github.com/preftune/preftune/trainer/model"
	"github.com/preftune/preftune/trainer/optim"
)

// runIdentity is what must not change between the attempts of one run for a resume to continue the same
// trajectory. It goes into state.json's extra field. (The loader's shuffle depends only on the seed and the epoch,
// so the data cursor is the whole random state of the loop: state.json's rng stays empty.)
type runIdentity struct {
	Kind           contract.Kind       `json:"kind"`
	DatasetDigest  string              `json:"datasetDigest"`
	EvalFraction   float64             `json:"evalFraction"`
	SplitSeed      int64               `json:"splitSeed"`
	SplitBy        string              `json:"splitBy,omitempty"`
	InvalidRows    string              `json:"invalidRows,omitempty"`
	BatchSize      int                 `json:"batchSize"`
	GradAccum      int                 `json:"gradientAccumulationSteps"`
	Seed           int64               `json:"seed"`
	WeightDecay    float64             `json:"weightDecay"`
	GradClipNorm   float64             `json:"gradClipNorm"`
	DPO            *contract.DPOConfig `json:"dpo,omitempty"`
	StartingDigest string              `json:"startingModelDigest,omitempty"`
	// MaxLength and ChatTemplateDigest (sha256 of model.chatTemplate) change the sequences trained on; both are
	// left out when unset, so checkpoints written before they existed still resume.
	MaxLength          int    `json:"maxLength,omitempty"`
	ChatTemplateDigest string `json:"chatTemplateDigest,omitempty"`
	// Adapter and ReferenceAdapterDigest are set for LoRA runs and DPO runs on a merged reference adapter only,
	// so the identity of other runs is what it was.
	Adapter                *contract.AdapterConfig `json:"adapter,omitempty"`
	ReferenceAdapterDigest string                  `json:"referenceAdapterDigest,omitempty"`
}

func (r *runner) identity() runIdentity {
	t := r.cfg.Training
	id := runIdentity{Kind: r.cfg.Kind, DatasetDigest: r.dataDigest, EvalFraction: r.cfg.Dataset.EvalFraction,
		SplitSeed: r.cfg.Dataset.Seed, SplitBy: r.splitBy, InvalidRows: r.cfg.Dataset.InvalidRows, BatchSize: t.BatchSize, GradAccum: t.GradientAccumulationSteps, Seed: t.Seed,
		WeightDecay: t.WeightDecay, GradClipNorm: t.GradClipNorm, DPO: r.cfg.DPO, StartingDigest: r.startDigest,
		MaxLength: t.MaxLength, Adapter: r.cfg.Adapter, ReferenceAdapterDigest: r.refAdapterDigest}
	if tmpl := r.cfg.Model.ChatTemplate; tmpl != "" {
		sum := sha256.Sum256([]byte(tmpl))
		id.ChatTemplateDigest = "sha256:" + hex.EncodeToString(sum[:])
	}
	return id
}

// save writes a checkpoint of the current step.
func (r *runner) save() error {
	m, err := r.checkpointModel()
	if err == nil {
		err = r.recordChatTemplate(&m)
	}
	if err != nil {
		return failed(ReasonCheckpointFailed, "checkpoint: %v", err)
	}
	cursor, _ := json.Marshal(r.loader.Cursor())
	sched, _ := json.Marshal(r.sched)
	extra, _ := json.Marshal(r.identity())
	c := checkpoint.Checkpoint{
		Model:     m,
		Optimizer: checkpoint.OptimizerState(r.opt.State()),
		State: checkpoint.State{Step: r.step, Epoch: r.loader.Epoch(), DataCursor: cursor, Schedule: sched,
			ReferenceDigest: r.ref.digestOrEmpty(), BaseModelDigest: r.baseDigest, Extra: extra},
	}
	dir, err := checkpoint.Save(r.cfg.OutputDir, c, 0)
	if err != nil {
		return failed(ReasonCheckpointFailed, "%v", err)
	}
	uri, err := r.publishCheckpoint(r.ioCtx, dir)
	if err != nil {
		return err
	}
	r.lastSaved = r.step
	r.progress.Event("checkpoint", map[string]any{"step": r.step, "dir": uri})
	r.pruneCheckpoints(r.ioCtx)
	return nil
}

// resume continues from the newest complete checkpoint under the output, if any: weights, optimiser moments and
// step count, the loader's cursor and the step. Incomplete or damaged checkpoints are passed over (and reported).
func (r *runner) resume() error {
	c, look, err := checkpoint.LoadLatest(r.cfg.OutputDir)
	if err != nil {
		return failed(ReasonCheckpointFailed, "looking for checkpoints: %v", err)
	}
	for _, s := range look.Skipped {
		r.progress.Event("checkpoint-skipped", map[string]any{"dir": r.uriOf(s.Dir), "problem": s.Problem.Error()})
	}
	if c == nil {
		return nil
	}
	st := c.State
	where := r.uriOf(look.Dir)
	if err := r.checkBase(where, st); err != nil {
		return err
	}
	if err := sameJSON(st.Extra, r.identity()); err != nil {
		return invalid(ReasonInvalidConfig, "output.uri holds checkpoint %s of a different run: %v (a run resumes "+
			"from its output's newest checkpoint; give a new output.uri to start another run)", where, err)
	}
	if err := sameJSON(st.Schedule, r.sched); err != nil {
		return invalid(ReasonInvalidConfig, "checkpoint %s has another learning-rate schedule: %v (a run resumes "+
			"from its output's newest checkpoint; give a new output.uri to start another run)", where, err)
	}
	if st.ReferenceDigest != r.ref.digestOrEmpty() {
		return invalid(ReasonReferenceUnreadable, "checkpoint %s was trained against other reference log-probs (%s, now %s): did the reference model change?",
			where, st.ReferenceDigest, r.ref.digestOrEmpty())
	}
	if st.Step > r.total {
		return invalid(ReasonInvalidConfig, "checkpoint %s is at step %d, past the run's %d steps", where, st.Step, r.total)
	}
	byName := checkpoint.ByName(c.Tensors)
	trainable := r.policy.TrainableNames()
	if len(byName) != len(trainable) {
		return failed(ReasonCheckpointFailed, "checkpoint %s has %d tensors, the model %d", where, len(byName), len(trainable))
	}
	for _, name := range trainable {
		t, ok := byName[name]
		v, _ := r.policy.Float32s(name)
		if !ok || len(t.Data) != len(v) {
			return failed(ReasonCheckpointFailed, "checkpoint %s: tensor %s is missing or has another size", where, name)
		}
		if err := model.CheckFinite(name, t.Data); err != nil {
			return invalid(ReasonCheckpointFailed, "checkpoint %s: %v", where, err)
		}
		copy(v, t.Data)
	}
	if err := r.opt.LoadState(optim.State(c.Optimizer)); err != nil {
		return failed(ReasonCheckpointFailed, "checkpoint %s: %v", where, err)
	}
	var cur data.Cursor
	if err := json.Unmarshal(st.DataCursor, &cur); err != nil {
		return failed(ReasonCheckpointFailed, "checkpoint %s: data cursor: %v", where, err)
	}
	if err := r.loader.Seek(cur); err != nil {
		return failed(ReasonCheckpointFailed, "checkpoint %s: %v", where, err)
	}
	r.step, r.resumedFrom, r.lastSaved = st.Step, st.Step, st.Step
	r.progress.Event("resumed", map[string]any{"step": st.Step, "dir": where})
	return nil
}

// sameJSON compares a stored JSON object with the current value, naming the first differing key.
func sameJSON(stored json.RawMessage, now any) error {
	cur, err := json.Marshal(now)
	if err != nil {
		return err
	}
	var a, b map[string]any
	if json.Unmarshal(stored, &a) != nil || json.Unmarshal(cur, &b) != nil {
		if !bytes.Equal(bytes.TrimSpace(stored), cur) {
			return fmt.Errorf("stored %s, now %s", stored, cur)
		}
		return nil
	}
	for k, v := range b {
		if fmt.Sprint(a[k]) != fmt.Sprint(v) {
			return fmt.Errorf("%s was %s, now %s", k, jsonText(a[k]), jsonText(v))
		}
	}
	for k, v := range a {
		if _, ok := b[k]; !ok {
			return fmt.Errorf("%s was %s, now unset", k, jsonText(v))
		}
	}
	return nil
}

// jsonText writes a decoded JSON value as JSON ({"rank":8}, not Go's map[rank:8]).
func jsonText(v any) string {
	if v == nil {
		return "unset"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
