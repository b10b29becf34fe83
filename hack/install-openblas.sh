#!/usr/bin/env bash
# Installs OpenBLAS's development files (libopenblas-dev) for the trainer's `-tags openblas` build, and the static
# gfortran runtime (libgfortran-<gcc>-dev) that a fully static link of libopenblas.a needs (the image's trainer),
# idempotently. Exits 0 when both links work afterwards, 1 with a message saying why not otherwise.
set -euo pipefail

log() { echo "install-openblas: $*" >&2; }

# linkable reports whether the linker finds libopenblas.so (from Debian's package or a hand-built one).
gfortran_pkg="libgfortran-$(gcc -dumpversion 2>/dev/null | cut -d. -f1)-dev"
linkable() {
	[ "$(gcc -print-file-name=libgfortran.a 2>/dev/null)" != "libgfortran.a" ] || return 1
	if dpkg-query -W -f='${Status}' libopenblas-dev 2>/dev/null | grep -q "install ok installed"; then
		return 0
	fi
	ldconfig -p 2>/dev/null | grep -q 'libopenblas\.so '
}

if linkable; then
	log "OpenBLAS is already installed"
	exit 0
fi

# shellcheck source=hack/lib/apt.sh
. "$(dirname "$0")/lib/apt.sh"
apt_prepare libopenblas-dev || exit 1
log "apt-get install libopenblas-dev"
if ! $SUDO apt-get install -y -qq --no-install-recommends libopenblas-dev "$gfortran_pkg" >&2; then
	log "apt-get install libopenblas-dev failed"
	exit 1
fi
if linkable; then
	log "OpenBLAS installed"
	exit 0
fi
log "libopenblas-dev installed but the linker does not find libopenblas.so"
exit 1
