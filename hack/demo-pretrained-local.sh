#!/usr/bin/env bash
# `make demo-local MODEL=<dir|uri>`: the demo's job on a pretrained model the user names, without Kubernetes. MODEL
# is a Hugging Face model directory (config.json, safetensors, tokenizer files) or any URI `sft --from` takes
# (hf://org/name[@revision] where the Hub is reachable, s3://, gs://, azblob://, file://). The data is the project's
# story dataset (trainer/storydata, docs/learning-pretrained.md): SFT on story openings continued as stories go, then
# DPO (with RPO's NLL term) on pairs whose chosen continuation starts with the friend's name; the rule's rate on 100
# held-out openings is shown for the base model, after SFT and after DPO. The settings are those tuned on
# stories260K (make demo-local MODEL=../shared/models/stories260K); a larger model may want others: DEMO_SFT_STEPS,
# DEMO_DPO_STEPS, DEMO_BATCH, DEMO_LR.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${DEMO_DIR:-$ROOT/tmp/demo-pretrained}
BIN=$ROOT/bin/preftune-trainer
MODEL=${MODEL:?set MODEL to a model directory or URI}
SFT_STEPS=${DEMO_SFT_STEPS:-40} DPO_STEPS=${DEMO_DPO_STEPS:-30} BATCH=${DEMO_BATCH:-16} LR=${DEMO_LR:-5e-4}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# A relative directory is the caller's (make runs in the repository root).
if [ -d "$MODEL" ]; then MODEL=$(cd "$MODEL" && pwd); fi

# The trainer prints one JSON line per step when its output is not a terminal; show every 10th step and the rest.
progress() {
  if [ -t 2 ]; then cat; return; fi
  python3 -u -c '
import json, sys
for line in sys.stdin:
    try:
        e = json.loads(line)
    except ValueError:
        print(line, end=""); continue
    if e.get("event") == "step" and e["step"] % 10 and e["step"] != e.get("total_steps"):
        continue
    keep = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in e.items()
            if k in ("event", "step", "total_steps", "loss", "eval_loss", "rewards/accuracies", "eval_rewards/accuracies",
                     "rewards/margins", "tokens_per_second", "model", "architecture", "parameterCount")}
    print(json.dumps(keep))
'
}

say "Building the trainer (bin/preftune-trainer)"
(cd "$ROOT" && go build -o "$BIN" ./cmd/trainer)
rm -rf "$OUT" && mkdir -p "$OUT"

say "Writing the story data: 600 SFT stories, 600 preference pairs, 100 held-out openings (rule: the continuation starts with the friend's name)"
"$BIN" story-data --stories --out "$OUT/stories.jsonl" --n 600 --seed 1
"$BIN" story-data --out "$OUT/prefs.jsonl" --n 600 --seed 1
"$BIN" story-data --out "$OUT/held-out.jsonl" --n 100 --seed 1001 --held-out-from "$OUT/stories.jsonl,$OUT/prefs.jsonl"
head -2 "$OUT/prefs.jsonl"

say "SFT from $MODEL: $SFT_STEPS steps on the stories"
"$BIN" sft --from "$MODEL" --data "$OUT/stories.jsonl" --out "$OUT/sft" --steps "$SFT_STEPS" --batch-size "$BATCH" \
  --lr "$LR" --eval-every 10 --seed 1 --split-seed 1 2>&1 | progress

say "DPO: $DPO_STEPS steps against the frozen SFT model (beta 0.1, NLL term rpoAlpha 1)"
"$BIN" dpo --reference "$OUT/sft/model" --data "$OUT/prefs.jsonl" --out "$OUT/dpo" --steps "$DPO_STEPS" \
  --batch-size "$BATCH" --lr "$LR" --eval-every 10 --beta 0.1 --rpo-alpha 1 --seed 1 --split-seed 1 2>&1 | progress

say "Greedy continuations of the 100 held-out openings: base, SFT, DPO"
names=(sft dpo) models=("$OUT/sft/model" "$OUT/dpo/model")
# generate reads a local directory; the base model is shown when MODEL is one.
if [ -d "$MODEL" ]; then names=(base "${names[@]}") models=("$MODEL" "${models[@]}"); fi
for i in "${!names[@]}"; do
  "$BIN" generate --model "${models[$i]}" --prompts-file "$OUT/held-out.jsonl" --max-new 8 >"$OUT/answers-${names[$i]}.jsonl"
done
python3 - "$OUT" "${names[@]}" <<'PY'
import json, os, re, sys
out, names = sys.argv[1], sys.argv[2:]
answers = []
for n in names:
    answers.append([json.loads(l) for l in open(os.path.join(out, "answers-%s.jsonl" % n)) if l.startswith("{")])
def friend(prompt):
    return re.search(r" had a friend named ([A-Za-z]+)\.", prompt).group(1)
def ok(prompt, completion):  # storydata.Check: the first word is the friend's name
    return re.match(r"[^\W\d_]*", completion.lstrip()).group(0) == friend(prompt)
print("%-6s " % "friend" + "  ".join("%-24s" % n for n in names))
for i in range(0, len(answers[0]), 12):
    p = answers[0][i]["prompt"]
    row = []
    for a in answers:
        c = a[i]["completion"].strip()[:20]
        row.append("%-20s %-3s" % (c, "ok" if ok(p, a[i]["completion"]) else "x"))
    print("%-6s " % friend(p) + "  ".join(row))
n = len(answers[0])
print("rule (the continuation starts with the friend's name) on %d held-out openings: " % n +
      ", ".join("%s %d/%d" % (name, sum(ok(r["prompt"], r["completion"]) for r in a), n) for name, a in zip(names, answers)))
PY

say "Final metrics"
python3 -c '
import json, sys
for name in ("sft", "dpo"):
    last = {}
    for line in open(sys.argv[1] + "/" + name + "/metrics.jsonl"):
        last.update(json.loads(line))
    keys = [k for k in ("step", "loss", "eval_loss", "rewards/accuracies", "eval_rewards/accuracies", "eval_rewards/margins", "tokens_per_second") if k in last]
    print(name.upper() + ": " + ", ".join("%s %.4g" % (k, last[k]) for k in keys))
' "$OUT"
say "Outputs"
echo "models:  $OUT/sft/model $OUT/dpo/model (Hugging Face layout, the source's architecture and tokenizer)"
echo "metrics: $OUT/sft/metrics.jsonl $OUT/dpo/metrics.jsonl"
