package main

// `story-data`: write the project's story preference dataset (trainer/storydata) as JSON Lines: preference pairs,
// or with --stories the SFT rows that continue the same openings as stories go.

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/data"
	"github.com/preftune/preftune/trainer/storydata"
)

func init() {
	register("story-data", "write the story preference dataset for pretrained story models (stories260K) as JSON Lines",
		func(args []string) int { return storyData(args, os.Stdout, os.Stderr) })
}

func storyData(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("story-data", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "file to write (- for stdout)")
	n := fs.Int("n", 600, "number of rows")
	seed := fs.Uint64("seed", 1, "generator seed: the same seed gives the same file")
	stories := fs.Bool("stories", false, "write SFT rows ({prompt, completion}: the openings continued as stories go) instead of preference pairs")
	heldOutFrom := fs.String("held-out-from", "", "comma-separated dataset files: write preference rows whose prompts none of them has "+
		"(held-out openings to measure the rule on; use another --seed than theirs)")
	if err := fs.Parse(args); err != nil {
		return contract.ExitUsage
	}
	if fs.NArg() > 0 || *out == "" || *n < 1 {
		fmt.Fprintln(stderr, "story-data: give --out FILE, --n of at least 1, and no other arguments")
		fs.Usage()
		return contract.ExitUsage
	}
	cfg := storydata.Config{}
	rows, kind := cfg.Generate(*n, *seed), "preference pairs"
	switch {
	case *stories && *heldOutFrom != "":
		fmt.Fprintln(stderr, "story-data: --stories and --held-out-from exclude each other")
		return contract.ExitUsage
	case *stories:
		rows, kind = cfg.Stories(*n, *seed), "SFT stories"
	case *heldOutFrom != "":
		seen := map[string]bool{}
		for _, file := range strings.Split(*heldOutFrom, ",") {
			ds, err := data.ReadFile(file, data.Options{})
			if err != nil {
				fmt.Fprintf(stderr, "story-data: --held-out-from: %v\n", err)
				return contract.ExitUsage
			}
			for _, r := range ds.Rows {
				seen[r.Prompt] = true
			}
		}
		var err error
		if rows, err = cfg.HeldOut(*n, *seed, seen); err != nil {
			fmt.Fprintf(stderr, "story-data: --held-out-from: %v\n", err)
			return contract.ExitUsage
		}
		kind = "held-out preference pairs"
	}
	if err := writeOut(*out, stdout, func(w io.Writer) error { return storydata.Write(w, rows) }); err != nil {
		fmt.Fprintf(stderr, "story-data: %v\n", err)
		return contract.ExitFailed
	}
	fmt.Fprintf(stderr, "story-data: wrote %d %s (seed %d) to %s\n", len(rows), kind, *seed, *out)
	return contract.ExitOK
}
