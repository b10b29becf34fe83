package train

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkLoop measures whole optimiser steps as the loop runs them (data, forward, backward, clipping, AdamW,
// metrics), for SFT and DPO on the synthetic data at width 128, 4 layers, batch 16 (pairs for DPO). It reports
// steps/s over the whole run (setup and DPO's reference pass included: use -benchtime 50x or more) and the mean of
// the steps' own tokens_per_second (real, non-padding tokens; setup excluded).
func BenchmarkLoop(b *testing.B) {
	dir := b.TempDir()
	dataPath := writeDemo(b, dir, 1000, 1)
	ref := ""
	for _, kind := range []string{"sft", "dpo"} {
		b.Run(kind, func(b *testing.B) {
			// Outputs live in the parent's directory: DPO needs the SFT model after SFT's sub-benchmark ended.
			out := filepath.Join(dir, fmt.Sprint(kind, b.N))
			rc := tinySFT(dataPath, out, b.N)
			if kind == "dpo" {
				rc = tinyDPO(dataPath, ref, out, b.N)
			} else {
				rc.Model.Architecture.DModel, rc.Model.Architecture.Layers = 128, 4
			}
			rc.Training.EvalEvery, rc.Training.CheckpointEvery = 0, b.N+1
			rc.Dataset.EvalFraction = 0
			start := time.Now()
			res := mustRun(b, rc)
			elapsed := time.Since(start)
			var tps float64
			steps := readMetrics(b, out)
			for _, m := range steps {
				tps += m["tokens_per_second"]
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "steps/s")
			b.ReportMetric(tps/float64(len(steps)), "tokens/s")
			if kind == "sft" {
				ref = res.ModelURI
			}
		})
	}
}
