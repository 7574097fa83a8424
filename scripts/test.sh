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
# client on an Xvfb display with a D-Bus session bus of its own, its widgets found through
# the accessibility tree: AT-SPI's Python bindings), deluge-client (PyPI); tmux, the
# terminal watch.rs runs `torrent-stats watch` in; Chromium and chromedriver, the browser
# web_browser.rs drives the web page in; strace, which fault_injection.rs attaches to the
# daemon to fail a save's syscalls (those in cli/tests/daemon/). Plain `cargo test` leaves
# the tests that need them out (#[ignore] with the tool named); run here with
# --include-ignored, they fail, rather than skip, when any of them is missing.
if ! command -v deluged >/dev/null || ! command -v deluge-console >/dev/null \
  || ! command -v deluge-web >/dev/null || ! command -v deluge-gtk >/dev/null \
  || ! command -v Xvfb >/dev/null || ! command -v dbus-daemon >/dev/null \
  || ! command -v tmux >/dev/null || ! command -v chromium >/dev/null \
  || ! command -v chromedriver >/dev/null || ! command -v strace >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq deluged deluge-console deluge-web deluge-gtk xvfb dbus tmux \
    chromium chromium-driver strace >/dev/null
fi
if ! /usr/bin/python3 -c 'import gi; gi.require_version("Atspi", "2.0")' 2>/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends gir1.2-atspi-2.0 >/dev/null
fi
python3 -c 'import deluge_client' 2>/dev/null || python3 -m pip install -q 'deluge-client==1.10.2'
# Prometheus: promtool checks /metrics, the server scrapes the daemon (web.rs).
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
# chattr for the unwritable-directory test.
command -v chattr >/dev/null || apt-get install -y -qq e2fsprogs >/dev/null
# systemd-analyze: systemd_unit.rs verifies contrib/torrent-stats.service with it.
if ! command -v systemd-analyze >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi

# qBittorrent (qbittorrent-nox, its WebUI) and mktorrent, which makes the torrents it moves:
# the qbittorrent:// source's tests (tests/library/qbittorrent_source.rs); python3 hashes
# the WebUI password into its config.
if ! command -v qbittorrent-nox >/dev/null || ! command -v mktorrent >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends qbittorrent-nox mktorrent >/dev/null
fi

# faketime (libfaketime): crash_loop.rs moves the daemon's wall clock with it.
if ! command -v faketime >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends faketime >/dev/null
fi

# Transmission 3.00 (Debian): the transmission:// source's tests run transmission-daemon
# (tests/library/transmission_source.rs) and make torrents with transmission-create.
if ! command -v transmission-daemon >/dev/null || ! command -v transmission-create >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends transmission-daemon transmission-cli >/dev/null
fi

# Deluge 2.2.0's console (PyPI, in a venv of its own): console_22.rs.
bash scripts/install/deluge22.sh
# curl and python3, the HTTPS clients of web_https.rs.
bash scripts/install/https.sh
# Flood 4.16 on Node 22 (both from npm): flood.rs.
bash scripts/install/flood.sh
# @ctrl/deluge (npm) and deluge-web-client (PyPI venv): deluge_web_api.rs.
bash scripts/install/webapi-clients.sh

# The library as `cargo add torrent-stats` gets it (no default features): the core alone,
# none of the daemon's dependencies (clap, ratatui, anyhow, tracing-subscriber, librqbit).
cargo build -p torrent-stats --no-default-features --lib
# Every library feature on its own (the crate docs list them).
for feature in rpc-client rpc rqbit sidecars web ledger; do
  cargo check -p torrent-stats --no-default-features --features "$feature" --lib
done
# The daemon binary (package torrent-stats-cli) without its optional parts (the embedded
# engine, the web server); as shipped (its default features, which are all of them) it
# is built by the tests below.
cargo check -p torrent-stats-cli --no-default-features --bin torrent-stats
# The examples as programs: the daemon's tests (cli/tests/daemon/examples.rs) run them.
cargo build --all-features --examples
# Unit, integration and example targets of both packages, the ignored tests (those that
# need the tools installed above) included; then the bench targets, each benchmark run
# once as a test (criterion takes no --include-ignored; --bench '*' rather than
# --benches, which would run the unit tests again).
cargo test --all-features --lib --bins --tests --examples -- --include-ignored
cargo test --all-features --bench '*'
# Examples in the docs.
cargo test --all-features --doc
echo "target dir after the run: $(du -sh "$target_dir" | cut -f1), disk free: $(df -h --output=avail . | tail -1 | tr -d ' ')"
