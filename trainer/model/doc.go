// Package model is the trainer's language model: one generic set of parameters, compiled graphs and steps, and
// one file per architecture family in the manner of transformers' modeling_*.py and candle's models/*.rs:
//
//   - gpt2.go: GPT-2 (GPT2LMHeadModel), the architecture of models trained from scratch;
//   - llama.go: the Llama family (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM),
//     one forward pass whose config flags give the variants (GQA, head_dim, q/k/v, o_proj and MLP biases,
//     Qwen3's q/k norm, tied or untied head, rope scaling linear/llama3).
//
// A family file holds the parameter table under the checkpoint's own tensor names (Hugging Face's, as
// save_pretrained writes them), the initialisation and the forward pass built from trainer/nn's fused ops, and
// registers itself; adding a family touches only this folder (and trainer/hf when config.json needs new fields).
// hfconfig.go is the one place where a checkpoint's config.json (trainer/hf.Config) is mapped to Config and back;
// hfdir.go loads and saves Hugging Face model directories (streaming, sharded, BF16/F16 widened).
//
// Params holds the weights and their gradients as *tensor.Dense values. Compiled graphs are cached per (kind,
// rows, length bucket) and bind those same tensors, so an optimiser that updates Values in place is seen by every
// graph, and every step's gradients are added into Grads (they accumulate until ZeroGrads). The model's input is
// its own Batch (ids, targets, mask; trainer/data converts its batches with data.Batch.Model). A Params and its
// graphs are not safe for concurrent use.
//
//	p, info, err := model.Load(dir, tensor.Float32, contextLength) // or model.Init(cfg, tensor.Float32, seed)
//	loss, tokens, err := p.SFTStep(batch)          // forward + backward, grads added into p.Grads
//	sums, counts, err := p.LogProbs(batch)         // forward only: per-row summed target log-probs
//	out, err := p.DPOStep(batch, ref, dpoCfg, rpo) // ref from LogProbs of the same batch before training
//	logits, err := p.Logits(batch)                 // forward only: [B, T, V]
//	ids, err := p.Generate([]int{p.Tokens.BOS}, 200, 0, nil, p.Tokens.EOS...)
//	res, err := p.Save(outDir, hf.SaveOptions{SourceDir: dir})
package model
