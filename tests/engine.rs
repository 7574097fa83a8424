//! The embedded engine (librqbit): two engines in one process transfer a generated file
//! over 127.0.0.1 (no DHT, trackers, LSD or UPnP), each counted by its own Stats plugin;
//! the counts equal the engines' own payload counters and the file size, to the byte.

mod support;

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use serde_json::json;
use torrent_stats::export::AuthLevel;
use torrent_stats::host::PluginHost;
use torrent_stats::source::rqbit::librqbit::{
    create_torrent, limits::LimitsConfig, spawn_utils::BlockingSpawner, AddTorrent,
    AddTorrentOptions, CreateTorrentOptions,
};
use torrent_stats::source::{EngineOptions, RqbitEngine};
use torrent_stats::stats::{Stats, StatsHandle};

/// `len` deterministic pseudo-random bytes (xorshift64*), so pieces differ.
fn payload(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

async fn counted(engine: Arc<RqbitEngine>, dir: &Path) -> Result<(PluginHost, StatsHandle)> {
    support::write_conf(dir, 1);
    let host = PluginHost::open(engine, dir)?;
    let stats = Arc::new(Stats::new());
    let handle = stats.handle();
    host.register(stats).await?;
    host.enable("Stats").await?;
    Ok((host, handle))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_on_loopback_are_counted_to_the_byte() -> Result<()> {
    const SIZE: usize = 16 << 20;
    let seed_dir = tempfile::tempdir()?;
    let leech_dir = tempfile::tempdir()?;
    let stats_dirs = (tempfile::tempdir()?, tempfile::tempdir()?);
    let data = payload(SIZE);
    let file = seed_dir.path().join("payload.bin");
    std::fs::write(&file, &data)?;

    let seeder = Arc::new(RqbitEngine::start(EngineOptions::loopback(seed_dir.path())).await?);
    let created = create_torrent(
        &file,
        CreateTorrentOptions {
            name: None,
            trackers: vec![],
            piece_length: Some(256 << 10),
        },
        &BlockingSpawner::new(2),
    )
    .await?;
    let torrent = created.as_bytes()?;
    seeder
        .session()
        .add_torrent(
            AddTorrent::from_bytes(torrent.clone()),
            Some(AddTorrentOptions {
                overwrite: true,
                ..Default::default()
            }),
        )
        .await?
        .into_handle()
        .context("seeder: no handle")?
        .wait_until_completed()
        .await?; // the initial check finds every piece
    let seed_addr = seeder.listen_addr().context("seeder does not listen")?;

    let leecher = Arc::new(RqbitEngine::start(EngineOptions::loopback(leech_dir.path())).await?);
    let (seed_host, seed_stats) = counted(seeder.clone(), stats_dirs.0.path()).await?;
    let (leech_host, leech_stats) = counted(leecher.clone(), stats_dirs.1.path()).await?;
    // 8 MiB/s: the transfer spans a few polls.
    let limit = LimitsConfig {
        download_bps: NonZeroU32::new(8 << 20),
        upload_bps: None,
    };
    let handle = leecher
        .session()
        .add_torrent(
            AddTorrent::from_bytes(torrent),
            Some(AddTorrentOptions {
                initial_peers: Some(vec![seed_addr]),
                ratelimits: limit,
                ..Default::default()
            }),
        )
        .await?
        .into_handle()
        .context("leecher: no handle")?;
    let mut snapshots = leech_stats.watch();
    tokio::time::timeout(Duration::from_secs(120), handle.wait_until_completed())
        .await
        .context("the transfer did not finish within 120 s")??;
    // Stats saw the transfer while it ran, not only at the end.
    let seen = snapshots.borrow_and_update().totals.total_payload_download;
    ensure!(seen > 0, "no poll counted any download during the transfer");

    let down = leech_stats.poll_now().await?;
    let up = seed_stats.poll_now().await?;
    let (_, engine_down) = leecher.payload_counters();
    let (engine_up, _) = seeder.payload_counters();
    ensure!(
        down.total_payload_download == engine_down,
        "leecher: Stats {} vs engine {engine_down}",
        down.total_payload_download
    );
    ensure!(
        up.total_payload_upload == engine_up,
        "seeder: Stats {} vs engine {engine_up}",
        up.total_payload_upload
    );
    ensure!(
        engine_down == SIZE as u64 && engine_up == SIZE as u64,
        "engines moved {engine_down} down / {engine_up} up for a {SIZE}-byte file"
    );
    // Wire totals are not measured by librqbit: not invented, and get_status says so.
    ensure!(
        down.total_download == 0 && up.total_upload == 0,
        "{down:?} {up:?}"
    );
    let status = support::call(&leech_host, "stats.get_status", vec![], AuthLevel::Normal).await?;
    ensure!(
        status["measured"] == json!(["total_payload_upload", "total_payload_download"]),
        "{status}"
    );
    ensure!(
        status["source"].as_str().unwrap_or("").starts_with("rqbit"),
        "{status}"
    );
    let got = std::fs::read(leech_dir.path().join("payload.bin"))?;
    ensure!(got == data, "the downloaded file differs");

    leech_host.shutdown().await;
    seed_host.shutdown().await;
    leecher.stop().await;
    seeder.stop().await;
    Ok(())
}

/// Starts `torrent-stats daemon` on the embedded engine, loopback only.
fn engine_daemon(download: &Path) -> Result<support::daemon::DaemonProc> {
    let dir = tempfile::tempdir()?;
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_torrent-stats"));
    command
        .arg("daemon")
        .arg("--config-dir")
        .arg(dir.path())
        .arg("--download-dir")
        .arg(download)
        .args(["--port", "0", "--source", "rqbit", "--listen-port", "0"])
        .args(["--no-dht", "--no-trackers"]);
    support::daemon::DaemonProc::launch(command, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deluge_client_drives_two_engine_daemons() -> Result<()> {
    const SIZE: usize = 24 << 20;
    support::rpc::require_deluge_client()?;
    let seed_data = tempfile::tempdir()?;
    let leech_data = tempfile::tempdir()?;
    let work = tempfile::tempdir()?;
    let data = payload(SIZE);
    let file = seed_data.path().join("payload.bin");
    std::fs::write(&file, &data)?;
    let created = create_torrent(
        &file,
        CreateTorrentOptions {
            name: None,
            trackers: vec![],
            piece_length: Some(256 << 10),
        },
        &BlockingSpawner::new(2),
    )
    .await?;
    let torrent = work.path().join("payload.bin.torrent");
    std::fs::write(&torrent, created.as_bytes()?)?;

    let seeder = engine_daemon(seed_data.path())?;
    let leecher = engine_daemon(leech_data.path())?;
    let (seed_port, leech_port) = (seeder.port().to_string(), leecher.port().to_string());
    let size = SIZE.to_string();
    let run = support::rpc::run_python(
        "torrents.py",
        &[
            &seed_port,
            &seeder.password,
            &leech_port,
            &leecher.password,
            &torrent.display().to_string(),
            &size,
        ],
        Duration::from_secs(300),
    )?;
    ensure!(
        run.status.success() && run.stdout.contains("OK"),
        "torrents.py:\n{}\n{}\nseeder log:\n{}\nleecher log:\n{}",
        run.stdout,
        run.stderr,
        seeder.log(),
        leecher.log()
    );
    let got = std::fs::read(leech_data.path().join("payload.bin"))?;
    ensure!(
        got == data,
        "the downloaded file differs from the seeded one"
    );
    Ok(())
}

/// `deluge-console` until `check` accepts its output (at most 20 s).
fn console_until(
    d: &support::daemon::DaemonProc,
    command: &str,
    check: impl Fn(&str) -> bool,
) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = support::console::run(d.port(), &d.password, command);
        if check(&out) || std::time::Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deluge_console_adds_lists_pauses_resumes_and_removes() -> Result<()> {
    let data_dir = tempfile::tempdir()?;
    let work = tempfile::tempdir()?;
    let file = data_dir.path().join("console.bin");
    std::fs::write(&file, payload(2 << 20))?;
    let created = create_torrent(
        &file,
        CreateTorrentOptions {
            name: None,
            trackers: vec![],
            piece_length: Some(256 << 10),
        },
        &BlockingSpawner::new(2),
    )
    .await?;
    let id = created.info_hash().as_string();
    let torrent = work.path().join("console.torrent");
    std::fs::write(&torrent, created.as_bytes()?)?;
    let daemon = engine_daemon(data_dir.path())?;
    let run = |cmd: &str| support::console::run(daemon.port(), &daemon.password, cmd);

    let out = run(&format!("add {}", torrent.display()));
    ensure!(out.contains("Torrent added!"), "add: {out}");
    let out = console_until(&daemon, "info", |o| o.contains("[S]"));
    ensure!(
        out.contains("[S]")
            && out.contains("100%")
            && out.contains("console.bin")
            && out.contains(&id),
        "info: {out}"
    );
    let out = run("info -v");
    for want in [
        "Name: console.bin",
        &format!("ID: {id}"),
        "State: Seeding",
        "Size: 2.0 M ",
    ] {
        ensure!(out.contains(want), "info -v lacks {want:?}: {out}");
    }
    ensure!(
        !out.contains("Error getting torrent info"),
        "info -v: {out}"
    );

    run(&format!("pause {id}"));
    let out = console_until(&daemon, "info", |o| o.contains("[P]"));
    ensure!(out.contains("[P]"), "after pause: {out}");
    run(&format!("resume {id}"));
    let out = console_until(&daemon, "info", |o| o.contains("[S]"));
    ensure!(out.contains("[S]"), "after resume: {out}");

    let magnet_id = "0123456789abcdef0123456789abcdef01234567";
    let out = run(&format!("add magnet:?xt=urn:btih:{magnet_id}&dn=wanted"));
    ensure!(out.contains("Torrent added!"), "add magnet: {out}");
    let out = run("info");
    ensure!(
        out.contains(magnet_id) && out.contains("wanted"),
        "magnet in info: {out}"
    );
    let out = run("status");
    ensure!(out.contains("Total torrents: 2"), "status: {out}");

    run(&format!("rm --confirm {magnet_id}"));
    run(&format!("rm --confirm {id}"));
    let out = console_until(&daemon, "status", |o| o.contains("Total torrents: 0"));
    ensure!(out.contains("Total torrents: 0"), "after rm: {out}");
    ensure!(file.exists(), "rm without --remove_data keeps the data");
    Ok(())
}
