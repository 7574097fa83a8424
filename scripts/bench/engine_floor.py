#!/usr/bin/env python3
"""The engine's floor (docs/engine-floor.md). Not a test.

usage: scripts/bench/engine_floor.py MODE BIN N [IDLE_S]
  MODE daemon: BIN is the torrent-stats binary (release build), N torrents added over
  Deluge RPC (deluge-client); MODE engine: BIN is examples/engine_floor (the engine alone,
  no Stats/RPC/web), N torrents added through the engine API.
  N distinct 40 000-byte files and single-file private torrents (16 KiB pieces, no tracker)
  are generated once under $WORK/genN (WORK default /tmp/engine-floor).
After all N seed and SETTLE (10) s: an IDLE_S (20) s window: wake-ups/s (voluntary and
nonvoluntary context switches summed over /proc/PID/task/*/status), CPU % of one core
(utime+stime of the tasks), VmRSS/RssAnon/RssFile at the end, the load average.
Env: ENVS="K=V ..." added to the process's environment (e.g. MALLOC_ARENA_MAX=1)."""
import base64, collections, glob, os, re, shutil, signal, subprocess, sys, tempfile, time, threading
mode, BIN, N = sys.argv[1], sys.argv[2], int(sys.argv[3]); IDLE = float(sys.argv[4]) if len(sys.argv) > 4 else 20
SETTLE = float(os.environ.get("SETTLE", "10"))
WORK = os.environ.get("WORK", "/tmp/engine-floor")
gen = f"{WORK}/gen{N}"
def benc(x):
    if isinstance(x, int): return b"i%de" % x
    if isinstance(x, str): x = x.encode()
    if isinstance(x, bytes): return b"%d:%s" % (len(x), x)
    if isinstance(x, dict): return b"d" + b"".join(benc(k) + benc(x[k]) for k in sorted(x)) + b"e"
    raise TypeError(x)
def generate(d, n, size=40000, pl=16384):
    import hashlib
    os.makedirs(f"{d}/data", exist_ok=True); os.makedirs(f"{d}/torrents", exist_ok=True)
    for i in range(n):
        name = f"f{i:05d}"
        data = name.encode() + (hashlib.sha256(name.encode()).digest() * (size // 32 + 1))[len(name):size]
        with open(f"{d}/data/{name}", "wb") as f: f.write(data)
        pieces = b"".join(hashlib.sha1(data[o:o + pl]).digest() for o in range(0, size, pl))
        t = {"created by": "engine_floor.py", "info": {"name": name, "length": size,
             "piece length": pl, "pieces": pieces, "private": 1}}
        with open(f"{d}/torrents/{name}.torrent", "wb") as f: f.write(benc(t))
if not os.path.isdir(gen): generate(gen, N)
root = tempfile.mkdtemp(prefix=f"floor-{mode}{N}-", dir=WORK)
env = dict(os.environ, RUST_LOG="warn,torrent_stats=info")
for kv in os.environ.get("ENVS", "").split():
    k, v = kv.split("=", 1); env[k] = v
def load(): return " ".join(open("/proc/loadavg").read().split()[0:3])
def tasks(pid):
    out = {}
    for d in glob.glob(f"/proc/{pid}/task/*"):
        try:
            s = open(f"{d}/status").read(); st = open(f"{d}/stat").read().rsplit(")", 1)[1].split()
        except OSError: continue
        v = int(re.search(r"\nvoluntary_ctxt_switches:\s*(\d+)", s).group(1))
        nv = int(re.search(r"nonvoluntary_ctxt_switches:\s*(\d+)", s).group(1))
        out[d] = (v, nv, int(st[11]) + int(st[12]))
    return out
def window(pid, secs):
    a = tasks(pid); time.sleep(secs); b = tasks(pid)
    v = nv = cpu = 0
    for k, (bv, bnv, bc) in b.items():
        av, anv, ac = a.get(k, (0, 0, 0)); v += bv - av; nv += bnv - anv; cpu += bc - ac
    return v / secs, nv / secs, 100.0 * cpu / os.sysconf("SC_CLK_TCK") / secs
def rss(pid):
    s = open(f"/proc/{pid}/status").read()
    return tuple(int(re.search(k + r":\s*(\d+)", s).group(1)) / 1024 for k in ("VmRSS", "RssAnon", "RssFile"))
t0 = time.time()
if mode == "daemon":
    cfg = f"{root}/cfg"
    p = subprocess.Popen([BIN, "daemon", "--config-dir", cfg, "--download-dir", f"{gen}/data",
        "--port", "0", "--web-port", "0", "--source", "rqbit", "--listen-port", "0",
        "--no-dht", "--no-trackers"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
    for line in p.stderr:
        m = re.search(rb"RPC listening on \S+:(\d+)", line)
        if m: break
    threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
    from deluge_client import DelugeRPCClient
    pw = next(l.split(":")[1] for l in open(f"{cfg}/auth") if l.startswith("localclient:"))
    c = DelugeRPCClient("127.0.0.1", int(m.group(1)), "localclient", pw, decode_utf8=True); c.connect()
    for name in sorted(os.listdir(f"{gen}/torrents")):
        b = base64.b64encode(open(f"{gen}/torrents/{name}", "rb").read()).decode()
        c.call("core.add_torrent_file", name, b, {"download_location": f"{gen}/data"})
    while True:
        st = c.call("core.get_torrents_status", {}, ["state"])
        if sum(1 for x in st.values() if x["state"] == "Seeding") == N: break
        time.sleep(0.5)
    c.disconnect() if hasattr(c, "disconnect") else None
    del c
else:
    p = subprocess.Popen([BIN, f"{gen}/data", f"{root}/state", f"{gen}/torrents"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
    for line in p.stderr:
        if b"engine ready" in line: break
    threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
ready = time.time() - t0
time.sleep(SETTLE)
v, nv, cpu = window(p.pid, IDLE)
r = rss(p.pid)
print(f"{mode:6} N={N:5} ENVS={os.environ.get('ENVS','-'):14} wakeups/s vol {v:7.1f} nonvol {nv:6.1f} | cpu {cpu:5.2f}% | VmRSS {r[0]:5.1f} RssAnon {r[1]:5.1f} RssFile {r[2]:5.1f} MiB | ready {ready:.1f}s | load {load()}", flush=True)
p.send_signal(signal.SIGTERM); p.wait(120)
if os.environ.get("KEEP") != "1": shutil.rmtree(root)
