// Package crossframework checks the trainer's GPT against an independent PyTorch implementation of
// trainer/DESIGN.md (gpt2_ref.py), in the manner of llm.c's test against PyTorch: a model written by
// trainer/checkpoint is read by both sides, which must agree on the log-probabilities of every position, the
// per-sequence log-probabilities, the SFT and DPO losses and the gradients. It also proves that the checkpoints
// load outside Go. bench_torch.py is the PyTorch peer of the Go benchmarks.
//
// The tests need Debian's python3-torch (hack/install-torch.sh installs it); they skip only when it can be
// neither imported nor installed.
package crossframework
