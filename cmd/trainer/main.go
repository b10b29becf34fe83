// Command preftune-trainer is the program the operator's pods run: it trains (sft, dpo), inspects datasets,
// generates completions and writes the project's synthetic dataset. Each subcommand lives in its own file and
// registers itself in commands.
package main

import (
	"fmt"
	"os"
	"sort"

	"github.com/preftune/preftune/trainer/contract"
)

// command is one subcommand: it gets the arguments after its name and returns the process exit code.
type command struct {
	summary string
	run     func(args []string) int
}

var commands = map[string]command{}

func register(name, summary string, run func(args []string) int) {
	commands[name] = command{summary: summary, run: run}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: preftune-trainer <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-16s %s\n", n, commands[n].summary)
	}
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(contract.ExitUsage)
	}
	switch os.Args[1] {
	case "-h", "-help", "--help", "help":
		usage()
		os.Exit(contract.ExitOK)
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "preftune-trainer: unknown command %q\n", os.Args[1])
		usage()
		os.Exit(contract.ExitUsage)
	}
	code := cmd.run(os.Args[2:])
	if code == contract.ExitUsage && asksHelp(os.Args[2:]) {
		code = contract.ExitOK // the command printed its flags because they were asked for
	}
	os.Exit(code)
}

// asksHelp says whether a command's arguments ask for its help (the flag package's -h, -help, --help): the command
// prints its usage and returns ExitUsage, which is no error then.
func asksHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help", "--h":
			return true
		}
	}
	return false
}
