//! The daemon binary as a child process: `daemon --port 0` in a temporary config dir, its
//! port parsed from the `RPC listening on` line of its stderr (which a thread keeps
//! draining), and the localclient password from its auth file.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

/// The sim source every test daemon counts.
pub const SOURCE: &str = "sim:up=1MiB/s,down=4MiB/s,peers=3";
/// The name a daemon gives a `--source sim:…` (its kind): its files are in
/// [`source_files`](super::source_files)`(cfg, SIM)`.
pub const SIM: &str = "sim";
const LISTENING: &str = "RPC listening on ";
/// Followed by `http://` or `https://` and the address.
const WEB_LISTENING: &str = "Web listening on ";

/// `torrent-stats daemon` on port 0 in a temporary config dir.
pub struct DaemonProc {
    child: Option<Child>,
    pub pid: u32,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub password: String,
    log: Arc<Mutex<Vec<String>>>,
    web: Arc<Mutex<Option<SocketAddr>>>,
    reader: Option<JoinHandle<()>>,
}

/// `torrent-stats daemon` on config directory `dir` and `source`, RPC and web on ports 0
/// (the bound ones are in its log), `TORRENT_STATS_SOURCE` not inherited.
pub fn command(dir: &std::path::Path, source: &str) -> Command {
    let mut command = Command::new(super::BIN);
    command
        .arg("daemon")
        .arg("--config-dir")
        .arg(dir)
        .args(["--port", "0", "--web-port", "0", "--source", source])
        .env_remove("TORRENT_STATS_SOURCE");
    command
}

impl DaemonProc {
    /// Starts the daemon on [`SOURCE`] and waits (at most 20 s) for its `RPC listening on`
    /// line.
    pub fn start() -> Result<Self> {
        Self::start_with(SOURCE)
    }

    /// Starts the daemon on `source`.
    pub fn start_with(source: &str) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        Self::launch(command(dir.path(), source), dir)
    }

    /// Starts `command` (a daemon or an example serving RPC, using `dir` as its config
    /// directory) and waits for its `RPC listening on` line. Logs at `info` unless `command`
    /// sets `RUST_LOG`.
    pub fn launch(mut command: Command, dir: tempfile::TempDir) -> Result<Self> {
        // `info` unless the caller chose its own filter.
        if !command.get_envs().any(|(k, _)| k == "RUST_LOG") {
            command.env("RUST_LOG", "info");
        }
        let mut child = command
            .env("NO_COLOR", "1")
            .env_remove("TORRENT_STATS_CONFIG_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawn {:?}", command.get_program()))?;
        let stderr = child.stderr.take().context("piped stderr")?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let web = Arc::new(Mutex::new(None));
        let reader = {
            let log = log.clone();
            let web = web.clone();
            thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(at) = line.find(LISTENING) {
                        let _ = tx.send(line[at + LISTENING.len()..].trim().to_string());
                    }
                    if let Some(at) = line.find(WEB_LISTENING) {
                        let url = line[at + WEB_LISTENING.len()..].trim();
                        let addr = url.split_once("://").map_or(url, |(_, addr)| addr);
                        *web.lock().unwrap() = addr.parse().ok();
                    }
                    log.lock().unwrap().push(line);
                }
            })
        };
        let mut daemon = DaemonProc {
            pid: child.id(),
            child: Some(child),
            addr: "127.0.0.1:0".parse()?,
            dir,
            password: String::new(),
            log,
            web,
            reader: Some(reader),
        };
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addr) => addr,
            Err(_) => bail!(
                "the daemon printed no {LISTENING:?} line within 20 s; its log:\n{}",
                daemon.log()
            ),
        };
        daemon.addr = addr
            .parse()
            .with_context(|| format!("bad address in {LISTENING:?} line: {addr:?}"))?;
        let auth = std::fs::read_to_string(daemon.dir.path().join("auth"))?;
        daemon.password = auth
            .lines()
            .find_map(|l| l.strip_prefix("localclient:"))
            .and_then(|rest| rest.split(':').next())
            .context("no localclient line in the auth file")?
            .to_string();
        ensure!(daemon.password.len() == 40, "localclient password {auth:?}");
        Ok(daemon)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The web server's address, from its `Web listening on` line (printed right after
    /// the RPC one; waited for at most 5 s).
    pub fn web_addr(&self) -> Result<SocketAddr> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(addr) = *self.web.lock().unwrap() {
                return Ok(addr);
            }
            ensure!(
                Instant::now() < deadline,
                "no {WEB_LISTENING:?} line; log:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The web server's port.
    pub fn web_port(&self) -> Result<u16> {
        Ok(self.web_addr()?.port())
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Resident set size, KiB (`VmRSS` of `/proc/PID/status`).
    pub fn rss_kib(&self) -> Result<u64> {
        self.proc_status_kib("VmRSS:")
    }

    /// Peak resident set size, KiB (`VmHWM` of `/proc/PID/status`).
    pub fn peak_rss_kib(&self) -> Result<u64> {
        self.proc_status_kib("VmHWM:")
    }

    fn proc_status_kib(&self, field: &str) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let line = status
            .lines()
            .find(|l| l.starts_with(field))
            .with_context(|| format!("no {field} line"))?;
        let kib = line
            .split_whitespace()
            .nth(1)
            .context("VmRSS value")?
            .parse()?;
        Ok(kib)
    }

    /// Sends SIGTERM and waits (at most 20 s) for the exit.
    pub fn terminate(&mut self) -> Result<ExitStatus> {
        super::signal(self.pid, "TERM")?;
        self.wait_exit(Duration::from_secs(20))
    }

    /// SIGTERM (the daemon saves and exits 0), then its config dir back for a restart.
    pub fn stop(mut self) -> Result<tempfile::TempDir> {
        let status = self.terminate()?;
        ensure!(
            status.success(),
            "the daemon exited with {status}:\n{}",
            self.log()
        );
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir()?);
        Ok(dir)
    }

    /// Kills the process with SIGKILL (no chance to save), waits for it, and hands back
    /// its config directory for a restart.
    pub fn kill9(mut self) -> Result<tempfile::TempDir> {
        super::signal(self.pid, "KILL")?;
        self.wait_exit(Duration::from_secs(20))?;
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir()?);
        Ok(dir)
    }

    /// The config directory.
    pub fn config_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, limit: Duration) -> Result<ExitStatus> {
        let child = self.child.as_mut().context("already reaped")?;
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                bail!("daemon still running after {limit:?}; log:\n{}", self.log());
            }
            thread::sleep(Duration::from_millis(20));
        };
        self.child = None;
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        Ok(status)
    }
}

impl Drop for DaemonProc {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The all-time totals in `dir`'s files, read by `torrent-stats totals --offline --json`.
pub fn offline_totals(dir: &std::path::Path) -> Result<torrent_stats::Counters> {
    let out = Command::new(super::BIN)
        .args(["totals", "--offline", "--json", "--config-dir"])
        .arg(dir)
        .env_remove("TORRENT_STATS_CONFIG_DIR")
        .output()
        .context("run torrent-stats totals --offline")?;
    ensure!(
        out.status.success(),
        "totals --offline: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}
