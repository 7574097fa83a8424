#!/usr/bin/env bash
# Deluge 2.2.0's console (PyPI `deluge==2.2.0`, no libtorrent needed for the console), in a
# venv of its own: cli/tests/daemon/console_22.rs runs it against the daemon.
set -euo pipefail
dir="${TORRENT_STATS_INTEROP:-$HOME/.cache/torrent-stats-interop}/deluge22"
if ! "$dir/venv/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(m.version("deluge") != "2.2.0")' 2>/dev/null; then
  rm -rf "$dir"
  mkdir -p "$dir"
  python3 -m venv "$dir/venv"
  "$dir/venv/bin/pip" install -q --disable-pip-version-check 'deluge==2.2.0'
fi
"$dir/venv/bin/deluge-console" --version >/dev/null
