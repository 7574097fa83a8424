#!/usr/bin/env bash
# The performance record of issue 9, in one run: our daemon (sim source, web server on as
# shipped) next to Debian's deluged 2.0.3 with its Stats plugin enabled, the same clients
# against both. Not a test: the figures go to BENCHMARKS.md.
#
# usage: scripts/bench/vs_deluged.sh
#   TORRENT_STATS_BIN: the torrent-stats binary to measure; default: build this tree with
#     `cargo build --release --bin torrent-stats` (honours CARGO_TARGET_DIR).
#   RPC_LOAD_BIN: our Rust load client (examples/rpc_load.rs); default: built with
#     `cargo build --release --example rpc_load` (after the daemon binary is copied aside:
#     the example's build unifies dev-dependency features into the library).
#   SETTLE_S (5): wait after start-up (and deluged's set-up calls) before the idle window.
#   IDLE_S (60): the idle window, both daemons idle side by side.
#   CALLS (300): round trips timed with deluge-client. LOAD_S (5): length of each
#     throughput run. CONNS (16), DEPTH (32): pipelined connections and calls in flight on
#     each. BURST (1000): clients in the burst. AFTER_S (60): wait after the burst.
#   KEEP=1: leave the work directory (logs) in place and print its path.
# Needs deluged and deluge-client 1.10.2 in python3 (./scripts/test.sh installs both).
#
# Steps, each against both daemons:
#  1. start both fresh (deluged: DHT, UPnP, NAT-PMP, LSD off before its first start, then
#     core.enable_plugin Stats); SETTLE_S; then IDLE_S with nobody connected: CPU as
#     utime+stime from /proc/PID/stat (10 ms ticks, dead threads included) and as the sum
#     of /proc/PID/task/*/schedstat (ns, live threads), VmRSS and RssAnon at the end;
#  2. round trip of stats.get_totals with the stock deluge-client (scripts/bench/latency.py),
#     CALLS calls after 5 warm-up calls: median and p90;
#  3. calls/s of CONNS pipelined connections keeping DEPTH stats.get_totals calls in flight
#     each, for LOAD_S: a Python client (asyncio + ssl + deluge-client's rencode, one
#     process, below) and our Rust client (examples/rpc_load.rs);
#  4. RSS before a burst, then BURST clients (the Python asyncio client: at most 48 in
#     their TLS handshake and login at once, all logged in together, 10 calls each, then
#     all closed): peak RSS seen (sampled every 50 ms), RSS right after, RSS AFTER_S later.
set -euo pipefail
BIN=${TORRENT_STATS_BIN:-}
LOAD=${RPC_LOAD_BIN:-}
if [ -n "$BIN" ]; then BIN=$(realpath "$BIN"); fi # before the cd below
if [ -n "$LOAD" ]; then LOAD=$(realpath "$LOAD"); fi
cd "$(dirname "$0")/../.."
SETTLE_S=${SETTLE_S:-5}
IDLE_S=${IDLE_S:-60}
CALLS=${CALLS:-300}
LOAD_S=${LOAD_S:-5}
CONNS=${CONNS:-16}
DEPTH=${DEPTH:-32}
BURST=${BURST:-1000}
AFTER_S=${AFTER_S:-60}
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
if [ -z "$LOAD" ]; then
  cargo build --release --quiet --example rpc_load
  LOAD=$target/release/examples/rpc_load
fi
[ -x "$BIN" ] || { echo "not an executable: $BIN" >&2; exit 1; }
[ -x "$LOAD" ] || { echo "not an executable: $LOAD" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }

# The pipelined client and the burst client: Deluge's protocol (v1 frames: 0x01, u32
# length, zlib(rencode(((id, method, args, kwargs),)))) over TLS with asyncio.
cat >"$work/clients.py" <<'PY'
import asyncio, os, ssl, struct, sys, time, zlib
from deluge_client.rencode import dumps, loads

CTX = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
CTX.check_hostname = False
CTX.verify_mode = ssl.CERT_NONE


def frame(i, method, args=(), kwargs=None):
    body = zlib.compress(dumps(((i, method, tuple(args), kwargs or {}),)))
    return struct.pack('!BI', 1, len(body)) + body


async def answer(r):
    head = await r.readexactly(5)
    msg = loads(zlib.decompress(await r.readexactly(struct.unpack('!I', head[1:])[0])),
                decode_utf8=True)
    if msg[0] != 1:
        raise RuntimeError('error answer: %r' % (msg,))
    return msg


async def connect(port, password):
    r, w = await asyncio.open_connection('127.0.0.1', port, ssl=CTX)
    w.write(frame(0, 'daemon.login', ('localclient', password), {'client_version': 'bench'}))
    await answer(r)
    return r, w


async def pipelined(port, password, conns, depth, secs):
    done = 0
    async def one():
        nonlocal done
        r, w = await connect(port, password)
        i = 1
        while time.perf_counter() < deadline:
            w.write(b''.join(frame(i + k, 'stats.get_totals') for k in range(depth)))
            i += depth
            for _ in range(depth):
                await answer(r)
            done += depth
        w.close()
    deadline = time.perf_counter() + secs
    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(conns)))
    el = time.perf_counter() - start
    print('%d calls in %.2f s over %d connections, pipeline depth %d: %.0f calls/s'
          % (done, el, conns, depth, done / el))


async def burst(port, password, n, calls, pid):
    gate = asyncio.Semaphore(48)
    ready = asyncio.Event()
    logged = 0
    errors = []
    peak = 0
    def rss():
        with open('/proc/%d/status' % pid) as f:
            return next(int(l.split()[1]) for l in f if l.startswith('VmRSS:'))
    async def sample():
        nonlocal peak
        while True:
            peak = max(peak, rss())
            await asyncio.sleep(0.05)
    async def one():
        nonlocal logged
        try:
            async with gate:
                r, w = await connect(port, password)
        except Exception as e:
            errors.append(repr(e))
            r = None
        logged += 1
        if logged == n:
            ready.set()
        await ready.wait()
        if r is None:
            return
        try:
            for i in range(calls):
                w.write(frame(i + 1, 'stats.get_totals'))
                await answer(r)
        except Exception as e:
            errors.append(repr(e))
        w.close()
        try:
            await w.wait_closed()
        except Exception:
            pass
    sampler = asyncio.ensure_future(sample())
    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    el = time.perf_counter() - start
    await asyncio.sleep(0.2)
    sampler.cancel()
    print('burst_clients=%d errors=%d seconds=%.1f peak_kib=%d after_kib=%d first_error=%s'
          % (n, len(errors), el, peak, rss(), (errors[:1] or ['-'])[0].replace(' ', '_')))


if __name__ == '__main__':
    kind, port, password = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if kind == 'pipelined':
        asyncio.run(pipelined(port, password, *map(int, sys.argv[4:7])))
    else:
        asyncio.run(burst(port, password, *map(int, sys.argv[4:7])))
PY

# CPU of PID: "ticks ns" (utime+stime; sum of the threads' schedstat run time).
cpu() {
  local ticks ns=0 t
  ticks=$(sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}') # fields 14, 15
  for t in /proc/"$1"/task/*/schedstat; do ns=$((ns + $(cut -d' ' -f1 "$t" 2>/dev/null || echo 0))); done
  echo "$ticks $ns"
}
kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

# Ours, as shipped: RPC and web server on.
our_port=$(free_port)
our_web=$(free_port)
"$BIN" daemon --config-dir "$work/ours" --port "$our_port" --web-port "$our_web" \
  --source sim:up=1MiB/s,down=4MiB/s 2>"$work/ours.log" &
ours=$!
pids+=("$ours")
# deluged 2.0.3 with Stats; nothing leaves the machine.
their_port=$(free_port)
mkdir -p "$work/deluge"
printf '%s\n' '{"file": 1, "format": 1}{"dht": false, "upnp": false, "natpmp": false,' \
  '"lsd": false, "utpex": false, "new_release_check": false}' >"$work/deluge/core.conf"
deluged -c "$work/deluge" -p "$their_port" -u 127.0.0.1 -i 127.0.0.1 -d -L error >"$work/deluged.log" 2>&1 &
theirs=$!
pids+=("$theirs")
wait_port "$our_port"
wait_port "$their_port"
for _ in $(seq 100); do grep -q '^localclient:' "$work/deluge/auth" 2>/dev/null && break; sleep 0.1; done
our_pw=$(grep '^localclient:' "$work/ours/auth" | cut -d: -f2)
their_pw=$(grep '^localclient:' "$work/deluge/auth" | cut -d: -f2)
python3 - "$their_port" "$their_pw" <<'PY'
import sys
from deluge_client import DelugeRPCClient
c = DelugeRPCClient("127.0.0.1", int(sys.argv[1]), "localclient", sys.argv[2], decode_utf8=True)
c.connect()
c.call("core.enable_plugin", "Stats")
assert "stats.get_totals" in c.call("daemon.get_method_list")
PY

echo "== $(date -u '+%F %T') UTC; $(nproc) cores; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "torrent-stats: $BIN ($("$BIN" --version 2>/dev/null || echo '?')); deluged $(deluged --version 2>/dev/null | awk 'NR==1{print $2}'); deluge-client $(python3 -c 'import importlib.metadata as m; print(m.version("deluge-client"))')"

sleep "$SETTLE_S"
echo "== idle, ${IDLE_S} s, nobody connected"
read -r o_t0 o_n0 < <(cpu "$ours")
read -r t_t0 t_n0 < <(cpu "$theirs")
sleep "$IDLE_S"
read -r o_t1 o_n1 < <(cpu "$ours")
read -r t_t1 t_n1 < <(cpu "$theirs")
tick=$(getconf CLK_TCK)
declare -A R
R[idle_cpu_ticks_ours]=$(python3 -c "print('%.3f' % (($o_t1 - $o_t0) / $tick / $IDLE_S * 100))")
R[idle_cpu_ticks_theirs]=$(python3 -c "print('%.3f' % (($t_t1 - $t_t0) / $tick / $IDLE_S * 100))")
R[idle_cpu_ns_ours]=$(python3 -c "print('%.4f' % (($o_n1 - $o_n0) / 1e9 / $IDLE_S * 100))")
R[idle_cpu_ns_theirs]=$(python3 -c "print('%.4f' % (($t_n1 - $t_n0) / 1e9 / $IDLE_S * 100))")
R[idle_rss_ours]=$(kib "$ours" VmRSS); R[idle_anon_ours]=$(kib "$ours" RssAnon)
R[idle_rss_theirs]=$(kib "$theirs" VmRSS); R[idle_anon_theirs]=$(kib "$theirs" RssAnon)
for who in ours theirs; do
  echo "$who: CPU ${R[idle_cpu_ticks_$who]} % of a core (ticks), ${R[idle_cpu_ns_$who]} % (schedstat); VmRSS ${R[idle_rss_$who]} KiB, RssAnon ${R[idle_anon_$who]} KiB"
done

echo "== stats.get_totals round trip, stock deluge-client, $CALLS calls"
o=$(python3 scripts/bench/latency.py 127.0.0.1 "$our_port" localclient "$our_pw" "$CALLS")
t=$(python3 scripts/bench/latency.py 127.0.0.1 "$their_port" localclient "$their_pw" "$CALLS")
echo "ours: $o"; echo "theirs: $t"
R[rtt_ours]=$(sed 's/.*median_ms=\([0-9.]*\).*/\1/' <<<"$o")
R[rtt_theirs]=$(sed 's/.*median_ms=\([0-9.]*\).*/\1/' <<<"$t")

echo "== calls/s, $CONNS connections x $DEPTH in flight, $LOAD_S s each"
o=$(python3 "$work/clients.py" pipelined "$our_port" "$our_pw" "$CONNS" "$DEPTH" "$LOAD_S")
t=$(python3 "$work/clients.py" pipelined "$their_port" "$their_pw" "$CONNS" "$DEPTH" "$LOAD_S")
echo "Python client, ours: $o"; echo "Python client, theirs: $t"
R[py_ours]=$(sed 's/.*: \([0-9]*\) calls\/s/\1/' <<<"$o"); R[py_theirs]=$(sed 's/.*: \([0-9]*\) calls\/s/\1/' <<<"$t")
o=$("$LOAD" 127.0.0.1 "$our_port" localclient "$our_pw" "$CONNS" "$DEPTH" "$LOAD_S")
t=$("$LOAD" 127.0.0.1 "$their_port" localclient "$their_pw" "$CONNS" "$DEPTH" "$LOAD_S")
echo "Rust client, ours: $o"; echo "Rust client, theirs: $t"
R[rs_ours]=$(sed 's/.*: \([0-9]*\) calls\/s/\1/' <<<"$o"); R[rs_theirs]=$(sed 's/.*: \([0-9]*\) calls\/s/\1/' <<<"$t")

echo "== burst of $BURST clients (connect, log in, 10 calls, close), then $AFTER_S s"
R[pre_burst_ours]=$(kib "$ours" VmRSS)
o=$(python3 "$work/clients.py" burst "$our_port" "$our_pw" "$BURST" 10 "$ours")
o_end=$(date +%s.%N)
R[pre_burst_theirs]=$(kib "$theirs" VmRSS)
t=$(python3 "$work/clients.py" burst "$their_port" "$their_pw" "$BURST" 10 "$theirs")
t_end=$(date +%s.%N)
echo "ours (RSS before: ${R[pre_burst_ours]} KiB): $o"
echo "theirs (RSS before: ${R[pre_burst_theirs]} KiB): $t"
for who in ours theirs; do
  line=$([ "$who" = ours ] && echo "$o" || echo "$t")
  R[burst_peak_$who]=$(sed 's/.*peak_kib=\([0-9]*\).*/\1/' <<<"$line")
  R[burst_after_$who]=$(sed 's/.*after_kib=\([0-9]*\).*/\1/' <<<"$line")
  R[burst_errors_$who]=$(sed 's/.*errors=\([0-9]*\).*/\1/' <<<"$line")
done
sleep "$(python3 -c "print(max(0, $o_end + $AFTER_S - $(date +%s.%N)))")"
R[burst_later_ours]=$(kib "$ours" VmRSS)
sleep "$(python3 -c "print(max(0, $t_end + $AFTER_S - $(date +%s.%N)))")"
R[burst_later_theirs]=$(kib "$theirs" VmRSS)
echo "ours ${AFTER_S} s later: ${R[burst_later_ours]} KiB; theirs: ${R[burst_later_theirs]} KiB"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"

args=()
for k in "${!R[@]}"; do args+=("$k=${R[$k]}"); done
python3 - "$IDLE_S" "$CONNS" "$BURST" "$AFTER_S" "${args[@]}" <<'PY'
import sys
idle_s, conns, burst, after_s = sys.argv[1:5]
r = dict(a.split('=', 1) for a in sys.argv[5:])
f = lambda k: float(r[k])
mib = lambda k: '%.1f MiB' % (f(k) / 1024)
def ratio(k):
    t = f(k + '_theirs')
    return '%.3f' % (f(k + '_ours') / t) if t else '-'
rows = [
    ('stats.get_totals median round trip, deluge-client (ms)', 'rtt', lambda k: r[k]),
    ('calls/s, %s pipelined connections, Python client' % conns, 'py', lambda k: r[k]),
    ('calls/s, %s pipelined connections, our Rust client' % conns, 'rs', lambda k: r[k]),
    ('idle RSS, VmRSS', 'idle_rss', mib),
    ('idle anonymous RSS, RssAnon', 'idle_anon', mib),
    ('idle CPU over %s s, %% of a core (schedstat)' % idle_s, 'idle_cpu_ns', lambda k: r[k]),
    ('idle CPU over %s s, %% of a core (utime+stime ticks)' % idle_s, 'idle_cpu_ticks', lambda k: r[k]),
    ('RSS before the burst', 'pre_burst', mib),
    ('peak RSS during a %s-client burst' % burst, 'burst_peak', mib),
    ('RSS right after the burst', 'burst_after', mib),
    ('RSS %s s after the burst' % after_s, 'burst_later', mib),
    ('burst clients that failed', 'burst_errors', lambda k: r[k]),
]
print('\n| measure | torrent-stats | deluged 2.0.3 + Stats | ours / deluged |')
print('|---|---|---|---|')
for name, k, fmt in rows:
    print('| %s | %s | %s | %s |' % (name, fmt(k + '_ours'), fmt(k + '_theirs'), ratio(k)))
ok = lambda b: 'met' if b else 'NOT met'
print('\ntargets (ours):')
print('- round trip <= 0.3 ms: %s ms, %s' % (r['rtt_ours'], ok(f('rtt_ours') <= 0.3)))
best = max(f('rs_ours'), f('py_ours'))
print('- >= 100k calls/s with %s pipelined connections: %.0f (Rust client), %.0f (Python client), %s'
      % (conns, f('rs_ours'), f('py_ours'), ok(best >= 100000)))
print('- idle RSS <= 1/5 of deluged\'s, side by side (sim source, web server on; with the '
      'embedded engine: scripts/bench/engine_resources.sh): %s vs %s (%.3f), %s'
      % (mib('idle_rss_ours'), mib('idle_rss_theirs'),
         f('idle_rss_ours') / f('idle_rss_theirs'),
         ok(f('idle_rss_ours') <= f('idle_rss_theirs') / 5)))
print('- idle CPU <= 0.05 %% of a core: %s %% (schedstat), %s %% (ticks), %s'
      % (r['idle_cpu_ns_ours'], r['idle_cpu_ticks_ours'], ok(f('idle_cpu_ns_ours') <= 0.05)))
print('- RSS %s s after the burst within 2x idle: %s vs %s, %s'
      % (after_s, mib('burst_later_ours'), mib('idle_rss_ours'),
         ok(f('burst_later_ours') <= 2 * f('idle_rss_ours'))))
PY
