package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/preftune/preftune/trainer/checkpoint"
	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/data"
	"github.com/preftune/preftune/trainer/tokenizer"
)

// ReasonNoTrainingSignal: after rendering, tokenization and truncation no row (SFT) or pair (DPO) is left with
// something to learn, for example every pair's chosen and rejected are identical once truncated.
const ReasonNoTrainingSignal = "NoTrainingSignal"

// contextFor is the context sequences are fitted into: min(the model's positions, training.maxLength).
func contextFor(modelContext, maxLength int) int {
	if maxLength > 0 && maxLength < modelContext {
		return maxLength
	}
	return modelContext
}

// encodeData renders, tokenizes and truncates the train and eval rows with the model's tokenizer and chat
// template (ModelConfig.ChatTemplate, else chatTemplateDir's, else data.BuiltinChatTemplate), once
// per pair into min(model positions, training.maxLength) tokens. The truncation counts (train and eval together)
// go to the result, the warnings and a "truncation" event; rows the template cannot render fail the run
// (InvalidDataset, naming the rows) or, under invalidRows: Skip, are left out and counted in the warnings and the
// "dataset" event's skipped; data with no training signal left fails it (NoTrainingSignal).
func (r *runner) encodeData(rows, eval []data.Row) (trainEx, evalEx []data.Example, err error) {
	cfg := r.cfg
	preference := cfg.Kind == contract.KindDPO
	r.templateDir = r.chatTemplateDir()
	tmpl, origin, err := data.ChatTemplateOf(cfg.Model.ChatTemplate, r.templateDir)
	if err != nil {
		return nil, nil, invalid(reasonOf(err, ReasonModelUnreadable), "chat template: %v", err)
	}
	enc, err := data.NewEncoder(r.tok, tmpl, origin, contextFor(r.policy.ContextLength, cfg.Training.MaxLength))
	if err != nil {
		if cfg.Model.ChatTemplate != "" {
			return nil, nil, &FieldError{Field: "model.chatTemplate", Reason: err.Error()}
		}
		return nil, nil, invalid(ReasonInvalidConfig, "%v", err)
	}
	r.encoder = enc
	if ml := cfg.Training.MaxLength; ml > r.policy.ContextLength {
		r.warnings = append(r.warnings, fmt.Sprintf("training.maxLength %d is above the model's %d positions: sequences "+
			"are fitted into %d tokens", ml, r.policy.ContextLength, r.policy.ContextLength))
	}
	// Rows the template cannot render are invalid rows: they fail the run, or are skipped and counted under
	// invalidRows: Skip. Messages count train and eval together, as the truncation event does.
	tr, _ := enc.Encode(rows, preference)
	ev, _ := enc.Encode(eval, preference)
	all := mergeEncoded(tr, ev)
	if err := all.UnrenderedErr(); err != nil {
		if cfg.Dataset.InvalidRows != contract.InvalidRowsSkip || all.Rows == 0 {
			return nil, nil, invalid(ReasonInvalidDataset, "%s: %v", cfg.DataPath, err)
		}
		r.warnings = append(r.warnings, all.UnrenderedWarning())
		if f := r.datasetEvent; f != nil {
			n, ne := len(all.Unrendered), len(ev.Unrendered)
			f["skipped"], f["valid"] = f["skipped"].(int)+n, f["valid"].(int)-n
			f["train"], f["eval"] = f["train"].(int)-(n-ne), f["eval"].(int)-ne
		}
	}
	r.sendDatasetEvent()
	r.truncation = &all.Truncation
	r.chatRows = all.ChatRows
	if all.ChatRows > 0 && origin == data.TemplateBuiltin && isPretrainedDir(r.sourceDir()) {
		r.warnings = append(r.warnings, fmt.Sprintf("the model has no chat template: %s rendered "+
			"with the trainer's built-in template (<|user|> ... <|assistant|>); set model.chatTemplate (--chat-template) "+
			"to the template the model will be used with", data.Count(all.ChatRows, "conversational row was", "conversational rows were")))
	}
	if w := enc.UnknownTurnMarkersWarning(); all.ChatRows > 0 && w != "" {
		r.warnings = append(r.warnings, w)
	}
	if cfg.Model.ChatTemplate != "" && all.ChatRows == 0 && all.Rows > 0 {
		r.warnings = append(r.warnings, data.UnusedTemplateWarning)
	}
	r.warnings = append(r.warnings, all.Warnings(preference)...)
	r.progress.Event("truncation", map[string]any{"contextLength": all.Truncation.ContextLength,
		"rowsTruncated": all.Truncation.RowsTruncated, "promptsEmptied": all.Truncation.PromptsEmptied,
		"responsesCut": all.Truncation.ResponsesCut, "identicalPairs": all.Truncation.IdenticalPairs,
		"chatTemplate": origin, "longest": all.Longest})
	if len(tr.Examples) > 0 {
		r.progress.Event("example", exampleFields(tr.Lines[0], tr.Examples[0], preference))
	}
	if len(r.warnings) > 0 {
		// Said now, before training, as well as in the result at the end: a long run should not be spent first.
		r.progress.Event("warnings", map[string]any{"warnings": slices.Clone(r.warnings)})
	}
	if why := data.SplitNoSignal(&all, rows, preference); why != "" {
		return nil, nil, invalid(ReasonNoTrainingSignal, "%s: %s", cfg.DataPath, why)
	}
	return tr.Examples, ev.Examples, nil
}

// mergeEncoded adds two results' counts (train and eval) for the report, and their lines; examples are not merged.
func mergeEncoded(a, b *data.EncodeResult) data.EncodeResult {
	m := *a
	m.Examples = nil
	m.Lines = append(append([]int(nil), a.Lines...), b.Lines...)
	t := &m.Truncation
	t.RowsTruncated += b.Truncation.RowsTruncated
	t.PromptsEmptied += b.Truncation.PromptsEmptied
	t.ResponsesCut += b.Truncation.ResponsesCut
	t.IdenticalPairs += b.Truncation.IdenticalPairs
	m.IdenticalLines = append(append([]int(nil), a.IdenticalLines...), b.IdenticalLines...)
	m.EmptiedLines = append(append([]int(nil), a.EmptiedLines...), b.EmptiedLines...)
	m.CutLines = append(append([]int(nil), a.CutLines...), b.CutLines...)
	m.MarkerLines = append(append([]int(nil), a.MarkerLines...), b.MarkerLines...)
	seen := map[string]bool{}
	m.Markers = nil
	for _, x := range append(append([]string(nil), a.Markers...), b.Markers...) {
		if !seen[x] {
			seen[x] = true
			m.Markers = append(m.Markers, x)
		}
	}
	m.Unrendered = append(append([]*data.RowError(nil), a.Unrendered...), b.Unrendered...)
	slices.SortStableFunc(m.Unrendered, func(x, y *data.RowError) int { return x.Line - y.Line })
	m.SplitApart += b.SplitApart
	m.Rows += b.Rows
	m.ChatRows += b.ChatRows
	m.Longest = max(m.Longest, b.Longest)
	return m
}

// chatTemplateDir is the directory whose tokenizer_config.json (or chat_template.jinja) gives the chat template
// when model.chatTemplate is unset: for a DPO run whose reference adapter directory holds a tokenizer_config.json
// (the adapters this trainer writes do, as PEFT's save_pretrained with a tokenizer does), that directory, since it
// carries the template the adapter was trained with (an SFT run's model.chatTemplate); else the starting model's.
func (r *runner) chatTemplateDir() string {
	if d := r.cfg.ReferenceAdapterDir; r.cfg.Kind == contract.KindDPO && d != "" {
		if _, err := os.Stat(filepath.Join(d, tokenizer.ConfigFileName)); err == nil {
			return d
		}
	}
	return r.sourceDir()
}

// recordedChatTemplate is the chat template a run's outputs (final model, checkpoints) must record in their
// tokenizer_config.json, or "" when the directory's own already is the one the rows were rendered with: an
// override (model.chatTemplate), a template taken from the reference adapter's directory (chatTemplateDir), or
// the built-in template used for conversational rows.
func (r *runner) recordedChatTemplate() string {
	if r.encoder == nil {
		return ""
	}
	origin := r.encoder.TemplateOrigin
	fromAdapter := origin == data.TemplateModel && r.templateDir != r.sourceDir()
	if origin != data.TemplateOverride && !fromAdapter && !(origin == data.TemplateBuiltin && r.chatRows > 0) {
		return ""
	}
	return r.encoder.Template.Source()
}

// withChatTemplate returns a tokenizer_config.json (b; nil for none yet) with chat_template set to tmpl, its
// other fields kept.
func withChatTemplate(b []byte, tmpl string) ([]byte, error) {
	cfg := map[string]json.RawMessage{}
	if b != nil {
		if err := json.Unmarshal(b, &cfg); err != nil {
			return nil, err
		}
	}
	raw, err := json.Marshal(tmpl)
	if err != nil {
		return nil, err
	}
	cfg["chat_template"] = raw
	out, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// recordChatTemplate puts recordedChatTemplate into a checkpoint's tokenizer_config.json (Model.Files), so a
// DPO run or a resume from the checkpoint renders as this run did.
func (r *runner) recordChatTemplate(m *checkpoint.Model) error {
	want := r.recordedChatTemplate()
	if want == "" {
		return nil
	}
	b, err := withChatTemplate(m.Files[tokenizer.ConfigFileName], want)
	if err != nil {
		return fmt.Errorf("%s: %w", tokenizer.ConfigFileName, err)
	}
	if m.Files == nil {
		m.Files = map[string][]byte{}
	}
	m.Files[tokenizer.ConfigFileName] = b
	delete(m.Files, tokenizer.ChatTemplateFileName) // read only without chat_template: a stale copy
	return nil
}

// writeChatTemplate records recordedChatTemplate in an output directory's (the model's, or the adapter's)
// tokenizer_config.json (chat_template), keeping the file's other fields, so that a DPO run on this output and
// every downstream tool render as this run did.
func (r *runner) writeChatTemplate(dir string) error {
	want := r.recordedChatTemplate()
	if want == "" {
		return nil
	}
	if c, err := tokenizer.ReadConfig(dir); err == nil && c.ChatTemplate == want {
		return nil
	}
	path := filepath.Join(dir, tokenizer.ConfigFileName)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		b = nil
	case err != nil:
		return err
	}
	out, err := withChatTemplate(b, want)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		return err
	}
	// A chat_template.jinja beside it would be read only without chat_template; remove the stale copy.
	if err := os.Remove(filepath.Join(dir, tokenizer.ChatTemplateFileName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// maxExampleTokens caps the ids the "example" event logs per sequence.
const maxExampleTokens = 1024

// exampleFields describe the first training example as the model sees it (ids, where the response starts) for
// the "example" event: what to look at when a chat template, BOS or EOS seems wrong.
func exampleFields(line int, ex data.Example, preference bool) map[string]any {
	ids := func(s data.Sequence) []int { return s.Tokens[:min(len(s.Tokens), maxExampleTokens)] }
	f := map[string]any{"line": line, "chosenTokens": ids(ex.Chosen), "chosenResponseStart": ex.Chosen.ResponseStart,
		"chosenLength": len(ex.Chosen.Tokens)}
	if preference {
		f["rejectedTokens"], f["rejectedResponseStart"], f["rejectedLength"] = ids(ex.Rejected), ex.Rejected.ResponseStart, len(ex.Rejected.Tokens)
	}
	return f
}
