#!/usr/bin/env bash
# The cost of idle sources: our daemon (as shipped: RPC and web on) counting 1, 10 and 100
# idle `sim` sources (zero rates), one after the other, each next to Debian's deluged
# 2.0.3 with its Stats plugin enabled and idle. Not a test: the figures go to
# BENCHMARKS.md.
#
# usage: scripts/bench/sources_idle.sh
#   TORRENT_STATS_BIN: the torrent-stats binary to measure; default: build this tree with
#     `cargo build --release --bin torrent-stats` (honours CARGO_TARGET_DIR).
#   COUNTS ("1 10 100"): the numbers of sources. SETTLE_S (10): wait after each start.
#   IDLE_S (60): the idle window of each count (deluged's measured in the same windows).
#   KEEP=1: leave the work directory (logs) in place and print its path.
# Needs deluged and deluge-client 1.10.2 in python3 (./scripts/test.sh installs both).
#
# Per count it prints: our CPU (% of a core, from the threads' schedstat run time; the
# 10 ms utime+stime ticks of /proc/PID/stat beside it), VmRSS
# and RssAnon at the end of the window, deluged's in the same window, their ratios, and
# per source beyond the first: CPU and RSS added, and the CPU of one poll tick (the CPU
# beyond the 1-source daemon's, divided by the polls made: sources x IDLE_S / 2 s).
set -euo pipefail
BIN=${TORRENT_STATS_BIN:-}
if [ -n "$BIN" ]; then BIN=$(realpath "$BIN"); fi # before the cd below
cd "$(dirname "$0")/../.."
COUNTS=${COUNTS:-"1 10 100"}
SETTLE_S=${SETTLE_S:-10}
IDLE_S=${IDLE_S:-60}
command -v deluged >/dev/null || { echo "needs deluged (Debian package deluged)" >&2; exit 1; }
python3 -c 'import deluge_client' 2>/dev/null ||
  { echo "needs deluge-client: pip install deluge-client==1.10.2" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

target=${CARGO_TARGET_DIR:-target}
if [ -z "$BIN" ]; then
  cargo build --release --quiet --bin torrent-stats
  cp "$target/release/torrent-stats" "$work/torrent-stats"
  BIN=$work/torrent-stats
fi
[ -x "$BIN" ] || { echo "not an executable: $BIN" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }
ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; } # utime + stime
# Run time of PID's live threads, ns (schedstat: finer than the 10 ms ticks).
cpu_ns() { local ns=0 t; for t in /proc/"$1"/task/*/schedstat; do ns=$((ns + $(cut -d' ' -f1 "$t" 2>/dev/null || echo 0))); done; echo "$ns"; }
kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
tick=$(getconf CLK_TCK)

# deluged 2.0.3 with Stats, idle, nothing leaving the machine.
their_port=$(free_port)
mkdir -p "$work/deluge"
printf '%s\n' '{"file": 1, "format": 1}{"dht": false, "upnp": false, "natpmp": false,' \
  '"lsd": false, "utpex": false, "new_release_check": false}' >"$work/deluge/core.conf"
deluged -c "$work/deluge" -p "$their_port" -u 127.0.0.1 -i 127.0.0.1 -d -L error >"$work/deluged.log" 2>&1 &
theirs=$!
pids+=("$theirs")
wait_port "$their_port"
for _ in $(seq 100); do grep -q '^localclient:' "$work/deluge/auth" 2>/dev/null && break; sleep 0.1; done
their_pw=$(grep '^localclient:' "$work/deluge/auth" | cut -d: -f2)
python3 - "$their_port" "$their_pw" <<'PY'
import sys
from deluge_client import DelugeRPCClient
c = DelugeRPCClient("127.0.0.1", int(sys.argv[1]), "localclient", sys.argv[2], decode_utf8=True)
c.connect()
c.call("core.enable_plugin", "Stats")
PY

echo "== $(date -u '+%F %T') UTC; $(nproc) cores; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "torrent-stats: $BIN; deluged $(deluged --version 2>/dev/null | awk 'NR==1{print $2}'); IDLE_S=$IDLE_S"
declare -A CPU RSS
for n in $COUNTS; do
  args=()
  for i in $(seq "$n"); do args+=(--source "s$i=sim:up=0,down=0"); done
  port=$(free_port)
  web=$(free_port)
  "$BIN" daemon --config-dir "$work/ours-$n" --port "$port" --web-port "$web" "${args[@]}" \
    2>"$work/ours-$n.log" &
  ours=$!
  pids+=("$ours")
  wait_port "$port"
  sleep "$SETTLE_S"
  o0=$(ticks "$ours"); t0=$(ticks "$theirs"); on0=$(cpu_ns "$ours"); tn0=$(cpu_ns "$theirs")
  sleep "$IDLE_S"
  o1=$(ticks "$ours"); t1=$(ticks "$theirs"); on1=$(cpu_ns "$ours"); tn1=$(cpu_ns "$theirs")
  CPU[$n]=$(python3 -c "print('%.4f' % (($on1 - $on0) / 1e9 / $IDLE_S * 100))")
  their_cpu=$(python3 -c "print('%.4f' % (($tn1 - $tn0) / 1e9 / $IDLE_S * 100))")
  ticks_ours=$(python3 -c "print('%.3f' % (($o1 - $o0) / $tick / $IDLE_S * 100))")
  ticks_theirs=$(python3 -c "print('%.3f' % (($t1 - $t0) / $tick / $IDLE_S * 100))")
  RSS[$n]=$(kib "$ours" VmRSS)
  anon=$(kib "$ours" RssAnon)
  their_rss=$(kib "$theirs" VmRSS)
  their_anon=$(kib "$theirs" RssAnon)
  kill "$ours"; wait "$ours" 2>/dev/null || true
  echo "$n sources: ours CPU ${CPU[$n]} % of a core (ticks: $ticks_ours %), VmRSS ${RSS[$n]} KiB (RssAnon $anon); deluged CPU $their_cpu % (ticks: $ticks_theirs %), VmRSS $their_rss KiB (RssAnon $their_anon); ratios CPU $(python3 -c "print('%.2f' % (${CPU[$n]} / max($their_cpu, 0.001)))"), RSS $(python3 -c "print('%.2f' % (${RSS[$n]} / $their_rss))")"
  first=$(echo "$COUNTS" | awk '{print $1}')
  if [ "$n" != "$first" ]; then
    python3 - "$n" "$first" "${CPU[$n]}" "${CPU[$first]}" "${RSS[$n]}" "${RSS[$first]}" "$IDLE_S" <<'PY'
import sys
n, first = int(sys.argv[1]), int(sys.argv[2])
cpu, cpu1, rss, rss1, idle = map(float, sys.argv[3:8])
extra = n - first
polls = extra * idle / 2  # each extra source polls every 2 s
cpu_s = (cpu - cpu1) / 100 * idle
print(f"  per source beyond {first}: CPU {(cpu - cpu1) / extra:.4f} % of a core, "
      f"RSS {(rss - rss1) / extra:.1f} KiB; one poll tick {cpu_s / polls * 1e6:.1f} us of CPU")
PY
  fi
done
