package nn

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// BLAS is the implementation the ops call for matrix products. The default is gonum's pure-Go one; building
// with the openblas tag switches it (and gorgonia's) to OpenBLAS. Only change it before building graphs.
var BLAS interface {
	blas.Float32
	blas.Float64
} = gonum.Implementation{}

// BLASName says which implementation BLAS is, for benchmark reports.
var BLASName = "gonum (pure Go)"

// gemm computes C = alpha·op(A)·op(B) + beta·C on row-major, possibly strided, matrices.
func gemm[T float](tA, tB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	ta, tb := blas.NoTrans, blas.NoTrans
	if tA {
		ta = blas.Trans
	}
	if tB {
		tb = blas.Trans
	}
	switch av := any(a).(type) {
	case []float32:
		BLAS.Sgemm(ta, tb, m, n, k, float32(alpha), av, lda, any(b).([]float32), ldb, float32(beta), any(c).([]float32), ldc)
	case []float64:
		BLAS.Dgemm(ta, tb, m, n, k, float64(alpha), av, lda, any(b).([]float64), ldb, float64(beta), any(c).([]float64), ldc)
	}
}
