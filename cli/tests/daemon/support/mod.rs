//! Shared helpers for the daemon's tests: the daemon binary as a child process
//! ([`daemon`]), its calendar ledger read through the library ([`ledger`]), a raw RPC
//! client and the Python runner ([`rpc`]), Deluge's own programs ([`console`],
//! [`deluged`], [`gtk`]), Flood, the web UI ([`flood`]), Transmission's and
//! qBittorrent's daemons and a tracker between them ([`transmission`], [`qbittorrent`],
//! [`tracker`]; the library's tests use them too), the in-process source and host the
//! library's tests use too (`tests/support/in_process.rs`), and what several tests need: the binary's path, the
//! counter names, the wall clock, a replayable random source, signals.
#![allow(dead_code)]

pub mod console;
pub mod daemon;
#[path = "../../../../tests/support/deluged.rs"]
pub mod deluged;
pub mod flood;
pub mod gtk;
#[path = "../../../../tests/support/in_process.rs"]
mod in_process;
pub mod ledger;
#[path = "../../../../tests/support/qbittorrent.rs"]
pub mod qbittorrent;
pub mod rpc;
#[path = "../../../../tests/support/tracker.rs"]
pub mod tracker;
#[path = "../../../../tests/support/transmission.rs"]
pub mod transmission;

#[path = "../../../../tests/support/tail.rs"]
mod tail;

pub use in_process::*;
pub use tail::*;

use std::time::Duration;

use anyhow::{Context, Result};
use torrent_stats::Counters;

/// The daemon binary Cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_torrent-stats");

/// The four all-time counters, in the order of [`counter_values`].
pub const COUNTERS: [&str; 4] = [
    "total_upload",
    "total_download",
    "total_payload_upload",
    "total_payload_download",
];

/// The values of `c` in the order of [`COUNTERS`].
pub fn counter_values(c: &Counters) -> [u64; 4] {
    [
        c.total_upload,
        c.total_download,
        c.total_payload_upload,
        c.total_payload_download,
    ]
}

/// The wall clock, as the daemon's files write it: the library's.
pub use torrent_stats::clock::{unix_nanos, unix_now};

/// The directory of the daemon's source `name` under config dir `cfg`
/// (`sources/<name>/`): its `stats.totals`, `stats.history`, their `.bak`s, lock and temp
/// files.
pub fn source_files(cfg: &std::path::Path, name: &str) -> std::path::PathBuf {
    cfg.join(torrent_stats::SOURCES_DIR).join(name)
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Sends signal `name` (as kill(1) names it: `TERM`, `HUP`, `KILL`…) to process `pid`, from
/// this process (kill(2)).
pub fn signal(pid: u32, name: &str) -> Result<()> {
    let sig: nix::sys::signal::Signal = format!("SIG{name}")
        .parse()
        .with_context(|| format!("no signal SIG{name}"))?;
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid)?);
    nix::sys::signal::kill(pid, sig).with_context(|| format!("kill -{name} {pid}"))
}

/// xorshift64: enough randomness for kill moments, and replayable from the seed it prints.
pub struct XorShift(u64);

impl XorShift {
    /// Seeded from the environment variable `var` if set, else from the clock; prints the
    /// seed and how to replay it.
    pub fn from_env_or_clock(var: &str) -> Self {
        let seed = std::env::var(var)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(unix_nanos() as u64)
            .max(1);
        println!("seed {seed} (set {var}={seed} to replay)");
        XorShift(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform enough in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// Runs `command` with its output captured; kills it (the process this test started) and
/// fails with what it printed if it has not finished within `limit`.
pub fn run_limited(
    mut command: std::process::Command,
    limit: Duration,
) -> Result<std::process::Output> {
    use std::io::Read;
    use std::process::Stdio;
    let what = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawn {what}"))?;
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().context("stdout")?));
    let err = drain(Box::new(child.stderr.take().context("stderr")?));
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!(
                "{what} did not finish within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.join().unwrap_or_default()),
                String::from_utf8_lossy(&err.join().unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Ok(std::process::Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}
