package chattemplate

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Paths relative to this package's directory, where go test runs.
const (
	// sharedTemplates holds the 11 real chat templates and 9 conversations (../shared/testdata/chat-templates from
	// the repository's root; read-only test data beside the repository).
	sharedTemplates = "../../../shared/testdata/chat-templates"
	installRef      = "../../hack/install-jinja-ref.sh"
	refScript       = "testdata/render_ref.mjs"
	pyRefScript     = "testdata/render_ref.py"
)

var (
	refOnce sync.Once
	refDir  string
	refErr  string
)

// jinjaRef returns the folder hack/install-jinja-ref.sh installed @huggingface/jinja into, installing it on first
// use. It skips the test only when npm or node is absent; a failed install with npm present fails the test.
func jinjaRef(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("npm"); err != nil {
		t.Skip("npm is not installed: cannot install the reference renderer @huggingface/jinja (hack/install-jinja-ref.sh); skipping the comparison")
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed: cannot run the reference renderer @huggingface/jinja; skipping the comparison")
	}
	refOnce.Do(func() {
		var stderr bytes.Buffer
		cmd := exec.Command("bash", installRef)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		lines := strings.Fields(string(out))
		if err != nil || len(lines) == 0 {
			refErr = strings.TrimSpace(stderr.String())
			if err != nil {
				refErr += " (" + err.Error() + ")"
			}
			return
		}
		refDir = lines[len(lines)-1]
	})
	if refDir == "" {
		t.Fatalf("npm is installed but %s failed: %s", installRef, refErr)
	}
	return refDir
}

// refCase is one input of render_ref.mjs; refResult one output.
type refCase struct {
	Template string `json:"template"`
	Context  Object `json:"context"`
}

type refResult struct {
	Output *string `json:"output"`
	Error  *string `json:"error"`
}

// reference is a renderer the Go results are compared with.
type reference struct {
	name string
	run  func(t *testing.T, cases []refCase) []refResult
}

// references are @huggingface/jinja (required: the test installs it and skips only without npm or node) and
// Python's Jinja2 configured as transformers configures it (used when a python3 on PATH imports jinja2; the
// subtest skips otherwise, since nothing here installs it).
var references = []reference{
	{"huggingface-jinja", func(t *testing.T, cases []refCase) []refResult {
		return runReference(t, cases, "node", refScript, jinjaRef(t))
	}},
	{"python-jinja2", func(t *testing.T, cases []refCase) []refResult {
		if out, err := exec.Command("python3", "-c", "import jinja2; print(jinja2.__version__)").CombinedOutput(); err != nil {
			t.Skipf("no python3 with jinja2 on PATH (%v: %s): skipping the comparison with Python's Jinja2", err, strings.TrimSpace(string(out)))
		}
		return runReference(t, cases, "python3", pyRefScript)
	}},
}

// runReference renders every case with one run of a reference script. Its input is {"templates": [...], "cases":
// [{"template": index, "context": {...}}]}, each distinct template sent once.
func runReference(t *testing.T, cases []refCase, command string, args ...string) []refResult {
	t.Helper()
	type wireCase struct {
		Template int    `json:"template"`
		Context  Object `json:"context"`
	}
	var input struct {
		Templates []string   `json:"templates"`
		Cases     []wireCase `json:"cases"`
	}
	index := map[string]int{}
	for _, c := range cases {
		i, ok := index[c.Template]
		if !ok {
			i = len(input.Templates)
			index[c.Template] = i
			input.Templates = append(input.Templates, c.Template)
		}
		input.Cases = append(input.Cases, wireCase{Template: i, Context: c.Context})
	}
	in, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(command, args...)
	cmd.Stdin = bytes.NewReader(in)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", command, args[0], err, stderr.String())
	}
	var res []refResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%s %s printed bad JSON: %v", command, args[0], err)
	}
	if len(res) != len(cases) {
		t.Fatalf("%s %s returned %d results for %d cases", command, args[0], len(res), len(cases))
	}
	return res
}

// goCase is one rendering to compare.
type goCase struct {
	name     string
	template string
	specials map[string]string
	messages []Message
	opts     RenderOptions
}

// refContext is what transformers passes to the template for c: the special tokens, messages, tools and documents
// (None when not given), add_generation_prompt, and the other keyword arguments.
func (c goCase) refContext() Object {
	var o Object
	for k, v := range c.specials {
		o.Set(k, v)
	}
	msgs := make([]any, len(c.messages))
	for i, m := range c.messages {
		msgs[i] = Object(m)
	}
	o.Set("messages", msgs)
	if c.opts.Tools != nil {
		o.Set("tools", c.opts.Tools)
	} else {
		o.Set("tools", nil)
	}
	if c.opts.Documents != nil {
		o.Set("documents", c.opts.Documents)
	} else {
		o.Set("documents", nil)
	}
	o.Set("add_generation_prompt", c.opts.AddGenerationPrompt)
	for _, f := range c.opts.Vars {
		o.Set(f.Key, f.Value)
	}
	return o
}

// compareWithReferences renders every case here and with each reference, and fails on any difference not listed in
// known (keyed by reference name + "/" + case name, valued by the reason it is acceptable). A listed case that no
// longer differs fails too, so the list stays true. A case the reference rejects with an error must fail here:
// with a *RaiseError of the same message when the reference's error is a raise_exception.
func compareWithReferences(t *testing.T, cases []goCase, known map[string]string) {
	names := map[string]bool{}
	for _, c := range cases {
		names[c.name] = true
	}
	for k := range known {
		ref, name, _ := strings.Cut(k, "/")
		if !names[name] || (ref != references[0].name && ref != references[1].name) {
			t.Errorf("known difference %q names no reference and case", k)
		}
	}
	refCases := make([]refCase, len(cases))
	for i, c := range cases {
		refCases[i] = refCase{Template: c.template, Context: c.refContext()}
	}
	for _, ref := range references {
		t.Run(ref.name, func(t *testing.T) {
			res := ref.run(t, refCases)
			same, raised, failed, knownDiffs := 0, 0, 0, 0
			for i, c := range cases {
				r := res[i]
				got, err := "", error(nil)
				tmpl, err := Compile(c.template, c.specials)
				if err == nil {
					got, err = tmpl.Render(c.messages, c.opts)
				}
				reason, isKnown := known[ref.name+"/"+c.name]
				if r.Error != nil {
					var re *RaiseError
					switch {
					case err == nil && isKnown:
						knownDiffs++
						t.Logf("%s: known difference (%s): the reference failed with %q, we rendered %q", c.name, reason, *r.Error, got)
					case err == nil:
						t.Errorf("%s: the reference failed with %q, we rendered %q", c.name, *r.Error, got)
					case errors.As(err, &re):
						if re.Message != *r.Error {
							t.Errorf("%s: raised %q, the reference failed with %q", c.name, re.Message, *r.Error)
						} else {
							raised++
						}
					default:
						failed++
						t.Logf("%s: both fail: we with %v, the reference with %q", c.name, err, *r.Error)
					}
					continue
				}
				if err != nil {
					t.Errorf("%s: %v (the reference rendered %q)", c.name, err, *r.Output)
					continue
				}
				switch {
				case got == *r.Output && isKnown:
					t.Errorf("%s: listed as a known difference (%s) but renders like the reference now: remove it from the list", c.name, reason)
				case got == *r.Output:
					same++
				case isKnown:
					knownDiffs++
					t.Logf("%s: known difference (%s):\n got %q\nwant %q", c.name, reason, got, *r.Output)
				default:
					t.Errorf("%s: differs from the reference at byte %d:\n got %q\nwant %q", c.name, firstDifference(got, *r.Output), got, *r.Output)
				}
			}
			t.Logf("%s: %d of %d cases rendered identically, %d raised the same message, %d failed in both, %d known differences",
				ref.name, same, len(cases), raised, failed, knownDiffs)
		})
	}
}

// loadSharedCases reads the 11 templates × 9 conversations of ../shared/testdata/chat-templates (index.json and
// conversations.json), skipping the test when the folder is absent.
func loadSharedCases(t *testing.T) []goCase {
	t.Helper()
	if _, err := os.Stat(sharedTemplates); err != nil {
		t.Skipf("shared chat-template test data %s is absent (%v): skipping", sharedTemplates, err)
	}
	read := func(name string) Object {
		data, err := os.ReadFile(filepath.Join(sharedTemplates, name))
		if err != nil {
			t.Fatal(err)
		}
		var o Object
		if err := json.Unmarshal(data, &o); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return o
	}
	index, convs := read("index.json"), read("conversations.json")
	var cases []goCase
	for _, tf := range index {
		entry := tf.Value.(Object)
		file, _ := entry.Get("file")
		src, err := os.ReadFile(filepath.Join(sharedTemplates, file.(string)))
		if err != nil {
			t.Fatal(err)
		}
		specials := map[string]string{}
		for _, k := range []string{BOSToken, EOSToken} {
			if v, _ := entry.Get(k); v != nil {
				specials[k] = v.(string)
			}
		}
		for _, cf := range convs {
			c := goCase{name: tf.Key + "/" + cf.Key, template: string(src), specials: specials}
			for _, f := range cf.Value.(Object) {
				switch f.Key {
				case "messages":
					for i, m := range f.Value.([]any) {
						obj, ok := m.(Object)
						if !ok {
							t.Fatalf("conversations.json %s: messages[%d] is not an object", cf.Key, i)
						}
						c.messages = append(c.messages, Message(obj))
					}
				case "tools":
					c.opts.Tools = f.Value.([]any)
				case "add_generation_prompt":
					c.opts.AddGenerationPrompt = f.Value.(bool)
				default:
					c.opts.Vars.Set(f.Key, f.Value)
				}
			}
			cases = append(cases, c)
		}
	}
	return cases
}

// TestSharedTemplatesMatchReferences renders the 11 real templates × 9 conversations and compares each rendering
// (or raised error) with @huggingface/jinja's and Python Jinja2's. None may differ.
func TestSharedTemplatesMatchReferences(t *testing.T) {
	cases := loadSharedCases(t)
	if len(cases) != 99 {
		t.Fatalf("want 11 templates × 9 conversations = 99 cases, got %d", len(cases))
	}
	compareWithReferences(t, cases, nil)
}
