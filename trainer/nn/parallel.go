package nn

import (
	"runtime"
	"sync"
)

// minChunk is the least work (in elements touched) worth handing to another goroutine.
const minChunk = 1 << 14

// forRange runs f over [0, n) split into up to GOMAXPROCS contiguous chunks; perItem estimates the elements
// one item touches, so small ranges stay on the calling goroutine.
func forRange(n, perItem int, f func(lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), n*perItem/minChunk)
	if workers <= 1 {
		f(0, n)
		return
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		lo, hi := n*w/workers, n*(w+1)/workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(lo, hi)
		}()
	}
	wg.Wait()
}

// parallel runs job(i) for i in [0, n) on up to GOMAXPROCS goroutines, interleaved (jobs may differ in cost,
// as causal attention's rows do); worker w gets its own scratch index.
func parallel(n int, job func(worker, i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for i := 0; i < n; i++ {
			job(0, i)
		}
		return
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += workers {
				job(w, i)
			}
		}(w)
	}
	wg.Wait()
}
