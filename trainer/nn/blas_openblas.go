//go:build openblas

package nn

// #cgo LDFLAGS: -lopenblas
// void openblas_set_num_threads(int);
// char* openblas_get_corename(void);
import "C"

import (
	"gonum.org/v1/netlib/blas/netlib"
	G "gorgonia.org/gorgonia"
)

// With the openblas tag every matrix product, ours and gorgonia's (and gorgonia.org/tensor's), goes through
// OpenBLAS. OpenBLAS itself runs single-threaded: the ops split their products across goroutines (gemm), and
// OpenBLAS's own spinning worker threads measured slower than that on a shared 2-core machine, above all for
// attention's many small per-head products.
func init() {
	C.openblas_set_num_threads(1)
	G.Use(netlib.Implementation{})
	BLAS = netlib.Implementation{}
	// The kernel family OpenBLAS picked for this CPU (or that OPENBLAS_CORETYPE forced): its rounding differs from
	// the others', so a run's figures belong to it (hack/spread.sh).
	BLASName = "OpenBLAS " + C.GoString(C.openblas_get_corename()) + " (1 thread per goroutine)"
}
