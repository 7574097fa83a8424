#!/usr/bin/env bash
# Idle cost of two builds of the daemon, side by side: N daemons of each (sim source, web
# server on, fresh config directories) run at the same time, so both see the same machine,
# page cache and load. Not a test: the figures go to BENCHMARKS.md.
#
# usage: scripts/bench/idle_ab.sh BIN_A BIN_B
#   N (3): daemons of each build. ROUNDS (1): rounds, each with fresh daemons.
#   SETTLE_S (10): wait after the start before the window. IDLE_S (60): the window.
#
# For each daemon: CPU over the window as the sum of /proc/PID/task/*/schedstat (ns, % of
# one core), voluntary context switches over the window (wake-ups; per minute), and at the
# window's end VmRSS, RssFile and RssAnon. Each binary is copied to a temporary file first
# (so a rebuild cannot change it under the run), and read once so all of it is in the page
# cache for both. Then the mean of each column per build and B/A.
set -euo pipefail
[ $# -eq 2 ] || { sed -n '2,14p' "$0"; exit 2; }
N=${N:-3}
ROUNDS=${ROUNDS:-1}
SETTLE_S=${SETTLE_S:-10}
IDLE_S=${IDLE_S:-60}
work=$(mktemp -d)
pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
declare -A given=([A]=$1 [B]=$2)
for ab in A B; do
  cp "${given[$ab]}" "$work/torrent-stats-$ab"
  chmod 755 "$work/torrent-stats-$ab"
  cat "$work/torrent-stats-$ab" >/dev/null
done

cpu_ns() {
  local s=0 t
  for t in /proc/"$1"/task/*; do s=$((s + $(cut -d' ' -f1 "$t/schedstat"))); done
  echo "$s"
}
switches() {
  local s=0 t
  for t in /proc/"$1"/task/*; do s=$((s + $(awk '/^voluntary_ctxt_switches/{print $2}' "$t/status"))); done
  echo "$s"
}
kib() { awk -v k="$2:" '$1 == k {print $2}' /proc/"$1"/status; }

echo "== $(date -u '+%F %T') UTC; $(nproc) cores; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "A: ${given[A]}; B: ${given[B]}; $N daemons of each, $ROUNDS round(s), ${SETTLE_S} s settle, ${IDLE_S} s window"
printf '%-6s %-5s %10s %14s %9s %9s %9s\n' round build 'cpu %' 'switches/min' VmRSS RssFile RssAnon
rows="$work/rows"
for round in $(seq "$ROUNDS"); do
  pids=()
  declare -A build=() cpu0=() sw0=()
  for i in $(seq "$N"); do
    for ab in A B; do
      dir="$work/r$round-$ab$i"
      mkdir -m 700 "$dir"
      "$work/torrent-stats-$ab" daemon --config-dir "$dir" --port 0 --web-port 0 \
        --source sim:up=1MiB/s,down=4MiB/s 2>"$dir.log" &
      pids+=("$!")
      build[$!]=$ab
    done
  done
  sleep "$SETTLE_S"
  for p in "${pids[@]}"; do
    cpu0[$p]=$(cpu_ns "$p")
    sw0[$p]=$(switches "$p")
  done
  sleep "$IDLE_S"
  for p in "${pids[@]}"; do
    cpu=$(python3 -c "print('%.4f' % (($(cpu_ns "$p") - ${cpu0[$p]}) / 1e9 / $IDLE_S * 100))")
    sw=$(python3 -c "print(round(($(switches "$p") - ${sw0[$p]}) * 60 / $IDLE_S))")
    row="$round ${build[$p]} $cpu $sw $(kib "$p" VmRSS) $(kib "$p" RssFile) $(kib "$p" RssAnon)"
    echo "$row" >>"$rows"
    printf '%-6s %-5s %10s %14s %9s %9s %9s\n' $row
  done
  kill "${pids[@]}"
  wait 2>/dev/null || true
  pids=()
done
python3 - "$rows" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1])]
cols = ['cpu % of a core', 'switches/min', 'VmRSS KiB', 'RssFile KiB', 'RssAnon KiB']
mean = {}
for ab in 'AB':
    sel = [r for r in rows if r[1] == ab]
    mean[ab] = [sum(float(r[2 + i]) for r in sel) / len(sel) for i in range(len(cols))]
print('\nmean over %d daemons each:' % (len(rows) // 2))
print('%-16s %12s %12s %8s' % ('', 'A', 'B', 'B/A'))
for i, c in enumerate(cols):
    a, b = mean['A'][i], mean['B'][i]
    print('%-16s %12.4g %12.4g %8.3f' % (c, a, b, b / a if a else float('nan')))
PY
