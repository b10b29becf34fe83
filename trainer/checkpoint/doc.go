// Package checkpoint saves and loads what a run must keep: model weights as safetensors (F32, GPT-2 names),
// config.json and tokenizer.json beside them, AdamW's moments, and the loop's state. See trainer/DESIGN.md,
// section Checkpoints.
//
// A checkpoint is written into a temporary directory, every file fsynced, then COMPLETE (a manifest of the
// files' sizes and sha256) is written last and the directory renamed into place, so a crash leaves either no
// checkpoint or a whole one. Reading verifies the manifest, so a truncated or damaged file is never resumed from.
//
// The API is plain slices ([]float32 + shape + name) so the package needs neither gorgonia nor the model.
package checkpoint
