#!/usr/bin/env python3
"""Our own idle work at seedbox scale (issue 21): the daemon's wake-ups and CPU while N
small torrents seed and nothing moves, with no RPC client, with a client registered for
Deluge's torrent state events, and with none again.

Not a test: the figures go to BENCHMARKS.md ("Seedbox scale: our own work").

usage: scripts/bench/state_events_idle.py BIN [N] [WINDOW_S] [seeding|paused]
  BIN: the torrent-stats binary (e.g. target/release/torrent-stats); give an older build
    to compare.
  N (1000): torrents, 16 KiB of random data each (one piece, private, no trackers), data
    present, added over RPC (core.add_torrent_file), all seeding before measuring.
  WINDOW_S (20): length of each measured window.
  seeding (default) or paused: the torrents' state while measured; paused torrents have
    no librqbit tasks, which leaves the daemon's own timers alone in view.
DETAIL=1: the wake-ups of each window by thread name too.
Needs deluge-client in python3 (pip install deluge-client==1.10.2).

Also the median latency of core.get_torrents_status with 12 keys, for every torrent and
with a filter on one id (before the windows, from the same client).

Wake-ups: the sum over the daemon's threads (/proc/PID/task/*/status) of the growth of
voluntary_ctxt_switches + nonvoluntary_ctxt_switches, per second; CPU: utime+stime from
/proc/PID/stat over the window. The daemon runs with --no-dht --no-trackers (LSD off),
no web server.
"""

import base64
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import time

from deluge_client import DelugeRPCClient


def bencode(v):
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode()
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, dict):
        out = b"d"
        for k in sorted(v, key=lambda k: k.encode() if isinstance(k, str) else k):
            out += bencode(k) + bencode(v[k])
        return out + b"e"
    raise TypeError(type(v))


def make_torrent(data_dir, i):
    """Writes t<i>.bin (16 KiB) and returns its .torrent bytes."""
    name = "t%05d.bin" % i
    data = os.urandom(16384)
    with open(os.path.join(data_dir, name), "wb") as f:
        f.write(data)
    info = {
        "length": len(data),
        "name": name,
        "piece length": 16384,
        "pieces": hashlib.sha1(data).digest(),
        "private": 1,
    }
    return name, bencode({"info": info})


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def counters(pid):
    """(context switches of each thread by id, CPU seconds) of the process."""
    switches = {}
    for task in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, task)) as f:
                switches[task] = sum(
                    int(line.split()[1]) for line in f
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")))
        except FileNotFoundError:
            pass  # a thread that ended meanwhile
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return switches, cpu


def window(pid, seconds):
    """Wake-ups per second and CPU % of one core over `seconds`. Threads started meanwhile
    count from 0; those that ended meanwhile (tokio's idle blocking threads) are left out,
    from both ends."""
    s0, c0 = counters(pid)
    t0 = time.monotonic()
    time.sleep(seconds)
    s1, c1 = counters(pid)
    dt = time.monotonic() - t0
    woke = sum(n - s0.get(tid, 0) for tid, n in s1.items())
    if os.environ.get("DETAIL"):
        by_name = {}
        for tid, n in s1.items():
            try:
                with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                    name = f.read().strip()
            except FileNotFoundError:
                name = "?"
            by_name[name] = by_name.get(name, 0) + n - s0.get(tid, 0)
        print("    by thread name, per second: " + ", ".join(
            "%s %.1f" % (k, v / dt) for k, v in sorted(by_name.items())))
    return woke / dt, 100.0 * (c1 - c0) / dt


KEYS = ["name", "state", "progress", "total_size", "total_done", "ratio", "num_peers",
        "download_payload_rate", "upload_payload_rate", "eta", "time_added", "save_path"]


def median_ms(client, filter_dict, runs=21):
    """The median of `runs` calls of core.get_torrents_status(filter_dict, KEYS), in ms."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        client.call("core.get_torrents_status", filter_dict, KEYS)
        times.append(1000 * (time.perf_counter() - t0))
    return sorted(times)[runs // 2]


def connect(port, password):
    c = DelugeRPCClient("127.0.0.1", port, "localclient", password, decode_utf8=True)
    c.connect()
    return c


def main():
    binary = os.path.realpath(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 20.0
    want = {"seeding": "Seeding", "paused": "Paused"}[sys.argv[4] if len(sys.argv) > 4 else "seeding"]
    work = tempfile.mkdtemp(prefix="state-events-idle-")
    conf, data = os.path.join(work, "conf"), os.path.join(work, "data")
    os.makedirs(data)
    torrents = [make_torrent(data, i) for i in range(n)]
    port = free_port()
    log = open(os.path.join(work, "log"), "w")
    daemon = subprocess.Popen(
        [binary, "daemon", "--config-dir", conf, "--download-dir", data,
         "--port", str(port), "--no-web", "--listen-port", str(free_port()),
         "--no-dht", "--no-trackers"],
        stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with open(os.path.join(conf, "auth")) as f:
                    password = f.read().split(":")[1]
                client = connect(port, password)
                break
            except (OSError, IndexError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        t0 = time.monotonic()
        for name, blob in torrents:
            client.call("core.add_torrent_file", name + ".torrent",
                        base64.b64encode(blob).decode(), {"add_paused": want == "Paused"})
        added = time.monotonic() - t0
        deadline = time.monotonic() + 300
        while True:
            states = client.call("core.get_torrents_status", {}, ["state"])
            ready = sum(1 for s in states.values() if s["state"] == want)
            if ready == n:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("%d of %d %s after 300 s" % (ready, n, want))
            time.sleep(0.5)
        one = {"id": sorted(states)[n // 2]}
        status = (median_ms(client, {}), median_ms(client, one))
        client.disconnect()
        time.sleep(5)  # settle
        print("binary %s, %d torrents %s (added in %.1f s), windows of %.0f s, loadavg %s"
              % (binary, n, want.lower(), added, seconds, open("/proc/loadavg").read().split(" ")[0]))
        print("get_torrents_status, 12 keys, median of 21: all %.2f ms, one id %.2f ms" % status)
        print("no client:               %7.1f wake-ups/s  %5.2f %% CPU" % window(daemon.pid, seconds))
        listener = connect(port, password)
        listener.call("daemon.set_event_interest",
                      ["TorrentStateChangedEvent", "TorrentFinishedEvent"])
        print("client wants the events: %7.1f wake-ups/s  %5.2f %% CPU" % window(daemon.pid, seconds))
        listener.disconnect()
        time.sleep(2)
        print("no client again:         %7.1f wake-ups/s  %5.2f %% CPU" % window(daemon.pid, seconds))
        print("loadavg after: %s" % open("/proc/loadavg").read().split(" ")[0])
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
        if os.environ.get("KEEP"):
            print("kept " + work)
        else:
            subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
