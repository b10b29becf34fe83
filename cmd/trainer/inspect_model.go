package main

// `inspect-dataset --model`: the rows through the model's tokenizer and chat template, as a run would see them.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/preftune/preftune/trainer/checkpoint"
	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/data"
	"github.com/preftune/preftune/trainer/hf"
	"github.com/preftune/preftune/trainer/storage"
	"github.com/preftune/preftune/trainer/tokenizer"
	"github.com/preftune/preftune/trainer/train"
)

// inspectModelFiles are the files of a model directory the inspection reads (never the weights).
var inspectModelFiles = append([]string{checkpoint.ConfigFile}, hf.TokenizerFiles...)

// inspectWithModel adds to rep what the model makes of the rows (ic.Model, ic.MaxLength): token lengths
// (rep.Tokens), the truncation counts for the run's context (rep.Truncation), warnings (truncation, the
// template's control markers in the rows' content), and prints the first showRows rows as the model sees them to
// out. Rows the chat template cannot render are left to the caller in unrendered (EncodeResult.Unrendered): they
// are invalid rows. On failure it returns the exit code, the reason and the error; otherwise code 0 and, when no
// row or pair would be left with a training signal, why (the run would fail with NoTrainingSignal).
func inspectWithModel(ic contract.InspectConfig, d *data.Dataset, rep *contract.DatasetReport, showRows int, out io.Writer) (code int, why string, unrendered *data.EncodeResult, err error) {
	dir, cleanup, err := inspectModelDir(context.Background(), ic.Model.From)
	if err != nil {
		return contract.ExitInvalidInput, "ModelUnreadable", nil, fmt.Errorf("model %s: %w", ic.Model.From, err)
	}
	defer cleanup()
	if err := train.NotAModel(dir); err != nil {
		return contract.ExitInvalidInput, "ModelUnreadable", nil, err
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return contract.ExitInvalidInput, "ModelUnreadable", nil, fmt.Errorf("model %s: %w", ic.Model.From, err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, checkpoint.ConfigFile))
	if err != nil {
		return contract.ExitInvalidInput, "ModelUnreadable", nil, fmt.Errorf("model %s: %w", ic.Model.From, err)
	}
	hc, err := hf.ParseConfig(raw)
	if err != nil {
		reason := contract.ReasonModelUnreadable
		if ue := (*hf.UnsupportedError)(nil); errors.As(err, &ue) {
			reason = contract.ReasonModelUnsupported // as sft and dpo say it
		}
		return contract.ExitInvalidInput, reason, nil, fmt.Errorf("model %s: %w", ic.Model.From, err)
	}
	ctxLen := hc.MaxPositionEmbeddings
	if ic.MaxLength > 0 && ic.MaxLength < ctxLen {
		ctxLen = ic.MaxLength
	}
	if ic.MaxLength < 0 || ic.MaxLength == 1 {
		return contract.ExitInvalidInput, "InvalidConfig", nil, fmt.Errorf("maxLength is %d, want 0 or >= 2", ic.MaxLength)
	}
	src, origin, err := data.ChatTemplateOf(ic.Model.ChatTemplate, dir)
	if err != nil {
		return contract.ExitInvalidInput, "ModelUnreadable", nil, err
	}
	enc, err := data.NewEncoder(tok, src, origin, ctxLen)
	if err != nil {
		return contract.ExitInvalidInput, "InvalidConfig", nil, err
	}
	pref := d.Preference()
	res, err := enc.Encode(d.Rows, pref)
	if err != nil && len(res.Unrendered) == 0 {
		return contract.ExitInvalidInput, "InvalidDataset", nil, err
	}
	rep.Tokens = &res.TokenLengths
	rep.Truncation = &res.Truncation
	if _, ok := tok.(*tokenizer.Pretrained); ok && res.ChatRows > 0 && origin == data.TemplateBuiltin {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("the model has no chat template: %s "+
			"rendered with the trainer's built-in template; give the model's with --chat-template",
			data.Count(res.ChatRows, "conversational row is", "conversational rows are")))
	}
	if w := enc.UnknownTurnMarkersWarning(); res.ChatRows > 0 && w != "" {
		rep.Warnings = append(rep.Warnings, w)
	}
	if ic.Model.ChatTemplate != "" && res.ChatRows == 0 && res.Rows > 0 {
		rep.Warnings = append(rep.Warnings, data.UnusedTemplateWarning)
	}
	if ic.MaxLength > hc.MaxPositionEmbeddings {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("maxLength %d is above the model's %d positions: sequences are "+
			"fitted into %d tokens", ic.MaxLength, hc.MaxPositionEmbeddings, hc.MaxPositionEmbeddings))
	}
	rep.Warnings = append(rep.Warnings, res.Warnings(pref)...)
	// As the run decides: its training split must keep a signal (the messages count train and eval together).
	split, err := data.Split(d.Rows, ic.Dataset.EvalFraction, ic.Dataset.Seed)
	if err != nil {
		return contract.ExitInvalidInput, "InvalidConfig", nil, fmt.Errorf("dataset.evalFraction: %w", err)
	}
	why = data.SplitNoSignal(res, split.Train, pref)
	if why != "" {
		rep.Warnings = append(rep.Warnings, why)
	}
	fmt.Fprintf(out, "inspect-dataset: %d rows through %s's tokenizer (%s) and chat template (%s), context %d tokens; %s marks where the response (the trained part) starts\n",
		res.Rows, ic.Model.From, tok.Name(), origin, ctxLen, data.BoundaryMark)
	shown := 0
	for _, r := range d.Rows {
		if shown == showRows {
			break
		}
		c, rj, err := enc.Preview(r, pref)
		var re *data.RowError
		if errors.As(err, &re) {
			continue // an invalid row, reported as one
		}
		if err != nil {
			return contract.ExitInvalidInput, "InvalidDataset", nil, err
		}
		shown++
		fmt.Fprintf(out, "--- line %d, chosen:\n%s\n", r.Line, c)
		if pref {
			fmt.Fprintf(out, "--- line %d, rejected:\n%s\n", r.Line, rj)
		}
	}
	return 0, why, res, nil
}

// inspectModelDir makes a local directory of a model's tokenizer files and config.json: a plain path or
// file:// URI is used in place; a store URI (s3://, gs://, azblob://) or hf://org/name[@revision] ($HF_ENDPOINT,
// $HF_TOKEN) has those files, never the weights, downloaded into a temporary directory, which cleanup removes.
func inspectModelDir(ctx context.Context, uri string) (dir string, cleanup func(), err error) {
	none := func() {}
	if !strings.Contains(uri, "://") {
		return filepath.Clean(uri), none, nil
	}
	if strings.HasPrefix(uri, "file://") {
		u, err := url.Parse(uri)
		if err != nil || (u.Host != "" && u.Host != "localhost") || u.Path == "" {
			return "", none, fmt.Errorf("%q is not a local file:///path URI", uri)
		}
		return filepath.Clean(u.Path), none, nil
	}
	tmp, err := os.MkdirTemp("", "preftune-inspect-*")
	if err != nil {
		return "", none, err
	}
	cleanup = func() { os.RemoveAll(tmp) }
	if storage.IsHub(uri) {
		hub := storage.HubFromEnv()
		hub.SkipWeights = true
		if _, err := hub.Download(ctx, uri, tmp); err != nil {
			cleanup()
			return "", none, err
		}
		return tmp, cleanup, nil
	}
	l, err := storage.Open(ctx, uri)
	if err != nil {
		cleanup()
		return "", none, err
	}
	defer l.Close()
	for _, name := range inspectModelFiles {
		if err := l.DownloadFile(ctx, name, filepath.Join(tmp, name)); err != nil && !storage.IsNotExist(err) {
			cleanup()
			return "", none, fmt.Errorf("%s: %w", name, err)
		}
	}
	return tmp, cleanup, nil
}
