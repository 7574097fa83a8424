//! For the RPC tests: a raw TLS client built on the crate's own framing and codec, and a
//! runner for the Python scripts.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use torrent_stats::rpc::tls::{self, CertPolicy};
use torrent_stats::unstable::codec;
use torrent_stats::unstable::frame;
use torrent_stats::unstable::frame::{FrameDecoder, Item, Limits};

use super::daemon::DaemonProc;

/// Output of a finished Python script.
pub struct PyRun {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Checks that `python3` (the one on PATH) has deluge-client 1.10.2: the interop tests
/// fail, not skip, without it.
pub fn require_deluge_client() -> Result<()> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import importlib.metadata as m, deluge_client; print(m.version('deluge-client'))",
        ])
        .output()
        .context(
            "python3 is not on PATH; the interop tests need it with deluge-client==1.10.2 \
             (scripts/test.sh installs it)",
        )?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    ensure!(
        out.status.success() && version == "1.10.2",
        "python3 needs deluge-client==1.10.2 (pip install deluge-client==1.10.2); found {:?}\n{}",
        version,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Runs `python3 cli/tests/python/<script> <args>` with a time limit, capturing its output.
pub fn run_python(script: &str, args: &[&str], limit: Duration) -> Result<PyRun> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let mut command = Command::new("python3");
    command
        .arg("-u")
        .arg(&path)
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let out = super::run_limited(command, limit).with_context(|| format!("python3 {script}"))?;
    Ok(PyRun {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Runs a script against `daemon` as `user`/`password`; fails with its output and the
/// daemon's log unless it exits 0.
pub fn python_ok(daemon: &DaemonProc, script: &str, user: &str, password: &str) -> Result<String> {
    let port = daemon.port().to_string();
    let started = Instant::now();
    let run = run_python(
        script,
        &["127.0.0.1", &port, user, password],
        Duration::from_secs(60),
    )?;
    println!(
        "{script}: exit {} after {:?}\n{}",
        run.status,
        started.elapsed(),
        run.stdout
    );
    if !run.status.success() {
        bail!(
            "{script} failed ({})\n--- stdout:\n{}\n--- stderr:\n{}\n--- daemon log:\n{}",
            run.status,
            run.stdout,
            run.stderr,
            daemon.log()
        );
    }
    Ok(run.stdout)
}

/// Limits generous enough for any reply the daemon sends.
fn client_limits() -> Limits {
    Limits {
        max_frame: 64 << 20,
        max_inflated: 64 << 20,
        max_depth: 1000,
    }
}

/// A raw client: TLS, the crate's own framing and rencode, no protocol logic.
pub struct Raw {
    stream: TlsStream<TcpStream>,
    decoder: FrameDecoder,
    next_id: i64,
}

impl Raw {
    /// Connects and completes the TLS handshake (any certificate).
    pub async fn connect(addr: SocketAddr) -> Result<Raw> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let config = tls::client_config(CertPolicy::AnyCertificate)?;
        let name = rustls::pki_types::ServerName::try_from("localhost")?;
        let stream = tokio::time::timeout(
            Duration::from_secs(5),
            TlsConnector::from(config).connect(name, tcp),
        )
        .await
        .context("TLS handshake timed out")??;
        Ok(Raw {
            stream,
            decoder: FrameDecoder::new(client_limits()),
            next_id: 0,
        })
    }

    /// Connects and logs in.
    pub async fn login(addr: SocketAddr, user: &str, password: &str) -> Result<Raw> {
        let mut raw = Raw::connect(addr).await?;
        let level = raw
            .call_ok(
                "daemon.login",
                json!([user, password]),
                json!({"client_version": "raw-rust"}),
            )
            .await?;
        ensure!(level.is_u64(), "login returned {level}");
        Ok(raw)
    }

    /// Writes bytes as they are and flushes (one TLS record per call).
    pub async fn send_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// A fresh request id.
    pub fn id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    /// Sends one call in a v1 frame; returns its id.
    pub async fn send_call(&mut self, method: &str, args: Value, kwargs: Value) -> Result<i64> {
        let id = self.id();
        let payload = json!([[id, method, args, kwargs]]);
        self.send_bytes(&frame::encode(&codec::encode(&payload)))
            .await?;
        Ok(id)
    }

    /// The next message, `None` if none arrives within `wait`; an error if the server
    /// closed the connection.
    pub async fn recv(&mut self, wait: Duration) -> Result<Option<Value>> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Some(item) = self.decoder.next_item()? {
                let Item::Message(body) = item else {
                    bail!("the server sent a legacy probe frame");
                };
                return Ok(Some(codec::decode(&body, 1000)?));
            }
            let n = match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Err(_) => return Ok(None),
                Ok(read) => read?,
            };
            if n == 0 {
                bail!("connection closed by the server");
            }
            self.decoder.extend(&buf[..n]);
        }
    }

    /// Calls `method` and returns the whole reply (`[1, id, value]` or `[2, id, ...]`),
    /// failing on anything else first or no reply within 5 s.
    pub async fn call(&mut self, method: &str, args: Value, kwargs: Value) -> Result<Value> {
        let id = self.send_call(method, args, kwargs).await?;
        let reply = self
            .recv(Duration::from_secs(5))
            .await?
            .ok_or_else(|| anyhow!("no reply to {method} within 5 s"))?;
        ensure!(
            reply[1] == json!(id) && matches!(reply[0].as_i64(), Some(1 | 2)),
            "{method} (id {id}) got {reply}"
        );
        Ok(reply)
    }

    /// Calls `method`; its return value, or an error naming the remote exception.
    pub async fn call_ok(&mut self, method: &str, args: Value, kwargs: Value) -> Result<Value> {
        let reply = self.call(method, args, kwargs).await?;
        ensure!(reply[0] == json!(1), "{method} failed: {reply}");
        Ok(reply[2].clone())
    }

    /// `stats.get_totals`, checked to be a dict of the four counters.
    pub async fn totals(&mut self) -> Result<Value> {
        let t = self
            .call_ok("stats.get_totals", json!([]), json!({}))
            .await?;
        ensure!(
            t.as_object().is_some_and(|m| m.len() == 4) && t["total_upload"].is_u64(),
            "stats.get_totals returned {t}"
        );
        Ok(t)
    }

    /// Whether the server closes the connection within `wait` (anything it sends first
    /// is discarded).
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Closes the write side (TLS close_notify, then FIN).
    pub async fn shutdown(&mut self) -> Result<()> {
        self.stream.shutdown().await?;
        Ok(())
    }
}

/// Whether a plain TCP connection is closed by the server within `wait`.
pub async fn tcp_closed_within(tcp: &mut TcpStream, wait: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// Calls `method` with `args` on daemon `d` as localclient, over a connection of its own
/// on a runtime of its own (for the tests that are not async).
pub fn call_blocking(d: &DaemonProc, method: &str, args: Value) -> Result<Value> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let mut raw = Raw::login(d.addr, "localclient", &d.password).await?;
            raw.call_ok(method, args, json!({})).await
        })
}

/// The four counters of a dict (`stats.get_totals`, a calendar row), in the order of
/// [`COUNTERS`](super::COUNTERS).
pub fn counters_in(v: &Value) -> Result<[u64; 4]> {
    let mut out = [0; 4];
    for (slot, key) in out.iter_mut().zip(super::COUNTERS) {
        *slot = v[key]
            .as_u64()
            .with_context(|| format!("{key} is not a count in {v}"))?;
    }
    Ok(out)
}
