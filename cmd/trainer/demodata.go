package main

// `demo-data`: write the project's synthetic preference dataset (trainer/demodata) as standard JSON Lines.

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/demodata"
)

func init() {
	register("demo-data", "write the synthetic addition preference dataset as JSON Lines",
		func(args []string) int { return demoData(args, os.Stdout, os.Stderr) })
}

func demoData(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo-data", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "file to write (- for stdout)")
	n := fs.Int("n", 2000, "number of rows")
	seed := fs.Uint64("seed", 1, "generator seed: the same seed gives the same file")
	difficulty := fs.Int("difficulty", demodata.DefaultDifficulty, "operand ranges: 1 (0-9 + 0-9) to 4 (0-999 + 0-999)")
	if err := fs.Parse(args); err != nil {
		return contract.ExitUsage
	}
	if fs.NArg() > 0 || *out == "" {
		fmt.Fprintln(stderr, "demo-data: give --out FILE (and no other arguments)")
		fs.Usage()
		return contract.ExitUsage
	}
	rows, err := demodata.Config{Difficulty: *difficulty}.Generate(*n, *seed)
	if err != nil {
		fmt.Fprintf(stderr, "demo-data: %v\n", err)
		return contract.ExitUsage
	}
	if err := writeOut(*out, stdout, func(w io.Writer) error { return demodata.Write(w, rows) }); err != nil {
		fmt.Fprintf(stderr, "demo-data: %v\n", err)
		return contract.ExitFailed
	}
	fmt.Fprintf(stderr, "demo-data: wrote %d rows (difficulty %d, seed %d) to %s\n", len(rows), *difficulty, *seed, *out)
	return contract.ExitOK
}

// writeOut writes through write to the file path (created or truncated), or to stdout for "-", buffered; the
// error names the file.
func writeOut(path string, stdout io.Writer, write func(io.Writer) error) (err error) {
	w := stdout
	if path != "-" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer func() {
			if cerr := f.Close(); err == nil && cerr != nil {
				err = fmt.Errorf("writing %s: %w", path, cerr)
			}
		}()
		w = f
	}
	bw := bufio.NewWriter(w)
	if err := write(bw); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
