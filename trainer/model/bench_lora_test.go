package model

import (
	"runtime"
	"testing"

	"gorgonia.org/tensor"

	"github.com/preftune/preftune/trainer/loss"
)

// LoRA against full fine-tuning on the same shapes (issue 12's benchmark): tokens/s and the Go heap held after
// a step (weights, gradients, graph buffers; the optimiser's moments are 8 bytes per trainable parameter on top,
// added to heap-MB here). Run with
//
//	go test -tags openblas -run '^$' -bench 'LoRA|FullFT' -benchtime 3x ./trainer/model
func benchTrain(b *testing.B, cfg Config, dpo bool, rows, length int, lora *LoRA) {
	p := Init(cfg, tensor.Float32, 1)
	if lora != nil {
		if err := p.AddLoRA(*lora, 2); err != nil {
			b.Fatal(err)
		}
	}
	batch := benchBatch(rows, length, cfg.VocabSize, dpo)
	var ref []float64
	if dpo {
		var err error
		if ref, _, err = p.BaseLogProbs(batch); err != nil {
			b.Fatal(err)
		}
		p.ReleaseGraphs()
	}
	step := func() {
		var err error
		if dpo {
			_, err = p.DPOStep(batch, ref, loss.DPOConfig{Beta: 0.1}, 0)
		} else {
			_, _, err = p.SFTStep(batch)
		}
		if err != nil {
			b.Fatal(err)
		}
		p.ZeroGrads()
	}
	step()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		step()
	}
	b.StopTimer()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	sec := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(float64(rows*length)/sec, "tokens/s")
	b.ReportMetric(float64(ms.HeapInuse+8*uint64(p.NumTrainable()))/(1<<20), "heap-MB")
	b.ReportMetric(float64(p.NumTrainable()), "trainable")
}

var benchLoRA16 = &LoRA{Rank: 16, Alpha: 32}

func BenchmarkFullFTB_SFT(b *testing.B) { benchTrain(b, benchB, false, benchRows, benchLen, nil) }
func BenchmarkLoRAB_SFT(b *testing.B)   { benchTrain(b, benchB, false, benchRows, benchLen, benchLoRA16) }
func BenchmarkFullFTB_DPO(b *testing.B) { benchTrain(b, benchB, true, benchRows, benchLen, nil) }
func BenchmarkLoRAB_DPO(b *testing.B)   { benchTrain(b, benchB, true, benchRows, benchLen, benchLoRA16) }

func BenchmarkFullFTSmolLM2_SFT(b *testing.B) { benchTrain(b, benchSmolLM2, false, 8, 256, nil) }
func BenchmarkLoRASmolLM2_SFT(b *testing.B)   { benchTrain(b, benchSmolLM2, false, 8, 256, benchLoRA16) }
func BenchmarkFullFTSmolLM2_DPO(b *testing.B) { benchTrain(b, benchSmolLM2, true, 4, 256, nil) }
func BenchmarkLoRASmolLM2_DPO(b *testing.B)   { benchTrain(b, benchSmolLM2, true, 4, 256, benchLoRA16) }
