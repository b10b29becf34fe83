package train

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/preftune/preftune/trainer/checkpoint"
	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/hf"
	"github.com/preftune/preftune/trainer/plot"
	"github.com/preftune/preftune/trainer/storage"
)

// remoteIO connects a run to object storage. Inputs at remote URIs are downloaded into a scratch directory before
// setup; a remote output is trained in scratch/output and every checkpoint, the model, metrics.jsonl and the plots
// are uploaded as they are written. Local (file://) inputs and outputs are used in place.
type remoteIO struct {
	scratch string
	// out is the remote output; nil when the output is local.
	out *storage.Location
	// uploaded is the local copy of the last checkpoint uploaded (removed once the next one is up).
	uploaded string
}

// stage downloads the remote inputs (dataset, starting model, DPO reference) and, for a remote output, the newest
// complete checkpoint and metrics.jsonl, so that the rest of the run reads local paths only.
func (r *runner) stage(ctx context.Context) error {
	cfg := &r.cfg
	if cfg.DataPath != "" && cfg.OutputDir != "" && (cfg.Kind != contract.KindDPO || cfg.ReferenceDir != "") &&
		(cfg.Model.From == "" || cfg.FromDir != "") && !r.remoteReferenceAdapter() {
		return nil // all local
	}
	var err error
	if r.io.scratch, err = os.MkdirTemp("", "preftune-run-"); err != nil {
		return failed(ReasonTrainingFailed, "scratch directory: %v", err)
	}
	if cfg.DataPath == "" {
		if cfg.DataPath, err = r.fetchDataset(ctx); err != nil {
			return err
		}
	}
	if cfg.Model.From != "" && cfg.FromDir == "" {
		if cfg.FromDir, err = r.fetchModel(ctx, cfg.Model.From, "from", "model.from", ReasonModelUnreadable); err != nil {
			return err
		}
	}
	if cfg.Kind == contract.KindDPO && cfg.ReferenceDir == "" {
		if cfg.ReferenceDir, err = r.fetchModel(ctx, cfg.Reference.ModelURI, "reference", "reference.modelURI", ReasonReferenceUnreadable); err != nil {
			return err
		}
	}
	if r.remoteReferenceAdapter() {
		if cfg.ReferenceAdapterDir, err = r.fetchAdapter(ctx, cfg.Reference.AdapterURI); err != nil {
			return err
		}
	}
	if cfg.OutputDir == "" {
		if r.io.out, err = storage.Open(ctx, cfg.Output.URI); err != nil {
			return &FieldError{Field: "output.uri", Reason: err.Error()}
		}
		cfg.OutputDir = filepath.Join(r.io.scratch, "output")
		if err := r.fetchOutput(ctx); err != nil {
			return err
		}
	}
	return nil
}

// remoteReferenceAdapter says whether a DPO run's reference.adapterURI is remote and not downloaded yet.
func (r *runner) remoteReferenceAdapter() bool {
	ref := r.cfg.Reference
	return r.cfg.Kind == contract.KindDPO && ref != nil && ref.AdapterURI != "" && r.cfg.ReferenceAdapterDir == ""
}

// cleanup closes the output and removes the scratch directory.
func (r *runner) cleanup() {
	if r.io.out != nil {
		r.io.out.Close()
	}
	if r.io.scratch != "" {
		os.RemoveAll(r.io.scratch)
	}
}

// fetchDataset downloads the dataset file (s3://, gs://, azblob:// or https://) into the scratch directory. A missing
// object will not appear on retry (InvalidInput); other failures may be transient.
func (r *runner) fetchDataset(ctx context.Context) (string, error) {
	uri := r.cfg.Dataset.URI
	base := path.Base(strings.SplitN(strings.SplitN(uri, "?", 2)[0], "#", 2)[0])
	if base == "." || base == "/" || base == "" {
		base = "dataset"
	}
	dst := filepath.Join(r.io.scratch, "dataset", base)
	var err error
	if storage.IsHTTP(uri) {
		err = storage.Fetch(ctx, nil, uri, dst)
	} else {
		var l *storage.Location
		if l, err = storage.Open(ctx, uri); err != nil {
			return "", &FieldError{Field: "dataset.uri", Reason: err.Error()}
		}
		defer l.Close()
		err = l.DownloadFile(ctx, "", dst)
	}
	if storage.IsNotExist(err) {
		return "", invalid(ReasonDatasetUnreadable, "dataset.uri: %v", err)
	}
	if err != nil {
		return "", failed(ReasonDatasetUnreadable, "dataset.uri: %v", err)
	}
	return dst, nil
}

// fetchModel downloads a model (or checkpoint) directory: from a store, or from the Hugging Face Hub for
// hf://org/name[@revision] ($HF_ENDPOINT, $HF_TOKEN), recording the commit the revision resolved to.
func (r *runner) fetchModel(ctx context.Context, uri, name, field, reason string) (string, error) {
	if storage.IsHub(uri) {
		dst, commit, err := r.fromHub(ctx, storage.HubFromEnv().Download, uri, name, field, reason, "model-downloaded")
		if err == nil {
			r.sourceCommit = commit
		}
		return dst, err
	}
	l, err := storage.Open(ctx, uri)
	if err != nil {
		return "", &FieldError{Field: field, Reason: err.Error()}
	}
	defer l.Close()
	dst := filepath.Join(r.io.scratch, name)
	n, err := l.DownloadDir(ctx, "", dst)
	if err != nil {
		return "", failed(reason, "%s: %v", field, err)
	}
	if n == 0 {
		return "", invalid(reason, "%s: %s holds no files", field, l)
	}
	return dst, nil
}

// fetchAdapter downloads a DPO run's reference.adapterURI: a store's directory as fetchModel does, or from the
// Hugging Face Hub (hf://org/name[@revision]) the PEFT adapter's files only (storage.HubClient.DownloadAdapter),
// recording the commit the revision resolved to (the result's sourceAdapterCommit) in an "adapter-downloaded"
// event as fetchModel does for models.
func (r *runner) fetchAdapter(ctx context.Context, uri string) (string, error) {
	const field = "reference.adapterURI"
	if !storage.IsHub(uri) {
		return r.fetchModel(ctx, uri, "reference-adapter", field, ReasonReferenceUnreadable)
	}
	dst, commit, err := r.fromHub(ctx, storage.HubFromEnv().DownloadAdapter, uri, "reference-adapter", field,
		ReasonReferenceUnreadable, "adapter-downloaded")
	if err == nil {
		r.refAdapterCommit = commit
	}
	return dst, err
}

// fromHub downloads uri from the Hugging Face Hub with download (HubClient.Download or DownloadAdapter) into
// the scratch directory name and reports event with what came; a repository, revision or file that does not
// exist is invalid input naming field, any other failure a failure with reason. It returns the directory and
// the commit the revision resolved to.
func (r *runner) fromHub(ctx context.Context, download func(context.Context, string, string) (*storage.HubModel, error),
	uri, name, field, reason, event string) (string, string, error) {
	dst := filepath.Join(r.io.scratch, name)
	m, err := download(ctx, uri, dst)
	switch {
	case storage.IsNotExist(err):
		return "", "", invalid(reason, "%s: %v", field, err)
	case err != nil:
		return "", "", failed(reason, "%s: %v", field, err)
	}
	r.progress.Event(event, map[string]any{"uri": uri, "commit": m.Commit, "files": len(m.Files),
		"skipped": len(m.Skipped), "bytes": m.Bytes, "digest": m.Digest})
	return dst, m.Commit, nil
}

// fetchOutput brings the newest complete remote checkpoint and metrics.jsonl into the local output directory.
// Checkpoints without COMPLETE (an upload cut short) or that fail verification are passed over and reported.
func (r *runner) fetchOutput(ctx context.Context) error {
	out := r.io.out
	if err := os.MkdirAll(r.cfg.OutputDir, 0o755); err != nil {
		return failed(ReasonTrainingFailed, "scratch output: %v", err)
	}
	steps, err := remoteSteps(ctx, out)
	if err != nil {
		return failed(ReasonCheckpointFailed, "looking for checkpoints: %v", err)
	}
	for _, s := range steps { // newest first
		rel := "checkpoints/" + s
		ok, err := out.Exists(ctx, rel+"/"+checkpoint.CompleteFile)
		if err != nil {
			return failed(ReasonCheckpointFailed, "looking for checkpoints: %v", err)
		}
		if !ok {
			r.progress.Event("checkpoint-skipped", map[string]any{"dir": out.URI(rel), "problem": "no " + checkpoint.CompleteFile + ": an upload that did not finish"})
			continue
		}
		dir := filepath.Join(r.cfg.OutputDir, "checkpoints", s)
		if _, err := out.DownloadDir(ctx, rel, dir); err != nil {
			return failed(ReasonCheckpointFailed, "downloading checkpoint: %v", err)
		}
		if _, err := checkpoint.Load(dir); err != nil {
			r.progress.Event("checkpoint-skipped", map[string]any{"dir": out.URI(rel), "problem": err.Error()})
			os.RemoveAll(dir)
			continue
		}
		r.io.uploaded = dir
		break
	}
	err = out.DownloadFile(ctx, metricsFile, filepath.Join(r.cfg.OutputDir, metricsFile))
	if err != nil && !storage.IsNotExist(err) {
		return failed(ReasonTrainingFailed, "downloading metrics.jsonl: %v", err)
	}
	return nil
}

// remoteSteps lists the step-<n> directories under checkpoints/, newest first.
func remoteSteps(ctx context.Context, out *storage.Location) ([]string, error) {
	names, err := out.List(ctx, "checkpoints", false)
	if err != nil {
		return nil, err
	}
	var steps []string
	for _, n := range names {
		n = strings.TrimSuffix(n, "/")
		if stepOf(n) >= 0 {
			steps = append(steps, n)
		}
	}
	sort.Slice(steps, func(i, j int) bool { return stepOf(steps[i]) > stepOf(steps[j]) })
	return steps, nil
}

func stepOf(name string) int {
	var n int
	digits, ok := strings.CutPrefix(name, "step-")
	if !ok || len(digits) < 8 {
		return -1
	}
	if _, err := fmt.Sscanf(digits, "%d", &n); err != nil || fmt.Sprintf("%08d", n) != digits {
		return -1
	}
	return n
}

// publishCheckpoint draws the plots and, for a remote output, uploads the checkpoint (COMPLETE last), then
// metrics.jsonl and the plots. It returns the checkpoint's URI.
func (r *runner) publishCheckpoint(ctx context.Context, dir string) (string, error) {
	if err := r.writePlots(); err != nil {
		return "", err
	}
	if r.io.out == nil {
		return fileURI(dir), nil
	}
	rel := "checkpoints/" + filepath.Base(dir)
	if err := r.io.out.UploadDir(ctx, dir, rel, checkpoint.CompleteFile); err != nil {
		return "", failed(ReasonCheckpointFailed, "uploading checkpoint: %v", err)
	}
	// The local copy of the previous checkpoint is no longer needed: the store has it.
	if r.io.uploaded != "" && r.io.uploaded != dir {
		os.RemoveAll(r.io.uploaded)
	}
	r.io.uploaded = dir
	if err := r.uploadLogs(ctx); err != nil {
		return "", err
	}
	return r.io.out.URI(rel), nil
}

// publishModel uploads the final model directory (weights last: a reader finds all three files or no weights)
// and returns its URI. A sharded model's index goes last: it names the shards, so a reader that finds it finds
// them all.
func (r *runner) publishModel(ctx context.Context, dir string) (string, error) {
	if err := r.writePlots(); err != nil {
		return "", err
	}
	if r.io.out == nil {
		return fileURI(dir), nil
	}
	if err := r.io.out.UploadDir(ctx, dir, "model", modelLastFile(dir)); err != nil {
		return "", failed(ReasonTrainingFailed, "uploading the final model: %v", err)
	}
	if err := r.uploadLogs(ctx); err != nil {
		return "", err
	}
	return r.io.out.URI("model"), nil
}

// uploadLogs replaces the remote metrics.jsonl and plots with the local ones.
func (r *runner) uploadLogs(ctx context.Context) error {
	for _, name := range append([]string{metricsFile}, r.plots...) {
		if err := r.io.out.UploadFile(ctx, filepath.Join(r.cfg.OutputDir, name), name); err != nil {
			return failed(ReasonTrainingFailed, "uploading %s: %v", name, err)
		}
	}
	return nil
}

// writePlots redraws loss.svg (and rewards.svg for DPO) from the metrics logged so far.
func (r *runner) writePlots() error {
	lines, err := plot.ReadMetrics(filepath.Join(r.cfg.OutputDir, metricsFile))
	if err != nil {
		return failed(ReasonTrainingFailed, "plots: %v", err)
	}
	written, err := plot.Write(r.cfg.OutputDir, lines, r.cfg.Kind == contract.KindDPO)
	if err != nil {
		return failed(ReasonTrainingFailed, "%v", err)
	}
	r.plots = written
	return nil
}

// plotURIs are the URIs of the plots written.
func (r *runner) plotURIs() []string {
	var out []string
	for _, name := range r.plots {
		if r.io.out != nil {
			out = append(out, r.io.out.URI(name))
		} else {
			out = append(out, fileURI(filepath.Join(r.cfg.OutputDir, name)))
		}
	}
	return out
}

// remoteCheckpoints lists the newest KeepCheckpoints complete checkpoints of a remote output, oldest first.
func (r *runner) remoteCheckpoints(ctx context.Context) ([]contract.Checkpoint, error) {
	steps, err := remoteSteps(ctx, r.io.out)
	if err != nil {
		return nil, err
	}
	var out []contract.Checkpoint
	for _, s := range steps {
		complete := "checkpoints/" + s + "/" + checkpoint.CompleteFile
		ok, err := r.io.out.Exists(ctx, complete)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		c := contract.Checkpoint{Step: stepOf(s), URI: r.io.out.URI("checkpoints/" + s)}
		c.Time, _ = r.io.out.ModTime(ctx, complete)
		out = append([]contract.Checkpoint{c}, out...)
		if len(out) == KeepCheckpoints {
			break
		}
	}
	return out, nil
}

// modelLastFile is the file of a model directory that readers look for first and that must therefore be stored
// last: model.safetensors.index.json for a sharded model, model.safetensors otherwise.
func modelLastFile(dir string) string {
	if _, err := os.Stat(filepath.Join(dir, hf.WeightsIndexFile)); err == nil {
		return hf.WeightsIndexFile
	}
	return checkpoint.ModelFile
}
