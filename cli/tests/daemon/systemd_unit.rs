//! `contrib/torrent-stats.service`: `systemd-analyze verify` accepts it (the tool must be
//! installed: `scripts/test.sh` installs Debian's `systemd`; the test fails without it), it
//! has the sandboxing docs/operations.md promises, its `ExecStart` arguments are the daemon's, and
//! the daemon speaks `Type=notify`: `READY=1` once it serves, `STOPPING=1` on SIGTERM, to a
//! datagram socket standing in for systemd's `$NOTIFY_SOCKET`.
//!
//! Then under a real systemd. The test containers have no systemd as PID 1, so the test
//! boots Debian's `/lib/systemd/systemd` as PID 1 of namespaces of its own (`unshare`: PID,
//! mount, network, UTS, IPC and cgroup, rooted in a cgroup v2 directory it creates), set up
//! the way `systemd-nspawn` sets up a container (private `/dev`, `/run`, `/tmp`; read-only
//! `/sys` and `/proc/sys`), with only the units it needs on its unit path
//! (`$SYSTEMD_UNIT_PATH`, no generators), so nothing it does reaches the host. The shipped
//! unit, unchanged but for a drop-in choosing the sim source, runs the built binary
//! (bind-mounted at `/usr/local/bin/torrent-stats`) as a `torrent-stats` user that exists
//! only in the namespace's `/etc/passwd`: `systemctl start` returns once the daemon is
//! ready, a client logs in and reads `stats.get_totals`, the sandbox holds, `reload` keeps
//! it running, a SIGKILL brings `Restart=on-failure` without losing the totals, `stop`
//! saves, and the manager then exits cleanly. That test needs root, cgroup v2 (hybrid or
//! unified) and util-linux's `unshare` and `nsenter`; it fails, not skips, when systemd
//! cannot be booted.

use std::collections::HashMap;
use std::fs::{self, File};
use std::net::SocketAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use serde_json::Value;

use crate::support;
use crate::support::daemon::offline_totals;
use crate::support::rpc::Raw;
use crate::support::BIN;

const UNIT: &str = include_str!("../../../contrib/torrent-stats.service");
const INSTALLED: &str = "/usr/local/bin/torrent-stats";

/// `Key=value` lines of the unit (every occurrence).
fn values<'a>(key: &str) -> Vec<&'a str> {
    let prefix = format!("{key}=");
    UNIT.lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .map(str::trim)
        .collect()
}

fn value<'a>(key: &str) -> &'a str {
    let all = values(key);
    assert_eq!(all.len(), 1, "{key}= should be set once: {all:?}");
    all[0]
}

#[test]
#[ignore = "needs systemd-analyze"]
fn systemd_analyze_verify_accepts_the_unit() -> Result<()> {
    let tool = Command::new("systemd-analyze").arg("--version").output();
    ensure!(
        matches!(&tool, Ok(o) if o.status.success()),
        "systemd-analyze is missing: install Debian's systemd (scripts/test.sh does)"
    );
    // verify checks that ExecStart's program exists: point it at the built binary.
    let dir = tempfile::tempdir()?;
    let unit = dir.path().join("torrent-stats.service");
    std::fs::write(&unit, UNIT.replace(INSTALLED, BIN))?;
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .env("SYSTEMD_LOG_LEVEL", "notice")
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    let about_unit: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("torrent-stats"))
        .collect();
    ensure!(about_unit.is_empty(), "warnings about the unit:\n{stderr}");
    Ok(())
}

#[test]
fn the_unit_sandboxes_the_daemon_and_keeps_its_directories_writable() {
    assert_eq!(value("Type"), "notify");
    assert_eq!(value("Restart"), "on-failure");
    assert_eq!(value("User"), "torrent-stats");
    assert_eq!(value("NoNewPrivileges"), "yes");
    assert_eq!(value("ProtectSystem"), "strict");
    assert_eq!(value("ProtectHome"), "yes");
    assert_eq!(value("PrivateTmp"), "yes");
    assert_eq!(value("KillSignal"), "SIGTERM");
    assert!(value("ExecReload").contains("-HUP $MAINPID"));
    let exec = value("ExecStart");
    let writable: Vec<&str> = values("ReadWritePaths")
        .iter()
        .flat_map(|v| v.split_whitespace())
        .collect();
    for flag in ["--config-dir", "--download-dir"] {
        let dir = exec
            .split_whitespace()
            .skip_while(|a| *a != flag)
            .nth(1)
            .unwrap_or_else(|| panic!("ExecStart has no {flag}: {exec}"));
        assert!(
            writable
                .iter()
                .any(|w| Path::new(dir).starts_with(w.trim_start_matches('-'))),
            "{flag} {dir} is not under ReadWritePaths {writable:?}"
        );
    }
}

#[test]
fn the_daemon_tells_systemd_when_it_is_ready_and_when_it_stops() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let socket_path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&socket_path)?;
    socket.set_read_timeout(Some(Duration::from_secs(20)))?;
    let config = dir.path().join("cfg");
    // ExecStart's arguments, in a temporary directory, on free ports and the sim source.
    let exec = value("ExecStart");
    let args: Vec<String> = exec
        .split_whitespace()
        .skip(1)
        .map(|a| a.replace("/var/lib/torrent-stats", &config.to_string_lossy()))
        .collect();
    let mut child = Command::new(BIN)
        .args(&args)
        .args([
            "--port",
            "0",
            "--web-port",
            "0",
            "--source",
            "sim:up=1k,down=1k",
        ])
        .env("NOTIFY_SOCKET", &socket_path)
        .env("NO_COLOR", "1")
        .env_remove("TORRENT_STATS_CONFIG_DIR")
        .env_remove("TORRENT_STATS_SOURCE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).context("no READY=1 within 20 s")?;
    let ready = String::from_utf8_lossy(&buf[..n]).into_owned();
    let result = (|| -> Result<()> {
        ensure!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
        ensure!(
            ready.contains(&format!("MAINPID={}", child.id())),
            "{ready:?}"
        );
        ensure!(
            config.join("stats.conf").exists(),
            "not ready when it says so"
        );
        support::signal(child.id(), "TERM")?;
        let n = socket.recv(&mut buf).context("no STOPPING=1")?;
        let stopping = String::from_utf8_lossy(&buf[..n]).into_owned();
        ensure!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            ensure!(Instant::now() < deadline, "still running after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        };
        ensure!(status.success(), "exit {status}");
        Ok(())
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// The units the namespace's systemd may load besides the one under test: the targets the
/// service's default dependencies name, journald (for the service's output), and what
/// `systemctl exit` runs. Everything else on the host (gettys, udev, tmpfiles, sysusers,
/// sysctl, the host's enabled services) is absent, so it cannot touch the host.
const SYSTEM_UNITS: &[&str] = &[
    "sysinit.target",
    "basic.target",
    "network-online.target",
    "shutdown.target",
    "umount.target",
    "final.target",
    "exit.target",
    "systemd-exit.service",
    "systemd-journald.service",
    "systemd-journald.socket",
    "systemd-journald-dev-log.socket",
];

/// The target the namespace's systemd boots into (`--unit=`).
const BOOT_TARGET: &str = "torrent-stats-test.target";

/// Run by `sh` as PID 1 of the new namespaces, `$1` the work directory, `$2` the built
/// binary; ends by exec'ing systemd into [`BOOT_TARGET`]. Mounts (all in the private mount
/// namespace; `unshare` made it private before this runs): a fresh /proc for the PID
/// namespace with /proc/sys read-only, a read-only sysfs with the cgroup namespace's
/// cgroup2 tree, a /dev of its own (nothing of the host's devices, no console: systemd then
/// logs to the journal only), a private /run; the work directory's units at
/// /run/torrent-stats-test/units (the unit path), its passwd and group (with the service
/// user), the built binary at /usr/local/bin/torrent-stats and its var-lib at /var/lib (the
/// StateDirectory) over the host's; last, private /tmp and /var/tmp. Everything taken from
/// the work directory and the binary is bound before those two are covered: both live in
/// the checkout's target dir, which may itself be under /tmp (a fresh clone in /tmp), and
/// a bind mount keeps its source visible under the new tmpfs.
const BOOT: &str = r#"set -eu
w=$1
mount --make-rprivate /
mount -t proc -o nosuid,nodev,noexec proc /proc
mount --bind -o ro /proc/sys /proc/sys
umount -R -l /sys
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs /sys
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 /sys/fs/cgroup
mount -t tmpfs -o mode=0755,nosuid,size=4m tmpfs /dev
mknod -m 666 /dev/null c 1 3
mknod -m 666 /dev/zero c 1 5
mknod -m 666 /dev/full c 1 7
mknod -m 666 /dev/random c 1 8
mknod -m 666 /dev/urandom c 1 9
mknod -m 666 /dev/tty c 5 0
mkdir /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=620,nosuid,noexec devpts /dev/pts
ln -s pts/ptmx /dev/ptmx
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mkdir -p /run/systemd/journald.conf.d
printf '[Journal]\nStorage=volatile\n' >/run/systemd/journald.conf.d/volatile.conf
mkdir -p /run/torrent-stats-test/units /run/torrent-stats-test/none
mount --bind "$w/units" /run/torrent-stats-test/units
mount --bind "$w/passwd" /etc/passwd
mount --bind "$w/group" /etc/group
mount -t tmpfs -o mode=0755 tmpfs /usr/local/bin
touch /usr/local/bin/torrent-stats
mount --bind "$2" /usr/local/bin/torrent-stats
mount --bind "$w/var-lib" /var/lib
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /var/tmp
export container=torrent-stats-test
export SYSTEMD_UNIT_PATH=/run/torrent-stats-test/units
export SYSTEMD_GENERATOR_PATH=/run/torrent-stats-test/none
export SYSTEMD_ENVIRONMENT_GENERATOR_PATH=/run/torrent-stats-test/none
exec /lib/systemd/systemd --system --unit=torrent-stats-test.target --log-target=journal --show-status=no
"#;

/// Where the daemon serves RPC in the namespace's own network: the unit sets no port.
const RPC_ADDR: &str = "127.0.0.1:58846";

/// Polls `check` every 100 ms until it returns `Some`, failing after `limit`.
fn wait_for<T>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check()? {
            return Ok(v);
        }
        ensure!(Instant::now() < deadline, "{what}: not within {limit:?}");
        thread::sleep(Duration::from_millis(100));
    }
}

/// The cgroup v2 tree to make the namespace's cgroup in: the unified hierarchy of a hybrid
/// layout, or `/sys/fs/cgroup` itself on a unified one.
fn cgroup2_root() -> Result<PathBuf> {
    ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("cgroup.controllers").exists())
        .context("no cgroup v2 hierarchy at /sys/fs/cgroup/unified or /sys/fs/cgroup")
}

/// Every process in the cgroup tree at `dir`.
fn cgroup_procs(dir: &Path) -> Vec<u32> {
    let mut procs: Vec<u32> = fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            procs.extend(cgroup_procs(&entry.path()));
        }
    }
    procs
}

/// Removes the cgroup tree at `dir`, children first.
fn remove_cgroup(dir: &Path) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)?.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroup(&entry.path())?;
        }
    }
    fs::remove_dir(dir)
}

/// Moves the calling thread (only it: network namespaces are per thread) into the network
/// namespace `ns` refers to; sockets it creates afterwards live there.
fn enter_network_namespace(ns: &File) -> std::io::Result<()> {
    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)
}

/// systemd booted as PID 1 of its own namespaces; killed with everything under it on drop.
struct Systemd {
    /// `sh` → `unshare --fork`, the parent of the namespace's PID 1 (in the cgroup).
    wrapper: Child,
    /// The namespace's PID 1 as the host numbers it.
    init: u32,
    /// Our cgroup v2 directory, the root of the namespace's cgroup tree.
    cgroup: PathBuf,
    /// passwd, group, units, var-lib (the namespace's /var/lib), boot.log.
    work: tempfile::TempDir,
    /// The `torrent-stats` user's uid and gid.
    uid: u32,
    gid: u32,
}

impl Systemd {
    /// Prepares the work directory, starts `unshare` in a new cgroup and waits (at most
    /// 20 s) for `systemctl is-system-running` to say `running`.
    fn boot() -> Result<Systemd> {
        for tool in ["unshare", "nsenter"] {
            let ok = Command::new(tool).arg("--version").output();
            ensure!(
                matches!(&ok, Ok(o) if o.status.success()),
                "{tool} (util-linux) is missing"
            );
        }
        ensure!(
            Path::new("/lib/systemd/systemd").exists(),
            "/lib/systemd/systemd is missing: install Debian's systemd (scripts/test.sh does)"
        );
        let work = tempfile::Builder::new()
            .prefix("systemd-unit-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
        let w = work.path();
        // The service user, in the namespace's passwd and group only.
        let mut passwd = fs::read_to_string("/etc/passwd")?;
        let mut group = fs::read_to_string("/etc/group")?;
        let (uid, gid) = match service_user(&passwd)? {
            Some(ids) => ids,
            None => {
                let (uid, gid, passwd_line, group_line) = new_service_user(&passwd, &group)?;
                passwd.push_str(&passwd_line);
                group.push_str(&group_line);
                (uid, gid)
            }
        };
        fs::write(w.join("passwd"), passwd)?;
        fs::write(w.join("group"), group)?;
        fs::set_permissions(w.join("passwd"), fs::Permissions::from_mode(0o644))?;
        fs::set_permissions(w.join("group"), fs::Permissions::from_mode(0o644))?;
        fs::create_dir(w.join("var-lib"))?;
        fs::set_permissions(w.join("var-lib"), fs::Permissions::from_mode(0o755))?;
        let units = w.join("units");
        fs::create_dir(&units)?;
        for unit in SYSTEM_UNITS {
            let from = Path::new("/lib/systemd/system").join(unit);
            fs::copy(&from, units.join(unit))
                .with_context(|| format!("copy {}", from.display()))?;
        }
        fs::write(
            units.join(BOOT_TARGET),
            "[Unit]\nDescription=torrent-stats test boot target\nWants=systemd-journald.service\n",
        )?;
        // The unit exactly as shipped; a drop-in picks the sim source so the totals move.
        fs::write(units.join("torrent-stats.service"), UNIT)?;
        fs::create_dir(units.join("torrent-stats.service.d"))?;
        fs::write(
            units.join("torrent-stats.service.d/source.conf"),
            "[Service]\nEnvironment=TORRENT_STATS_SOURCE=sim:up=1MiB/s,down=4MiB/s\n",
        )?;

        let cgroup = cgroup2_root()?.join(format!(
            "torrent-stats-systemd-test-{}-{}",
            std::process::id(),
            w.file_name().unwrap_or_default().to_string_lossy()
        ));
        fs::create_dir(&cgroup).with_context(|| format!("create cgroup {}", cgroup.display()))?;
        let log = File::create(w.join("boot.log"))?;
        let booted = Instant::now();
        // The wrapper moves itself into the cgroup, so that unshare's new cgroup namespace
        // is rooted there, and becomes unshare; unshare's child becomes the boot script,
        // then systemd. --kill-child: if unshare dies, so does the namespace.
        let spawned = Command::new("sh")
            .args([
                "-c",
                "echo $$ >\"$1/cgroup.procs\" && exec unshare --pid --fork --kill-child \
                 --mount --net --uts --ipc --cgroup sh -c \"$2\" boot \"$3\" \"$4\"",
                "wrapper",
            ])
            .arg(&cgroup)
            .arg(BOOT)
            .arg(w)
            .arg(BIN)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn();
        let wrapper = match spawned {
            Ok(child) => child,
            Err(e) => {
                let _ = fs::remove_dir(&cgroup);
                return Err(e).context("spawn sh");
            }
        };
        let mut systemd = Systemd {
            init: 0,
            wrapper,
            cgroup,
            work,
            uid,
            gid,
        };
        let pid = systemd.wrapper.id();
        systemd.init = wait_for("the namespace's PID 1", Duration::from_secs(10), || {
            if let Some(status) = systemd.wrapper.try_wait()? {
                bail!("unshare ended before systemd started ({status})");
            }
            let children =
                fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
            Ok(children
                .split_whitespace()
                .next()
                .and_then(|c| c.parse().ok()))
        })
        .map_err(|e| anyhow!("{e}\nboot log:\n{}", systemd.boot_log()))?;
        let state = wait_for("systemd is-system-running", Duration::from_secs(20), || {
            if let Some(status) = systemd.wrapper.try_wait()? {
                bail!("the namespace ended during boot ({status})");
            }
            let out = systemd.ctl(&["is-system-running"])?;
            let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
            Ok(matches!(state.as_str(), "running" | "degraded" | "maintenance").then_some(state))
        });
        match state {
            Ok(state) if state == "running" => {
                println!("systemd running after {:?}", booted.elapsed());
                Ok(systemd)
            }
            Ok(state) => bail!("systemd is {state}\n{}", systemd.diagnostics()),
            Err(e) => bail!("{e}\n{}", systemd.diagnostics()),
        }
    }

    fn boot_log(&self) -> String {
        fs::read_to_string(self.work.path().join("boot.log")).unwrap_or_default()
    }

    /// `nsenter … systemctl ARGS` in the namespace (30 s at most).
    fn ctl(&self, args: &[&str]) -> Result<Output> {
        self.nsenter("systemctl", args)
    }

    fn nsenter(&self, program: &str, args: &[&str]) -> Result<Output> {
        let mut command = Command::new("nsenter");
        command
            .args(["-t", &self.init.to_string(), "-m", "-p", "--", program])
            .args(args)
            .env("SYSTEMD_PAGER", "")
            .env("SYSTEMD_COLORS", "0");
        support::run_limited(command, Duration::from_secs(30))
    }

    /// `systemctl ARGS`, which must succeed; its stdout.
    fn ctl_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.ctl(args)?;
        ensure!(
            out.status.success(),
            "systemctl {} failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `systemctl show torrent-stats.service -p …` as a map.
    fn show(&self, props: &str) -> Result<HashMap<String, String>> {
        let out = self.ctl_ok(&["show", "torrent-stats.service", "-p", props])?;
        let map: HashMap<String, String> = out
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for p in props.split(',') {
            ensure!(map.contains_key(p), "systemctl show has no {p}: {out}");
        }
        Ok(map)
    }

    /// The journal's messages from process `pid` (as the namespace numbers it) of the unit.
    fn journal_of(&self, pid: u32) -> Result<String> {
        let out = self.nsenter(
            "journalctl",
            &[
                "--no-pager",
                "-o",
                "cat",
                "_SYSTEMD_UNIT=torrent-stats.service",
                &format!("_PID={pid}"),
            ],
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Waits (at most 10 s: journald gets the output asynchronously) for a message
    /// containing `needle` from `pid`.
    fn wait_journal(&self, pid: u32, needle: &str) -> Result<()> {
        wait_for(
            &format!("journal line {needle:?} from PID {pid}"),
            Duration::from_secs(10),
            || Ok(self.journal_of(pid)?.contains(needle).then_some(())),
        )
    }

    /// The unit's state directory as the host sees it.
    fn state_dir(&self) -> PathBuf {
        self.work.path().join("var-lib/torrent-stats")
    }

    /// Logs in as localclient (its password from the state directory's auth file) in the
    /// namespace's network and returns `stats.get_totals`.
    fn totals(&self) -> Result<Value> {
        let auth = fs::read_to_string(self.state_dir().join("auth"))?;
        let password = auth
            .lines()
            .find_map(|l| l.strip_prefix("localclient:"))
            .and_then(|rest| rest.split(':').next())
            .context("no localclient line in the auth file")?
            .to_string();
        let ns = File::open(format!("/proc/{}/ns/net", self.init))?;
        thread::spawn(move || -> Result<Value> {
            enter_network_namespace(&ns).context("setns into the namespace's network")?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let addr: SocketAddr = RPC_ADDR.parse()?;
                tokio::time::timeout(Duration::from_secs(15), async {
                    let mut raw = Raw::login(addr, "localclient", &password).await?;
                    raw.totals().await
                })
                .await
                .context("login and stats.get_totals took over 15 s")?
            })
        })
        .join()
        .map_err(|_| anyhow!("the RPC thread panicked"))?
    }

    /// `systemctl status`, the whole journal and the boot script's output.
    fn diagnostics(&self) -> String {
        let text = |out: Result<Output>| match out {
            Ok(o) => format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => format!("{e:#}"),
        };
        format!(
            "--- systemctl status torrent-stats:\n{}\n--- journal:\n{}\n--- boot log:\n{}",
            text(self.ctl(&["status", "--no-pager", "-l", "torrent-stats.service"])),
            text(self.nsenter("journalctl", &["--no-pager", "-b", "-n", "300"])),
            self.boot_log()
        )
    }

    /// `systemctl exit`: the manager stops every unit and exits; the namespace must be
    /// gone within 30 s with status 0 and nothing left in its cgroup.
    fn exit(mut self) -> Result<()> {
        self.ctl_ok(&["exit", "0"])?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.wrapper.try_wait()? {
                break status;
            }
            ensure!(
                Instant::now() < deadline,
                "systemd still running 30 s after systemctl exit\n{}",
                self.diagnostics()
            );
            thread::sleep(Duration::from_millis(50));
        };
        ensure!(
            status.success(),
            "the namespace's PID 1 ended with {status}\n{}",
            self.boot_log()
        );
        let left = cgroup_procs(&self.cgroup);
        ensure!(left.is_empty(), "processes left in the cgroup: {left:?}");
        Ok(())
    }
}

impl Drop for Systemd {
    fn drop(&mut self) {
        let wrapper = self.wrapper.id();
        if matches!(self.wrapper.try_wait(), Ok(None)) {
            // SIGKILL to the namespace's PID 1 ends its PID namespace: the kernel kills
            // every process in it, and unshare (still running, so PID 1 is its unreaped
            // child) reaps it and exits.
            let parent = fs::read_to_string(format!("/proc/{}/status", self.init))
                .ok()
                .and_then(|s| status_field(&s, "PPid:").first()?.parse::<u32>().ok());
            if self.init != 0 && parent == Some(wrapper) {
                let _ = support::signal(self.init, "KILL");
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(self.wrapper.try_wait(), Ok(None)) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
            // Still there: everything in the cgroup, unshare included, is ours.
            let _ = fs::write(self.cgroup.join("cgroup.kill"), "1");
            let _ = self.wrapper.kill();
            let _ = self.wrapper.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while remove_cgroup(&self.cgroup).is_err() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The `torrent-stats` user's (uid, gid) if `passwd` has it.
fn service_user(passwd: &str) -> Result<Option<(u32, u32)>> {
    let Some(line) = passwd.lines().find(|l| l.starts_with("torrent-stats:")) else {
        return Ok(None);
    };
    let f: Vec<&str> = line.split(':').collect();
    ensure!(f.len() == 7, "bad passwd line {line:?}");
    Ok(Some((f[2].parse()?, f[3].parse()?)))
}

/// A system user `torrent-stats` for the namespace: (uid, gid, passwd line, group line),
/// the ids the highest below 1000 that neither table uses (the group's if it exists).
fn new_service_user(passwd: &str, group: &str) -> Result<(u32, u32, String, String)> {
    let used = |table: &str, id: u32| {
        table
            .lines()
            .any(|l| l.split(':').nth(2) == Some(id.to_string().as_str()))
    };
    let existing_gid = group
        .lines()
        .find(|l| l.starts_with("torrent-stats:"))
        .and_then(|l| l.split(':').nth(2))
        .map(str::parse::<u32>)
        .transpose()?;
    let uid = (100..1000)
        .rev()
        .find(|&id| !used(passwd, id) && (existing_gid.is_some() || !used(group, id)))
        .context("no free system uid")?;
    let gid = existing_gid.unwrap_or(uid);
    let group_line = match existing_gid {
        Some(_) => String::new(),
        None => format!("torrent-stats:x:{gid}:\n"),
    };
    Ok((
        uid,
        gid,
        format!("torrent-stats:x:{uid}:{gid}::/var/lib/torrent-stats:/usr/sbin/nologin\n"),
        group_line,
    ))
}

/// `Uid:`-style line of /proc/PID/status: its fields.
fn status_field(status: &str, key: &str) -> Vec<String> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// The mount covering `path` in a /proc/PID/mountinfo: (its root in the file system, its
/// mount options); the last of equally long mount points is the one on top.
fn mount_of(mountinfo: &str, path: &str) -> Option<(String, String)> {
    let mut best: Option<(usize, String, String)> = None;
    for line in mountinfo.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() < 6 {
            continue;
        }
        let point = f[4];
        let covers = path == point
            || point == "/"
            || (path.starts_with(point) && path.as_bytes().get(point.len()) == Some(&b'/'));
        if covers && best.as_ref().is_none_or(|(len, _, _)| point.len() >= *len) {
            best = Some((point.len(), f[3].to_string(), f[5].to_string()));
        }
    }
    best.map(|(_, root, opts)| (root, opts))
}

fn counter(totals: &Value, key: &str) -> Result<u64> {
    totals[key]
        .as_u64()
        .with_context(|| format!("{key} in {totals}"))
}

#[test]
#[ignore = "needs root, systemd, unshare and nsenter"]
fn the_unit_runs_the_daemon_under_a_real_systemd() -> Result<()> {
    let started = Instant::now();
    let systemd = Systemd::boot()?;
    match exercise(&systemd) {
        Ok(()) => {
            systemd.exit()?;
            println!("whole test: {:?}", started.elapsed());
            Ok(())
        }
        Err(e) => bail!("{e:#}\n{}", systemd.diagnostics()),
    }
}

fn exercise(systemd: &Systemd) -> Result<()> {
    // Type=notify: start returns once the daemon said READY=1, which it says once it
    // serves, so the first connection must work.
    let t = Instant::now();
    systemd.ctl_ok(&["start", "torrent-stats.service"])?;
    println!("systemctl start: {:?}", t.elapsed());
    let first = systemd
        .totals()
        .context("RPC right after systemctl start")?;
    let active = systemd.ctl_ok(&["is-active", "torrent-stats.service"])?;
    ensure!(active.trim() == "active", "is-active: {active}");
    let show = systemd
        .show("Type,NotifyAccess,ActiveState,SubState,Result,User,MainPID,StatusText,NRestarts")?;
    for (key, want) in [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("ActiveState", "active"),
        ("SubState", "running"),
        ("Result", "success"),
        ("User", "torrent-stats"),
        ("NRestarts", "0"),
    ] {
        ensure!(
            show[key] == want,
            "{key}={} (want {want}): {show:?}",
            show[key]
        );
    }
    ensure!(
        show["StatusText"].contains(&format!("Deluge RPC on {RPC_ADDR}")),
        "the daemon's STATUS= did not reach systemd: {show:?}"
    );
    let main: u32 = show["MainPID"].parse()?;
    println!("first totals: {first}");

    // The sandbox, seen from the host: the service's cgroup holds one process, the main
    // one, running as the service user with no capabilities, no new privileges, a
    // seccomp filter, a read-only file system but for its state directory.
    let procs = cgroup_procs(&systemd.cgroup.join("system.slice/torrent-stats.service"));
    ensure!(
        procs.len() == 1,
        "processes in the service's cgroup: {procs:?}"
    );
    let host_pid = procs[0];
    let status = fs::read_to_string(format!("/proc/{host_pid}/status"))?;
    ensure!(
        status_field(&status, "NSpid:").last() == Some(&main.to_string()),
        "{host_pid} is not MainPID {main}: {status}"
    );
    let uid = systemd.uid.to_string();
    let gid = systemd.gid.to_string();
    ensure!(
        status_field(&status, "Uid:").iter().all(|u| *u == uid),
        "{status}"
    );
    ensure!(
        status_field(&status, "Gid:").iter().all(|g| *g == gid),
        "{status}"
    );
    for (key, want) in [
        ("NoNewPrivs:", "1"),
        ("Seccomp:", "2"),
        ("CapEff:", "0000000000000000"),
        ("CapBnd:", "0000000000000000"),
    ] {
        ensure!(status_field(&status, key) == [want], "{key} in {status}");
    }
    let mountinfo = fs::read_to_string(format!("/proc/{host_pid}/mountinfo"))?;
    let opts = |path: &str| -> Result<(String, Vec<String>)> {
        let (root, opts) =
            mount_of(&mountinfo, path).with_context(|| format!("no mount for {path}"))?;
        Ok((root, opts.split(',').map(str::to_string).collect()))
    };
    for path in [
        "/",
        "/usr",
        "/usr/local/bin/torrent-stats",
        "/etc",
        "/var/lib",
    ] {
        let (_, o) = opts(path)?;
        ensure!(
            o.contains(&"ro".into()),
            "{path} is writable in the service: {o:?}\n{mountinfo}"
        );
    }
    let (_, o) = opts("/var/lib/torrent-stats")?;
    ensure!(
        o.contains(&"rw".into()),
        "the state directory is read-only: {o:?}\n{mountinfo}"
    );
    let (root, _) = opts("/tmp")?;
    ensure!(
        root.contains("systemd-private-"),
        "/tmp is not private: {root}\n{mountinfo}"
    );
    let (root, _) = opts("/home")?;
    ensure!(
        root.contains("inaccessible"),
        "/home is visible: {root}\n{mountinfo}"
    );
    let dir = fs::metadata(systemd.state_dir())?;
    ensure!(
        dir.mode() & 0o777 == 0o700 && dir.uid() == systemd.uid && dir.gid() == systemd.gid,
        "state directory mode {:o}, owner {}:{}",
        dir.mode() & 0o777,
        dir.uid(),
        dir.gid()
    );
    let auth = fs::metadata(systemd.state_dir().join("auth"))?;
    ensure!(
        auth.uid() == systemd.uid && auth.mode() & 0o077 == 0,
        "auth mode {:o}, owner {} (UMask=0077)",
        auth.mode() & 0o777,
        auth.uid()
    );

    // The sim traffic gets counted.
    wait_for("nonzero totals", Duration::from_secs(15), || {
        let t = systemd.totals()?;
        Ok((counter(&t, "total_upload")? > 0).then_some(()))
    })?;

    // reload: SIGHUP to the same process, which keeps serving.
    systemd.ctl_ok(&["reload", "torrent-stats.service"])?;
    systemd.wait_journal(main, "SIGHUP")?;
    let show = systemd.show("ActiveState,SubState,MainPID,NRestarts")?;
    ensure!(
        show["ActiveState"] == "active"
            && show["MainPID"] == main.to_string()
            && show["NRestarts"] == "0",
        "after reload: {show:?}"
    );
    systemd.totals().context("RPC after reload")?;

    // SIGKILL: no save, Restart=on-failure starts it again (after RestartSec=5s) from the
    // totals on disk.
    let t = Instant::now();
    systemd.ctl_ok(&["kill", "--signal=SIGKILL", "torrent-stats.service"])?;
    wait_for(
        "auto-restart after SIGKILL",
        Duration::from_secs(10),
        || Ok((systemd.show("SubState")?["SubState"] == "auto-restart").then_some(())),
    )?;
    let saved = offline_totals(&systemd.state_dir())?;
    ensure!(
        saved.total_upload > 0,
        "nothing saved before the kill: {saved:?}"
    );
    let restarted = wait_for("the restart after SIGKILL", Duration::from_secs(20), || {
        let s = systemd.show("ActiveState,SubState,MainPID,NRestarts")?;
        Ok(
            (s["ActiveState"] == "active" && s["SubState"] == "running" && s["NRestarts"] == "1")
                .then(|| s["MainPID"].parse::<u32>())
                .transpose()?,
        )
    })?;
    println!("SIGKILL to running again: {:?}", t.elapsed());
    ensure!(restarted != main, "MainPID {restarted} did not change");
    // systemd's own log of the kill (journald receives it asynchronously).
    wait_for(
        "systemd's log of the SIGKILL",
        Duration::from_secs(10),
        || {
            let out = systemd.nsenter(
                "journalctl",
                &["--no-pager", "-o", "cat", "-u", "torrent-stats.service"],
            )?;
            Ok(String::from_utf8_lossy(&out.stdout)
                .contains("status=9/KILL")
                .then_some(()))
        },
    )?;
    let after = systemd.totals().context("RPC after the restart")?;
    ensure!(
        counter(&after, "total_upload")? >= saved.total_upload
            && counter(&after, "total_download")? >= saved.total_download,
        "totals went back after the restart: saved {saved:?}, now {after}"
    );

    // stop: SIGTERM, the final save, exit 0.
    let before = systemd.totals()?;
    let t = Instant::now();
    systemd.ctl_ok(&["stop", "torrent-stats.service"])?;
    println!("systemctl stop: {:?}", t.elapsed());
    let show = systemd.show("ActiveState,Result,ExecMainStatus,MainPID")?;
    ensure!(
        show["ActiveState"] == "inactive"
            && show["Result"] == "success"
            && show["ExecMainStatus"] == "0",
        "after stop: {show:?}"
    );
    systemd.wait_journal(restarted, "stats saved")?;
    let last = offline_totals(&systemd.state_dir())?;
    ensure!(
        last.total_upload >= counter(&before, "total_upload")?
            && last.total_download >= counter(&before, "total_download")?,
        "the final save has less than the daemon served: {last:?} < {before}"
    );
    Ok(())
}
