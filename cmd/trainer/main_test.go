package main

import "testing"

// TestAsksHelp: a command's -h/--help ends with exit 0 (the flag package's ErrHelp), any other usage error with 2.
func TestAsksHelp(t *testing.T) {
	for _, c := range []struct {
		args []string
		want bool
	}{
		{[]string{"--help"}, true},
		{[]string{"--data", "x", "-h"}, true},
		{[]string{"-help"}, true},
		{[]string{"--bogus"}, false},
		{[]string{"--", "--help"}, false},
		{nil, false},
	} {
		if got := asksHelp(c.args); got != c.want {
			t.Errorf("asksHelp(%q) = %v, want %v", c.args, got, c.want)
		}
	}
}
