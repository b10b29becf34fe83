package checkpoint

import (
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
	// Skipped lists every entry that cannot be resumed from, each with its Problem, newest step first.
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

// Scan lists root/checkpoints newest step first, checking each complete-looking one fully (COMPLETE, format
// version, every file's size and sha256, state.json). Other entries in the folder are listed with a Problem.
// A missing checkpoints folder is an empty list.
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
			e.Problem = verify(e.Dir)
		}
		out = append(out, e)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Step > out[j].Step })
	return out, nil
}

// verify checks a checkpoint directory exactly as Load reads it, so Latest never picks one Load refuses.
func verify(dir string) error {
	_, err := Load(dir)
	return err
}

// Latest finds the newest complete checkpoint of this format version under root, and says why every unusable
// entry there was passed over.
func Latest(root string) (Lookup, error) {
	entries, err := Scan(root)
	if err != nil {
		return Lookup{}, err
	}
	var l Lookup
	for _, e := range entries {
		switch {
		case e.Problem != nil:
			l.Skipped = append(l.Skipped, e)
		case l.Dir == "":
			l.Dir, l.Step = e.Dir, e.Step
		}
	}
	return l, nil
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
