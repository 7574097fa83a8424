#!/usr/bin/env bash
# deluge-web JSON API clients for cli/tests/daemon/deluge_web_api.rs: @ctrl/deluge (npm,
# Node >= 18) and deluge-web-client (PyPI, in a venv), under the interop dir.
set -euo pipefail
dir="${TORRENT_STATS_INTEROP:-$HOME/.cache/torrent-stats-interop}/webapi-clients"
mkdir -p "$dir"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
if [ ! -f "$dir/node_modules/@ctrl/deluge/package.json" ]; then
  (cd "$dir" && { [ -f package.json ] || echo '{"private": true}' >package.json; } \
    && npm install --silent --no-audit --no-fund '@ctrl/deluge@8.0.0' >/dev/null)
fi
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi
if ! "$dir/venv/bin/python" -c 'import deluge_web_client' 2>/dev/null; then
  rm -rf "$dir/venv"
  python3 -m venv "$dir/venv"
  "$dir/venv/bin/pip" install -q 'deluge-web-client==2.1.1'
fi
