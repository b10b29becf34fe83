// Package nn holds the fused gorgonia operations the GPT-2 and Llama-family (Llama 2/3, Mistral, Qwen2, Qwen3)
// models are built from. Each op has a hand-written forward pass and a symbolic gradient (SymDiff) made of
// further ops of this package, and works in float32 (training) and float64 (gradient checks).
//
// Why fused ops: composing LayerNorm, GELU, attention and cross-entropy from gorgonia's primitives allocates
// and walks memory once per primitive, and some primitives have wrong gradients (see ../shared/notes). A fused
// op touches its data once and calls BLAS directly on strided views, so attention needs no head split/merge
// transposes.
//
// Every op runs in one shell (op.go: fusedOp), which implements gorgonia's Op interface, checks and reads the
// inputs, keeps the output buffer across runs and dispatches on float32/float64; an op supplies a spec with
// its signature, shape rule, math per element type and gradient.
//
// Grad (grad.go) differentiates a graph of these ops; PlanBuffers (plan.go) then lets the ops of one compiled
// graph share their output buffers, each reused once its last reader has run, so that a training step holds
// the activations its backward pass reads rather than every value it ever made.
//
// Ops that need token ids read them from a *Tokens the graph's owner fills before each run: ids are not
// differentiable and do not belong in a float graph.
//
// Some backward ops read state their forward op cached during the same run (attention probabilities, the
// log-prob head's softmax, the DPO loss's derivatives). They take the forward op's output as an extra input so
// that the scheduler always runs them after the forward op; they never read that input's data.
//
// Builds: the default build is pure Go (gonum's BLAS, no cgo). `go build -tags openblas ./...` (needs
// `apt-get install libopenblas-dev`) routes every product through OpenBLAS, several times faster; see
// blas_openblas.go.
package nn
