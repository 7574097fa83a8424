#!/usr/bin/env bash
# RSS and CPU of the daemon with its embedded engine (librqbit), idle and during one
# download over loopback, next to Debian's deluged 2.0.3 (libtorrent-rasterbar) doing the
# same download from the same seeder. Not a test: the figures go to BENCHMARKS.md.
#
# usage: scripts/bench/engine_resources.sh [MIB] [RATE_KIB]
#   MIB (512): size of the random file transferred.
#   RATE_KIB (16384): the seeder's upload limit in KiB/s, so the download lasts long
#     enough to sample (512 MiB at 16 MiB/s: ~32 s); 0 = unlimited.
#   TORRENT_STATS_BIN: the torrent-stats binary to measure; default: build this tree with
#     `cargo build --release --bin torrent-stats` (honours CARGO_TARGET_DIR).
#   IDLE_S (20): length of the idle window; SETTLE_S (5): wait after the RPC port answers
#     (and, for deluged, after its set-up calls) before the idle window starts.
#   AFTER_S (10): length of the window after the download (see below).
#   KEEP=1: leave the work directory (logs, both downloads) in place and print its path.
# Needs deluged, /usr/bin/python3 with the deluge module (Debian's deluge-common: makes
# the torrent), and deluge-client in python3 (the RPC calls).
#
# Layout: one seeder for both runs, a torrent-stats daemon with the upload limit set
# through core.set_config (max_upload_speed). The limit sits on the seeder, not on the
# downloaders, so both downloaders get the same paced stream and neither one's own rate
# limiter is part of the comparison. Run 1: a torrent-stats daemon downloads; run 2: a
# deluged downloads (core.conf written before its first start as tests/support/deluged.rs
# does: no DHT, UPnP, NAT-PMP, LSD, PEX; then listen port and download location set with
# core.set_config). Each downloader is started fresh with no torrents; after SETTLE_S,
# its utime+stime (/proc/PID/stat) is read over IDLE_S seconds: the idle CPU; VmRSS and
# RssAnon (/proc/PID/status) at the end: the idle RSS. Then the torrent is added (not
# paused) and the status polled every 0.25 s until the downloader says Seeding with
# total_done = the file size; CPU seconds from the add to then, peak RSS = VmHWM at the
# end and the largest RssAnon seen in the polls. Then AFTER_S seconds more of the same
# polling with nothing left to move (both ends are seeds): the CPU the polls themselves
# cost, to set against the transfer's. The file is compared with the source (cmp) after
# each run.
#
# The seeder dials the downloader (core.connect_peer on the seeder, retried every 3 s
# while nothing has arrived), not the other way round: libtorrent's outgoing connections
# try uTP and the encrypted handshake first, which librqbit speaks neither of (the
# seeder's log: "pstr should be 19 bytes long but got 202"): in trials, a deluged told to
# dial the seeder got its first byte after 8 s of retries once, and never (10 minutes)
# another time. Dialled, deluged accepts the plain TCP handshake at once. The same for
# both downloaders.
#
# RssAnon is there because libtorrent 2.0 reads and writes torrent data through mmap:
# the mapped file pages it touches count in deluged's VmRSS (RssFile), though the kernel
# can drop them like page cache. The anonymous part is the process's own heap.
set -euo pipefail
BIN=${TORRENT_STATS_BIN:-}
if [ -n "$BIN" ]; then BIN=$(realpath "$BIN"); fi # before the cd below
cd "$(dirname "$0")/../.."
MIB=${1:-512}
RATE_KIB=${2:-16384}
IDLE_S=${IDLE_S:-20}
SETTLE_S=${SETTLE_S:-5}
AFTER_S=${AFTER_S:-10}
if [ -z "$BIN" ]; then
  cargo build --release --quiet --bin torrent-stats
  BIN=${CARGO_TARGET_DIR:-target}/release/torrent-stats
fi
[ -x "$BIN" ] || { echo "not an executable: $BIN" >&2; exit 1; }
command -v deluged >/dev/null || { echo "needs deluged (Debian package deluged)" >&2; exit 1; }
/usr/bin/python3 -c 'import deluge.metafile' 2>/dev/null ||
  { echo "needs /usr/bin/python3 with deluge (Debian package deluge-common)" >&2; exit 1; }
python3 -c 'import deluge_client' 2>/dev/null ||
  { echo "needs deluge-client: pip install deluge-client==1.10.2" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then # show why: the end of each daemon's log
    for f in "$work"/seeder.log "$work"/*/log; do
      [ -f "$f" ] && { echo "== ${f#"$work"/}" >&2; tail -n 15 "$f" >&2; }
    done
  fi
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Deluge's core.conf before the first start: no DHT, UPnP, NAT-PMP, LSD, PEX or release
# check (as tests/support/deluged.rs), so nothing leaves the machine.
deluged_conf() {
  mkdir -p "$1"
  printf '%s\n' '{"file": 1, "format": 1}{"dht": false, "upnp": false, "natpmp": false,' \
    '"lsd": false, "utpex": false, "new_release_check": false}' >"$1/core.conf"
}

cat >"$work/drive.py" <<'PY'
import base64, os, sys, time
from deluge_client import DelugeRPCClient

TICK = os.sysconf('SC_CLK_TCK')


def connect(port, confdir, pid, limit=60):
    """Until the auth file has localclient and daemon.info answers."""
    deadline = time.time() + limit
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            sys.exit('pid %d exited before its RPC port answered' % pid)
        try:
            with open(os.path.join(confdir, 'auth')) as f:
                pw = next(l.split(':')[1] for l in f if l.startswith('localclient:'))
            c = DelugeRPCClient('127.0.0.1', port, 'localclient', pw, decode_utf8=True)
            c.connect()
            c.call('daemon.info')
            return c
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(0.2)


def cpu_ticks(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)


def status(pid):
    out = {}
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            k, _, v = line.partition(':')
            if k in ('VmRSS', 'VmHWM', 'RssAnon', 'RssFile'):
                out[k] = int(v.split()[0]) / 1024.0  # MiB
    return out


def quiet_deluged(c, peer_port, download_dir):
    c.call('core.set_config', {
        'listen_ports': [peer_port, peer_port], 'random_port': False,
        'dht': False, 'upnp': False, 'natpmp': False, 'lsd': False, 'utpex': False,
        'new_release_check': False, 'download_location': download_dir})


def add(c, torrent, extra):
    with open(torrent, 'rb') as f:
        dump = base64.b64encode(f.read()).decode()
    opts = {'add_paused': False}
    opts.update(extra)
    return c.call('core.add_torrent_file', os.path.basename(torrent), dump, opts)


def seed(port, confdir, pid, torrent, rate_kib):
    """The common seeder (a torrent-stats daemon): limit, add, wait until Seeding."""
    c = connect(port, confdir, pid)
    c.call('core.set_config', {'max_upload_speed': float(rate_kib) if rate_kib > 0 else -1.0})
    tid = add(c, torrent, {})
    deadline = time.time() + 600
    while c.call('core.get_torrent_status', tid, ['state']).get('state') != 'Seeding':
        if time.time() > deadline:
            sys.exit('seeder never reached Seeding')
        time.sleep(0.2)


def measure(kind, port, confdir, pid, torrent, size, peer_port, download_dir, settle, idle,
            after, seed_rpc, seed_confdir, seed_pid):
    c = connect(port, confdir, pid)
    if kind == 'deluged':
        quiet_deluged(c, peer_port, download_dir)
    seeder = connect(seed_rpc, seed_confdir, seed_pid)
    time.sleep(settle)
    t0, c0 = time.time(), cpu_ticks(pid)
    time.sleep(idle)
    t1, c1 = time.time(), cpu_ticks(pid)
    idle_st = status(pid)
    r = {
        'idle_cpu_pct': (c1 - c0) / TICK / (t1 - t0) * 100.0,
        'idle_rss_mib': idle_st['VmRSS'],
        'idle_anon_mib': idle_st['RssAnon'],
    }
    extra = {'download_location': download_dir} if kind == 'deluged' else {}
    t0, c0 = time.time(), cpu_ticks(pid)
    tid = add(c, torrent, extra)
    peak_rss = peak_anon = 0.0
    last_connect = 0.0
    deadline = time.time() + 3600
    while True:
        st = c.call('core.get_torrent_status', tid, ['total_done', 'state'])
        s = status(pid)
        peak_rss, peak_anon = max(peak_rss, s['VmRSS']), max(peak_anon, s['RssAnon'])
        # Not is_finished or progress alone: during the check of a new torrent our daemon
        # reports the bytes checked as total_done (so 100 % before anything has arrived).
        if st.get('state') == 'Seeding' and st.get('total_done') == size:
            break
        if time.time() > deadline:
            sys.exit('%s: download not finished within an hour: %r' % (kind, st))
        # The seeder dials the downloader, once the downloader has the torrent (an unknown
        # info-hash is refused), and again every 3 s while nothing has arrived.
        if (st.get('state') == 'Downloading' and not st.get('total_done')
                and time.time() - last_connect > 3):
            seeder.call('core.connect_peer', tid, '127.0.0.1', peer_port)
            last_connect = time.time()
        time.sleep(0.25)
    t1, c1 = time.time(), cpu_ticks(pid)
    s = status(pid)
    # The same polling with nothing to move (both ends are seeds now): what the polls
    # themselves cost, to set against the transfer's figures.
    p0, pc0 = time.time(), cpu_ticks(pid)
    while time.time() - p0 < after:
        c.call('core.get_torrent_status', tid, ['total_done', 'state'])
        time.sleep(0.25)
    p1, pc1 = time.time(), cpu_ticks(pid)
    r.update({
        'polled_seed_cpu_pct': (pc1 - pc0) / TICK / (p1 - p0) * 100.0,
        'xfer_wall_s': t1 - t0,
        'xfer_cpu_s': (c1 - c0) / TICK,
        'xfer_cpu_s_per_gib': (c1 - c0) / TICK / (size / 2.0**30),
        'xfer_cpu_pct': (c1 - c0) / TICK / (t1 - t0) * 100.0,
        'peak_rss_mib': max(s['VmHWM'], peak_rss),
        'peak_anon_mib': max(peak_anon, s['RssAnon']),
    })
    print(' '.join('%s=%.3f' % kv for kv in r.items()))


cmd, args = sys.argv[1], sys.argv[2:]
if cmd == 'seed':
    seed(int(args[0]), args[1], int(args[2]), args[3], int(args[4]))
elif cmd == 'measure':
    measure(args[0], int(args[1]), args[2], int(args[3]), args[4], int(args[5]),
            int(args[6]), args[7], float(args[8]), float(args[9]), float(args[10]),
            int(args[11]), args[12], int(args[13]))
PY
drive() { python3 "$work/drive.py" "$@"; }

# The payload and its torrent, made by Deluge's own tool (256 KiB pieces).
mkdir -p "$work/seed"
head -c "$((MIB << 20))" /dev/urandom >"$work/seed/payload.bin"
/usr/bin/python3 -c 'import sys; from deluge.metafile import make_meta_file
make_meta_file(sys.argv[1], "", 262144, target=sys.argv[2])' \
  "$work/seed/payload.bin" "$work/payload.bin.torrent"
size=$(stat -c %s "$work/seed/payload.bin")

# The common seeder.
seed_rpc=$(free_port) seed_peer=$(free_port)
"$BIN" daemon --config-dir "$work/seeder" --download-dir "$work/seed" --port "$seed_rpc" \
  --no-web --listen-port "$seed_peer" --no-dht --no-trackers 2>"$work/seeder.log" &
seeder=$!
pids+=("$seeder")
drive seed "$seed_rpc" "$work/seeder" "$seeder" "$work/payload.bin.torrent" "$RATE_KIB"

field() { sed -n "s/.*\b$1=\([0-9.]*\).*/\1/p" <<<"$2"; }

run() { # KIND -> the measure line in $result
  local kind=$1 rpc peer dir=$work/$1 pid
  rpc=$(free_port) peer=$(free_port)
  mkdir -p "$dir/dl"
  sync # the previous run's writeback not in this run's window
  if [ "$kind" = ours ]; then
    # As shipped: the web server on (on a free port), as the RPC server.
    "$BIN" daemon --config-dir "$dir/conf" --download-dir "$dir/dl" --port "$rpc" \
      --web-port "$(free_port)" --listen-port "$peer" --no-dht --no-trackers 2>"$dir/log" &
  else
    deluged_conf "$dir/conf"
    deluged -c "$dir/conf" -p "$rpc" -u 127.0.0.1 -i 127.0.0.1 -d -L error >"$dir/log" 2>&1 &
  fi
  pid=$!
  pids+=("$pid")
  result=$(drive measure "$kind" "$rpc" "$dir/conf" "$pid" "$work/payload.bin.torrent" "$size" \
    "$peer" "$dir/dl" "$SETTLE_S" "$IDLE_S" "$AFTER_S" "$seed_rpc" "$work/seeder" "$seeder")
  cmp "$work/seed/payload.bin" "$dir/dl/payload.bin" >&2 ||
    { echo "$kind: the downloaded file differs from the source" >&2; exit 1; }
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}

echo "machine: nproc $(nproc), load before: $(uptime | sed 's/.*load average: //')"
echo "file: $MIB MiB, seeder upload limit: $([ "$RATE_KIB" -gt 0 ] && echo "$RATE_KIB KiB/s" || echo unlimited), idle window: $IDLE_S s"
run ours
ours=$result
echo "torrent-stats: $ours"
run deluged
theirs=$result
echo "deluged:       $theirs"
echo "load after: $(uptime | sed 's/.*load average: //')"

row() { # LABEL KEY FORMAT
  local o t
  o=$(field "$2" "$ours") t=$(field "$2" "$theirs")
  awk -v l="$1" -v o="$o" -v t="$t" -v f="$3" \
    'BEGIN {printf "%-34s " f " " f "  %s\n", l, o, t, (t > 0 ? sprintf("%.2f", o / t) : "-")}'
}
printf '%-34s %10s %10s  %s\n' measure torrent-stats deluged 'ours/deluged'
row 'idle RSS (MiB)' idle_rss_mib '%10.1f'
row 'idle anon RSS (MiB)' idle_anon_mib '%10.1f'
row 'idle CPU (% of one core)' idle_cpu_pct '%10.2f'
row 'transfer peak RSS, VmHWM (MiB)' peak_rss_mib '%10.1f'
row 'transfer peak anon RSS (MiB)' peak_anon_mib '%10.1f'
row 'transfer CPU (s)' xfer_cpu_s '%10.2f'
row 'transfer CPU (s per GiB)' xfer_cpu_s_per_gib '%10.2f'
row 'transfer CPU (% of one core)' xfer_cpu_pct '%10.1f'
row 'transfer wall time (s)' xfer_wall_s '%10.1f'
row 'after: seeding, polled (% of core)' polled_seed_cpu_pct '%10.2f'
echo "files identical to the source (cmp): both"
awk -v o="$(field idle_rss_mib "$ours")" -v t="$(field idle_rss_mib "$theirs")" 'BEGIN {
  printf "target: idle RSS <= 1/5 of deluged'"'"'s: %.1f vs %.1f MiB (%.3f), %s\n", o, t, o / t,
    (o <= t / 5 ? "met" : "NOT met") }'
