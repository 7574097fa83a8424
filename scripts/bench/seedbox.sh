#!/usr/bin/env bash
# Seedbox scale side by side (issue 21): our daemon with its embedded engine (librqbit)
# next to Debian's deluged 2.0.3 with its Stats plugin, each holding N small private
# torrents with their data present, DHT off, no trackers, nothing transferring. Not a
# test: the figures go to BENCHMARKS.md ("Seedbox scale side by side (issue 21)").
#
# usage: scripts/bench/seedbox.sh [--sizes 100,1000,10000] [--deluged-sizes 100,1000,10000]
#     [--deluged-cap 120] [--idle 20] [--settle 5] [--calls 20] [--batch 100]
#     [--size 32768] [--limit 600] [--nofile N]
#   --sizes: the numbers of torrents, each a fresh pair of daemons (ours, then deluged).
#   --deluged-sizes: the sizes deluged runs at too; --deluged-cap S: deluged's adds stop
#     after the batch that passes S seconds (it needs ~45 s per 1000 adds, growing with
#     the number it holds), and the table says how far it got; its figures are then for
#     the torrents it has, without ratios, and its restart is skipped.
#   --idle S: the idle window; --settle S: the wait before it (and before the second
#     reading of /proc/PID/io after a restart); --calls: status calls timed (median);
#     --batch: add calls in flight on the connection; --size: bytes of each torrent's
#     file (16 KiB pieces); --limit S: the longest wait for all seeding (or 60 s without
#     a change in the states), for an exit after SIGTERM and for a restart; --nofile N:
#     the daemons' open files limit, soft and hard (default: inherited, printed; the
#     embedded engine of librqbit 9.1 keeps 2 descriptors open per torrent).
#   TORRENT_STATS_BIN: the binary to measure; default: build this tree with
#     `cargo build --release -p torrent-stats-cli` (honours CARGO_TARGET_DIR).
#   KEEP=1: leave the work directory (logs, config directories, data) and print its path.
# Needs deluged and deluge-client (python3) (./scripts/test.sh installs both).
# Takes about 15 minutes with the defaults on a 2-core machine (at 10 000: deluged's adds
# ~45 s and its restart ~40 s, ours ~90 s and ~2 min; 100 and 1000 alone: ~4 minutes),
# and 2 × 10 000 × --size of disk. Our engine keeps 2 descriptors per torrent open: 10 000
# torrents need an open files limit above 20 000.
#
# Steps, for each N and each daemon (scripts/bench/seedbox.py does them):
#  1. make max(N) torrents and their files once (scripts/bench/make_torrents.py); both
#     daemons seed the same files in place (download_location of the add);
#  2. start the daemon fresh (free ports; ours as shipped, web server on, with --no-dht
#     --no-trackers; deluged: core.conf before its first start with DHT, UPnP, NAT-PMP,
#     LSD, PEX off and no queue limits, then core.enable_plugin Stats);
#  3. add the first N with core.add_torrent_file over one RPC connection, --batch calls
#     in flight at a time (as a script or Deluge's GTK client would send them): the add
#     time; then poll core.get_torrents_status({}, ["state"]) until all are Seeding;
#  4. close the connection, wait --settle, then over --idle seconds with no client: CPU
#     (utime+stime of /proc/PID/stat, dead threads included), wake-ups/s (voluntary +
#     nonvoluntary context switches of /proc/PID/task/*/status, read every 0.25 s so
#     threads that start and end in the window count too), threads started in the
#     window; at the end VmRSS, RssAnon, threads, open descriptors and their limit;
#  5. core.get_torrents_status({}, 12 keys) and the same with {"id": [one id]}: median of
#     --calls round trips after 3 warm-up calls, timed to the answer's last byte (the
#     client's decoding not included), answers checked for N (1) torrents of 12 keys;
#  6. stats.get_totals, SIGTERM, time until the process exits; the data files' pages
#     dropped from the page cache (sync + posix_fadvise DONTNEED: a re-read at restart
#     then shows in read_bytes, not only in rchar); start again with the same
#     configuration: time until RPC answers, until get_torrents_status has all N, until
#     all are Seeding; /proc/PID/io read_bytes and rchar of the new process then and
#     --settle s later; stats.get_totals equal to before.
# The load average (/proc/loadavg) is printed with each phase: the machine is shared.
set -euo pipefail
{ # read whole before it runs: an edit of this file during a run cannot change it
BIN=${TORRENT_STATS_BIN:-}
if [ -n "$BIN" ]; then BIN=$(realpath "$BIN"); fi # before the cd below
cd "$(dirname "$0")/../.."
case "${1:-}" in -h | --help) sed -n '2,52p' "$0"; exit 0 ;; esac
command -v deluged >/dev/null || { echo "needs deluged (Debian package deluged)" >&2; exit 1; }
python3 -c 'import deluge_client' 2>/dev/null ||
  { echo "needs deluge-client: pip install deluge-client==1.10.2" >&2; exit 1; }

work=$(mktemp -d)
pidfile=$work/pids
touch "$pidfile"
cleanup() {
  local pid
  # The driver's daemons, by the ids it wrote down (it stops them itself unless killed).
  while read -r pid; do kill "$pid" 2>/dev/null || true; done <"$pidfile"
  if [ -n "${driver:-}" ]; then kill "$driver" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "$BIN" ]; then
  cargo build --release --quiet -p torrent-stats-cli
  cp "${CARGO_TARGET_DIR:-target}/release/torrent-stats" "$work/torrent-stats"
  BIN=$work/torrent-stats
fi
[ -x "$BIN" ] || { echo "not an executable: $BIN" >&2; exit 1; }

echo "== $(date -u '+%F %T') UTC; $(nproc) cores; load average: $(cut -d' ' -f1-3 /proc/loadavg); open files limit: $(ulimit -n)"
echo "torrent-stats: $BIN ($("$BIN" --version 2>/dev/null || echo '?'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')); deluged $(deluged --version 2>/dev/null | awk 'NR==1{print $2}'), libtorrent $(deluged --version 2>/dev/null | awk '/libtorrent/{print $2}')"
python3 scripts/bench/seedbox.py --bin "$BIN" --work "$work" --pids "$pidfile" "$@" &
driver=$!
wait "$driver"
exit
}
