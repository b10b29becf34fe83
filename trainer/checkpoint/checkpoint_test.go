package checkpoint

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestRoundTripBitExact(t *testing.T) {
	root := t.TempDir()
	c := testCheckpoint(100)
	dir, err := Save(root, c, 0)
	if err != nil {
		t.Fatal(err)
	}
	if dir != filepath.Join(root, "checkpoints", "step-00000100") {
		t.Fatalf("dir %s", dir)
	}
	for _, f := range []string{ModelFile, ConfigFile, TokenizerFile, OptimizerFile, StateFile, CompleteFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	// Readable by others, as a directory made with MkdirAll is (not MkdirTemp's 0700).
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("checkpoint directory mode %v, %v; want 0755", fi.Mode().Perm(), err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := ByName(c.Tensors)
	if len(got.Tensors) != len(want) {
		t.Fatalf("%d tensors, want %d", len(got.Tensors), len(want))
	}
	for _, g := range got.Tensors {
		w, ok := want[g.Name]
		if !ok || !slices.Equal(g.Shape, w.Shape) {
			t.Fatalf("tensor %q shape %v, want %v (present %v)", g.Name, g.Shape, w.Shape, ok)
		}
		sameBits(t, g.Name, g.Data, w.Data)
	}
	if string(got.Config) != string(c.Config) || string(got.Tokenizer) != string(c.Tokenizer) {
		t.Fatal("config or tokenizer bytes changed")
	}
	if got.Optimizer.Step != 100 || len(got.Optimizer.ExpAvg) != len(c.Tensors) || len(got.Optimizer.ExpAvgSq) != len(c.Tensors) {
		t.Fatalf("optimizer step %d, %d/%d moments", got.Optimizer.Step, len(got.Optimizer.ExpAvg), len(got.Optimizer.ExpAvgSq))
	}
	for name, m := range c.Optimizer.ExpAvg {
		sameBits(t, "exp_avg."+name, got.Optimizer.ExpAvg[name], m)
		sameBits(t, "exp_avg_sq."+name, got.Optimizer.ExpAvgSq[name], c.Optimizer.ExpAvgSq[name])
	}
	st := got.State
	if st.FormatVersion != FormatVersion || st.SavedAt == "" {
		t.Fatalf("version %d savedAt %q", st.FormatVersion, st.SavedAt)
	}
	st.FormatVersion, st.SavedAt = 0, ""
	if !reflect.DeepEqual(compactState(t, st), compactState(t, c.State)) {
		t.Fatalf("state %+v, want %+v", st, c.State)
	}
}

// compactState removes the spacing from s's raw JSON fields, which state.json's indenting may change.
func compactState(t *testing.T, s State) State {
	for _, f := range []*json.RawMessage{&s.DataCursor, &s.Schedule, &s.Extra} {
		var b bytes.Buffer
		if err := json.Compact(&b, *f); err != nil {
			t.Fatal(err)
		}
		*f = b.Bytes()
	}
	return s
}

func TestLatestSkipsUnusable(t *testing.T) {
	root := t.TempDir()
	for _, step := range []int{100, 200, 300, 400, 500, 600, 650} {
		if _, err := Save(root, testCheckpoint(step), 0); err != nil {
			t.Fatal(err)
		}
	}
	base := filepath.Join(root, "checkpoints")
	// 300: the save stopped before COMPLETE.
	if err := os.Remove(filepath.Join(base, "step-00000300", CompleteFile)); err != nil {
		t.Fatal(err)
	}
	// 400: the weights were truncated after COMPLETE (a damaged disk or copy).
	w := filepath.Join(base, "step-00000400", ModelFile)
	raw, _ := os.ReadFile(w)
	if err := os.WriteFile(w, raw[:len(raw)-4], 0o644); err != nil {
		t.Fatal(err)
	}
	// 500: written by a trainer of another format version, consistently.
	d500 := filepath.Join(base, "step-00000500")
	m, _ := readManifest(d500)
	m.FormatVersion = FormatVersion + 1
	rawM, _ := json.Marshal(m)
	if err := os.WriteFile(filepath.Join(d500, CompleteFile), rawM, 0o644); err != nil {
		t.Fatal(err)
	}
	// 600: state.json says another version (COMPLETE updated to match).
	d600 := filepath.Join(base, "step-00000600")
	st, _ := os.ReadFile(filepath.Join(d600, StateFile))
	rewrite(t, d600, StateFile, []byte(strings.Replace(string(st), fmt.Sprintf(`"formatVersion": %d`, FormatVersion), `"formatVersion": 9`, 1)))
	// 650: one byte of the moments flipped, same size: only the sha256 check of a full load sees it.
	o := filepath.Join(base, "step-00000650", OptimizerFile)
	rawO, _ := os.ReadFile(o)
	rawO[len(rawO)-1] ^= 0x40
	if err := os.WriteFile(o, rawO, 0o644); err != nil {
		t.Fatal(err)
	}
	// An interrupted save and a stray file.
	if err := os.Mkdir(filepath.Join(base, tmpPrefix+"step-00000700-123"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(base, "notes.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	c, l, err := LoadLatest(root)
	if err != nil {
		t.Fatal(err)
	}
	if l.Step != 200 || l.Dir != filepath.Join(base, "step-00000200") || c == nil || c.State.Step != 200 {
		t.Fatalf("latest %+v", l)
	}
	if l2, err := Latest(root); err != nil || l2.Dir != l.Dir || len(l2.Skipped) != len(l.Skipped) {
		t.Fatalf("Latest %+v %v disagrees with LoadLatest %+v", l2, err, l)
	}
	reasons := map[string]string{}
	for _, s := range l.Skipped {
		reasons[filepath.Base(s.Dir)] = s.Problem.Error()
	}
	for dir, want := range map[string]string{
		"step-00000300": "no COMPLETE", "step-00000400": "model.safetensors", "step-00000500": fmt.Sprintf("format version %d", FormatVersion+1),
		"step-00000600": "format version 9", "step-00000650": "optimizer.safetensors: ", tmpPrefix + "step-00000700-123": "did not finish", "notes.txt": "not a step",
	} {
		if !strings.Contains(reasons[dir], want) {
			t.Errorf("%s: skipped because %q, want it to mention %q", dir, reasons[dir], want)
		}
	}
	if len(l.Skipped) != 7 {
		t.Errorf("skipped %d entries: %v", len(l.Skipped), reasons)
	}
	for _, bad := range []string{"step-00000300", "step-00000400", "step-00000500", "step-00000600", "step-00000650"} {
		if _, err := Load(filepath.Join(base, bad)); err == nil {
			t.Errorf("Load(%s) succeeded", bad)
		}
	}
}

func TestLatestEmpty(t *testing.T) {
	c, l, err := LoadLatest(t.TempDir())
	if err != nil || c != nil || l.Dir != "" || len(l.Skipped) != 0 {
		t.Fatalf("%+v %v", l, err)
	}
}

// TestFailedSaveLeavesNothing: a save that fails leaves no directory that could be mistaken for a checkpoint.
func TestFailedSaveLeavesNothing(t *testing.T) {
	root := t.TempDir()
	c := testCheckpoint(5)
	c.Config = []byte("{not json")
	if _, err := Save(root, c, 0); err == nil {
		t.Fatal("invalid config.json accepted")
	}
	l, err := Latest(root)
	if err != nil || l.Dir != "" {
		t.Fatalf("%+v %v", l, err)
	}
	entries, _ := os.ReadDir(filepath.Join(root, "checkpoints"))
	if len(entries) != 0 {
		t.Fatalf("left %v", entries)
	}
}

func TestKeepNewest(t *testing.T) {
	root := t.TempDir()
	base := filepath.Join(root, "checkpoints")
	if err := os.MkdirAll(filepath.Join(base, "step-00000001"), 0o755); err != nil { // incomplete: kept
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(base, tmpPrefix+"step-00000002-x"), 0o755); err != nil { // leftover: removed
		t.Fatal(err)
	}
	for _, step := range []int{10, 20, 30, 40} {
		if _, err := Save(root, testCheckpoint(step), 2); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	entries, _ := os.ReadDir(base)
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"step-00000001", "step-00000030", "step-00000040"}; !slices.Equal(names, want) {
		t.Fatalf("left %v, want %v", names, want)
	}
}

func TestSaveReplacesSameStep(t *testing.T) {
	root := t.TempDir()
	if _, err := Save(root, testCheckpoint(7), 0); err != nil {
		t.Fatal(err)
	}
	c := testCheckpoint(7)
	c.Tensors[2].Data[0] = 123
	dir, err := Save(root, c, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ByName(got.Tensors)[c.Tensors[2].Name].Data[0] != 123 {
		t.Fatal("old checkpoint kept")
	}
	entries, _ := os.ReadDir(filepath.Join(root, "checkpoints"))
	if len(entries) != 1 {
		t.Fatalf("entries %v", entries)
	}
}

func TestSaveRejectsBadInput(t *testing.T) {
	cases := map[string]func(c *Checkpoint){
		"shape":           func(c *Checkpoint) { c.Tensors[0].Shape = []int{3, 3} },
		"duplicate":       func(c *Checkpoint) { c.Tensors[1].Name = c.Tensors[0].Name },
		"unnamed":         func(c *Checkpoint) { c.Tensors[1].Name = "" },
		"no tensors":      func(c *Checkpoint) { c.Tensors = nil },
		"tokenizer":       func(c *Checkpoint) { c.Tokenizer = nil },
		"moment name":     func(c *Checkpoint) { c.Optimizer.ExpAvg["nope"] = []float32{1} },
		"moment length":   func(c *Checkpoint) { c.Optimizer.ExpAvgSq["ln_f.bias"] = []float32{1} },
		"moment missing":  func(c *Checkpoint) { delete(c.Optimizer.ExpAvgSq, "ln_f.bias") },
		"negative step":   func(c *Checkpoint) { c.State.Step = -1 },
		"optimizer step":  func(c *Checkpoint) { c.Optimizer.Step = -3 },
		"moment mismatch": func(c *Checkpoint) { delete(c.Optimizer.ExpAvg, "ln_f.bias"); c.Optimizer.ExpAvg["x"] = nil },
	}
	for name, mutate := range cases {
		c := testCheckpoint(1)
		mutate(&c)
		if _, err := Save(t.TempDir(), c, 0); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
