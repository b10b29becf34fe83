#!/usr/bin/env bash
# Installs the reference Jinja renderer for trainer/chattemplate's tests, idempotently: npm's @huggingface/jinja,
# pinned, into bin/jinjaref (git-ignored). It renders chat templates exactly as Python's Jinja2 does when configured
# the way transformers' apply_chat_template configures it. Prints the folder it installed into on its last line of
# stdout; exits non-zero (saying why on stderr) when npm is absent or the install fails.
set -euo pipefail

VERSION=0.5.11
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/bin/jinjaref"
stamp="$dir/.installed-$VERSION"

log() { echo "install-jinja-ref: $*" >&2; }

if [ -f "$stamp" ] && [ -f "$dir/node_modules/@huggingface/jinja/package.json" ]; then
	echo "$dir"
	exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
	log "npm is not installed"
	exit 1
fi
mkdir -p "$dir"
# A private package.json keeps npm from walking up into the repository.
[ -f "$dir/package.json" ] || echo '{"name":"jinjaref","private":true}' >"$dir/package.json"
log "npm install @huggingface/jinja@$VERSION into $dir"
if ! npm install --prefix "$dir" --no-audit --no-fund --save-exact "@huggingface/jinja@$VERSION" >&2; then
	log "npm install @huggingface/jinja@$VERSION failed"
	exit 1
fi
rm -f "$dir"/.installed-*
touch "$stamp"
echo "$dir"
