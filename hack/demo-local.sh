#!/usr/bin/env bash
# `make demo-local`: the main job without Kubernetes, run by the bundled trainer on this machine (no root needed). It writes the project's
# synthetic addition dataset, validates it, fine-tunes a tiny GPT on prompt -> chosen (SFT), then trains it with
# DPO against the frozen SFT model, and shows greedy answers of both side by side with the rule checked.
# `make demo` runs the same job through the operator on a Kubernetes cluster (hack/demo.sh).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# MODEL=<dir|uri>: the same job on a pretrained model, with the story dataset (hack/demo-pretrained-local.sh).
if [ -n "${MODEL:-}" ]; then exec "$ROOT/hack/demo-pretrained-local.sh"; fi
OUT=${DEMO_DIR:-$ROOT/tmp/demo}
BIN=$ROOT/bin/preftune-trainer
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# The trainer prints one JSON line per step when its output is not a terminal; show every 25th step and the rest.
progress() {
  if [ -t 2 ]; then cat; return; fi
  python3 -u -c '
import json, sys
for line in sys.stdin:
    try:
        e = json.loads(line)
    except ValueError:
        print(line, end=""); continue
    ev = e.get("event")
    if ev == "step" and e["step"] % 25 and e["step"] != e.get("total_steps"):
        continue
    keep = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in e.items()
            if k in ("event", "step", "total_steps", "loss", "eval_loss", "rewards/accuracies", "eval_rewards/accuracies",
                     "rewards/margins", "tokens_per_second", "dir", "model")}
    print(json.dumps(keep))
'
}

say "Building the trainer (bin/preftune-trainer)"
(cd "$ROOT" && go build -o "$BIN" ./cmd/trainer)
rm -rf "$OUT" && mkdir -p "$OUT"

say "Writing the synthetic dataset: single-digit sums; rejected answers carry a small model's errors"
"$BIN" demo-data --out "$OUT/arith.jsonl" --n 1000 --difficulty 1 --seed 1
head -3 "$OUT/arith.jsonl"

say "Validating it (what a PreferenceDataset's validation Job runs)"
"$BIN" inspect-dataset --data "$OUT/arith.jsonl" --termination-log "" | tee "$OUT/report.json"

# The settings are hack/demo/sft.yaml's and dpo.yaml's (the learning rates were chosen from hack/spread.sh's
# measured spread: see hack/demo/learning.env).
say "SFT: 4 layers, width 64, 400 steps on prompt -> chosen"
"$BIN" sft --data "$OUT/arith.jsonl" --out "$OUT/sft" --layers 4 --d-model 64 --heads 4 --context 16 \
  --steps 400 --batch-size 32 --lr 3e-3 --warmup 10 --eval-every 10 --checkpoint-every 50 --seed 1 2>&1 | progress

say "DPO: 200 steps against the frozen SFT model (beta 0.1, NLL term rpoAlpha 1)"
"$BIN" dpo --data "$OUT/arith.jsonl" --reference "$OUT/sft/model" --out "$OUT/dpo" \
  --steps 200 --batch-size 32 --lr 1e-3 --warmup 10 --eval-every 50 --checkpoint-every 50 --beta 0.1 --rpo-alpha 1 --seed 1 2>&1 | progress

say "Greedy answers, SFT vs DPO (the rule: the answer is the sum)"
prompts=$OUT/prompts.jsonl
: > "$prompts"
for a in 0 1 2 3 4 5 6 7 8 9; do for b in 0 1 2 3 4 5 6 7 8 9; do printf '{"prompt":"%d+%d="}\n' "$a" "$b" >> "$prompts"; done; done
"$BIN" generate --model "$OUT/sft/model" --prompts-file "$prompts" --max-new 4 > "$OUT/sft-answers.jsonl"
"$BIN" generate --model "$OUT/dpo/model" --prompts-file "$prompts" --max-new 4 > "$OUT/dpo-answers.jsonl"
paste -d'\t' "$OUT/sft-answers.jsonl" "$OUT/dpo-answers.jsonl" | (. "$ROOT/hack/demo/learning.env" && MIN_RULE=$MIN_RULE_RATE python3 -c '
import json, sys
right = [0, 0]; n = 0
print("prompt      SFT        DPO")
for line in sys.stdin:
    s, d = (json.loads(x) for x in line.rstrip("\n").split("\t"))
    a, b = s["prompt"].rstrip("=").split("+"); want = str(int(a) + int(b))
    ok = [s["completion"].strip() == want, d["completion"].strip() == want]
    right = [r + o for r, o in zip(right, ok)]; n += 1
    mark = lambda o: "ok" if o else "x"
    if n % 7 == 1:
        print("%-8s %6s %-2s  %6s %-2s" % (s["prompt"], s["completion"].strip(), mark(ok[0]), d["completion"].strip(), mark(ok[1])))
print("rule satisfied on all %d distinct prompts: SFT %d/%d, DPO %d/%d" % (n, right[0], n, right[1], n))
import os
if right[1] < float(os.environ["MIN_RULE"]) * n:
    sys.exit("demo: the DPO model answers %d/%d right, want at least %s of them (hack/demo/learning.env)" % (right[1], n, os.environ["MIN_RULE"]))
')

say "Final metrics"
(. "$ROOT/hack/demo/learning.env" && MIN_ACC=$MIN_EVAL_REWARD_ACCURACY python3 -c '
import json
for name in ("sft", "dpo"):
    last = {}
    for line in open("'"$OUT"'/" + name + "/metrics.jsonl"):
        last.update(json.loads(line))
    keys = [k for k in ("step", "loss", "eval_loss", "rewards/accuracies", "eval_rewards/accuracies", "eval_rewards/margins", "tokens_per_second") if k in last]
    print(name.upper() + ": " + ", ".join("%s %.4g" % (k, last[k]) for k in keys))
import os, sys
if last.get("eval_rewards/accuracies", 0) < float(os.environ["MIN_ACC"]):
    sys.exit("demo: DPO eval reward accuracy %.4f, want at least %s (hack/demo/learning.env)" % (last.get("eval_rewards/accuracies", 0), os.environ["MIN_ACC"]))
')
say "Outputs"
echo "checkpoints: $(ls -d "$OUT"/sft/checkpoints/* "$OUT"/dpo/checkpoints/* | tr '\n' ' ')"
echo "models:      $OUT/sft/model $OUT/dpo/model (model.safetensors + config.json: GPT-2 layout)"
echo "metrics:     $OUT/sft/metrics.jsonl $OUT/dpo/metrics.jsonl"
