package main

// The parts shared by `sft` and `dpo`: the run configuration from --config or from flags, signal handling, the
// termination message and the exit code.

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/train"
)

// runFlags are the flags both training commands take.
type runFlags struct {
	fs             *flag.FlagSet
	config         string
	terminationLog string
	rc             contract.RunConfig
	// finish completes rc from command-specific flags after parsing (flag form only).
	finish func()
	// newModelFlags are the new-model flags (--context, --layers, ...) given with sft --from: refused, as the
	// model directory's config.json sets them.
	newModelFlags []string
	minLR         *float64
	// chatTemplateFile is --chat-template: its text becomes rc.Model.ChatTemplate.
	chatTemplateFile string
	lora             *loraFlags
}

func newRunFlags(kind contract.Kind) *runFlags {
	f := &runFlags{fs: flag.NewFlagSet(string(kind), flag.ContinueOnError)}
	f.rc = contract.RunConfig{APIVersion: contract.APIVersion, Kind: kind}
	fs, rc := f.fs, &f.rc
	fs.StringVar(&f.config, "config", "", "run configuration (contract.RunConfig JSON); excludes the other run flags")
	fs.StringVar(&f.terminationLog, "termination-log", "", "write the termination message here (with --config: "+
		contract.TerminationMessagePath+" when it exists, as in a pod)")
	fs.StringVar(&rc.Dataset.URI, "data", "", "dataset file (path or file:// URI)")
	fs.StringVar(&rc.Dataset.Format, "format", "auto", "dataset format")
	fs.Float64Var(&rc.Dataset.EvalFraction, "eval-fraction", defaultEvalFraction, "share of rows held out for evaluation (grouped by prompt where possible)")
	fs.Int64Var(&rc.Dataset.Seed, "split-seed", 0, "seed of the train/eval split")
	fs.StringVar(&rc.Dataset.InvalidRows, "invalid-rows", contract.InvalidRowsReject, "what invalid rows do: Reject fails the run, Skip trains on the valid rows (counted and named in the warnings)")
	fs.StringVar(&rc.Output.URI, "out", "", "output directory (checkpoints, model, metrics.jsonl)")
	t := &rc.Training
	fs.IntVar(&t.MaxSteps, "steps", 0, "optimiser steps (or --epochs)")
	fs.Float64Var(&t.Epochs, "epochs", 0, "epochs over the training split (or --steps)")
	fs.IntVar(&t.BatchSize, "batch-size", 8, "examples per micro-batch")
	fs.IntVar(&t.MaxLength, "max-length", 0, "fit each sequence (prompt and response) into this many tokens, at most the model's "+
		"positions (0: the model's positions); the prompt is cut once per pair, from its start")
	fs.StringVar(&f.chatTemplateFile, "chat-template", "", "render conversational rows with the Jinja chat template in this file "+
		"instead of the model's own (written into the output model's tokenizer_config.json)")
	fs.IntVar(&t.GradientAccumulationSteps, "grad-accum", 1, "micro-batches per optimiser step")
	lr := 1e-3
	if kind == contract.KindDPO {
		lr = 1e-4 // DPO moves a trained model: a smaller step
	}
	fs.Float64Var(&t.LearningRate, "lr", lr, "peak learning rate")
	fs.StringVar(&t.LRSchedule, "schedule", "cosine", "learning-rate schedule after warmup: cosine, linear or constant")
	minLR := fs.Float64("min-lr-ratio", train.DefaultMinLearningRateRatio, "rate at the end of cosine or linear decay, as a share of --lr (0 decays to 0)")
	fs.IntVar(&t.WarmupSteps, "warmup", 0, "warmup steps")
	fs.Float64Var(&t.WeightDecay, "weight-decay", 0, "AdamW weight decay")
	fs.Float64Var(&t.GradClipNorm, "clip", 1, "global gradient-norm clip")
	fs.IntVar(&t.EvalEvery, "eval-every", 0, "evaluate every N steps (0: at the end)")
	fs.IntVar(&t.CheckpointEvery, "checkpoint-every", 0, "checkpoint every N steps (0: 500; always at the end)")
	fs.IntVar(&t.CheckpointsToKeep, "checkpoints-to-keep", 0, "keep the newest N complete checkpoints, deleting older ones (0: 2)")
	fs.Int64Var(&t.Seed, "seed", 0, "seed of initialisation and shuffling")
	f.minLR = minLR
	f.lora = addLoRAFlags(fs)
	return f
}

// parse reads the arguments; with --config the run flags must not be given (two sources of truth would confuse).
func (f *runFlags) parse(args []string) (contract.RunConfig, error) {
	if err := f.fs.Parse(args); err != nil {
		return f.rc, err
	}
	if f.fs.NArg() > 0 {
		return f.rc, fmt.Errorf("unexpected argument %q", f.fs.Arg(0))
	}
	if f.config == "" {
		f.rc.Training.MinLearningRateRatio = f.minLR
		tmpl, err := readChatTemplateFile(f.chatTemplateFile)
		if err != nil {
			return f.rc, err
		}
		f.rc.Model.ChatTemplate = tmpl
		if f.finish != nil {
			f.finish()
		}
		if err := f.lora.apply(f.fs, &f.rc); err != nil {
			return f.rc, err
		}
		if len(f.newModelFlags) > 0 {
			return f.rc, fmt.Errorf("%v shape a new model; with --from the model's config.json sets them (its context length is "+
				"max_position_embeddings, n_positions for GPT-2)", f.newModelFlags)
		}
		return f.rc, nil
	}
	var mixed []string
	f.fs.Visit(func(fl *flag.Flag) {
		if fl.Name != "config" && fl.Name != "termination-log" {
			mixed = append(mixed, "--"+fl.Name)
		}
	})
	if len(mixed) > 0 {
		return f.rc, fmt.Errorf("--config excludes %v", mixed)
	}
	if f.terminationLog == "" {
		// The kubelet creates the file of the container's terminationMessagePath before the process starts.
		if _, err := os.Stat(contract.TerminationMessagePath); err == nil {
			f.terminationLog = contract.TerminationMessagePath
		}
	}
	return f.rc, nil
}

// run parses args and trains; it is the whole of `sft` and `dpo`.
func (f *runFlags) run(args []string) int {
	rc, err := f.parse(args)
	if err != nil {
		return exitUsage(f.fs.Name(), err)
	}
	if f.config != "" {
		if rc, err = readRunConfig(f.config); err != nil {
			// The operator wrote this document: a bad one will not get better on retry.
			return failRun(&train.FieldError{Field: "--config", Reason: err.Error()}, f.terminationLog, false)
		}
		if rc.Kind != contract.Kind(f.fs.Name()) {
			return failRun(&train.FieldError{Field: "kind", Reason: fmt.Sprintf("is %q but the command is %s", rc.Kind, f.fs.Name())}, f.terminationLog, false)
		}
	}
	// Errors name the run configuration's fields; on the command line, say which flags those are.
	return runTraining(rc, f.terminationLog, f.config == "")
}

// fieldFlags are the run configuration's fields, as errors name them, and the sft/dpo flags that set them.
var fieldFlags = [][2]string{
	{"adapter.rank", "--lora-rank"}, {"adapter.alpha", "--lora-alpha"}, {"adapter.dropout", "--lora-dropout"},
	{"adapter.targetModules", "--lora-targets"}, {"output.mergedModel", "--merged-model"}, {"output.uri", "--out"},
	{"training.maxSteps", "--steps"}, {"training.epochs", "--epochs"}, {"training.batchSize", "--batch-size"},
	{"training.maxLength", "--max-length"}, {"training.gradientAccumulationSteps", "--grad-accum"},
	{"training.learningRate", "--lr"}, {"training.warmupSteps", "--warmup"}, {"training.checkpointEvery", "--checkpoint-every"},
	{"reference.adapterURI", "--reference-adapter"}, {"reference.modelURI", "--reference"}, {"model.from", "--from"},
	{"model.chatTemplate", "--chat-template"}, {"dataset.uri", "--data"}, {"dataset.evalFraction", "--eval-fraction"},
	{"dataset.invalidRows", "--invalid-rows"}, {"dpo.beta", "--beta"}, {"dpo.lossType", "--loss-type"},
}

// withFlagHint appends to msg, for each field of fieldFlags it names, the flag that sets it.
func withFlagHint(msg string) string {
	var hints []string
	for _, ff := range fieldFlags {
		if strings.Contains(msg, ff[0]) {
			hints = append(hints, ff[0]+" is "+ff[1])
		}
	}
	if len(hints) == 0 {
		return msg
	}
	return msg + " (on the command line: " + strings.Join(hints, ", ") + ")"
}

func readRunConfig(path string) (contract.RunConfig, error) {
	var rc contract.RunConfig
	data, err := os.ReadFile(path)
	if err != nil {
		return rc, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rc); err != nil {
		return rc, fmt.Errorf("%s: %v", path, err)
	}
	return rc, nil
}

// runProgress goes to stderr: a bar on a terminal, JSON lines for a pod's log.
var runProgress = train.NewProgress(os.Stderr)

// failRun reports err on stderr (as progress does) and in the termination message and returns its exit code;
// flagHints adds the flags that set the fields the message names (a run from flags, not --config).
func failRun(err error, terminationLog string, flagHints bool) int {
	e := train.ErrorMessage(err)
	if flagHints {
		e.Message = withFlagHint(e.Message)
	}
	runProgress.Event("failed", map[string]any{"reason": e.Reason, "message": e.Message})
	writeRunTermination(terminationLog, contract.TerminationMessage{Error: e})
	return train.ExitCode(err)
}

func writeRunTermination(path string, msg contract.TerminationMessage) {
	if err := train.WriteTermination(path, msg); err != nil {
		fmt.Fprintf(os.Stderr, "preftune-trainer: writing the termination message: %v\n", err)
	}
}

// runTraining validates rc, trains, writes the termination message and returns the exit code; flagHints as
// failRun's.
func runTraining(rc contract.RunConfig, terminationLog string, flagHints bool) int {
	cfg, err := train.NewConfig(rc)
	if err != nil {
		return failRun(err, terminationLog, flagHints)
	}
	// The first SIGTERM/SIGINT asks the loop to checkpoint and stop; a second one kills at once (default action).
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-ctx.Done()
		stop()
	}()
	defer stop()
	res, err := train.Run(ctx, cfg, train.Options{Progress: runProgress})
	if err != nil {
		return failRun(err, terminationLog, flagHints)
	}
	writeRunTermination(terminationLog, contract.TerminationMessage{Result: res})
	return contract.ExitOK
}

// exitUsage reports a command-line error.
func exitUsage(cmd string, err error) int {
	if err == flag.ErrHelp {
		return contract.ExitUsage
	}
	fmt.Fprintf(os.Stderr, "preftune-trainer %s: %v\n", cmd, err)
	return contract.ExitUsage
}
