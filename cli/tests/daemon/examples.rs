//! The embedding examples run to completion: `examples/embed.rs` (engine restart counted
//! to the byte, a custom plugin, typed handles) and `examples/embed_rpc.rs` (Deluge RPC
//! from the app's own process, called by the stock deluge-client, stopped by it).
//!
//! The example binaries are built by `cargo build --examples` (scripts/test.sh does it
//! first); without them this test fails and says so.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};

use crate::support::daemon::DaemonProc;
use crate::support::rpc::{require_deluge_client, run_python};

/// `target/<profile>/examples/<name>`, next to this test's own `deps/` directory: built by
/// `cargo build --examples` (scripts/test.sh does; `cargo test --all-targets` builds the
/// examples only as test harnesses).
fn example(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("test binary has no target dir")?
        .join("examples")
        .join(name);
    ensure!(
        path.is_file(),
        "{} is missing: build the examples first (cargo build --all-features --examples)",
        path.display()
    );
    Ok(path)
}

#[test]
fn embed_counts_an_engine_restart_to_the_byte() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = Command::new(example("embed")?)
        .arg(dir.path())
        .env("NO_COLOR", "1")
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "embed failed\n{stdout}\n{stderr}");
    ensure!(
        stdout.contains("counted to the byte across the engine restart"),
        "{stdout}"
    );
    ensure!(stdout.contains("\"user\":\"alice\""), "{stdout}");
    // Saved for the next run.
    let totals = std::fs::read_to_string(dir.path().join("stats.totals"))?;
    ensure!(totals.contains("total_upload"), "{totals}");
    Ok(())
}

#[test]
#[ignore = "needs python3 with deluge-client"]
fn embed_rpc_serves_deluge_client_and_stops_on_its_request() -> Result<()> {
    require_deluge_client()?;
    let dir = tempfile::tempdir()?;
    let mut command = Command::new(example("embed_rpc")?);
    command.arg(dir.path()).arg("0");
    let mut app = DaemonProc::launch(command, dir)?;
    let port = app.port().to_string();
    let run = run_python(
        "embed_rpc.py",
        &["127.0.0.1", &port, "localclient", &app.password],
        Duration::from_secs(60),
    )?;
    ensure!(
        run.status.success() && run.stdout.contains("OK"),
        "deluge-client against embed_rpc:\n{}\n{}\napp log:\n{}",
        run.stdout,
        run.stderr,
        app.log()
    );
    let status = app.wait_exit(Duration::from_secs(20))?;
    ensure!(status.success(), "embed_rpc exited {status}\n{}", app.log());
    Ok(())
}

#[test]
fn loopback_swarm_counts_both_engines_to_the_byte() -> Result<()> {
    let out = Command::new(example("loopback_swarm")?)
        .args(["32", "8"])
        .env("NO_COLOR", "1")
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.success(),
        "loopback_swarm failed\n{stdout}\n{stderr}"
    );
    ensure!(
        stdout.contains("counted to the byte on both sides; the copy is identical"),
        "{stdout}"
    );
    ensure!(
        stdout.matches("downloader:").count() >= 2,
        "the totals were not seen growing: {stdout}"
    );
    Ok(())
}
