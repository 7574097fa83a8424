//! Deluge 2.2.0's console (PyPI, newer than Debian's 2.0.3) against the daemon on the
//! embedded engine: `connect`, `status`, `info`, `add`, `rm`. Its `status` reads
//! `dht.dht_nodes` and `peer.num_peers_connected` from `core.get_session_status` and hung
//! when a key was missing; every run has a time limit. The console prints a harmless
//! traceback of its own on stderr (`started_deferred`, against Debian's deluged too).

use anyhow::{ensure, Result};

use crate::engine::{engine_command, payload, torrent_of};
use crate::support;
use crate::support::daemon::DaemonProc;

/// The 2.2.0 console's `command` against `daemon`, until `check` accepts its output (at
/// most 20 s: `add` and `rm` are not waited for by the console).
fn until(daemon: &DaemonProc, command: &str, check: impl Fn(&str) -> bool) -> String {
    let console = support::console::deluge_22_console();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let out = support::console::run_program(&console, daemon.port(), &daemon.password, command);
        if check(&out) || std::time::Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Deluge 2.2.0's console (scripts/install/deluge22.sh)"]
async fn deluge_22_console_status_info_add_and_rm() -> Result<()> {
    let data = tempfile::tempdir()?;
    let work = tempfile::tempdir()?;
    let file = data.path().join("console22.bin");
    std::fs::write(&file, payload(3 << 20))?;
    let (id, bytes) = torrent_of(&file).await?;
    let torrent = work.path().join("console22.torrent");
    std::fs::write(&torrent, bytes)?;
    let config = tempfile::tempdir()?;
    let daemon = DaemonProc::launch(engine_command(config.path(), data.path()), config)?;

    let out = until(&daemon, "status", |o| o.contains("Total torrents:"));
    for want in [
        "Total upload:",
        "Total download:",
        "DHT Nodes: 0",
        "Total torrents: 0",
    ] {
        ensure!(
            out.contains(want),
            "status lacks {want:?}:\n{out}\n{}",
            daemon.log()
        );
    }

    let out = until(&daemon, &format!("add {}", torrent.display()), |o| {
        o.contains("Torrent added!")
    });
    ensure!(out.contains("Torrent added!"), "add: {out}");
    let out = until(&daemon, "info", |o| o.contains("[S]"));
    ensure!(
        out.contains("[S]")
            && out.contains("100%")
            && out.contains("console22.bin")
            && out.contains(&id),
        "info: {out}"
    );
    let out = until(&daemon, "info -v", |o| o.contains("State: Seeding"));
    for want in [
        "Name: console22.bin".to_string(),
        format!("ID: {id}"),
        "State: Seeding".into(),
        "Size: 3.0 M".into(),
    ] {
        ensure!(out.contains(&want), "info -v lacks {want:?}: {out}");
    }
    let out = until(&daemon, "status", |o| o.contains("Seeding: 1"));
    ensure!(
        out.contains("Total torrents: 1") && out.contains("Seeding: 1"),
        "status with a torrent: {out}"
    );

    until(&daemon, &format!("rm --confirm {id}"), |_| true);
    let out = until(&daemon, "status", |o| o.contains("Total torrents: 0"));
    ensure!(out.contains("Total torrents: 0"), "after rm: {out}");
    ensure!(file.exists(), "rm without --remove_data keeps the data");
    Ok(())
}
