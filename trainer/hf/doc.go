// Package hf reads and writes model directories in the Hugging Face layout (as transformers' save_pretrained
// writes them), independently of the trainer's model code.
//
// What a directory holds: config.json; the weights as model.safetensors, or as shards named by
// model.safetensors.index.json; tokenizer.json, tokenizer_config.json, special_tokens_map.json and
// generation_config.json.
//
//   - ParseConfig maps config.json of LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM
//     and GPT2LMHeadModel into one family-neutral Config (sizes, heads and KV heads, head_dim, norm epsilon,
//     rope_theta and rope_scaling of type linear or llama3, biases, q/k norm, tied embeddings, sliding window).
//     Anything else is an *UnsupportedError (Reason "ModelUnsupported") naming the architecture found and the
//     supported list. Config.Marshal writes config.json back with every unknown field kept, the same
//     architecture and torch_dtype float32. Config.CheckContext refuses a sliding window shorter than the context.
//   - Config.ExpectedShapes is the name → shape table of each family (Hugging Face's tensor names); CheckShapes
//     compares a file's tensors with such a table and names every missing, unexpected or mis-shaped tensor.
//   - OpenWeights reads only the safetensors headers; Weights.Load fills caller-owned float32 slices one file
//     and one tensor at a time through a 1 MiB buffer, widening BF16 and F16 exactly and failing on the first
//     NaN or Inf with the tensor's name. Peak memory while loading is the model's own float32 parameters plus
//     1 MiB: two copies of the weights are never held, however many shards there are. OpenModel parses the
//     config and checks the headers against it; ModelDir.LoadInto then fills the model's own slices by
//     canonical name; LoadModel does both into new slices.
//   - SaveModel writes config.json, F32 weights (model.safetensors, or shards of at most 2 GiB with the index;
//     the size is a parameter) streamed from the caller's slices, and copies the tokenizer files from the source
//     directory. The stories260K checkpoint saved unchanged is byte-identical to the original.
//   - WeightsDigest is "sha256:<hex>" over the weight files' bytes concatenated in name order (for a single
//     model.safetensors, that file's sha256, as trainer/checkpoint.Digest).
//   - EstimateMemory is the peak memory of full fine-tuning with AdamW in float32 (16 bytes per parameter for
//     weights, gradients and moments, 4 for the graph's own gradients, plus activations for batch × context per layer and the vocabulary-sized
//     logits tensors); ReadMemoryLimit reads the container's limit from cgroup v2 (memory.max) or v1
//     (memory/memory.limit_in_bytes); CheckMemory fails with a *MemoryError (Reason "InsufficientMemory") naming
//     the figures and the largest batch size that fits.
//
// The safetensors encoding itself is trainer/safetensors, shared with trainer/checkpoint. Errors carry a
// Reason() (ModelUnsupported, ModelUnreadable, InsufficientMemory) for the run's termination message; all of
// them are input that will never work (exit code 3).
package hf
