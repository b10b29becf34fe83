package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/model"
	"github.com/preftune/preftune/trainer/tokenizer"
	"github.com/preftune/preftune/trainer/train"
)

func init() {
	register("generate", "complete prompts with a trained model: --model dir --prompt text, or --prompts-file for JSON lines", runGenerate)
}

func runGenerate(args []string) int {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	modelDir := fs.String("model", "", "model or checkpoint directory (with --adapter: the adapter's base model)")
	adapterDir := fs.String("adapter", "", "a LoRA adapter directory (PEFT's layout) to apply to --model")
	prompt := fs.String("prompt", "", "one prompt; the completion goes to stdout")
	promptsFile := fs.String("prompts-file", "", `JSON lines, each {"prompt": ...}; writes {"prompt", "completion"} lines to stdout ("-": stdin)`)
	maxNew := fs.Int("max-new", 64, "most tokens to generate")
	temperature := fs.Float64("temperature", 0, "0 is greedy; above 0 samples")
	seed := fs.Uint64("seed", 0, "seed of the sampler")
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
	}
	p, tok, _, err := train.LoadModelDir(*modelDir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "preftune-trainer generate: %v\n", err)
		return contract.ExitInvalidInput
	}
	if *adapterDir != "" {
		if err := p.LoadAdapter(*adapterDir); err != nil {
			fmt.Fprintf(os.Stderr, "preftune-trainer generate: %v\n", err)
			return contract.ExitInvalidInput
		}
		p.MergeLoRA()
	}
	g := generator{p: p, tok: tok, maxNew: *maxNew, temperature: *temperature, rng: rand.New(rand.NewPCG(*seed, 0))}
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

type generator struct {
	p           *model.Params
	tok         tokenizer.Tokenizer
	maxNew      int
	temperature float64
	rng         *rand.Rand
}

func (g generator) complete(prompt string) (string, error) {
	return train.Complete(g.p, g.tok, prompt, g.maxNew, g.temperature, g.rng)
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
