#!/usr/bin/env bash
# The spread of the demo's learned figures across numeric paths: runs the demo's job (hack/demo/: the synthetic
# dataset, SFT then DPO) with the OpenBLAS trainer under each OpenBLAS kernel family this CPU can run
# (OPENBLAS_CORETYPE) and with the pure-Go trainer, for a few training seeds, and prints one table line per run:
# SFT eval loss, DPO eval reward accuracy (and how many eval pairs that is), and the greedy rule rate (the answer is
# the sum) on the 100 distinct prompts for the SFT and the DPO model. The thresholds the demo, the e2e and the
# learning test assert are chosen from this table (see the comments beside them).
#
#   hack/spread.sh                       # every kernel below, seeds 1 2 3
#   KERNELS="go Haswell" SEEDS=1 hack/spread.sh
#
# The settings are the demo's (hack/demo/sft.yaml, dpo.yaml); evaluation and checkpoints are less frequent here,
# which changes no weight (the loader's order depends only on the seed and the epoch).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KERNELS=${KERNELS:-"go native Prescott Nehalem Sandybridge Haswell Zen SkylakeX Cooperlake"}
SEEDS=${SEEDS:-"1 2 3"}
OUT=${SPREAD_DIR:-$ROOT/tmp/spread}
# The demo's settings (keep in step with hack/demo/*.yaml).
LAYERS=${LAYERS:-4} DMODEL=${DMODEL:-64} HEADS=${HEADS:-4} CONTEXT=${CONTEXT:-16}
SFT_STEPS=${SFT_STEPS:-400} SFT_LR=${SFT_LR:-3e-3} DPO_STEPS=${DPO_STEPS:-200} DPO_LR=${DPO_LR:-1e-3}
BATCH=${BATCH:-32} ROWS=${ROWS:-1000} BETA=${BETA:-0.1} RPO=${RPO:-1}

mkdir -p "$OUT" "$ROOT/bin"
(cd "$ROOT" && go build -o bin/preftune-trainer ./cmd/trainer)
if [ "$KERNELS" != go ]; then
	"$ROOT/hack/install-openblas.sh" >&2
	(cd "$ROOT" && CGO_ENABLED=1 go build -tags openblas -o bin/preftune-trainer-openblas ./cmd/trainer)
fi
"$ROOT/bin/preftune-trainer" demo-data --out "$OUT/arith.jsonl" --n "$ROWS" --difficulty 1 --seed 1 >/dev/null
: >"$OUT/prompts.jsonl"
for a in 0 1 2 3 4 5 6 7 8 9; do for b in 0 1 2 3 4 5 6 7 8 9; do
	printf '{"prompt":"%d+%d="}\n' "$a" "$b" >>"$OUT/prompts.jsonl"
done; done

rate() { # rate ANSWERS.jsonl: how many greedy answers are the sum
	python3 -c '
import json, sys
n = ok = 0
for line in open(sys.argv[1]):
    if not line.startswith("{"): continue
    r = json.loads(line); a, b = r["prompt"].rstrip("=").split("+"); n += 1
    ok += r["completion"].strip() == str(int(a) + int(b))
print("%d/%d" % (ok, n))' "$1"
}
last() { # last METRICS.jsonl KEY
	python3 -c '
import json, sys
v = None
for line in open(sys.argv[1]):
    m = json.loads(line)
    if sys.argv[2] in m: v = m[sys.argv[2]]
print("%.4f" % v if v is not None else "-")' "$1" "$2"
}

printf '| numeric path | seed | SFT eval loss | DPO eval reward accuracy | greedy rule SFT | greedy rule DPO | s |\n'
printf '|---|---|---|---|---|---|---|\n'
for k in $KERNELS; do
	bin=$ROOT/bin/preftune-trainer-openblas
	envs=(env -u OPENBLAS_CORETYPE)
	case $k in
	go) bin=$ROOT/bin/preftune-trainer ;;
	native) ;;
	*) envs=(env OPENBLAS_CORETYPE="$k") ;;
	esac
	for seed in $SEEDS; do
		d=$OUT/$k-$seed
		rm -rf "$d" && mkdir -p "$d"
		t0=$(date +%s)
		if ! "${envs[@]}" "$bin" sft --data "$OUT/arith.jsonl" --out "$d/sft" --layers "$LAYERS" --d-model "$DMODEL" \
			--heads "$HEADS" --context "$CONTEXT" --steps "$SFT_STEPS" --batch-size "$BATCH" --lr "$SFT_LR" --warmup 10 \
			--eval-every "$SFT_STEPS" --checkpoint-every "$SFT_STEPS" --seed "$seed" --termination-log "" >"$d/sft.log" 2>&1 ||
			! "${envs[@]}" "$bin" dpo --data "$OUT/arith.jsonl" --reference "$d/sft/model" --out "$d/dpo" \
				--steps "$DPO_STEPS" --batch-size "$BATCH" --lr "$DPO_LR" --warmup 10 --eval-every "$DPO_STEPS" \
				--checkpoint-every "$DPO_STEPS" --beta "$BETA" --rpo-alpha "$RPO" --seed "$seed" --termination-log "" >"$d/dpo.log" 2>&1; then
			printf '| %s | %s | failed: %s |\n' "$k" "$seed" "$(tail -n 1 "$d"/*.log | tr '\n|' '  ' | cut -c1-120)"
			continue
		fi
		"${envs[@]}" "$bin" generate --model "$d/sft/model" --prompts-file "$OUT/prompts.jsonl" --max-new 4 >"$d/sft-answers.jsonl"
		"${envs[@]}" "$bin" generate --model "$d/dpo/model" --prompts-file "$OUT/prompts.jsonl" --max-new 4 >"$d/dpo-answers.jsonl"
		acc=$(last "$d/dpo/metrics.jsonl" eval_rewards/accuracies)
		printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$k" "$seed" "$(last "$d/sft/metrics.jsonl" eval_loss)" "$acc" \
			"$(rate "$d/sft-answers.jsonl")" "$(rate "$d/dpo-answers.jsonl")" "$(($(date +%s) - t0))"
	done
done
