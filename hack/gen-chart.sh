#!/usr/bin/env bash
# Regenerates charts/preftune from config/default (see hack/tools/genchart): never edit the chart by hand.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/hack/tools"
go run ./genchart -config "$root/config/default" -out "$root/charts/preftune"
