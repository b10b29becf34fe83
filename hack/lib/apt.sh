# shellcheck shell=bash
# Sourced by the install scripts: apt_prepare WHAT checks that apt-get can run (as root, or through sudo), sets
# SUDO, and runs `apt-get update` once; on failure it says why WHAT cannot be installed and returns 1.
# The caller defines log().
apt_prepare() {
	local what=$1
	if ! command -v apt-get >/dev/null 2>&1; then
		log "apt-get is unavailable: cannot install $what (install it by hand)"
		return 1
	fi
	SUDO=""
	if [ "$(id -u)" -ne 0 ]; then
		if command -v sudo >/dev/null 2>&1; then
			SUDO="sudo -n"
		else
			log "not root and no sudo: cannot run apt-get install $what"
			return 1
		fi
	fi
	export DEBIAN_FRONTEND=noninteractive
	log "apt-get update"
	if ! $SUDO apt-get update -qq >&2; then
		log "apt-get update failed (no network or no apt sources?): cannot install $what"
		return 1
	fi
}
