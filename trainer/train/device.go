package train

import (
	"fmt"
	"runtime"

	"github.com/preftune/preftune/trainer/nn"
)

// deviceReport says what the trainer computes on. The bundled trainer has no GPU kernels: a pod that holds GPUs
// (the operator schedules on them, so the count is real) still trains on its CPU, and the log must say so rather
// than leave users to assume otherwise.
func deviceReport(gpus int32) map[string]any {
	f := map[string]any{"device": "cpu", "blas": nn.BLASName, "threads": runtime.GOMAXPROCS(0), "gpus": gpus}
	if gpus > 0 {
		f["note"] = fmt.Sprintf("this pod holds %d GPU(s), but the bundled trainer computes on the CPU", gpus)
	}
	return f
}
