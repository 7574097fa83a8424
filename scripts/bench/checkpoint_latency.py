#!/usr/bin/env python3
"""Helpers for checkpoint_latency.sh (stock deluge-client 1.10.2).

usage:
  checkpoint_latency.py seed-history DIR LENGTH
      Writes DIR/stats.history: a full history (4 levels x 9 series x LENGTH points) for a
      1 s poll, sealed with the checksum line the daemon expects, so every checkpoint
      serializes and fsyncs a history of that size from the first one on.
  checkpoint_latency.py writer HOST PORT USER PASSWORD KIND STOPFILE [A B]
      Calls one writing method back to back until STOPFILE exists, then prints
      'calls=<n> secs=<float> ms_each=<mean round trip>'. KIND set_config:
      stats.set_config({"length": A}) and ({"length": B}) alternately, so every call
      changes stats.conf and saves it durably (A == B: the same calls, no write).
      KIND reset_totals: stats.reset_totals() (keeps a copy, then a durable totals save).
  checkpoint_latency.py measure HOST PORT USER PASSWORD CALLS GAP_MS
      CALLS stats.get_totals round trips on one connection, GAP_MS apart, after 20
      warm-up calls; prints 'p50=.. p90=.. p99=.. p99.9=.. max=.. mean=.. over10=..
      calls=.. secs=..' (milliseconds; nearest-rank percentiles; over10: calls > 10 ms).
  checkpoint_latency.py log-counts LOG FROM TO
      Counts the poll task's writes in the daemon's log between byte offsets FROM and TO
      (RUST_LOG=torrent_stats::stats::poller=trace): prints 'commands=<set_config and
      reset_totals saves> checkpoints=<n> fast=<fast totals saves> ckpt_max=<ms>', the last
      being the longest history save (durable totals save logged to "checkpoint saved").
"""
import datetime
import math
import os
import random
import re
import sys
import time


def client(host, port, user, password):
    from deluge_client import DelugeRPCClient

    c = DelugeRPCClient(host, int(port), user, password, decode_utf8=True)
    c.connect()
    return c


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


SERIES = [
    "dht_cache_nodes", "dht_nodes", "dht_torrents", "download_rate", "num_connections",
    "num_peers", "payload_download_rate", "payload_upload_rate", "upload_rate",
]


def seed_history(directory, length):
    rng = random.Random(1)
    now = time.time()
    out = ["base_interval = 1", "length = %d" % length, ""]
    for _ in range(4):
        out += ["[[levels]]", "pending = 0", "last_update = %r" % now, "", "[levels.series]"]
        for name in SERIES:
            base = 8 << 20 if "download" in name else 2 << 20 if "upload" in name else 50
            points = (base + rng.randrange(-base // 4, base // 4 + 1) for _ in range(length))
            out.append("%s = [%s]" % (name, ", ".join(map(str, points))))
        out.append("")
    body = ("\n".join(out) + "\n").encode()
    trailer = "# torrent-stats checksum fnv1a64:%016x\n" % fnv1a64(body)
    with open(os.path.join(directory, "stats.history"), "wb") as f:
        f.write(body + trailer.encode())


def writer(host, port, user, password, kind, stopfile, a="150", b="151"):
    c = client(host, port, user, password)
    values = [int(a), int(b)]
    n = 0
    start = time.perf_counter()
    while not os.path.exists(stopfile):
        if kind == "set_config":
            c.call("stats.set_config", {"length": values[n % 2]})
        elif kind == "reset_totals":
            c.call("stats.reset_totals")
        else:
            sys.exit("unknown writer kind " + kind)
        n += 1
    secs = time.perf_counter() - start
    print("calls=%d secs=%.2f ms_each=%.3f" % (n, secs, 1000 * secs / max(n, 1)))


def measure(host, port, user, password, calls, gap_ms):
    c = client(host, port, user, password)
    calls, gap = int(calls), float(gap_ms) / 1000
    for _ in range(20):
        c.call("stats.get_totals")
    samples = []
    start = time.perf_counter()
    for _ in range(calls):
        t = time.perf_counter()
        totals = c.call("stats.get_totals")
        samples.append((time.perf_counter() - t) * 1000)
        assert "total_upload" in totals, totals
        if gap:
            time.sleep(gap)
    secs = time.perf_counter() - start
    samples.sort()
    rank = lambda p: samples[max(0, math.ceil(p * len(samples)) - 1)]
    print("p50=%.3f p90=%.3f p99=%.3f p99.9=%.3f max=%.3f mean=%.3f over10=%d calls=%d secs=%.1f" % (
        rank(0.5), rank(0.9), rank(0.99), rank(0.999), samples[-1],
        sum(samples) / len(samples), sum(s > 10 for s in samples), len(samples), secs))


def log_counts(path, start, end):
    with open(path, "rb") as f:
        f.seek(int(start))
        text = f.read(int(end) - int(start)).decode(errors="replace")
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    commands = checkpoints = fast = 0
    ckpt_max, durable_at = 0.0, None
    for line in text.splitlines():
        stamp = line.split(" ", 1)[0]
        if "preferences changed" in line or "all-time totals reset" in line:
            commands += 1
        elif "totals saved durability=Fast" in line:
            fast += 1
        elif "totals saved durability=Durable" in line:
            durable_at = stamp
        elif "checkpoint saved" in line:
            checkpoints += 1
            if durable_at:
                t = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
                ckpt_max = max(ckpt_max, (t(stamp) - t(durable_at)).total_seconds() * 1000)
    print("commands=%d checkpoints=%d fast=%d ckpt_max=%.1f" % (commands, checkpoints, fast, ckpt_max))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "seed-history":
        seed_history(args[0], int(args[1]))
    elif cmd == "writer":
        writer(*args)
    elif cmd == "measure":
        measure(*args)
    elif cmd == "log-counts":
        log_counts(*args)
    else:
        sys.exit(__doc__)
