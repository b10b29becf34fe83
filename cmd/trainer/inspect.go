package main

// `inspect-dataset`: read a dataset as a run would, report on it (stdout and the termination message), and exit
// with ExitInvalidInput when a run could not use it.

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/data"
)

func init() {
	register("inspect-dataset", "validate a dataset and report counts, lengths, invalid rows and warnings",
		func(args []string) int { return inspectDataset(args, os.Stdout, os.Stderr) })
}

// maxInspectErrorBytes keeps an error's message well inside the termination message's limit.
const maxInspectErrorBytes = 2048

func inspectDataset(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("inspect-dataset", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		configPath, termLog string
		ic                  = contract.InspectConfig{APIVersion: contract.APIVersion, Kind: contract.KindInspect}
	)
	fs.StringVar(&configPath, "config", "", "inspection configuration (contract.InspectConfig JSON); excludes the dataset flags")
	fs.StringVar(&termLog, "termination-log", "", "write the termination message here (default "+contract.TerminationMessagePath+" when it exists)")
	fs.StringVar(&ic.Dataset.URI, "data", "", "dataset file (path or file:// URI)")
	fs.StringVar(&ic.Dataset.Format, "format", data.FormatAuto, "dataset format: auto, sft, "+strings.Join(data.PreferenceFormats, ", ")+", "+strings.Join(data.SFTFormats, ", "))
	fs.StringVar(&ic.Dataset.PromptField, "prompt-field", "", "key of the prompt field (default prompt)")
	fs.StringVar(&ic.Dataset.ChosenField, "chosen-field", "", "key of the chosen field (default chosen)")
	fs.StringVar(&ic.Dataset.RejectedField, "rejected-field", "", "key of the rejected field (default rejected)")
	// The runs' default, so that inspecting a file shows the split a run on it makes (and its warnings).
	fs.Float64Var(&ic.Dataset.EvalFraction, "eval-fraction", defaultEvalFraction, "share of rows held out for evaluation (grouped by prompt where possible; 0: none)")
	fs.Int64Var(&ic.Dataset.Seed, "seed", 0, "seed of the train/eval split")
	fs.StringVar(&ic.Dataset.InvalidRows, "invalid-rows", contract.InvalidRowsReject, "what invalid rows do: Reject fails the dataset, Skip leaves them out (counted and named)")
	fs.StringVar(&ic.Dataset.Digest, "digest", "", "fail unless the file still has this sha256:<hex> digest")
	fs.IntVar(&ic.MaxInvalidRows, "max-invalid-rows", data.DefaultMaxInvalidRows, "how many invalid rows to list (all are counted)")
	modelURI := fs.String("model", "", "model directory or URI (file://, s3://, gs://, azblob://, hf://) whose tokenizer and chat template "+
		"the rows are inspected with: token lengths, truncation counts, the first rows as the model sees them")
	fs.IntVar(&ic.MaxLength, "max-length", 0, "with --model: the run's training.maxLength for the truncation counts (0: the model's positions)")
	templateFile := fs.String("chat-template", "", "with --model: the Jinja chat template file the run overrides the model's with")
	showRows := fs.Int("show-rows", 3, "with --model: how many of the first rows to print (stderr) as the model sees them")
	if err := fs.Parse(args); err != nil {
		return contract.ExitUsage
	}
	usageErr := func(msg string) int {
		fmt.Fprintf(stderr, "inspect-dataset: %s\n", msg)
		fs.Usage()
		return contract.ExitUsage
	}
	if fs.NArg() > 0 {
		return usageErr(fmt.Sprintf("unexpected argument %q", fs.Arg(0)))
	}
	if termLog == "" {
		termLog = defaultInspectTerminationLog()
	}
	fail := func(reason string, code int, err error) int {
		msg := inspectTruncate(err.Error(), maxInspectErrorBytes)
		fmt.Fprintf(stderr, "inspect-dataset: %s: %s\n", reason, msg)
		writeInspectTermination(termLog, contract.TerminationMessage{Error: &contract.Error{Reason: reason, Message: msg}}, stderr)
		return code
	}
	if configPath != "" {
		var mixed []string
		fs.Visit(func(f *flag.Flag) {
			if f.Name != "config" && f.Name != "termination-log" {
				mixed = append(mixed, "--"+f.Name)
			}
		})
		if len(mixed) > 0 {
			return usageErr(fmt.Sprintf("--config excludes %s", strings.Join(mixed, ", ")))
		}
		var err error
		if ic, err = readInspectConfig(configPath); err != nil {
			return fail("InvalidConfig", contract.ExitInvalidInput, err)
		}
	} else if ic.Dataset.URI == "" {
		return usageErr("give --config or --data")
	} else if *modelURI != "" {
		tmpl, err := readChatTemplateFile(*templateFile)
		if err != nil {
			return usageErr(err.Error())
		}
		ic.Model = &contract.ModelConfig{From: *modelURI, ChatTemplate: tmpl}
	} else if *templateFile != "" || ic.MaxLength != 0 {
		return usageErr("--chat-template and --max-length need --model")
	}
	path, err := inspectDataPath(ic.Dataset.URI)
	if err != nil {
		return fail("InvalidConfig", contract.ExitInvalidInput, err)
	}
	d, err := data.ReadFile(path, data.OptionsOf(ic.Dataset))
	switch {
	case errors.Is(err, iofs.ErrNotExist), errors.Is(err, syscall.EISDIR):
		return fail("InvalidDataset", contract.ExitInvalidInput, err)
	case err != nil && isInspectIOError(err):
		// A read that failed for another reason (I/O, permissions on a volume being mounted) may work on retry.
		return fail("DatasetUnreadable", contract.ExitFailed, err)
	case err != nil:
		return fail("InvalidDataset", contract.ExitInvalidInput, err)
	}
	if err := d.CheckDigest(ic.Dataset.Digest); err != nil {
		return fail("DatasetChanged", contract.ExitInvalidInput, err)
	}
	rep, err := data.Report(d, ic.Dataset, ic.MaxInvalidRows)
	if err != nil {
		return fail("InvalidConfig", contract.ExitInvalidInput, err)
	}
	noSignal := ""
	// Rows the chat template cannot render are invalid rows: under Skip they are counted, listed and left out as a
	// run leaves them out; under Reject the report lists them and the dataset fails.
	var renderErr error
	if ic.Model != nil {
		code, why, res, err := inspectWithModel(ic, d, &rep, *showRows, stderr)
		if err != nil {
			return fail(why, code, err)
		}
		noSignal = why
		if err := data.AddInvalidRows(&rep, d, ic.Dataset, res.UnrenderedRows(), ic.MaxInvalidRows); err != nil {
			renderErr = err
		} else if ic.Dataset.InvalidRows != contract.InvalidRowsSkip {
			renderErr = res.UnrenderedErr()
		}
	}
	out, _ := json.MarshalIndent(rep, "", "  ")
	fmt.Fprintf(stdout, "%s\n", out)
	writeInspectTermination(termLog, contract.TerminationMessage{Dataset: &rep}, stderr)
	if _, err := d.CheckInvalidRows(ic.Dataset.InvalidRows); err != nil {
		fmt.Fprintf(stderr, "inspect-dataset: %v\n", err)
		return contract.ExitInvalidInput
	}
	if renderErr != nil {
		fmt.Fprintf(stderr, "inspect-dataset: InvalidDataset: %v\n", renderErr)
		return contract.ExitInvalidInput
	}
	if noSignal != "" {
		fmt.Fprintf(stderr, "inspect-dataset: NoTrainingSignal: %s\n", noSignal)
		return contract.ExitInvalidInput
	}
	return contract.ExitOK
}

// isInspectIOError tells an operating-system failure (worth a retry) from data that can never be read.
func isInspectIOError(err error) bool {
	var pe *iofs.PathError
	return errors.As(err, &pe)
}

func readInspectConfig(path string) (contract.InspectConfig, error) {
	var ic contract.InspectConfig
	b, err := os.ReadFile(path)
	if err != nil {
		return ic, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ic); err != nil {
		return ic, fmt.Errorf("%s: %v", path, err)
	}
	if ic.APIVersion != contract.APIVersion {
		return ic, fmt.Errorf("%s: field apiVersion is %q, this trainer reads %q", path, ic.APIVersion, contract.APIVersion)
	}
	if ic.Kind != contract.KindInspect {
		return ic, fmt.Errorf("%s: field kind is %q, want %q", path, ic.Kind, contract.KindInspect)
	}
	if ic.Dataset.URI == "" {
		return ic, fmt.Errorf("%s: field dataset.uri is empty", path)
	}
	if ic.Model != nil && ic.Model.From == "" {
		return ic, fmt.Errorf("%s: field model.from is empty: the inspection needs the model's directory or URI for its tokenizer", path)
	}
	if ic.MaxLength < 0 || ic.MaxLength == 1 {
		return ic, fmt.Errorf("%s: field maxLength is %d, want 0 (the model's positions) or >= 2", path, ic.MaxLength)
	}
	if ic.MaxInvalidRows < 0 {
		return ic, fmt.Errorf("%s: field maxInvalidRows is %d, must not be negative", path, ic.MaxInvalidRows)
	}
	return ic, nil
}

// inspectDataPath turns a dataset URI into a local path: a plain path, or file:///path (file://localhost/path),
// read the way the training commands read dataset.uri so that one configuration means the same file to both.
func inspectDataPath(uri string) (string, error) {
	if !strings.Contains(uri, "://") {
		return filepath.Clean(uri), nil
	}
	u, err := url.Parse(uri)
	switch {
	case err != nil:
		return "", fmt.Errorf("dataset.uri %q: %v", uri, err)
	case u.Scheme != "file":
		return "", fmt.Errorf("dataset.uri %q: scheme %q is not supported (use file:// or a plain path)", uri, u.Scheme)
	case u.Host != "" && u.Host != "localhost":
		return "", fmt.Errorf("dataset.uri %q names host %q: a file URI must be local (file:///path)", uri, u.Host)
	case u.Path == "":
		return "", fmt.Errorf("dataset.uri %q has no path", uri)
	}
	return filepath.Clean(u.Path), nil
}

// defaultInspectTerminationLog is the kubelet's file when it is there to write to (inside a pod), else nothing.
func defaultInspectTerminationLog() string {
	f, err := os.OpenFile(contract.TerminationMessagePath, os.O_WRONLY, 0)
	if err != nil {
		return ""
	}
	f.Close()
	return contract.TerminationMessagePath
}

func writeInspectTermination(path string, msg contract.TerminationMessage, stderr io.Writer) {
	if path == "" {
		return
	}
	b, err := json.Marshal(msg)
	if err == nil && len(b) > contract.MaxTerminationMessageBytes {
		err = fmt.Errorf("message of %d bytes exceeds %d", len(b), contract.MaxTerminationMessageBytes)
	}
	if err == nil {
		err = os.WriteFile(path, b, 0o644)
	}
	if err != nil {
		fmt.Fprintf(stderr, "inspect-dataset: writing the termination message to %s: %v\n", path, err)
	}
}

// inspectTruncate cuts s to at most n bytes without splitting a character.
func inspectTruncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}

// defaultEvalFraction is the share of rows sft, dpo and inspect-dataset hold out unless told otherwise (a
// PreferenceDataset's spec.evalFraction defaults to the same).
const defaultEvalFraction = 0.1
