package tokenizer

import (
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
)

// benchTextBytes is about how much text the throughput benchmark encodes per call.
const benchTextBytes = 192 << 10

var (
	benchOnce sync.Once
	benchText string
)

// benchCorpus returns the benchmark's text: the conversation turns of ../shared/data's LLaMA-Factory DPO demos
// (2/3 English, 1/3 Chinese), or the generated test strings when ../shared is absent. With
// TOKENIZER_BENCH_TEXT_OUT set, it also writes the text there, so hack/bench-tokenizer.sh times the npm reference
// on exactly the same text.
func benchCorpus(b *testing.B) string {
	benchOnce.Do(func() {
		var parts []string
		for _, f := range []struct {
			path  string
			limit int
		}{{sharedDir + "/data/llama-factory-demo/dpo_en_demo.json", benchTextBytes * 2 / 3},
			{sharedDir + "/data/llama-factory-demo/dpo_zh_demo.json", benchTextBytes / 3}} {
			raw, err := os.ReadFile(f.path)
			if err != nil {
				continue
			}
			var rows []struct {
				Conversations []struct {
					Value string `json:"value"`
				} `json:"conversations"`
			}
			if json.Unmarshal(raw, &rows) != nil {
				continue
			}
			n := 0
			for _, r := range rows {
				for _, c := range r.Conversations {
					if n < f.limit {
						parts = append(parts, c.Value)
						n += len(c.Value)
					}
				}
			}
		}
		if len(parts) == 0 {
			parts = generateStrings(generatedSeed, 1500, nil)
		}
		benchText = strings.Join(parts, "\n\n")
		if out := os.Getenv("TOKENIZER_BENCH_TEXT_OUT"); out != "" {
			if err := os.WriteFile(out, []byte(benchText), 0o644); err != nil {
				panic(err)
			}
		}
	})
	return benchText
}

// BenchmarkHFEncode measures encoding throughput (MB/s of UTF-8 input) on the real tokenizer files, one Encode call
// per paragraph (the text split at blank lines: training rows are short texts, and Hugging Face's Rust encode slows
// down on one 190 KB string); hack/bench-tokenizer.sh prints it next to npm tokenizers@0.23.2's on the same
// paragraphs.
func BenchmarkHFEncode(b *testing.B) {
	dir := tokref(b)
	text := benchCorpus(b)
	for _, m := range refModels {
		if m.name == "byte" || m.name == "stories260K" {
			continue
		}
		b.Run(m.name, func(b *testing.B) {
			tok, err := LoadHFFile(m.file(b, dir))
			if err != nil {
				b.Fatal(err)
			}
			paras := strings.Split(text, "\n\n")
			n := 0
			for _, p := range paras {
				tok.Encode(p) // fill the word cache, as the reference's warm-up pass does
				n += len(p)
			}
			b.SetBytes(int64(n))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for _, p := range paras {
					tok.Encode(p)
				}
			}
		})
	}
}
