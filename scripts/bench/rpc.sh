#!/usr/bin/env bash
# Side-by-side RPC benchmark (not a test; figures go to BENCHMARKS.md):
#  1. median stats.get_totals round trip with the stock deluge-client against our daemon
#     and against Debian's deluged 2.0.3 with its Stats plugin, and the ratio;
#  2. calls per second of 16 pipelined connections of our Rust client against our daemon.
# Needs deluged and deluge-client (./scripts/test.sh installs both).
set -euo pipefail
cd "$(dirname "$0")/../.."
CALLS=${CALLS:-300}
work=$(mktemp -d)
cleanup() { kill "${ours:-}" "${theirs:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

cargo build --release --quiet --bin torrent-stats --example rpc_load

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }

# Ours.
our_port=$(free_port)
./target/release/torrent-stats daemon --config-dir "$work/ours" --port "$our_port" --no-web \
  --source sim:up=1MiB/s,down=4MiB/s 2>"$work/ours.log" &
ours=$!
wait_port "$our_port"
our_pw=$(cut -d: -f2 "$work/ours/auth")

# Deluge 2.0.3 with Stats (no torrents; DHT etc. off so nothing leaves the machine).
their_port=$(free_port)
mkdir -p "$work/deluge"
deluged -c "$work/deluge" -p "$their_port" -u 127.0.0.1 -i 127.0.0.1 -d -L error >"$work/deluged.log" 2>&1 &
theirs=$!
wait_port "$their_port"
their_pw=$(cut -d: -f2 "$work/deluge/auth")
python3 - "$their_port" "$their_pw" <<'PY'
import sys
from deluge_client import DelugeRPCClient
c = DelugeRPCClient("127.0.0.1", int(sys.argv[1]), "localclient", sys.argv[2], decode_utf8=True)
c.connect()
c.call("core.set_config", {"dht": False, "upnp": False, "natpmp": False, "lsd": False})
c.call("core.enable_plugin", "Stats")
assert "stats.get_totals" in c.call("daemon.get_method_list")
PY

echo "== stats.get_totals round trip, stock deluge-client $(python3 -c 'import importlib.metadata as m; print(m.version("deluge-client"))'), $CALLS calls each"
o=$(python3 scripts/bench/latency.py 127.0.0.1 "$our_port" localclient "$our_pw" "$CALLS")
t=$(python3 scripts/bench/latency.py 127.0.0.1 "$their_port" localclient "$their_pw" "$CALLS")
echo "torrent-stats: $o"
echo "deluged $(deluged --version 2>/dev/null | head -1 | awk '{print $2}'): $t"
python3 - "$o" "$t" <<'PY'
import sys
med = lambda s: float(s.split()[0].split("=")[1])
ours, theirs = med(sys.argv[1]), med(sys.argv[2])
print("ratio ours/deluged = %.4f (deluged is %.0fx slower)" % (ours / theirs, theirs / ours))
PY

kill "$theirs"; wait "$theirs" 2>/dev/null || true; theirs=
echo "== throughput: our Rust client, 16 connections, pipeline depth 32, 3 runs of 5 s"
for _ in 1 2 3; do
  ./target/release/examples/rpc_load 127.0.0.1 "$our_port" localclient "$our_pw" 16 32 5
done
