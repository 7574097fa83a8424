#!/usr/bin/env bash
# RPC latency while the Stats plugin's store writes run continuously (issue 6; not a test,
# figures go to BENCHMARKS.md).
#
# usage: scripts/bench/checkpoint_latency.sh [BINARY]
#   BINARY (or TORRENT_STATS_BIN): the torrent-stats binary to measure, so a "before" and
#   an "after" build can be compared; default: build and use the release binary of this tree
#   (honours CARGO_TARGET_DIR).
#   CALLS (5000), GAP_MS (4): stats.get_totals calls per scenario, and the pause between them
#   (so the calls span several checkpoints: ~22 s, 4 checkpoints, at the defaults). The
#   pause matters: like a real client, the timing connection leaves the daemon idle between
#   calls, and that is when a worker stuck in a store write holds up the others' I/O. With
#   GAP_MS=0 the floor is lower (p99 ~0.3 ms idle instead of ~2-4 ms on a 2-core VM) but
#   the busy client keeps the other worker polling, and the checkpoint stalls hardly show.
#   SCENARIOS: which rows to run (default: all below). RUNS (1): repeat the whole set.
#
# Each scenario starts a fresh daemon (sim source, 2 tokio workers) with stats.conf
# update_interval = 1 and save_interval = 5 (the smallest allowed), so besides any writer
# the poll task writes stats.totals (rename, no fsync) every second and an fsync'd
# checkpoint of stats.totals + stats.history every 5 s. Scenarios:
#   idle            no writer: the baseline
#   set_config      another connection calls stats.set_config({"length": 150}) and
#                   ({"length": 151}) alternately, back to back: each call changes the
#                   preferences, so the poll task saves stats.conf durably (temp file,
#                   fsync, .bak link, rename, directory fsync) on a worker thread. length is
#                   the key to alternate: update_interval or save_interval would restart
#                   the timers and so keep the checkpoints from ever running.
#   noop_set_config the control for set_config: the same calls with an unchanged value
#                   ({"length": 150} every time): the same client, connection and command
#                   round trip through the poll task, but the poll task writes nothing
#   reset_totals    the same with stats.reset_totals() (keeps a hard-linked copy and fsyncs
#                   the directory, then a durable totals save: three fsyncs per call)
#   big             no writer, but stats.history is seeded full at length = 10000 (4 levels
#                   x 9 series x 10000 points, a few MB of TOML), so every 5 s checkpoint
#                   serializes and fsyncs a file of that size
#   big+set_config  both: the seeded history and the set_config writer (length 10000/9999)
# Meanwhile one more connection (stock deluge-client 1.10.2) times CALLS stats.get_totals
# round trips. The write counts come from the daemon's log over the timed window
# ("preferences changed", "all-time totals reset", "checkpoint saved", "totals saved
# durability=Fast"; the poll task logs at trace for this), as does the longest history
# save ("totals saved durability=Durable" to "checkpoint saved"). "writer calls" is the
# writer's whole run with its mean round trip: most of it is the store write.
set -euo pipefail
BIN=${1:-${TORRENT_STATS_BIN:-}}
if [ -n "$BIN" ]; then BIN=$(realpath "$BIN"); fi # before the cd below
cd "$(dirname "$0")/../.."
CALLS=${CALLS:-5000}
GAP_MS=${GAP_MS:-4}
RUNS=${RUNS:-1}
SCENARIOS=${SCENARIOS:-idle noop_set_config set_config reset_totals big big+set_config}
if [ -z "$BIN" ]; then
  # The same build as rpc.sh's: building the example too unifies tokio's features with the
  # dev-dependencies', so compare binaries built with the same command.
  cargo build --release --quiet --bin torrent-stats --example rpc_load
  BIN=${CARGO_TARGET_DIR:-target}/release/torrent-stats
fi
[ -x "$BIN" ] || { echo "not an executable: $BIN" >&2; exit 1; }
helper=scripts/bench/checkpoint_latency.py
python3 -c 'import deluge_client' 2>/dev/null ||
  { echo "needs deluge-client: pip install deluge-client==1.10.2" >&2; exit 1; }

work=$(mktemp -d)
daemon='' writer=''
cleanup() {
  for pid in $writer $daemon; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# field NAME LINE: the value of NAME=<number> in LINE.
field() { sed -n "s/.*\b$1=\([0-9.]*\).*/\1/p" <<<"$2"; }

run_scenario() { # NAME -> prints one table row
  local name=$1 dir="$work/$1" length=150 kind='' a=150 b=151
  case $name in
    idle) ;;
    set_config) kind=set_config ;;
    noop_set_config) kind=set_config b=150 ;;
    reset_totals) kind=reset_totals ;;
    big) length=10000 ;;
    big+set_config) length=10000 kind=set_config a=10000 b=9999 ;;
    *) echo "unknown scenario $name" >&2; return 1 ;;
  esac
  rm -rf "$dir"; mkdir -p "$dir"
  printf 'update_interval = 1\nlength = %d\nsave_interval = 5\n' "$length" >"$dir/stats.conf"
  if [ "$length" -gt 150 ]; then python3 "$helper" seed-history "$dir" "$length"; fi
  local log="$dir/daemon.log"
  NO_COLOR=1 RUST_LOG=info,torrent_stats::stats::poller=trace "$BIN" daemon --config-dir "$dir" \
    --port 0 --no-web --source sim:up=2MiB/s,down=8MiB/s 2>"$log" &
  daemon=$!
  local port=''
  for _ in $(seq 300); do
    port=$(sed -n 's/.*RPC listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log")
    [ -n "$port" ] && break
    kill -0 "$daemon" 2>/dev/null || { cat "$log" >&2; return 1; }
    sleep 0.1
  done
  [ -n "$port" ] || { echo "daemon never listened" >&2; cat "$log" >&2; return 1; }
  local pw; pw=$(sed -n 's/^localclient:\([^:]*\):.*/\1/p' "$dir/auth")
  local wout="$dir/writer.out"
  if [ -n "$kind" ]; then
    python3 "$helper" writer 127.0.0.1 "$port" localclient "$pw" "$kind" "$dir/stop" "$a" "$b" >"$wout" &
    writer=$!
    sleep 1
  fi
  local from to m
  from=$(stat -c %s "$log")
  m=$(python3 "$helper" measure 127.0.0.1 "$port" localclient "$pw" "$CALLS" "$GAP_MS")
  to=$(stat -c %s "$log")
  local wcalls='-'
  if [ -n "$kind" ]; then
    touch "$dir/stop"; wait "$writer"; writer=''
    wcalls="$(field calls "$(cat "$wout")") ($(field ms_each "$(cat "$wout")") ms each)"
  fi
  kill "$daemon"; wait "$daemon" || true; daemon=''
  local c; c=$(python3 "$helper" log-counts "$log" "$from" "$to")
  local hist; hist=$(stat -c %s "$dir/stats.history" 2>/dev/null || echo 0)
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
    "$name" "$(field secs "$m")" "$(field commands "$c")" "$(field checkpoints "$c")" \
    "$(field ckpt_max "$c")" "$(field fast "$c")" "$((hist / 1024)) KiB" \
    "$(field p50 "$m")" "$(field p90 "$m")" "$(field p99 "$m")" "$(field p99.9 "$m")" "$(field max "$m")" \
    "$(field over10 "$m")" "$wcalls"
}

echo "binary: $BIN ($(sha256sum "$BIN" | cut -c1-12))"
echo "calls per scenario: $CALLS, gap ${GAP_MS} ms; uptime:$(uptime | sed 's/.*load average/ load average/')"
echo
echo '| scenario | window s | set_config/reset saves | checkpoints | longest history save ms | fast saves | stats.history | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | calls > 10 ms | writer calls (mean round trip) |'
echo '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|'
for _ in $(seq "$RUNS"); do
  for s in $SCENARIOS; do run_scenario "$s"; done
done
