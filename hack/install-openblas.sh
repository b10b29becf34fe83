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

if ! command -v apt-get >/dev/null 2>&1; then
	log "apt-get is unavailable: install OpenBLAS's development files (libopenblas.so) by hand for -tags openblas"
	exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO="sudo -n"
	else
		log "not root and no sudo: cannot run apt-get install libopenblas-dev"
		exit 1
	fi
fi

export DEBIAN_FRONTEND=noninteractive
log "apt-get update"
if ! $SUDO apt-get update -qq >&2; then
	log "apt-get update failed (no network or no apt sources?): cannot install libopenblas-dev"
	exit 1
fi
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
