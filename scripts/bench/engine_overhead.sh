#!/usr/bin/env bash
# Loopback transfer throughput of the embedded engine with the Stats plugin enabled (one on
# each engine, polling every second) against the same transfer without it. Not a test:
# the figures go to BENCHMARKS.md.
#
# usage: scripts/bench/engine_overhead.sh [MIB] [ROUNDS]
#   MIB (256): file size; ROUNDS (5): alternating runs of each kind. Unlimited rate.
set -euo pipefail
cd "$(dirname "$0")/../.."
MIB=${1:-256}
ROUNDS=${2:-5}
cargo build --release --all-features --example loopback_swarm >/dev/null 2>&1
BIN=${CARGO_TARGET_DIR:-target}/release/examples/loopback_swarm
run() { "$BIN" "$MIB" 0 "$@" | sed -n 's/^throughput: .* = \([0-9.]*\) MiB\/s$/\1/p'; }
with=() without=()
for _ in $(seq "$ROUNDS"); do
  without+=("$(run --no-stats)")
  with+=("$(run)")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
m_without=$(median "${without[@]}")
m_with=$(median "${with[@]}")
echo "load: $(uptime | sed 's/.*load average/load average/')"
echo "without Stats (MiB/s): ${without[*]}  median $m_without"
echo "with Stats    (MiB/s): ${with[*]}  median $m_with"
awk -v a="$m_with" -v b="$m_without" 'BEGIN {printf "ratio with/without: %.3f\n", a / b}'
