package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/data"
	"github.com/preftune/preftune/trainer/model"
	"github.com/preftune/preftune/trainer/storage"
	"github.com/preftune/preftune/trainer/tokenizer"
	"github.com/preftune/preftune/trainer/train"
)

func init() {
	register("generate", "complete prompts with a trained model: --model dir --prompt text, or --prompts-file for JSON lines", runGenerate)
}

func runGenerate(args []string) int {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	modelDir := fs.String("model", "", "model or checkpoint directory (with --adapter: the adapter's base model), or a "+
		"model repository on the Hugging Face Hub, hf://org/name[@revision] ($HF_ENDPOINT, $HF_TOKEN)")
	var adapters stringList
	fs.Var(&adapters, "adapter", "a LoRA adapter to apply to --model: a directory in PEFT's layout (or a LoRA run's "+
		"checkpoint), or a PEFT adapter repository on the Hugging Face Hub, hf://org/name[@revision] ($HF_ENDPOINT, "+
		"$HF_TOKEN); repeat it to apply several in order (a DPO adapter trained on a reference adapter: that one first)")
	prompt := fs.String("prompt", "", "one prompt; the completion goes to stdout")
	promptsFile := fs.String("prompts-file", "", `JSON lines, each {"prompt": ...}; writes {"prompt", "completion"} lines to stdout ("-": stdin)`)
	maxNew := fs.Int("max-new", 64, "most tokens to generate")
	temperature := fs.Float64("temperature", 0, "0 is greedy; above 0 samples")
	seed := fs.Uint64("seed", 0, "seed of the sampler")
	chat := fs.Bool("chat", false, "prompt as a chat: each prompt becomes one user message rendered with the chat "+
		"template a run would use (--chat-template, else the adapter's, else the model's, else the built-in one; stderr "+
		"says which) with add_generation_prompt, and the completion stops at the template's turn end; without it the "+
		"prompt is raw text")
	templateFile := fs.String("chat-template", "", "with --chat: render with the Jinja chat template in this file")
	if err := fs.Parse(args); err != nil {
		return exitUsage("generate", err)
	}
	switch {
	case fs.NArg() > 0:
		return exitUsage("generate", fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	case *modelDir == "":
		return exitUsage("generate", fmt.Errorf("--model is required"))
	case (*prompt == "") == (*promptsFile == ""):
		return exitUsage("generate", fmt.Errorf("give exactly one of --prompt and --prompts-file"))
	case *maxNew < 1:
		return exitUsage("generate", fmt.Errorf("--max-new is %d, want >= 1", *maxNew))
	case *temperature < 0:
		return exitUsage("generate", fmt.Errorf("--temperature is %g, want >= 0", *temperature))
	case *templateFile != "" && !*chat:
		return exitUsage("generate", fmt.Errorf("--chat-template needs --chat (raw prompts use no template)"))
	}
	dir, where, cleanup, code := hubFlagDir("--model", *modelDir, false)
	defer cleanup()
	if code != contract.ExitOK {
		return code
	}
	p, tok, _, err := train.LoadModelDir(dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "preftune-trainer generate: %s: %v\n", where, err)
		return contract.ExitInvalidInput
	}
	templateDirs := []string{dir}
	for i, a := range adapters {
		dir, where, cleanup, code := hubFlagDir("--adapter", a, true)
		defer cleanup()
		if code != contract.ExitOK {
			return code
		}
		if l, ok, err := model.ReadAdapterLineage(dir); err != nil {
			fmt.Fprintf(os.Stderr, "preftune-trainer generate: %s: %v\n", where, err)
			return contract.ExitInvalidInput
		} else if ok && len(l.AppliesAfter) > i {
			fmt.Fprintf(os.Stderr, "preftune-trainer generate: warning: %s was trained on top of %s (%s): give %s first, "+
				"or the completions are not the trained model's\n", where, strings.Join(l.AppliesAfter, ", "),
				model.AdapterLineageFile, strings.Join(prefixEach("--adapter ", l.AppliesAfter), " "))
		}
		if err := p.LoadAdapter(dir); err != nil {
			fmt.Fprintf(os.Stderr, "preftune-trainer generate: %s: %v\n", where, err)
			return contract.ExitInvalidInput
		}
		p.MergeLoRA()
		// An adapter directory records the template its run trained with (as a DPO run on it renders): the last
		// adapter's comes first.
		templateDirs = append([]string{dir}, templateDirs...)
	}
	g := generator{p: p, tok: tok, maxNew: *maxNew, temperature: *temperature, rng: rand.New(rand.NewPCG(*seed, 0))}
	if *chat {
		if g.chat, err = chatEncoder("generate", tok, *templateFile, os.Stderr, templateDirs...); err != nil {
			fmt.Fprintf(os.Stderr, "preftune-trainer generate: --chat: %v\n", err)
			return contract.ExitInvalidInput
		}
	}
	if *prompt != "" {
		text, err := g.complete(*prompt)
		if err != nil {
			fmt.Fprintf(os.Stderr, "preftune-trainer generate: %v\n", err)
			return contract.ExitFailed
		}
		fmt.Println(text)
		return contract.ExitOK
	}
	in := os.Stdin
	if *promptsFile != "-" {
		f, err := os.Open(*promptsFile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "preftune-trainer generate: %v\n", err)
			return contract.ExitInvalidInput
		}
		defer f.Close()
		in = f
	}
	if err := g.file(in, os.Stdout, *promptsFile); err != nil {
		fmt.Fprintf(os.Stderr, "preftune-trainer generate: %v\n", err)
		return contract.ExitInvalidInput
	}
	return contract.ExitOK
}

// hubFlagDir is the local directory of a flag's uri: a directory as given, or for hf://org/name[@revision] the
// repository's files downloaded into a temporary directory (cleanup removes it), with a "model-downloaded" or
// "adapter-downloaded" event on stderr naming the commit the revision resolved to. An adapter brings only a PEFT
// adapter's files (storage.HubClient.DownloadAdapter), a model its config, tokenizer and safetensors weights
// (Download). where names the flag (and the URI and commit) in errors. A missing repository, or one that holds no
// such model or adapter, is invalid input; other download failures are failures.
func hubFlagDir(flag, uri string, adapter bool) (dir, where string, cleanup func(), code int) {
	cleanup = func() {}
	if !storage.IsHub(uri) {
		return uri, flag, cleanup, contract.ExitOK
	}
	tmp, err := os.MkdirTemp("", "preftune-hub-*")
	if err != nil {
		fmt.Fprintf(os.Stderr, "preftune-trainer generate: %s: %v\n", flag, err)
		return "", "", cleanup, contract.ExitFailed
	}
	cleanup = func() { os.RemoveAll(tmp) }
	download, event := storage.HubFromEnv().Download, "model-downloaded"
	if adapter {
		download, event = storage.HubFromEnv().DownloadAdapter, "adapter-downloaded"
	}
	m, err := download(context.Background(), uri, tmp)
	if err != nil {
		fmt.Fprintf(os.Stderr, "preftune-trainer generate: %s: %v\n", flag, err)
		if storage.IsNotExist(err) {
			return "", "", cleanup, contract.ExitInvalidInput
		}
		return "", "", cleanup, contract.ExitFailed
	}
	train.NewProgress(os.Stderr).Event(event, map[string]any{"uri": uri, "commit": m.Commit, "files": len(m.Files),
		"skipped": len(m.Skipped), "bytes": m.Bytes, "digest": m.Digest})
	return tmp, fmt.Sprintf("%s %s (commit %s)", flag, uri, m.Commit), cleanup, contract.ExitOK
}

type generator struct {
	p           *model.Params
	tok         tokenizer.Tokenizer
	maxNew      int
	temperature float64
	rng         *rand.Rand
	// chat, when set, renders each prompt as one user message (--chat).
	chat *data.Encoder
}

func (g generator) complete(prompt string) (string, error) {
	if g.chat == nil {
		return train.Complete(g.p, g.tok, prompt, g.maxNew, g.temperature, g.rng)
	}
	ids, _, err := encodeChatPrompt("generate", g.chat, prompt, os.Stderr)
	if err != nil {
		return "", err
	}
	return train.CompleteIDs(g.p, g.tok, ids, g.maxNew, g.temperature, g.rng, g.chat.TurnEnd())
}

// file completes each JSON line of r; blank lines are skipped, any other bad line stops with its number.
func (g generator) file(r io.Reader, w io.Writer, name string) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for line := 1; sc.Scan(); line++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var row struct {
			Prompt *string `json:"prompt"`
		}
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			return fmt.Errorf("%s: line %d: %v", name, line, err)
		}
		if row.Prompt == nil {
			return fmt.Errorf("%s: line %d: field prompt is missing", name, line)
		}
		text, err := g.complete(*row.Prompt)
		if err != nil {
			return fmt.Errorf("%s: line %d: %v", name, line, err)
		}
		if err := enc.Encode(struct {
			Prompt     string `json:"prompt"`
			Completion string `json:"completion"`
		}{*row.Prompt, text}); err != nil {
			return err
		}
	}
	return sc.Err()
}

// stringList is a flag that may be given several times, in order.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	if v == "" {
		return fmt.Errorf("empty value")
	}
	*l = append(*l, v)
	return nil
}

func prefixEach(prefix string, s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = prefix + v
	}
	return out
}
