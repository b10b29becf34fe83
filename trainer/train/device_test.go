package train

import (
	"strings"
	"testing"
)

// A pod holding GPUs still trains on the CPU with this trainer; its log must say so.
func TestDeviceReportSaysCPUEvenWithGPUs(t *testing.T) {
	for _, gpus := range []int32{0, 2} {
		f := deviceReport(gpus)
		if f["device"] != "cpu" || f["gpus"] != gpus || f["threads"].(int) < 1 || f["blas"] == "" {
			t.Errorf("gpus %d: %v", gpus, f)
		}
		note, _ := f["note"].(string)
		if (gpus > 0) != strings.Contains(note, "computes on the CPU") {
			t.Errorf("gpus %d: note %q", gpus, note)
		}
	}
}
