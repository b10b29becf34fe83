// Package optim updates the model's parameters: AdamW over raw float32 slices (gorgonia's AdamW does not update
// the bound weights, see ../shared/notes/gorgonia.md), global-norm gradient clipping, and the learning-rate
// schedule. Everything is single-threaded per element and reduces in a fixed order, so the same inputs give
// bit-identical results.
package optim
