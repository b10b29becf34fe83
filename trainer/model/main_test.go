package model

import (
	"flag"
	"os"
	"testing"

	"github.com/preftune/preftune/trainer/nn"
)

// TestMain runs the package's tests with poisoned arena buffers (nn.PoisonBuffers): every buffer a graph's
// plan hands to an op is NaN until the op writes it, so an op that leaves an element unwritten, or reads a
// buffer after its last planned reader, turns the golden, gradient and learning checks into NaN failures.
// Benchmarks run without it.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		nn.PoisonBuffers(true)
	}
	os.Exit(m.Run())
}
