package chattemplate

import (
	"bytes"
	"encoding/json"
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

// renderReference renders every case with @huggingface/jinja in one node process.
func renderReference(t *testing.T, cases []refCase) []refResult {
	t.Helper()
	dir := jinjaRef(t)
	in, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command("node", refScript, dir)
	cmd.Stdin = bytes.NewReader(in)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node %s: %v: %s", refScript, err, stderr.String())
	}
	var res []refResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("node %s printed bad JSON: %v", refScript, err)
	}
	if len(res) != len(cases) {
		t.Fatalf("node %s returned %d results for %d cases", refScript, len(res), len(cases))
	}
	return res
}

// sharedCase is one template × conversation of ../shared/testdata/chat-templates.
type sharedCase struct {
	name         string // template/conversation
	template     string
	tmplName     string
	convName     string
	specials     map[string]string
	messages     []Message
	opts         RenderOptions
	refVariables Object // what the reference renders with (the same as opts, as transformers passes them)
}

// loadSharedCases reads index.json and conversations.json, skipping the test when the folder is absent.
func loadSharedCases(t *testing.T) []sharedCase {
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
	var cases []sharedCase
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
			conv := cf.Value.(Object)
			c := sharedCase{
				name:     tf.Key + "/" + cf.Key,
				template: string(src),
				tmplName: tf.Key,
				convName: cf.Key,
				specials: specials,
			}
			// The reference sees what transformers passes: the special tokens, messages, tools and documents
			// (None when not given), add_generation_prompt, and the other keys as keyword arguments.
			for k, v := range specials {
				c.refVariables.Set(k, v)
			}
			c.refVariables.Set("tools", nil)
			c.refVariables.Set("documents", nil)
			for _, f := range conv {
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
				c.refVariables.Set(f.Key, f.Value)
			}
			cases = append(cases, c)
		}
	}
	return cases
}

// knownDifferences are the renderings allowed to differ from @huggingface/jinja, each with the reason. A listed
// case that no longer differs fails the test, so the list stays true.
var knownDifferences = map[string]string{}

// TestSharedTemplatesMatchReference renders the 11 real templates × 9 conversations and compares each rendering
// (or raised error) with @huggingface/jinja's, which renders like Python Jinja2 configured as transformers does.
func TestSharedTemplatesMatchReference(t *testing.T) {
	cases := loadSharedCases(t)
	if len(cases) != 99 {
		t.Fatalf("want 11 templates × 9 conversations = 99 cases, got %d", len(cases))
	}
	refCases := make([]refCase, len(cases))
	for i, c := range cases {
		refCases[i] = refCase{Template: c.template, Context: c.refVariables}
	}
	ref := renderReference(t, refCases)
	same, raised, known := 0, 0, 0
	for i, c := range cases {
		tmpl, err := Compile(c.template, c.specials)
		if err != nil {
			t.Errorf("%s: compile: %v", c.name, err)
			continue
		}
		got, err := tmpl.Render(c.messages, c.opts)
		r := ref[i]
		if r.Error != nil {
			var re *RaiseError
			switch {
			case err == nil:
				t.Errorf("%s: the reference raised %q, we rendered %q", c.name, *r.Error, got)
			case !asRaise(err, &re):
				t.Errorf("%s: the reference raised %q, we failed otherwise: %v", c.name, *r.Error, err)
			case re.Message != *r.Error:
				t.Errorf("%s: raised %q, the reference raised %q", c.name, re.Message, *r.Error)
			default:
				raised++
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v (the reference rendered %q)", c.name, err, *r.Output)
			continue
		}
		reason, isKnown := knownDifferences[c.name]
		switch {
		case got == *r.Output && isKnown:
			t.Errorf("%s: listed as a known difference (%s) but now renders like the reference: remove it from knownDifferences", c.name, reason)
		case got == *r.Output:
			same++
		case isKnown:
			known++
			t.Logf("%s: known difference (%s):\n got %q\nwant %q", c.name, reason, got, *r.Output)
		default:
			t.Errorf("%s: differs from the reference at byte %d:\n got %q\nwant %q", c.name, firstDiff(got, *r.Output), got, *r.Output)
		}
	}
	t.Logf("%d of %d cases identical to @huggingface/jinja, %d raised the same message, %d known differences", same, len(cases), raised, known)
}

func firstDiff(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}
