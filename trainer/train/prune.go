package train

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/preftune/preftune/trainer/checkpoint"
)

// Pruning keeps training.checkpointsToKeep complete checkpoints in the output (checkpoints of pretrained models
// are large: weights and AdamW's two moments, 12 bytes per parameter). After a newer checkpoint completes:
//   - complete checkpoints older than the newest checkpointsToKeep complete ones are deleted;
//   - step directories that cannot be resumed from (no COMPLETE: a save or upload cut short; truncated files;
//     another format version) are deleted when they are older than the newest complete checkpoint, and so are the
//     temporary directories of interrupted local saves;
//   - the newest complete checkpoint is never deleted, nor anything newer than it (a newer damaged checkpoint stays
//     for a person to look at; the next save of that step replaces it).
// This runs in every store the run writes: the local output (or the scratch copy of a remote one) and the remote
// output through the storage layer, where COMPLETE is deleted first so that a deletion cut short never leaves a
// directory that looks complete.

// ckptDir is one directory under checkpoints/ as pruning sees it.
type ckptDir struct {
	name string // directory name, step-<8 digits> or a leftover
	step int    // -1 for a directory that is not a step directory
	// complete: the checkpoint can be resumed from (COMPLETE present; locally also the cheap checks of Scan).
	complete bool
	// leftover: the temporary directory of an interrupted local save.
	leftover bool
}

// prunePlan returns the directories to delete to keep the newest keep (>= 1) complete checkpoints, and the step of
// the oldest complete checkpoint kept (0 when there is none). It is pure: dirs may be in any order.
func prunePlan(dirs []ckptDir, keep int) (del []ckptDir, oldestKept int) {
	keep = max(keep, 1)
	newest := -1
	var complete []int
	for _, d := range dirs {
		if d.complete && d.step >= 0 {
			complete = append(complete, d.step)
			newest = max(newest, d.step)
		}
	}
	if newest < 0 {
		return nil, 0 // nothing complete: nothing may go (the leftovers may be all a person has)
	}
	// The cut: the keep-th newest complete step. Complete checkpoints below it go.
	cut := newest
	for kept := 1; kept < keep; kept++ {
		next := -1
		for _, s := range complete {
			if s < cut && s > next {
				next = s
			}
		}
		if next < 0 {
			break
		}
		cut = next
	}
	for _, d := range dirs {
		switch {
		case d.leftover:
			del = append(del, d)
		case d.step < 0:
			// Not ours: leave it.
		case d.complete && d.step < cut:
			del = append(del, d)
		case !d.complete && d.step < newest:
			del = append(del, d)
		}
	}
	return del, cut
}

// pruneCheckpoints applies training.checkpointsToKeep to the local output and, for a remote output, to the store.
// A failure to delete does not fail the run (the checkpoints are still valid); it is reported as an event and a
// warning in the result.
func (r *runner) pruneCheckpoints(ctx context.Context) {
	keep := r.cfg.Training.CheckpointsToKeep
	oldest, deleted, err := pruneLocal(r.cfg.OutputDir, keep)
	if err == nil && r.io.out != nil {
		// The remote store is the output; the local one holds only scratch copies.
		oldest, deleted, err = r.pruneRemote(ctx, keep)
	}
	if err != nil {
		r.progress.Event("checkpoint-prune-failed", map[string]any{"error": err.Error()})
		w := fmt.Sprintf("training.checkpointsToKeep: deleting old checkpoints failed (they are still in the output): %v", err)
		if len(r.warnings) == 0 || r.warnings[len(r.warnings)-1] != w {
			r.warnings = append(r.warnings, w)
		}
		return
	}
	if len(deleted) > 0 {
		r.progress.Event("checkpoints-pruned", map[string]any{"deleted": deleted, "oldestKept": oldest, "keep": keep})
	}
}

// pruneLocal prunes root/checkpoints; it returns the oldest complete step kept and the directories deleted.
func pruneLocal(root string, keep int) (int, []string, error) {
	entries, err := checkpoint.Scan(root)
	if err != nil {
		return 0, nil, err
	}
	var dirs []ckptDir
	for _, e := range entries {
		name := filepath.Base(e.Dir)
		dirs = append(dirs, ckptDir{name: name, step: e.Step, complete: e.Problem == nil,
			leftover: e.Step < 0 && strings.HasPrefix(name, ".tmp-")})
	}
	del, oldest := prunePlan(dirs, keep)
	var deleted []string
	for _, d := range del {
		dir := filepath.Join(root, "checkpoints", d.name)
		// COMPLETE first, as in a store: a removal cut short leaves an incomplete directory, never a bad complete one.
		if err := os.Remove(filepath.Join(dir, checkpoint.CompleteFile)); err != nil && !os.IsNotExist(err) {
			return 0, deleted, fmt.Errorf("deleting %s: %w", dir, err)
		}
		if err := os.RemoveAll(dir); err != nil {
			return 0, deleted, fmt.Errorf("deleting %s: %w", dir, err)
		}
		deleted = append(deleted, fileURI(dir))
	}
	return oldest, deleted, nil
}

// pruneRemote prunes the remote output's checkpoints/.
func (r *runner) pruneRemote(ctx context.Context, keep int) (int, []string, error) {
	out := r.io.out
	steps, err := remoteSteps(ctx, out)
	if err != nil {
		return 0, nil, err
	}
	var dirs []ckptDir
	for _, s := range steps {
		ok, err := out.Exists(ctx, "checkpoints/"+s+"/"+checkpoint.CompleteFile)
		if err != nil {
			return 0, nil, err
		}
		dirs = append(dirs, ckptDir{name: s, step: stepOf(s), complete: ok})
	}
	del, oldest := prunePlan(dirs, keep)
	var deleted []string
	for _, d := range del {
		rel := "checkpoints/" + d.name
		if _, err := out.DeleteDir(ctx, rel, checkpoint.CompleteFile); err != nil {
			return 0, deleted, err
		}
		deleted = append(deleted, out.URI(rel))
	}
	return oldest, deleted, nil
}
