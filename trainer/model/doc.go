// Package model is the GPT of the trainer: GPT-2's architecture (see trainer/DESIGN.md) built from the fused
// ops of trainer/nn on gorgonia.
//
// Params holds the weights and their gradients as *tensor.Dense values, in GPT-2's names and layouts. Compiled
// graphs are cached per (kind, rows, length) and bind those same tensors, so an optimiser that updates
// Values in place is seen by every graph, and every step's gradients are added into Grads (they accumulate
// until ZeroGrads). A Params and its graphs are not safe for concurrent use.
//
//	p := model.Init(cfg, tensor.Float32, seed)
//	loss, tokens, err := p.SFTStep(batch)          // forward + backward, grads added into p.Grads
//	sums, counts, err := p.LogProbs(batch)         // forward only: per-row summed target log-probs
//	out, err := p.DPOStep(batch, ref, dpoCfg, rpo) // ref from LogProbs of the same batch before training
package model
