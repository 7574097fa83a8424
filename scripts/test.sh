#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need, builds once
# (one target dir reused by every step), then runs every test, doctest and bench-as-test.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
# No incremental cache: every crate is built once per run, and the cache would double the
# target dir's size on disk (see [profile.dev] in Cargo.toml for the debug-info side).
export CARGO_INCREMENTAL=0
target_dir="${CARGO_TARGET_DIR:-target}"
echo "disk free before the run: $(df -h --output=avail . | tail -1 | tr -d ' ')"

# Interop peers: the real Deluge daemon, console, web UI and GTK client (Debian; the GTK
# client on an Xvfb display, clicked with xdotool), deluge-client (PyPI); tmux, the
# terminal tests/watch.rs runs `torrent-stats watch` in; Chromium and chromedriver, the
# browser tests/web_browser.rs drives the web page in; strace, which tests/fault_injection.rs
# attaches to the daemon to fail a save's syscalls. The tests fail, rather than skip,
# when any of them is missing.
if ! command -v deluged >/dev/null || ! command -v deluge-console >/dev/null \
  || ! command -v deluge-web >/dev/null || ! command -v deluge-gtk >/dev/null \
  || ! command -v Xvfb >/dev/null || ! command -v xdotool >/dev/null \
  || ! command -v tmux >/dev/null || ! command -v chromium >/dev/null \
  || ! command -v chromedriver >/dev/null || ! command -v strace >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq deluged deluge-console deluge-web deluge-gtk xvfb xdotool tmux \
    chromium chromium-driver strace >/dev/null
fi
python3 -c 'import deluge_client' 2>/dev/null || python3 -m pip install -q 'deluge-client==1.10.2'
# Prometheus: promtool checks /metrics, the server scrapes the daemon (tests/web.rs).
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
# chattr for the unwritable-directory test.
command -v chattr >/dev/null || apt-get install -y -qq e2fsprogs >/dev/null
# systemd-analyze: tests/systemd_unit.rs verifies contrib/torrent-stats.service with it.
if ! command -v systemd-analyze >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi

# faketime (libfaketime): tests/crash_loop.rs moves the daemon's wall clock with it.
if ! command -v faketime >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends faketime >/dev/null
fi

# The core library must build with only the design-card dependencies.
cargo build --no-default-features --lib
# Every documented feature combination builds (the crate docs list them).
cargo check --no-default-features --features rpc-client --lib
cargo check --no-default-features --features rpc --lib
cargo check --no-default-features --features cli --bin torrent-stats
cargo check --no-default-features --features rqbit --lib
cargo check --no-default-features --features web --lib
# The examples as programs: tests/examples.rs runs them to completion.
cargo build --all-features --examples
# Unit, integration, example and bench targets (benches run once each, as tests).
cargo test --all-features --all-targets
# Examples in the docs.
cargo test --all-features --doc
echo "target dir after the run: $(du -sh "$target_dir" | cut -f1), disk free: $(df -h --output=avail . | tail -1 | tr -d ' ')"
