#!/usr/bin/env bash
# `make bench`: prints the project's speed figures. Runs, each only through `go test -bench` or the PyTorch script:
#   operator  the manager turning 1,000 SFTRuns into Jobs on envtest (test/envtest, bin/envtest)
#   go        the trainer's step, loop and optimiser benchmarks, pure Go build
#   openblas  the same with -tags openblas (installs libopenblas-dev when it can; skipped with a message if not)
#   torch     test/crossframework/bench_torch.py, the PyTorch peer on the same shapes (Debian's python3-torch)
#   tokenizer hack/bench-tokenizer.sh: tokenizer MB/s next to npm tokenizers@0.23.2's on the same text (~1 minute)
#   llama     issue 10's SmolLM2-135M-shaped Llama (random weights written once as a Hugging Face directory): SFT
#             and DPO steps of the trainer (hack/benchllama, OpenBLAS build when it links) next to PyTorch's
#             (test/crossframework/bench_llama.py), each in its own process, steps interleaved; tokens/s and their
#             median ratio, peak RSS (VmHWM) next to trainer/hf's memory estimate, load time, the LM head's share
#             of a step. Full shape: about 15 minutes at batch 4 x 256 on 2 shared cores (longer at 8 x 256, which
#             needs about 22 GB free for both processes); BENCH_LLAMA_LAYERS=4 for a quick check.
# then a table per config: SFT and DPO tokens/s per build, our ratio to PyTorch, the share of each one's sgemm
# peak and the DPO/SFT step cost. About 10-15 minutes on 2 shared cores. Raw outputs stay in $BENCH_OUT.
#
# Settings (environment):
#   BENCH_PARTS     parts to run, comma-separated (default operator,go,openblas,torch,tokenizer,llama)
#   BENCH_CONFIGS   trainer configs, A (d_model 128, 4 layers, 4 heads) and/or B (256, 6, 8) (default A,B)
#   STEP_BENCHTIME  -benchtime of the step benchmarks (default 3x: three steps after one untimed; pure Go at
#                   config B takes ~20 s a step on a loaded 2-core machine)
#   LOOP_BENCHTIME  -benchtime of trainer/train's whole-loop benchmark, best build only (default 10x; empty skips)
#   TORCH_SECONDS   seconds PyTorch measures each config and kind (default 10)
#   BENCH_LLAMA_LAYERS, _HIDDEN, _HEADS, _KV_HEADS, _INTERMEDIATE, _VOCAB
#                   the llama part's model (default SmolLM2-135M's 30, 576, 9, 3, 1536, 49152; tied head)
#   BENCH_LLAMA_BATCH, BENCH_LLAMA_CONTEXT
#                   rows × tokens of a step (default 8 × 256; DPO: half chosen, half rejected rows); the batch is
#                   halved while 2.8 × the trainer's memory estimate (both processes) exceeds MemAvailable
#   BENCH_LLAMA_STEPS  timed steps per framework and kind, after one untimed (default 3)
#   BENCH_LLAMA_KINDS  sft,dpo (default both)
#   BENCH_LLAMA_LORA_RANK  LoRA rows of that rank (alpha 2 × rank, all projections) for both frameworks next to full
#                   fine-tuning (default 16, issue 12; 0 leaves them out)
#   BENCH_OUT       where raw outputs go (default tmp/bench); BENCH_PARTS=table prints the table from them again
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
GO=${GO:-go}
PARTS=",${BENCH_PARTS:-operator,go,openblas,torch,tokenizer,llama},"
CONFIGS=${BENCH_CONFIGS:-A,B}
STEP_BENCHTIME=${STEP_BENCHTIME:-3x}
LOOP_BENCHTIME=${LOOP_BENCHTIME-10x}
TORCH_SECONDS=${TORCH_SECONDS:-10}
OUT=${BENCH_OUT:-$ROOT/tmp/bench}
mkdir -p "$OUT"

want() { [[ $PARTS == *",$1,"* ]]; }
say() { printf '\n>> %s\n' "$*"; }

for c in ${CONFIGS//,/ }; do
	[[ $c == A || $c == B ]] || { echo "bench.sh: BENCH_CONFIGS: $c is not A or B" >&2; exit 2; }
done
# Step benchmarks of the chosen configs, e.g. Step(A|B)_; the A-only forward pass comes with config A.
step_re="SGEMMPeak|Step(${CONFIGS//,/|})_"
if [[ ,$CONFIGS, == *,A,* ]]; then step_re+="|LogProbsA"; fi

start=$(date +%s)
echo "bench: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $($GO version | cut -d' ' -f3)"

# ---- operator
operator_failed=0
if want operator; then
	say "operator: 1,000 SFTRuns on envtest (manager concurrency 4, then 16)"
	if ! KUBEBUILDER_ASSETS="$ROOT/bin/envtest" $GO test ./test/envtest/ -run '^$' -bench 'Operator1000SFTRuns' \
		-benchtime 1x -timeout 30m >"$OUT/operator.txt" 2>&1; then
		tail -n 30 "$OUT/operator.txt"
		echo "bench: the operator benchmark failed; its output is in $OUT/operator.txt" >&2
		operator_failed=1
	fi
	# The summaries only: the manager's logged conflicts (and their stacks) stay in the raw output.
	awk '/SFTRuns, manager concurrency/ {p = 1} p {print} /CPU seconds/ {p = 0}' "$OUT/operator.txt"
fi

# ---- trainer, Go builds
failed=()
# go_bench BUILD FLAGS...: the trainer's step and optimiser benchmarks of one build into $OUT/BUILD.txt.
go_bench() {
	local build=$1
	shift
	say "trainer, $build: step benchmarks ($STEP_BENCHTIME, configs $CONFIGS)"
	if ! $GO test "$@" -run '^$' -bench "$step_re" -benchtime "$STEP_BENCHTIME" -timeout 30m ./trainer/model | tee "$OUT/$build.txt"; then
		failed+=("trainer/model ($build)")
	fi
	say "trainer, $build: optimiser benchmarks"
	if ! $GO test "$@" -run '^$' -bench . -benchtime 20x -timeout 30m ./trainer/optim | tee -a "$OUT/$build.txt"; then
		failed+=("trainer/optim ($build)")
	fi
	# trainer/nn has no benchmarks of its own today; run them when it gains some.
	if grep -qs '^func Benchmark' trainer/nn/*_test.go; then
		if ! $GO test "$@" -run '^$' -bench . -benchtime "$STEP_BENCHTIME" -timeout 30m ./trainer/nn | tee -a "$OUT/$build.txt"; then
			failed+=("trainer/nn ($build)")
		fi
	fi
}
# loop_bench FLAGS...: trainer/train's whole-loop benchmark, on one build only: its setup (data, DPO's reference
# pass over the dataset) costs minutes on 2 cores, and the step benchmarks already compare the builds.
loop_bench() {
	[ -n "$LOOP_BENCHTIME" ] || return 0
	say "trainer: whole training loop, SFT then DPO at d_model 128 ($LOOP_BENCHTIME, ${*:-pure Go})"
	if ! $GO test "$@" -run '^$' -bench Loop -benchtime "$LOOP_BENCHTIME" -timeout 30m ./trainer/train | tee "$OUT/loop.txt"; then
		failed+=("trainer/train")
	fi
}

# A part that runs replaces its old outputs; the table reads whatever outputs are there (BENCH_PARTS=table only
# prints it again).
if want go; then
	rm -f "$OUT/purego.txt" "$OUT/loop.txt"
	go_bench purego
fi
loop_flags=()
if want openblas; then
	rm -f "$OUT/openblas.txt" "$OUT/loop.txt"
	if hack/install-openblas.sh; then
		export CGO_ENABLED=1
		go_bench openblas -tags openblas
		loop_flags=(-tags openblas)
	else
		say "trainer, openblas: skipped (OpenBLAS could not be installed; see above)"
	fi
fi
if want go || want openblas; then
	loop_bench "${loop_flags[@]}"
fi

# ---- PyTorch peer
if want torch; then
	say "PyTorch peer: test/crossframework/bench_torch.py (${TORCH_SECONDS}s per config and kind)"
	rm -f "$OUT/torch.jsonl"
	if py=$(hack/install-torch.sh | tail -n 1) && [ -n "$py" ]; then
		if ! "$py" test/crossframework/bench_torch.py --seconds "$TORCH_SECONDS" --configs "$CONFIGS" \
			--threads "$(nproc)" | tee "$OUT/torch.jsonl"; then
			failed+=("bench_torch.py")
		fi
	else
		say "PyTorch peer: skipped (python3-torch could not be installed; see above)"
	fi
fi

# ---- tokenizer
if want tokenizer; then
	say "tokenizer: encode throughput, Go next to npm tokenizers@0.23.2 on the same text (hack/bench-tokenizer.sh)"
	if ! BENCH_OUT="$OUT" hack/bench-tokenizer.sh; then
		failed+=("bench-tokenizer.sh")
	fi
fi

# ---- Llama (issue 10): the trainer's worker and PyTorch's, side by side
if want llama; then
	say "llama: SFT and DPO steps, trainer next to PyTorch (test/crossframework/bench_llama.py)"
	rm -f "$OUT/llama.jsonl" "$OUT/llama.txt"
	llama_tags=()
	if hack/install-openblas.sh; then llama_tags=(-tags openblas); fi
	if ! CGO_ENABLED=$([ ${#llama_tags[@]} -gt 0 ] && echo 1 || echo 0) $GO build "${llama_tags[@]}" -o "$OUT/benchllama" ./hack/benchllama; then
		failed+=("hack/benchllama (build)")
	elif py=$(hack/install-torch.sh | tail -n 1) && [ -n "$py" ]; then
		if ! "$py" test/crossframework/bench_llama.py --go-worker "$OUT/benchllama" --python "$py" --threads "$(nproc)" \
			--layers "${BENCH_LLAMA_LAYERS:-30}" --hidden "${BENCH_LLAMA_HIDDEN:-576}" --heads "${BENCH_LLAMA_HEADS:-9}" \
			--kv-heads "${BENCH_LLAMA_KV_HEADS:-3}" --intermediate "${BENCH_LLAMA_INTERMEDIATE:-1536}" \
			--vocab "${BENCH_LLAMA_VOCAB:-49152}" --batch "${BENCH_LLAMA_BATCH:-8}" --context "${BENCH_LLAMA_CONTEXT:-256}" \
			--steps "${BENCH_LLAMA_STEPS:-3}" --kinds "${BENCH_LLAMA_KINDS:-sft,dpo}" \
			--lora-rank "${BENCH_LLAMA_LORA_RANK-16}" >"$OUT/llama.jsonl" 2> >(tee "$OUT/llama.txt" >&2); then
			failed+=("bench_llama.py")
		fi
	else
		say "llama: skipped (python3-torch could not be installed; see above)"
	fi
fi

# ---- table
# go_metric FILE BENCH UNIT prints the value a Go benchmark line reports in UNIT (empty when absent).
go_metric() {
	[ -s "$1" ] || return 0
	# A benchmark that prints (SGEMMPeak names its BLAS) pushes its figures onto the next line.
	awk -v name="Benchmark$2" -v unit="$3" '
		$1 == name || index($1, name "-") == 1 { seen = 2 }
		seen > 0 { for (i = 1; i < NF; i++) if ($(i + 1) == unit) { print $i; exit }; seen-- }' "$1"
}
# torch_field CONFIG KIND KEY prints a field of bench_torch.py's JSON line for CONFIG and KIND.
torch_field() {
	[ -s "$OUT/torch.jsonl" ] || return 0
	awk -v c="\"config\": \"$1\"" -v k="\"kind\": \"$2\"" -v key="\"$3\": " '
		index($0, c) && index($0, k) && (i = index($0, key)) {
			v = substr($0, i + length(key)); sub(/[,}].*/, "", v); print v; exit }' "$OUT/torch.jsonl"
}
# fmt_num VALUE [SCALE] [FORMAT]: VALUE*SCALE printed with FORMAT, or "-" when VALUE is empty.
fmt_num() {
	if [ -z "$1" ]; then printf -- '-'; else awk -v v="$1" -v s="${2:-1}" -v f="${3:-%.0f}" 'BEGIN { printf f, v * s }'; fi
}
ratio() {
	if [ -z "$1" ] || [ -z "$2" ]; then printf -- '-'; else awk -v a="$1" -v b="$2" -v f="${3:-%.2f}" 'BEGIN { printf f, a / b }'; fi
}

# The GPT configs' table when any of its outputs is there.
if [ -s "$OUT/purego.txt" ] || [ -s "$OUT/openblas.txt" ] || [ -s "$OUT/torch.jsonl" ]; then
	say "summary: one training step, forward + backward (AdamW apart, as trainer/model times it; PyTorch's fwd_bwd"
	echo "   figures), 16 rows x 128 tokens. tok/s: wall clock; best/PT: the faster Go build over PyTorch; %peak: the"
	echo "   step's matrix-product GFLOP/s over the same build's best 1024^3 sgemm; tok/cpu-s: tokens per CPU-second,"
	echo "   steadier than wall time on a busy machine (PyTorch's whole-step CPU scaled to forward + backward by time);"
	echo "   DPO/SFT: DPO step time over SFT step time on the same tokens."
	printf '%-7s %-7s | %-23s | %-7s | %-17s | %-20s\n' "" "" "      tokens/s" "" "     %peak" "   tokens/cpu-s"
	printf '%-7s %-7s | %7s %7s %7s | %7s | %5s %5s %5s | %6s %6s %6s\n' config kind pureGo OpenBLAS PyTorch best/PT Go OB PT Go OB PT
	cell() { fmt_num "$(go_metric "$OUT/$1.txt" "$2" "$3")" 1 "${4:-%.0f}"; }
	for c in ${CONFIGS//,/ }; do
		for k in SFT DPO; do
			lk=$(tr '[:upper:]' '[:lower:]' <<<"$k")
			g=$(go_metric "$OUT/purego.txt" "Step${c}_$k" tokens/s)
			o=$(go_metric "$OUT/openblas.txt" "Step${c}_$k" tokens/s)
			t=$(torch_field "$c" "$lk" tokens_per_s_fwd_bwd)
			tfull=$(torch_field "$c" "$lk" tokens_per_s)
			# PyTorch's share of peak and CPU time count its whole step (AdamW in): rescale to forward + backward.
			tshare=$(torch_field "$c" "$lk" share_of_sgemm_peak)
			tcpu=$(torch_field "$c" "$lk" tokens_per_cpu_s)
			if [ -n "$t" ] && [ -n "$tfull" ]; then
				tshare=$(awk -v s="$tshare" -v a="$t" -v b="$tfull" 'BEGIN { print 100 * s * a / b }')
				tcpu=$(awk -v s="$tcpu" -v a="$t" -v b="$tfull" 'BEGIN { print s * a / b }')
			fi
			gcpu=$(go_metric "$OUT/purego.txt" "Step${c}_$k" cpu-s/step)
			ocpu=$(go_metric "$OUT/openblas.txt" "Step${c}_$k" cpu-s/step)
			best=$g
			if [ -n "$o" ] && { [ -z "$g" ] || awk -v a="$o" -v b="$g" 'BEGIN { exit !(a > b) }'; }; then best=$o; fi
			printf '%-7s %-7s | %7s %7s %7s | %7s | %5s %5s %5s | %6s %6s %6s\n' "$c" "$k" \
				"$(fmt_num "$g")" "$(fmt_num "$o")" "$(fmt_num "$t")" "$(ratio "$best" "$t")" \
				"$(cell purego "Step${c}_$k" %peak)" "$(cell openblas "Step${c}_$k" %peak)" "$(fmt_num "$tshare")" \
				"$(ratio 2048 "$gcpu" %.0f)" "$(ratio 2048 "$ocpu" %.0f)" "$(fmt_num "$tcpu")"
		done
		printf '%-7s %-7s | %7s %7s %7s |   (DPO step time / SFT step time)\n' "$c" DPO/SFT \
			"$(ratio "$(go_metric "$OUT/purego.txt" "Step${c}_SFT" tokens/s)" "$(go_metric "$OUT/purego.txt" "Step${c}_DPO" tokens/s)")" \
			"$(ratio "$(go_metric "$OUT/openblas.txt" "Step${c}_SFT" tokens/s)" "$(go_metric "$OUT/openblas.txt" "Step${c}_DPO" tokens/s)")" \
			"$(ratio "$(torch_field "$c" sft tokens_per_s_fwd_bwd)" "$(torch_field "$c" dpo tokens_per_s_fwd_bwd)")"
	done
	for b in purego openblas; do
		peak=$(go_metric "$OUT/$b.txt" SGEMMPeak GFLOP/s)
		if [ -n "$peak" ]; then echo "sgemm peak, $b: $(fmt_num "$peak" 1 %.1f) GFLOP/s"; fi
	done
	tpeak=$(awk '/"sgemm_gflops"/ { v = $0; sub(/.*"sgemm_gflops": /, "", v); sub(/[,}].*/, "", v); print v; exit }' "$OUT/torch.jsonl" 2>/dev/null || true)
	if [ -n "$tpeak" ]; then echo "sgemm peak, PyTorch: $(fmt_num "$tpeak" 1 %.1f) GFLOP/s"; fi
fi
if [ -s "$OUT/llama.txt" ]; then
	echo "Llama (issue 10; raw figures in $OUT/llama.jsonl):"
	sed -n '/^Llama benchmark:/,$p' "$OUT/llama.txt"
fi
if [ -s "$OUT/loop.txt" ]; then
	echo "whole loop (trainer/train, real non-padding tokens):"
	awk '/^BenchmarkLoop/ { for (i = 3; i < NF; i++) { if ($(i + 1) == "steps/s") s = $i; if ($(i + 1) == "tokens/s") t = $i }
		printf "  %-20s %8s steps/s (setup included) %8s tokens/s\n", $1, s, t }' "$OUT/loop.txt"
fi
echo "bench: done in $(($(date +%s) - start)) s, load average $(cut -d' ' -f1-3 /proc/loadavg); raw outputs in $OUT"
if [ "$operator_failed" = 1 ] || [ ${#failed[@]} -gt 0 ]; then
	[ "$operator_failed" = 1 ] && failed+=("operator")
	echo "bench: FAILED: ${failed[*]}" >&2
	exit 1
fi
