package train

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"

	"gorgonia.org/tensor"

	"github.com/preftune/preftune/trainer/checkpoint"
	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/data"
	"github.com/preftune/preftune/trainer/hf"
	"github.com/preftune/preftune/trainer/loss"
	"github.com/preftune/preftune/trainer/model"
	"github.com/preftune/preftune/trainer/optim"
	"github.com/preftune/preftune/trainer/tokenizer"
)

// Options are the parts of a run that are not its configuration.
type Options struct {
	// Progress gets a report after every step; nil discards them.
	Progress Progress
}

// runner holds one attempt at a run.
type runner struct {
	cfg      Config
	progress Progress

	tok    tokenizer.Tokenizer
	policy *model.Params
	opt    *optim.AdamW
	sched  optim.Schedule
	loader *data.Loader
	eval   []data.Batch
	ref    *refTable // DPO only
	lossC  loss.DPOConfig

	step, total int
	resumedFrom int
	lastSaved   int
	metrics     *metricsLog
	lastTrain   Metrics
	lastEval    Metrics
	warnings    []string
	// dataDigest and startDigest (the starting model's weights, when loaded) identify the run across attempts.
	dataDigest  string
	startDigest string
	// splitBy is how the train/eval split grouped the rows (data.SplitByPrompt or data.SplitByRow).
	splitBy string
	// datasetEvent holds the "dataset" event's fields from readData until encodeData has counted the rows the
	// chat template cannot render (skipped under invalidRows: Skip); datasetSent says it went out.
	datasetEvent map[string]any
	datasetSent  bool

	// ioCtx carries uploads: a cancelled run (SIGTERM) still uploads its last checkpoint.
	ioCtx context.Context
	io    remoteIO
	plots []string // plot files written next to metrics.jsonl
	// sourceCommit is the Hub commit an hf:// starting model (or DPO reference) resolved to.
	sourceCommit string
	// encoder renders and tokenizes the rows (the model's tokenizer and chat template, the run's context);
	// truncation counts what fitting them changed; chatRows counts the conversational rows it rendered.
	encoder *data.Encoder
	// templateDir is the directory whose chat template the encoder uses when model.chatTemplate is unset
	// (runner.chatTemplateDir).
	templateDir string
	truncation  *contract.Truncation
	chatRows    int
	// baseDigest identifies the frozen base model of a run that trains an adapter (lora.go); "" otherwise.
	baseDigest string
	// refAdapterDigest is the digest of reference.adapterURI's weights, merged into the starting model;
	// refAdapterCommit the Hub commit an hf:// reference.adapterURI resolved to.
	refAdapterDigest string
	refAdapterCommit string
}

// Run trains as cfg says, resuming from the newest complete checkpoint under the output, and returns the result.
// When ctx is cancelled (SIGTERM) it finishes the step in flight, checkpoints and returns an Interrupted error.
func Run(ctx context.Context, cfg Config, opts Options) (*contract.Result, error) {
	r := &runner{cfg: cfg, progress: opts.Progress, ioCtx: context.WithoutCancel(ctx)}
	if r.progress == nil {
		r.progress = NoProgress{}
	}
	var stopReporting func()
	r.progress, stopReporting = withReporter(r.progress) // pushes progress to the operator when the pod has an endpoint
	defer stopReporting()
	defer r.cleanup()
	r.progress.Event("device", deviceReport(cfg.Resources.GPUs))
	if err := r.stage(ctx); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(r.cfg.OutputDir, 0o755); err != nil {
		return nil, failed(ReasonTrainingFailed, "creating the output directory: %v", err)
	}
	if err := r.setup(); err != nil {
		return nil, err
	}
	r.progress.Event("model", r.modelFields())
	if err := r.resume(); err != nil {
		return nil, err
	}
	var err error
	if r.metrics, err = openMetrics(filepath.Join(r.cfg.OutputDir, metricsFile), r.step); err != nil {
		return nil, failed(ReasonTrainingFailed, "metrics.jsonl: %v", err)
	}
	defer r.metrics.Close()
	r.lastTrain, r.lastEval = r.metrics.lastTrain, r.metrics.lastEval
	if err := r.loop(ctx); err != nil {
		return nil, err
	}
	return r.finish()
}

// setup reads the data and the starting model and builds the optimiser, the schedule and the loader.
func (r *runner) setup() error {
	cfg := r.cfg
	rows, eval, err := r.readData()
	if err != nil {
		return err
	}
	defer r.sendDatasetEvent() // when setup stops before encodeData sends it
	if err := r.loadModel(rows); err != nil {
		return err
	}
	if err := r.setupAdapter(); err != nil {
		return err
	}
	ctxLen := r.policy.ContextLength // the batches' buckets; sequences are fitted into encodeData's context
	trainEx, evalEx, err := r.encodeData(rows, eval)
	if err != nil {
		return err
	}

	t := cfg.Training
	if r.loader, err = data.NewLoader(r.tok, trainEx, cfg.Kind, t.BatchSize, ctxLen, uint64(t.Seed)); err != nil {
		return invalid(ReasonInvalidDataset, "%v", err)
	}
	r.eval = data.EvalBatches(r.tok, evalEx, cfg.Kind, t.BatchSize, ctxLen)
	if len(r.eval) == 0 && t.EvalEvery > 0 {
		r.warnings = append(r.warnings, fmt.Sprintf("training.evalEvery is %d but the eval split is empty "+
			"(dataset.evalFraction %g): nothing was evaluated", t.EvalEvery, cfg.Dataset.EvalFraction))
	}
	r.total = t.MaxSteps
	if r.total == 0 {
		perStep := t.GradientAccumulationSteps
		r.total = max(1, int(math.Ceil(t.Epochs*float64(r.loader.BatchesPerEpoch())/float64(perStep))))
	}
	r.sched = optim.Schedule{Kind: t.LRSchedule, PeakLR: t.LearningRate, WarmupSteps: t.WarmupSteps, TotalSteps: r.total,
		MinRatio: *t.MinLearningRateRatio}
	if err := r.sched.Validate(); err != nil {
		return &FieldError{Field: "training", Reason: err.Error()}
	}
	ac := optim.DefaultAdamW()
	ac.WeightDecay = t.WeightDecay
	var params []optim.Param
	for _, name := range r.policy.TrainableNames() {
		v, g := r.policy.Float32s(name)
		params = append(params, optim.Param{Name: name, Shape: r.policy.ShapeOf(name), Data: v, Grad: g})
	}
	if r.opt, err = optim.NewAdamW(ac, params, nil); err != nil {
		return failed(ReasonTrainingFailed, "%v", err)
	}
	r.policy.ZeroGrads()
	if cfg.Kind == contract.KindDPO {
		d := cfg.DPO
		r.lossC = loss.DPOConfig{Beta: d.Beta, LabelSmoothing: d.LabelSmoothing, LossType: d.LossType}
		if err := r.lossC.Validate(); err != nil {
			return &FieldError{Field: "dpo", Reason: err.Error()}
		}
		if err := r.computeReference(trainEx, evalEx); err != nil {
			return err
		}
	}
	return nil
}

// readData reads and splits the dataset. Invalid rows fail the run unless dataset.invalidRows is Skip: training on
// part of the data without being asked to would hide a broken dataset. Skipped rows, empty or blank responses and
// a split that had to group by row are reported in the run's warnings.
func (r *runner) readData() (train, eval []data.Row, err error) {
	cfg := r.cfg
	raw, err := readInput(cfg.DataPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, invalid(ReasonDatasetUnreadable, "dataset.uri: %v", err)
		}
		return nil, nil, failed(ReasonDatasetUnreadable, "dataset.uri: %v", err)
	}
	ds, err := data.Parse(raw, data.OptionsOf(cfg.Dataset))
	if err != nil {
		return nil, nil, invalid(ReasonInvalidDataset, "%s: %v", cfg.DataPath, err)
	}
	r.dataDigest = ds.Digest
	if err := ds.CheckDigest(cfg.Dataset.Digest); err != nil {
		return nil, nil, invalid(ReasonDatasetChanged, "%s: %v", cfg.DataPath, err)
	}
	skipped, err := ds.CheckInvalidRows(cfg.Dataset.InvalidRows)
	if err != nil {
		return nil, nil, invalid(ReasonInvalidDataset, "%s: %v", cfg.DataPath, err)
	}
	if cfg.Kind == contract.KindDPO && !ds.Preference() {
		return nil, nil, invalid(ReasonInvalidDataset, "%s: format %s has no rejected responses; dpo needs preference rows", cfg.DataPath, ds.Format)
	}
	split, err := data.Split(ds.Rows, cfg.Dataset.EvalFraction, cfg.Dataset.Seed)
	if err != nil {
		return nil, nil, &FieldError{Field: "dataset.evalFraction", Reason: err.Error()}
	}
	if len(split.Train) == 0 {
		return nil, nil, invalid(ReasonInvalidDataset, "%s: no training rows (%d rows, %d held out for evaluation)", cfg.DataPath, len(ds.Rows), len(split.Eval))
	}
	if skipped != "" {
		r.warnings = append(r.warnings, skipped)
	}
	r.warnings = append(r.warnings, data.RowWarnings(ds.Rows, cfg.Kind == contract.KindDPO)...)
	r.warnings = append(r.warnings, data.SplitWarnings(split, cfg.Dataset.EvalFraction)...)
	r.splitBy = split.By
	r.datasetEvent = map[string]any{"format": ds.Format, "digest": ds.Digest, "rows": ds.Total,
		"valid": len(ds.Rows), "skipped": len(ds.Invalid), "train": len(split.Train), "eval": len(split.Eval), "splitBy": split.By}
	return split.Train, split.Eval, nil
}

// sendDatasetEvent sends the "dataset" event (counts of rows read, valid, skipped, train and eval; the warnings so
// far) once.
func (r *runner) sendDatasetEvent() {
	if r.datasetEvent == nil || r.datasetSent {
		return
	}
	r.datasetSent = true
	r.datasetEvent["warnings"] = r.warnings
	r.progress.Event("dataset", r.datasetEvent)
}

// cgroupRoot is where checkMemory reads the container's memory limit (tests point it elsewhere).
var cgroupRoot = hf.CgroupRoot

// checkMemory estimates, before a pretrained model directory is loaded, the peak memory of one training step on
// it (hf.EstimateMemory: weights, gradients, AdamW state, activations and logits for a micro-batch of the run's
// batch size, padded to the bucket of the longest sequence the rows encode to with the model's tokenizer and chat
// template, at most min(max_position_embeddings, training.maxLength)) and fails when the container's memory limit
// (cgroup) is below it: a *hf.MemoryError (reason InsufficientMemory, exit code 3) naming the figures and the batch size that would fit.
// Without a limit, and for a from-scratch model or a trainer-written directory, it checks nothing.
func (r *runner) checkMemory(dir, field string, rows []data.Row) error {
	if !isPretrainedDir(dir) {
		return nil
	}
	limit, source, err := hf.ReadMemoryLimit(cgroupRoot)
	if err != nil {
		return failed(ReasonTrainingFailed, "reading the memory limit: %v", err)
	}
	if limit <= 0 {
		return nil
	}
	raw, err := os.ReadFile(filepath.Join(dir, checkpoint.ConfigFile))
	if err != nil {
		return nil // model.Load reports it, with its reason
	}
	hc, err := hf.ParseConfig(raw)
	if err != nil || hc.MaxPositionEmbeddings < 2 {
		return nil
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return nil // LoadModelDir reports it
	}
	ctxLen, longest := contextFor(hc.MaxPositionEmbeddings, r.cfg.Training.MaxLength), 1
	// The rows as the run will encode them (chat template, truncation); a template error is reported later.
	// A DPO run's reference adapter carries the template it renders with (chatTemplateDir). A remote one (a store's
	// directory, or hf:// whose download brings the adapter's tokenizer_config.json and chat template files) was
	// staged before setup, so the estimate sees the template the run will use, not the base's.
	tmplDir := dir
	if d := r.chatTemplateDir(); d != r.sourceDir() {
		tmplDir = d
	}
	tmpl, origin, err := data.ChatTemplateOf(r.cfg.Model.ChatTemplate, tmplDir)
	if err != nil {
		return nil
	}
	enc, err := data.NewEncoder(tok, tmpl, origin, ctxLen)
	if err != nil {
		return nil
	}
	if res, _ := enc.Encode(rows, r.cfg.Kind == contract.KindDPO); res != nil {
		longest = max(longest, res.Longest)
	}
	plan := hf.MemoryPlan{BatchSize: r.cfg.Training.BatchSize, SequencesPerExample: 1, ContextLength: data.BucketFor(longest, ctxLen)}
	if r.cfg.Kind == contract.KindDPO {
		plan.SequencesPerExample = 2
	}
	if a := r.cfg.Adapter; a != nil {
		plan.LoRA = &hf.LoRAPlan{Rank: a.Rank, Targets: a.TargetModules, Dropout: a.Dropout > 0}
	}
	est, err := hf.CheckMemory(hc, plan, limit, source)
	if err != nil {
		return invalid(ReasonInsufficientMemory, "%s: %w", field, err)
	}
	r.progress.Event("memory-estimate", map[string]any{"estimateBytes": est.Total, "limitBytes": limit, "limitSource": source,
		"contextLength": plan.ContextLength})
	return nil
}

// loadModel makes the policy: a new model, a model directory (SFT from), or the DPO reference's weights. rows
// are the training rows (for the memory estimate).
func (r *runner) loadModel(rows []data.Row) error {
	cfg := r.cfg
	switch {
	case cfg.Kind == contract.KindDPO:
		if err := r.checkReferenceAdapter(); err != nil {
			return err
		}
		if err := r.checkMemory(cfg.ReferenceDir, "reference.modelURI", rows); err != nil {
			return err
		}
		p, tok, digest, err := LoadModelDir(cfg.ReferenceDir)
		if err != nil {
			return invalid(reasonOf(err, ReasonReferenceUnreadable), "reference.modelURI: %v", err)
		}
		r.policy, r.tok, r.startDigest = p, tok, digest
	case cfg.FromDir != "":
		if err := r.checkMemory(cfg.FromDir, "model.from", rows); err != nil {
			return err
		}
		p, tok, digest, err := LoadModelDir(cfg.FromDir)
		if err != nil {
			return invalid(reasonOf(err, ReasonModelUnreadable), "model.from: %v", err)
		}
		r.policy, r.tok, r.startDigest = p, tok, digest
	default:
		a := cfg.Model.Architecture
		tok, err := tokenizer.ByName(a.Tokenizer)
		if err != nil {
			return &FieldError{Field: "model.architecture.tokenizer", Reason: err.Error()}
		}
		mc := model.Config{Family: model.GPT2, VocabSize: tok.VocabSize(), ContextLength: a.ContextLength, Layers: a.Layers, DModel: a.DModel,
			Heads: a.Heads, Tokens: model.TokenIDs{BOS: tok.BOS(), EOS: []int{tok.EOS()}, PAD: tok.PAD()}}
		if err := mc.Validate(); err != nil {
			return &FieldError{Field: "model.architecture", Reason: err.Error()}
		}
		r.policy, r.tok = model.Init(mc, tensor.Float32, uint64(cfg.Training.Seed)), tok
	}
	return nil
}

// sourceDir is the model directory the run started from: the DPO reference, SFT's model.from, or "" for a
// model built from scratch.
func (r *runner) sourceDir() string {
	if r.cfg.Kind == contract.KindDPO {
		return r.cfg.ReferenceDir
	}
	return r.cfg.FromDir
}

// finish writes the final model (with an adapter: the adapter, then the merged model unless output.mergedModel is
// false) and builds the result.
func (r *runner) finish() (*contract.Result, error) {
	res := &contract.Result{
		Step: r.step, TotalSteps: r.total, Epoch: r.loader.Epoch(),
		Metrics: Metrics{}, ResumedFromStep: r.resumedFrom, Truncation: r.truncation,
		TrainableParameterCount: int64(r.policy.NumTrainable()),
	}
	dir := filepath.Join(r.cfg.OutputDir, "model")
	_, adapter := r.policy.LoRAConfig()
	var err error
	if adapter {
		if res.AdapterURI, err = r.finishAdapter(r.ioCtx); err != nil {
			return nil, err
		}
		r.policy.MergeLoRA()
	}
	if !adapter || r.mergedModel() {
		digest, err := saveModel(dir, r.policy, r.tok, r.sourceDir())
		if err != nil {
			return nil, failed(ReasonTrainingFailed, "saving the final model: %v", err)
		}
		if err := r.writeChatTemplate(dir); err != nil {
			return nil, failed(ReasonTrainingFailed, "writing the chat template into the final model's tokenizer_config.json: %v", err)
		}
		if res.ModelURI, err = r.publishModel(r.ioCtx, dir); err != nil {
			return nil, err
		}
		res.ModelDigest = digest
	} else if err := r.writePlots(); err != nil {
		return nil, err
	} else if r.io.out != nil {
		if err := r.uploadLogs(r.ioCtx); err != nil {
			return nil, err
		}
	}
	res.Plots = r.plotURIs()
	r.describeModel(res, dir)
	for k, v := range r.lastTrain {
		res.Metrics[k] = v
	}
	for k, v := range r.lastEval {
		res.Metrics[k] = v
	}
	for k, v := range res.Metrics {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			delete(res.Metrics, k) // not JSON; metrics.jsonl keeps them as null
		}
	}
	if w := displacementWarning(r.lastEval); w != "" {
		r.warnings = append(r.warnings, w)
	}
	res.Warnings = r.warnings
	if r.io.out != nil {
		res.Checkpoints, err = r.remoteCheckpoints(r.ioCtx)
	} else {
		res.Checkpoints, err = listCheckpoints(r.cfg.OutputDir)
	}
	if err != nil {
		return nil, failed(ReasonTrainingFailed, "%v", err)
	}
	// The warnings are in the result (the run's status) and here too, for a run on the command line.
	r.progress.Event("done", map[string]any{"step": r.step, "model": res.ModelURI, "modelDigest": res.ModelDigest,
		"adapter": res.AdapterURI, "warnings": res.Warnings})
	return res, nil
}

// displacementWarning warns when the final mean eval chosen reward is negative: the policy likes the chosen
// responses less than the reference did, though it prefers them to the rejected ones (likelihood displacement).
func displacementWarning(eval Metrics) string {
	c, ok := eval["eval_rewards/chosen"]
	if !ok || c >= 0 {
		return ""
	}
	return fmt.Sprintf("likelihood displacement: mean eval rewards/chosen is %.4g < 0, the policy made the chosen "+
		"responses less likely than the reference does (try a smaller learning rate, a larger beta, or rpoAlpha > 0)", c)
}
