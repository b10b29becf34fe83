//go:build openblas

package nn

// #cgo LDFLAGS: -lopenblas
import "C"

import (
	"gonum.org/v1/netlib/blas/netlib"
	G "gorgonia.org/gorgonia"
)

// With the openblas tag every matrix product, ours and gorgonia's (and gorgonia.org/tensor's), goes through
// OpenBLAS.
func init() {
	G.Use(netlib.Implementation{})
	BLAS = netlib.Implementation{}
	BLASName = "OpenBLAS"
}
