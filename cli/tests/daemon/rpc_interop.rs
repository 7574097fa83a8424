//! Our daemon binary against the stock Python client, deluge-client 1.10.2, and raw
//! clients: every `stats.*` method with Deluge's result shapes, errors the client can
//! raise as the server's own classes, auth levels, events, shutdown, and deluge-client's
//! version probe however its three messages are split.
//!
//! Each test starts `torrent-stats daemon --port 0` in a temporary config dir, reads the
//! port from its `RPC listening on` line and the localclient password from `auth`, then
//! runs `python3 cli/tests/python/<script>.py HOST PORT USER PASSWORD` (which must exit 0).
//! `python3` must have deluge-client 1.10.2 (scripts/test.sh installs it): without it the
//! tests fail.
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use torrent_stats::unstable;
use torrent_stats::unstable::codec;
use torrent_stats::unstable::frame;
use torrent_stats::Accumulator;

use crate::support::daemon::{DaemonProc, SIM};
use crate::support::rpc::{python_ok, require_deluge_client, Raw};
use crate::support::source_files;

fn start() -> Result<DaemonProc> {
    require_deluge_client()?;
    DaemonProc::start()
}

#[test]
#[ignore = "needs python3 with deluge-client"]
fn deluge_client_calls_every_stats_method() -> Result<()> {
    let daemon = start()?;
    python_ok(&daemon, "stats_methods.py", "localclient", &daemon.password)?;
    Ok(())
}

#[test]
#[ignore = "needs python3 with deluge-client"]
fn deluge_client_gets_the_servers_errors_and_the_connection_survives() -> Result<()> {
    let daemon = start()?;
    python_ok(&daemon, "errors.py", "localclient", &daemon.password)?;
    Ok(())
}

#[test]
#[ignore = "needs python3 with deluge-client"]
fn readonly_account_added_while_running() -> Result<()> {
    let mut daemon = start()?;
    let auth = daemon.dir.path().join("auth");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&auth)?
        .write_all(b"ro:pw:READONLY\n")?;
    python_ok(&daemon, "readonly.py", "ro", "pw")?;
    ensure!(daemon.running(), "daemon exited:\n{}", daemon.log());
    Ok(())
}

#[test]
#[ignore = "needs python3 with deluge-client"]
fn events_reach_only_subscribers() -> Result<()> {
    let daemon = start()?;
    python_ok(&daemon, "events.py", "localclient", &daemon.password)?;
    Ok(())
}

#[test]
#[ignore = "needs python3 with deluge-client"]
fn shutdown_over_rpc_exits_cleanly_with_totals_saved() -> Result<()> {
    let mut daemon = start()?;
    // Let the sim move some traffic so the saved totals are not trivially zero.
    std::thread::sleep(Duration::from_millis(300));
    let out = python_ok(&daemon, "shutdown.py", "localclient", &daemon.password)?;
    let seen: Value = serde_json::from_str(out.lines().last().context("no output")?)?;
    let status = daemon.wait_exit(Duration::from_secs(15))?;
    ensure!(
        status.success(),
        "daemon exited with {status}; log:\n{}",
        daemon.log()
    );
    let path = source_files(daemon.dir.path(), SIM).join("stats.totals");
    let acc = unstable::read::<Accumulator>(&path).map_err(|e| {
        anyhow::anyhow!(
            "{} does not parse: {e:?}\n{}",
            path.display(),
            std::fs::read_to_string(&path).unwrap_or_default()
        )
    })?;
    let t = &acc.totals;
    let saved = [
        ("total_upload", t.total_upload),
        ("total_download", t.total_download),
        ("total_payload_upload", t.total_payload_upload),
        ("total_payload_download", t.total_payload_download),
    ];
    for (name, value) in saved {
        let before = seen[name].as_u64().context(name)?;
        ensure!(
            value >= before && value > 0,
            "{name}: saved {value}, a client saw {before} before the shutdown"
        );
    }
    Ok(())
}

/// deluge-client's three `daemon.info` probes (request ids 2, 3, 4, as it numbers them):
/// a bare zlib stream, `b'D'` + i32 length + body, and a v1 frame.
fn probes() -> (Vec<Vec<u8>>, i64) {
    let body = |id: i64| frame::deflate(&codec::encode(&json!([[id, "daemon.info", [], {}]])));
    let v1x = body(2);
    let mut pre = vec![b'D'];
    let b = body(3);
    pre.extend_from_slice(&(b.len() as i32).to_be_bytes());
    pre.extend_from_slice(&b);
    (
        vec![
            v1x,
            pre,
            frame::encode(&codec::encode(&json!([[4, "daemon.info", [], {}]]))),
        ],
        4,
    )
}

async fn probe_case(daemon: &DaemonProc, how: &str) -> Result<()> {
    let mut raw = Raw::connect(daemon.addr).await?;
    let (messages, v1_id) = probes();
    match how {
        "one write" => raw.send_bytes(&messages.concat()).await?,
        "byte by byte" => {
            for byte in messages.concat() {
                raw.send_bytes(&[byte]).await?;
            }
        }
        "three writes" => {
            for m in &messages {
                raw.send_bytes(m).await?;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        other => anyhow::bail!("unknown case {other}"),
    }
    let started = Instant::now();
    let reply = raw
        .recv(Duration::from_secs(5))
        .await?
        .with_context(|| format!("{how}: no answer to the v1 probe"))?;
    let latency = started.elapsed();
    ensure!(
        reply[0] == json!(1)
            && reply[1] == json!(v1_id)
            && reply[2].as_str().is_some_and(|v| v.starts_with("2.")),
        "{how}: the v1 probe got {reply}"
    );
    ensure!(
        latency < Duration::from_secs(1),
        "{how}: answered after {latency:?}"
    );
    let extra = raw.recv(Duration::from_millis(300)).await?;
    ensure!(
        extra.is_none(),
        "{how}: the legacy probes were answered too: {extra:?}"
    );
    let version = raw.call_ok("daemon.info", json!([]), json!({})).await?;
    ensure!(version == reply[2], "{how}: daemon.info {version}");
    let level = raw
        .call_ok(
            "daemon.login",
            json!(["localclient", daemon.password]),
            json!({"client_version": "probe-test"}),
        )
        .await?;
    ensure!(level == json!(10), "{how}: login returned {level}");
    raw.totals().await.with_context(|| how.to_string())?;
    Ok(())
}

#[test]
fn version_probe_however_split() -> Result<()> {
    let daemon = DaemonProc::start()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        for how in ["one write", "byte by byte", "three writes"] {
            probe_case(&daemon, how)
                .await
                .with_context(|| format!("daemon log:\n{}", daemon.log()))?;
        }
        anyhow::Ok(())
    })
}
