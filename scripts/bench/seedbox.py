#!/usr/bin/env python3
"""The driver of scripts/bench/seedbox.sh: starts each daemon, adds N torrents over Deluge
RPC, measures it seeding them and restarting, and prints the figures. Run it through
seedbox.sh (which builds the binary, makes the work directory and cleans up); the
measurement steps are described there.

usage: seedbox.py --bin BIN --work DIR --pids FILE --sizes 100,1000 --deluged-sizes 100
    [--deluged-cap S] [--idle S] [--settle S] [--calls N] [--batch N] [--size BYTES]
"""

import argparse
import base64
import json
import os
import resource
import signal
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import time
import zlib

from deluge_client.rencode import dumps, loads

TICK = os.sysconf("SC_CLK_TCK")
# Twelve keys a torrent list asks for (a subset of deluge-web's and Flood's columns).
KEYS = [
    "name", "state", "progress", "total_wanted", "total_done", "total_uploaded",
    "download_payload_rate", "upload_payload_rate", "eta", "ratio", "num_peers", "queue",
]


class RpcError(Exception):
    """An error answer of the daemon."""


class Rpc:
    """Deluge RPC over TLS (v1 frames: 0x01, u32 length, zlib(rencode(requests)))."""

    def __init__(self, port, password, timeout=600):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock = ctx.wrap_socket(raw)
        self.next_id = 0
        self.call("daemon.login", "localclient", password, client_version="seedbox-bench")

    def close(self):
        self.sock.close()

    def send(self, method, args=(), kwargs=None):
        """Sends one request; its id."""
        self.next_id += 1
        body = zlib.compress(dumps(((self.next_id, method, tuple(args), kwargs or {}),)))
        self.sock.sendall(struct.pack("!BI", 1, len(body)) + body)
        return self.next_id

    def _exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("connection closed by the daemon")
            buf += chunk
        return bytes(buf)

    def receive_raw(self):
        """The next frame's inflated body, undecoded (events skipped later)."""
        head = self._exact(5)
        return zlib.decompress(self._exact(struct.unpack("!I", head[1:])[0]))

    def receive(self):
        """The next answer (1 = result, 2 = error), events (3) skipped."""
        while True:
            msg = loads(self.receive_raw(), decode_utf8=True)
            if msg[0] != 3:
                return msg

    def call(self, method, *args, **kwargs):
        self.send(method, args, kwargs)
        msg = self.receive()
        if msg[0] != 1:
            raise RpcError("%s: %s" % (method, msg[2:4]))
        return msg[2]

    def timed(self, method, *args):
        """Seconds from the request to the answer's last byte (not decoding it), and the
        decoded answer."""
        t0 = time.perf_counter()
        self.send(method, args)
        raw = self.receive_raw()
        el = time.perf_counter() - t0
        msg = loads(raw, decode_utf8=True)
        if msg[0] != 1:
            raise RpcError("%s: %s" % (method, msg[2:4]))
        return el, msg[2]


def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def proc_cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)


def proc_switches(pid):
    """Voluntary + nonvoluntary context switches of each live thread, by thread id."""
    out = {}
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, t)) as f:
                out[t] = sum(int(l.split()[1]) for l in f
                             if l.startswith(("voluntary_ctxt", "nonvoluntary_ctxt")))
        except (FileNotFoundError, ProcessLookupError):
            pass
    return out


def proc_status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        return next(int(l.split()[1]) for l in f if l.startswith(key + ":"))


def proc_limit(pid, name):
    """The soft limit called name in /proc/PID/limits."""
    with open("/proc/%d/limits" % pid) as f:
        return next(l[len(name):].split()[0] for l in f if l.startswith(name))


def proc_io(pid):
    with open("/proc/%d/io" % pid) as f:
        return {k: int(v) for k, v in (l.split(": ") for l in f)}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Daemon:
    """One daemon under test: its command line, config directory, process."""

    def __init__(self, kind, binary, conf, data, pidfile):
        self.kind, self.conf, self.data, self.pidfile = kind, conf, data, pidfile
        self.port, peer = free_port(), free_port()
        os.makedirs(conf, mode=0o700)
        self.log = open(conf + ".log", "ab")
        if kind == "ours":
            self.cmd = [binary, "daemon", "--config-dir", conf, "--download-dir", data,
                        "--port", str(self.port), "--web-port", str(free_port()),
                        "--listen-port", str(peer), "--no-dht", "--no-trackers"]
        else:
            # Before the first start, as tests/support/deluged.rs: nothing leaves the
            # machine; and no queue limits, so every torrent seeds (Deluge's defaults keep
            # 5 seeding and queue the rest), as a seedbox is set up.
            conf_json = {"dht": False, "upnp": False, "natpmp": False, "lsd": False,
                         "utpex": False, "new_release_check": False,
                         "listen_ports": [peer, peer], "random_port": False,
                         "max_active_limit": -1, "max_active_seeding": -1,
                         "max_active_downloading": -1, "download_location": data}
            with open(os.path.join(conf, "core.conf"), "w") as f:
                f.write('{"file": 1, "format": 1}' + json.dumps(conf_json))
            self.cmd = ["deluged", "-c", conf, "-p", str(self.port), "-u", "127.0.0.1",
                        "-i", "127.0.0.1", "-d", "-L", "error"]
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=self.log,
                                     stdin=subprocess.DEVNULL)
        with open(self.pidfile, "a") as f:
            f.write("%d\n" % self.proc.pid)
        return self.proc.pid

    def connect(self, limit=300):
        """Until the auth file has localclient and daemon.info answers: the client."""
        deadline = time.time() + limit
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited (%s) before its RPC port answered; log: %s.log"
                                   % (self.kind, self.proc.returncode, self.conf))
            try:
                with open(os.path.join(self.conf, "auth")) as f:
                    pw = next(l.split(":")[1] for l in f if l.startswith("localclient:"))
                c = Rpc(self.port, pw)
                c.call("daemon.info")
                return c
            except (OSError, StopIteration, RpcError, ConnectionError):
                if time.time() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self, limit=300):
        """SIGTERM, then wait for the exit (SIGKILL after limit s): seconds taken."""
        t0 = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(limit)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None
        return time.perf_counter() - t0


def add_all(c, files, tor_dir, data_dir, batch, cap):
    """Adds the torrents in pipelined batches (batch calls in flight, then their answers),
    stopping after the batch that passes cap seconds: (ids, errors, seconds)."""
    ids, errors = [], []
    t0 = time.perf_counter()
    for i in range(0, len(files), batch):
        chunk = files[i : i + batch]
        for name in chunk:
            with open(os.path.join(tor_dir, name + ".torrent"), "rb") as f:
                dump = base64.b64encode(f.read()).decode()
            c.send("core.add_torrent_file", (name + ".torrent", dump,
                                             {"download_location": data_dir,
                                              "add_paused": False}))
        for _ in chunk:
            msg = c.receive()
            if msg[0] == 1 and msg[2]:
                ids.append(msg[2])
            else:
                errors.append(repr(msg[2:4] if msg[0] != 1 else msg[2]))
        if cap and time.perf_counter() - t0 > cap:
            break
    return ids, errors, time.perf_counter() - t0


def states(c):
    st = c.call("core.get_torrents_status", {}, ["state"])
    hist = {}
    for v in st.values():
        hist[v["state"]] = hist.get(v["state"], 0) + 1
    return len(st), hist


def wait_seeding(c, n, limit, stall=60):
    """Polls until n torrents are there, all Seeding: (seconds or None, histogram); gives
    up after limit s, or after stall s without a change in the states."""
    t0 = changed = time.perf_counter()
    pause = 0.2 if n <= 1000 else 1.0
    last = None
    while True:
        count, hist = states(c)
        now = time.perf_counter()
        if count == n and hist.get("Seeding") == n:
            return now - t0, hist
        if hist != last:
            last, changed = hist, now
        if now - t0 > limit or now - changed > stall:
            return None, hist
        time.sleep(pause)


def idle(pid, seconds, every=0.25):
    """CPU (% of a core, utime+stime), wake-ups/s (context switches), threads, VmRSS and
    RssAnon (KiB), open fds, over a window with no client connected. The threads are
    read every `every` s: a thread's switches count from the window's start or its birth,
    so threads that come and go are counted (up to `every` s of a dying one lost)."""
    l0 = load()
    c0, seen = proc_cpu_ticks(pid), proc_switches(pid)
    first = set(seen)
    t0 = time.perf_counter()
    switches, born = 0, set()
    while True:
        left = t0 + seconds - time.perf_counter()
        if left <= 0:
            break
        time.sleep(min(every, left))
        for tid, n in proc_switches(pid).items():
            if tid not in seen and tid not in first:
                born.add(tid)
            switches += n - seen.get(tid, 0)
            seen[tid] = n
    c1 = proc_cpu_ticks(pid)
    el = time.perf_counter() - t0
    return {
        "idle_cpu_pct": (c1 - c0) / TICK / el * 100.0,
        "wakeups_per_s": switches / el,
        "threads": len(os.listdir("/proc/%d/task" % pid)),
        "threads_born": len(born),
        "rss_kib": proc_status(pid, "VmRSS"),
        "anon_kib": proc_status(pid, "RssAnon"),
        "fds": len(os.listdir("/proc/%d/fd" % pid)),
        "fd_limit": proc_limit(pid, "Max open files"),
        "idle_load": "%s -> %s" % (l0, load()),
    }


def latency(c, ids, calls):
    """Median seconds of core.get_torrents_status({}, KEYS) and of the same filtered to one
    id (after 3 warm-up calls each), with the answer's size checked."""
    out = {"status_load": load()}
    one = ids[len(ids) // 2]
    for name, flt, want in (("status_all", {}, len(ids)), ("status_one", {"id": [one]}, 1)):
        times = []
        for i in range(calls + 3):
            el, ans = c.timed("core.get_torrents_status", flt, KEYS)
            if len(ans) != want or any(len(v) != len(KEYS) for v in ans.values()):
                raise RuntimeError("%s: %d torrents, keys %s" % (
                    name, len(ans), sorted(next(iter(ans.values()), {}))))
            if i >= 3:
                times.append(el)
        out[name + "_ms"] = statistics.median(times) * 1000.0
    return out


def evict(data_dir, names):
    """Drops the data files' pages from the page cache (posix_fadvise DONTNEED; they are
    clean after sync), so a re-read at restart shows in read_bytes, not only in rchar."""
    os.sync()
    for name in names:
        fd = os.open(os.path.join(data_dir, name), os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def restart(d, n, names, settle, limit):
    """SIGTERM, start again; times and the new process's reads until all n are seeding."""
    c = d.connect()
    before = c.call("stats.get_totals")
    c.close()
    r = {"restart_load": load()}
    r["stop_s"] = d.stop(limit)
    if r["stop_s"] is None:
        r["note"] = "did not exit within %d s of SIGTERM: killed" % limit
    evict(d.data, names)
    t0 = time.perf_counter()
    pid = d.start()
    c = d.connect(limit)
    r["start_rpc_s"] = time.perf_counter() - t0
    pause = 0.05 if n <= 1000 else 0.25
    while True:
        count, hist = states(c)
        if count == n and "back_s" not in r:
            r["back_s"] = time.perf_counter() - t0
        if count == n and hist.get("Seeding") == n:
            r["seeding_s"] = time.perf_counter() - t0
            break
        if time.perf_counter() - t0 > limit:
            r["note"] = "after %d s: %d torrents back, states %s" % (limit, count, hist)
            break
        time.sleep(pause)
    io = proc_io(pid)
    r["read_bytes"], r["rchar"] = io["read_bytes"], io["rchar"]
    time.sleep(settle)
    io = proc_io(pid)
    r["read_bytes_later"], r["rchar_later"] = io["read_bytes"], io["rchar"]
    after = c.call("stats.get_totals")
    r["totals_equal"] = before == after
    if before != after:
        r["note"] = "stats.get_totals before %r, after %r" % (before, after)
    if r.get("back_s") is not None and r["stop_s"] is not None:
        r["restart_s"] = r["stop_s"] + r["back_s"]
    c.close()
    return r


def run_one(kind, n, a, names):
    """One daemon, fresh, with n torrents: every figure, in a dict."""
    d = Daemon(kind, a.bin, os.path.join(a.work, "%s-%d" % (kind, n)), a.data, a.pids)
    r = {"kind": kind, "n": n}
    try:
        pid = d.start()
        c = d.connect()
        if kind == "deluged":
            c.call("core.enable_plugin", "Stats")
            if "stats.get_totals" not in c.call("daemon.get_method_list"):
                raise RuntimeError("deluged: the Stats plugin did not load")
        r["add_load"] = load()
        cap = a.deluged_cap if kind == "deluged" else 0
        ids, errors, r["add_s"] = add_all(c, names[:n], a.torrents, a.data, a.batch, cap)
        r["added"], r["add_errors"] = len(ids), len(errors)
        if errors:
            r["note"] = "first add error: %s" % errors[0]
        r["to_seeding_s"], r["states"] = wait_seeding(c, len(ids), a.limit)
        c.close()
        time.sleep(a.settle)
        r.update(idle(pid, a.idle))
        c = d.connect()
        r.update(latency(c, ids, a.calls))
        c.close()
        if len(ids) == n and not errors and r["to_seeding_s"] is not None:
            r.update(restart(d, n, names[:n], a.settle, a.limit))
        else:
            r["restart_skipped"] = True
    except Exception as e:  # report it, go on with the next daemon
        r["error"] = "%s: %s" % (type(e).__name__, e)
    finally:
        if d.proc is not None and d.proc.poll() is None:
            d.stop(60)
        d.log.close()
    print("%s N=%d: %s" % (kind, n, json.dumps(r, sort_keys=True)), flush=True)
    return r


def fmt(v, spec):
    return "-" if v is None else spec % v


ROWS = [  # label, key, format, ratio?
    ("torrents added over RPC", "added", "%d", False),
    ("add time over RPC (s)", "add_s", "%.2f", True),
    ("add end -> all seeding (s)", "to_seeding_s", "%.2f", True),
    ("idle CPU (% of a core)", "idle_cpu_pct", "%.2f", True),
    ("idle CPU per 1000 torrents (% of a core)", "idle_cpu_per_1000", "%.3f", True),
    ("wake-ups/s (context switches, all threads)", "wakeups_per_s", "%.0f", True),
    ("threads (at the window's end)", "threads", "%d", True),
    ("threads started during the idle window", "threads_born", "%d", True),
    ("VmRSS (MiB)", "rss_mib", "%.1f", True),
    ("RssAnon (MiB)", "anon_mib", "%.1f", True),
    ("open file descriptors", "fds", "%d", True),
    ("open files limit (soft)", "fd_limit", "%s", False),
    ("get_torrents_status({}, 12 keys) median (ms)", "status_all_ms", "%.2f", True),
    ("get_torrents_status(one id, 12 keys) median (ms)", "status_one_ms", "%.2f", True),
    ("stop: SIGTERM -> exit (s)", "stop_s", "%.2f", True),
    ("start -> RPC answers (s)", "start_rpc_s", "%.2f", True),
    ("start -> all N back in get_torrents_status (s)", "back_s", "%.2f", True),
    ("restart: stop + start -> all N back (s)", "restart_s", "%.2f", True),
    ("start -> all N seeding (s)", "seeding_s", "%.2f", True),
    ("read_bytes, start -> all seeding (MiB)", "read_mib", "%.2f", True),
    ("rchar, start -> all seeding (MiB)", "rchar_mib", "%.2f", True),
    ("read_bytes, %s s later (MiB)", "read_later_mib", "%.2f", True),
    ("stats.get_totals equal after restart", "totals_equal", "%s", False),
    ("load average: adds", "add_load", "%s", False),
    ("load average: idle window (start -> end)", "idle_load", "%s", False),
    ("load average: status calls", "status_load", "%s", False),
    ("load average: restart", "restart_load", "%s", False),
]


def derive(r):
    mib = 1024.0 * 1024.0
    if "idle_cpu_pct" in r and r.get("added"):
        r["idle_cpu_per_1000"] = r["idle_cpu_pct"] * 1000.0 / r["added"]
    for k, src, div in (("rss_mib", "rss_kib", 1024.0), ("anon_mib", "anon_kib", 1024.0),
                        ("read_mib", "read_bytes", mib), ("rchar_mib", "rchar", mib),
                        ("read_later_mib", "read_bytes_later", mib)):
        if src in r:
            r[k] = r[src] / div


def table(n, ours, theirs, a):
    print("\n### N = %d (data: %d × %d B = %.1f MiB)\n" % (n, n, a.size, n * a.size / 2**20))
    head = "| measure | torrent-stats | deluged 2.0.3 + Stats | ours / deluged |"
    print(head + "\n|---|---|---|---|")
    full = theirs is not None and theirs.get("added") == n
    for label, key, spec, ratio in ROWS:
        if "%s" in label and spec != "%s":
            label = label % a.settle
        o = ours.get(key) if ours else None
        t = theirs.get(key) if theirs else None
        if o is None and t is None:
            continue
        q = "-"
        if ratio and full and isinstance(o, (int, float)) and isinstance(t, (int, float)) and t:
            q = "%.3f" % (o / t)
        ts = fmt(t, spec) if theirs else "not run"
        if theirs and key == "added" and not full:
            ts += " of %d in the %d s cap (%.1f s)" % (n, a.deluged_cap, theirs.get("add_s", 0))
        print("| %s | %s | %s | %s |" % (label, fmt(o, spec), ts, q))
    for who, r in (("ours", ours), ("deluged", theirs)):
        for k in ("error", "note"):
            if r and r.get(k):
                print("\n%s: %s" % (who, r[k]))
        if r and r.get("to_seeding_s") is None and "states" in r:
            print("\n%s: not all seeding within %d s: %s" % (who, a.limit, r["states"]))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--pids", required=True)
    p.add_argument("--sizes", default="100,1000,10000")
    p.add_argument("--deluged-sizes", default="100,1000,10000")
    p.add_argument("--deluged-cap", type=float, default=120.0)
    p.add_argument("--idle", type=float, default=20.0)
    p.add_argument("--settle", type=float, default=5.0)
    p.add_argument("--calls", type=int, default=20)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--size", type=int, default=32768)
    p.add_argument("--limit", type=float, default=600.0)
    p.add_argument("--nofile", type=int, default=0)
    a = p.parse_args()
    sizes = [int(s) for s in a.sizes.split(",") if s]
    dsizes = {int(s) for s in a.deluged_sizes.split(",") if s}
    if not sizes or min(sizes) < 1 or a.batch < 1 or a.calls < 1 or a.idle <= 0:
        p.error("sizes, --batch and --calls must be >= 1, --idle > 0")
    if a.nofile:  # the daemons inherit it
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (a.nofile, a.nofile))
        except (ValueError, OSError) as e:
            p.error("cannot set the open files limit to %d (now %s): %s"
                    % (a.nofile, resource.getrlimit(resource.RLIMIT_NOFILE), e))
    a.data, a.torrents = os.path.join(a.work, "data"), os.path.join(a.work, "torrents")
    t0 = time.perf_counter()
    made = subprocess.run(
        [sys.executable, os.path.join(os.path.dirname(__file__), "make_torrents.py"),
         str(max(sizes)), a.data, a.torrents, "--size", str(a.size)],
        check=True, capture_output=True, text=True).stdout.split("\n")
    names = [l.split()[0] for l in made if l]
    print("made %d torrents and their data in %.1f s" % (len(names), time.perf_counter() - t0))
    results = []
    for n in sizes:
        ours = run_one("ours", n, a, names)
        theirs = run_one("deluged", n, a, names) if n in dsizes else None
        results.append((n, ours, theirs))
    print("\nload average at the end: %s" % load())
    for n, ours, theirs in results:
        for r in (ours, theirs):
            if r:
                derive(r)
        table(n, ours, theirs, a)


if __name__ == "__main__":
    main()
