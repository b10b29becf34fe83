#!/usr/bin/env bash
# `make demo MODEL=<dir|uri>`: the demo's job through the operator on a pretrained model the user names. MODEL is a
# Hugging Face model directory on this host (copied onto the demo's claim and used as pvc://preftune-data/models/
# <name>; local cluster only) or a URI the SFTRun's spec.model.from.uri takes (hf://org/name[@revision] where the
# Hub is reachable from the cluster, s3://, gs://, azblob://, pvc://...). Like hack/demo.sh it starts the local
# cluster (root), installs the operator with Helm, then trains an SFTRun from MODEL on the story openings and a
# DPORun from it on the story preference pairs (hack/demo/pretrained/, trainer/storydata; docs/learning-pretrained.md),
# shows `kubectl get preftune` live, the runs' status (architecture, parameter count, source model, metrics), and the
# greedy continuations of 100 held-out openings by the SFT and the DPO model (and the base model when it is on the
# claim) with the rule (the continuation starts with the friend's name) counted. It shows the rates and asserts
# none: thresholds belong to a known model (stories260K's are asserted by TestLearnsPretrained).
# USE_KUBECONFIG=1 and IMG as for hack/demo.sh; DEMO_GPUS (default 1).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=hack/cluster/env.sh
. "$ROOT/hack/cluster/env.sh"
NS=${DEMO_NAMESPACE:-preftune-demo}
GPUS=${DEMO_GPUS:-1}
MODEL=${MODEL:?set MODEL to a model directory or URI}
T0=$(date +%s)
say() { printf '\n\033[1m== [%ds] %s\033[0m\n' "$(($(date +%s) - T0))" "$*"; }
die() { echo "demo: $*" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -d "$MODEL" ]; then
	MODEL=$(cd "$MODEL" && pwd)
	[ -f "$MODEL/config.json" ] || die "MODEL=$MODEL has no config.json: not a Hugging Face model directory"
	[ "${USE_KUBECONFIG:-}" != 1 ] || die "MODEL=$MODEL is a directory on this host: with USE_KUBECONFIG=1 give a URI the cluster can read (s3://, hf://, pvc://...)"
fi

if [ "${USE_KUBECONFIG:-}" = 1 ]; then
	[ -n "${KUBECONFIG:-}" ] || die "USE_KUBECONFIG=1 needs KUBECONFIG"
	[ -n "${IMG:-}" ] || die "USE_KUBECONFIG=1 needs IMG: an image name in a registry the cluster pulls from"
	say "Using the cluster in $KUBECONFIG ($(kubectl config current-context))"
else
	say "Starting the local single-node cluster (hack/cluster/up.sh; the first start builds Kubernetes from source, about 10 minutes)"
	"$ROOT/hack/cluster/up.sh"
	export KUBECONFIG=$STATE/kubeconfig
fi

say "Building the image and installing the operator with Helm"
"$ROOT/hack/cluster/deploy.sh"

say "Writing the story data: 600 SFT stories, 600 preference pairs, 100 held-out openings"
(cd "$ROOT" && go build -o "$ROOT/bin/preftune-trainer" ./cmd/trainer)
trainer=$ROOT/bin/preftune-trainer
"$trainer" story-data --stories --out "$work/stories.jsonl" --n 600 --seed 1
"$trainer" story-data --out "$work/prefs.jsonl" --n 600 --seed 1
"$trainer" story-data --out "$work/held-out.jsonl" --n 100 --seed 1001 --held-out-from "$work/stories.jsonl,$work/prefs.jsonl"
head -2 "$work/prefs.jsonl"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n "$NS" delete dporuns,sftruns,preferencedatasets,pods --all --wait=true >/dev/null
for cm in story-sft-data:stories story-pref-data:prefs story-held-out:held-out; do
	kubectl -n "$NS" create configmap "${cm%%:*}" --from-file=train.jsonl="$work/${cm#*:}.jsonl" --dry-run=client -o yaml |
		kubectl apply -f - >/dev/null
done
hostdir=$("$ROOT/hack/cluster/volume.sh" "$NS" preftune-data)
[ -z "$hostdir" ] || find "$hostdir" -mindepth 1 -delete
uri=$MODEL
if [ -d "$MODEL" ]; then
	[ -n "$hostdir" ] || die "the claim has no folder on this host to copy $MODEL to"
	name=$(basename "$MODEL")
	mkdir -p "$hostdir/models/$name"
	cp -R "$MODEL/." "$hostdir/models/$name/"
	chown -R 65532:65532 "$hostdir/models"
	uri=pvc://preftune-data/models/$name
	echo "copied $MODEL onto the claim: $uri"
fi

say "Applying the PreferenceDatasets, the SFTRun (from $uri) and the DPORun (hack/demo/pretrained/, ${GPUS} GPU each)"
for f in stories-dataset prefs-dataset sft dpo; do
	sed -e "s/^    gpus: 1$/    gpus: $GPUS/" -e "s|^      uri: pvc://preftune-data/models/stories260K$|      uri: $uri|" \
		"$ROOT/hack/demo/pretrained/$f.yaml" | kubectl -n "$NS" apply -f -
done

say "Training: kubectl get preftune -n $NS (every 10 s until both runs succeed)"
deadline=$(($(date +%s) + 30 * 60))
last=
while :; do
	now=$(kubectl -n "$NS" get preftune -o wide 2>&1 || true)
	if [ "$now" != "$last" ]; then
		printf '\n-- %ds\n%s\n' "$(($(date +%s) - T0))" "$now"
		last=$now
	fi
	dpo=$(kubectl -n "$NS" get dporun story-dpo -o jsonpath='{.status.phase}' 2>/dev/null || true)
	sft=$(kubectl -n "$NS" get sftrun story-sft -o jsonpath='{.status.phase}' 2>/dev/null || true)
	[ "$dpo" = Succeeded ] && break
	if [ "$dpo" = Failed ] || [ "$sft" = Failed ] || [ "$(date +%s)" -gt "$deadline" ]; then
		kubectl -n "$NS" describe preftune | tail -n 60
		kubectl -n "$NS" get events --sort-by=.lastTimestamp | tail -n 20
		die "the runs did not succeed (SFT $sft, DPO $dpo)"
	fi
	sleep 10
done

say "The runs' status"
kubectl -n "$NS" get sftrun story-sft -o json >"$work/sft.json"
kubectl -n "$NS" get dporun story-dpo -o json >"$work/dpo.json"
python3 - "$work" <<'PY'
import json, os, sys
for kind in ("sft", "dpo"):
    obj = json.load(open(os.path.join(sys.argv[1], kind + ".json")))
    st = obj["status"]
    src = st.get("sourceModel") or {}
    print("%s %s: %s; %s, %s parameters; from %s (commit %s, digest %s)" % (obj["kind"], obj["metadata"]["name"],
          st.get("phase"), st.get("architecture"), st.get("parameterCount"), src.get("uri"), src.get("commit") or "-", src.get("digest")))
    print("  metrics: " + ", ".join("%s %s" % kv for kv in sorted((st.get("metrics") or {}).items())))
    print("  model:   %s (%s)" % (st.get("modelURI"), st.get("modelDigest")))
    if kind == "dpo":
        print("  reference: %s" % (st.get("reference") or {}).get("modelURI"))
PY

say "Greedy continuations of the 100 held-out openings (in a pod, from the claim)"
image=$(kubectl -n preftune-system get deploy -l app.kubernetes.io/name=preftune -o jsonpath='{.items[0].spec.template.spec.containers[0].image}')
mnt() { echo "/data/${1#pvc://preftune-data/}"; }
names=(sft dpo)
dirs=("$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["status"]["modelURI"])' "$work/sft.json")"
	"$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["status"]["modelURI"])' "$work/dpo.json")")
case $uri in pvc://preftune-data/*) names=(base "${names[@]}") dirs=("$uri" "${dirs[@]}") ;; esac
containers=
for i in "${!names[@]}"; do
	containers+=$(printf '%s{"name": "%s", "image": "%s", "command": ["/preftune-trainer", "generate", "--model", "%s", "--prompts-file", "/prompts/train.jsonl", "--max-new", "8"], "env": [{"name": "OPENBLAS_CORETYPE", "value": "%s"}], "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": true}, {"name": "prompts", "mountPath": "/prompts"}], "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}' \
		"${containers:+, }" "${names[$i]}" "$image" "$(mnt "${dirs[$i]}")" "${OPENBLAS_CORETYPE:-}")
done
kubectl -n "$NS" apply -f - >/dev/null <<EOF
{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "story-answers"},
 "spec": {"restartPolicy": "Never", "automountServiceAccountToken": false,
  "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
  "containers": [$containers],
  "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "preftune-data", "readOnly": true}},
              {"name": "prompts", "configMap": {"name": "story-held-out"}}]}}
EOF
kubectl -n "$NS" wait --for=jsonpath='{.status.phase}'=Succeeded pod/story-answers --timeout=600s >/dev/null ||
	{ kubectl -n "$NS" describe pod story-answers | tail -n 20; die "the answers pod did not succeed"; }
for n in "${names[@]}"; do kubectl -n "$NS" logs story-answers -c "$n" >"$work/answers-$n.jsonl"; done
kubectl -n "$NS" delete pod story-answers --wait=false >/dev/null
python3 - "$work" "${names[@]}" <<'PY'
import json, os, re, sys
work, names = sys.argv[1], sys.argv[2:]
answers = [[json.loads(l) for l in open(os.path.join(work, "answers-%s.jsonl" % n)) if l.startswith("{")] for n in names]
def friend(prompt):
    return re.search(r" had a friend named ([A-Za-z]+)\.", prompt).group(1)
def ok(prompt, completion):  # storydata.Check: the first word is the friend's name
    return re.match(r"[^\W\d_]*", completion.lstrip()).group(0) == friend(prompt)
print("%-6s " % "friend" + "  ".join("%-24s" % n for n in names))
for i in range(0, len(answers[0]), 12):
    p = answers[0][i]["prompt"]
    print("%-6s " % friend(p) + "  ".join("%-20s %-3s" % (a[i]["completion"].strip()[:20], "ok" if ok(p, a[i]["completion"]) else "x") for a in answers))
n = len(answers[0])
print("rule (the continuation starts with the friend's name) on %d held-out openings: " % n +
      ", ".join("%s %d/%d" % (name, sum(ok(r["prompt"], r["completion"]) for r in a), n) for name, a in zip(names, answers)))
PY

say "Done in $(($(date +%s) - T0)) s"
if [ "${USE_KUBECONFIG:-}" != 1 ]; then
	echo "The local cluster is still up: export KUBECONFIG=$KUBECONFIG; kubectl get preftune -A"
	echo "Tear it down with: make cluster-down"
fi
