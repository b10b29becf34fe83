package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// tmpPrefix starts the names of directories being written (or left over by an interrupted save).
const tmpPrefix = ".tmp-"

// Entry is one directory under root/checkpoints.
type Entry struct {
	Dir  string
	Step int
	// Problem is why the directory cannot be resumed from; nil for a complete checkpoint of this format version.
	Problem error
}

// Lookup is Latest's answer. Dir is "" when no usable checkpoint exists.
type Lookup struct {
	Dir  string
	Step int
	// Skipped lists the entries that cannot be resumed from, each with its Problem, newest step first (entries
	// older than Dir are checked by Scan's cheap checks only).
	Skipped []Entry
}

func isStepDir(name string) bool {
	digits, ok := strings.CutPrefix(name, "step-")
	if !ok || len(digits) < 8 {
		return false
	}
	_, err := strconv.ParseUint(digits, 10, 63)
	return err == nil
}

// Scan lists root/checkpoints newest step first with cheap checks only: COMPLETE present and of this format
// version, every file it lists present with the recorded size, state.json of this version and step. Entries
// that are not checkpoint directories are listed with a Problem. A missing checkpoints folder is an empty list.
// Load (and so LoadLatest and Latest) also verifies every file's sha256.
func Scan(root string) ([]Entry, error) {
	base := filepath.Join(root, "checkpoints")
	des, err := os.ReadDir(base)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint: listing %s: %w", base, err)
	}
	var out []Entry
	for _, de := range des {
		e := Entry{Dir: filepath.Join(base, de.Name()), Step: -1}
		switch {
		case strings.HasPrefix(de.Name(), tmpPrefix):
			e.Problem = errors.New("temporary directory of a save that did not finish")
		case !de.IsDir() || !isStepDir(de.Name()):
			e.Problem = errors.New("not a step-<8 digits> checkpoint directory")
		default:
			e.Step, _ = strconv.Atoi(strings.TrimPrefix(de.Name(), "step-"))
			e.Problem = quickCheck(e.Dir, e.Step)
		}
		out = append(out, e)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Step > out[j].Step })
	return out, nil
}

// quickCheck catches incomplete, truncated and other-version checkpoints without reading the tensors.
func quickCheck(dir string, step int) error {
	m, err := readManifest(dir)
	if err != nil {
		return err
	}
	for _, name := range append(checkpointFiles, extraFiles(m)...) {
		want, ok := m.Files[name]
		if !ok {
			return fmt.Errorf("%s does not list %s", CompleteFile, name)
		}
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		if fi.Size() != want.Size {
			return fmt.Errorf("%s has %d bytes, %s recorded %d", name, fi.Size(), CompleteFile, want.Size)
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		return err
	}
	var st State
	if err := json.Unmarshal(raw, &st); err != nil {
		return fmt.Errorf("%s: %v", StateFile, err)
	}
	if st.FormatVersion != FormatVersion {
		return fmt.Errorf("%s has format version %d, this trainer reads version %d", StateFile, st.FormatVersion, FormatVersion)
	}
	if st.Step != step {
		return fmt.Errorf("%s says step %d", StateFile, st.Step)
	}
	return nil
}

// LoadLatest loads the newest checkpoint under root that passes every check, trying older ones when a newer one
// fails to load; the Lookup says which it is (Dir "" and a nil checkpoint when none) and why others were passed
// over.
func LoadLatest(root string) (*Checkpoint, Lookup, error) {
	entries, err := Scan(root)
	if err != nil {
		return nil, Lookup{}, err
	}
	var l Lookup
	var found *Checkpoint
	for _, e := range entries {
		if e.Problem == nil && found == nil {
			c, err := Load(e.Dir)
			if err == nil {
				found, l.Dir, l.Step = c, e.Dir, e.Step
				continue
			}
			e.Problem = err
		}
		if e.Problem != nil {
			l.Skipped = append(l.Skipped, e)
		}
	}
	return found, l, nil
}

// Latest is LoadLatest without keeping the checkpoint.
func Latest(root string) (Lookup, error) {
	_, l, err := LoadLatest(root)
	return l, err
}

// prune removes complete checkpoints older than the newest keep, and temporary leftovers of interrupted saves.
// Incomplete or other-version step directories stay for a person to inspect.
func prune(root string, keep int) error {
	entries, err := Scan(root)
	if err != nil {
		return err
	}
	kept := 0
	for _, e := range entries {
		switch {
		case e.Problem == nil:
			kept++
			if kept <= keep {
				continue
			}
		case !strings.HasPrefix(filepath.Base(e.Dir), tmpPrefix):
			continue
		}
		if err := os.RemoveAll(e.Dir); err != nil {
			return err
		}
	}
	return nil
}
