package nn

import (
	"runtime"
	"sync"

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

// parallelGemmFLOPs is the size below which a product is not worth splitting across goroutines.
const parallelGemmFLOPs = 1 << 21

// gemm computes C = alpha·op(A)·op(B) + beta·C on row-major, possibly strided, matrices. Large products are
// split by rows of C across GOMAXPROCS goroutines; small ones (attention's per-head products, already run in
// parallel by the caller) go straight to BLAS.
func gemm[T float](tA, tB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	workers := runtime.GOMAXPROCS(0)
	if workers < 2 || m < 2*workers || 2*m*n*k < parallelGemmFLOPs {
		gemmSerial(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	workers = min(workers, m)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		lo, hi := m*w/workers, m*(w+1)/workers
		// Rows lo..hi of op(A): rows of A, or columns of A when it is transposed.
		aOff := lo * lda
		if tA {
			aOff = lo
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			gemmSerial(tA, tB, hi-lo, n, k, alpha, a[aOff:], lda, b, ldb, beta, c[lo*ldc:], ldc)
		}()
	}
	wg.Wait()
}

func gemmSerial[T float](tA, tB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
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

// Gemm32 computes C = A·B for row-major float32 A [m, k] and B [k, n] on the ops' product path (goroutine
// split and BLAS); benchmarks use it to measure this machine's peak.
func Gemm32(m, n, k int, a, b, c []float32) {
	gemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n)
}
