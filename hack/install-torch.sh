#!/usr/bin/env bash
# Installs Debian's PyTorch for the cross-framework test and the PyTorch benchmark peer, idempotently, and prints
# the python interpreter that imports torch on its last line of stdout (Debian's is /usr/bin/python3; the python3
# on PATH may be a pyenv one without Debian's packages).
set -euo pipefail

log() { echo "install-torch: $*" >&2; }

# find_python prints the first interpreter that imports torch and numpy.
find_python() {
	local py
	for py in /usr/bin/python3 "$(command -v python3 || true)"; do
		[ -n "$py" ] && [ -x "$py" ] || continue
		if "$py" -c 'import torch, numpy' >/dev/null 2>&1; then
			echo "$py"
			return 0
		fi
	done
	return 1
}

if py=$(find_python); then
	log "torch already importable by $py"
	echo "$py"
	exit 0
fi

# shellcheck source=hack/lib/apt.sh
. "$(dirname "$0")/lib/apt.sh"
apt_prepare python3-torch || exit 1
pkgs=(python3-torch python3-numpy)
# python3-safetensors is optional: the reference reads safetensors in plain Python when it is missing.
if apt-cache show python3-safetensors >/dev/null 2>&1; then
	pkgs+=(python3-safetensors)
fi
log "apt-get install ${pkgs[*]}"
if ! $SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2; then
	log "apt-get install ${pkgs[*]} failed"
	exit 1
fi

if py=$(find_python); then
	log "torch importable by $py ($("$py" -c 'import torch; print(torch.__version__)'))"
	echo "$py"
	exit 0
fi
log "python3-torch installed but no python3 imports torch"
exit 1
