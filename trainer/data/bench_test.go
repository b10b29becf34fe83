package data

import (
	"os"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/tokenizer"
)

// BenchmarkReadReal reads the largest real file (sharegpt, a JSON array) and reports rows per second.
func BenchmarkReadReal(b *testing.B) {
	raw, err := os.ReadFile(sharedData + "/llama-factory-demo/dpo_en_demo.json")
	if err != nil {
		b.Skipf("real dataset absent: %v", err)
	}
	b.SetBytes(int64(len(raw)))
	var rows int
	for b.Loop() {
		d, err := Parse(raw, Options{})
		if err != nil {
			b.Fatal(err)
		}
		rows += len(d.Rows)
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkLoaderNextDPO measures building one DPO batch (8 pairs, context 256) from real rows.
func BenchmarkLoaderNextDPO(b *testing.B) {
	d, err := ReadFile(sharedData+"/orca-dpo-pairs/validation.jsonl", Options{})
	if err != nil {
		b.Skipf("real dataset absent: %v", err)
	}
	tok := tokenizer.NewByte()
	l, err := NewLoader(tok, EncodeRows(tok, d.Rows, 256, true), contract.KindDPO, 8, 256, 1)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		l.Next()
	}
}
