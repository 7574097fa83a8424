//! Two embedded engines in one process, a seeder and a downloader on 127.0.0.1, each
//! counted by its own Stats plugin: watch the totals grow, then see them checked against
//! the engines' own counters and the file size, to the byte.
//!
//! ```text
//! cargo run --example loopback_swarm                       # 32 MiB at 8 MiB/s
//! cargo run --example loopback_swarm -- 256 32             # 256 MiB at 32 MiB/s
//! cargo run --release --example loopback_swarm -- 512 0 --no-stats   # unlimited, no Stats
//! ```
//!
//! A rate of 0 is unlimited; `--no-stats` runs the same transfer without the Stats plugins
//! (what `scripts/bench/engine_overhead.sh` compares). The last line gives the throughput.
//!
//! No DHT, trackers, LSD or UPnP: nothing leaves the machine. Exits 0 only if every count
//! is exact.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use librqbit::{
    create_torrent, limits::LimitsConfig, spawn_utils::BlockingSpawner, AddTorrent,
    AddTorrentOptions, CreateTorrentOptions,
};
use torrent_stats::units::format_bytes;
use torrent_stats::PluginHost;
use torrent_stats::{EngineOptions, RqbitEngine};
use torrent_stats::{Stats, StatsHandle};

/// `len` deterministic pseudo-random bytes (xorshift64*), so every piece differs.
fn payload(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A host with Stats (polling every second) on `engine`, files in `dir`.
async fn counted(
    engine: Arc<RqbitEngine>,
    dir: &Path,
) -> anyhow::Result<(PluginHost, StatsHandle)> {
    let host = PluginHost::open(engine, dir)?;
    let stats = Arc::new(Stats::new());
    let handle = stats.handle();
    host.register(stats).await?;
    host.enable("Stats").await?;
    handle
        .set_config(torrent_stats::ConfigChange::new().update_interval(1))
        .await?;
    Ok((host, handle))
}

/// Starts the download of `torrent` from the seeder at `seed_addr` (rate MiB/s, 0: none).
async fn download(
    leecher: &RqbitEngine,
    seed_addr: SocketAddr,
    torrent: Vec<u8>,
    rate: u32,
) -> anyhow::Result<Arc<librqbit::ManagedTorrent>> {
    leecher
        .session()
        .add_torrent(
            AddTorrent::from_bytes(torrent),
            Some(AddTorrentOptions {
                initial_peers: Some(vec![seed_addr]),
                ratelimits: LimitsConfig {
                    download_bps: NonZeroU32::new(rate << 20),
                    upload_bps: None,
                },
                ..Default::default()
            }),
        )
        .await?
        .into_handle()
        .context("leecher: no torrent handle")
}

fn throughput(size: usize, elapsed: Duration) {
    println!(
        "throughput: {} in {:.3} s = {:.1} MiB/s",
        format_bytes(size as u64),
        elapsed.as_secs_f64(),
        size as f64 / 1048576.0 / elapsed.as_secs_f64()
    );
}

/// The same transfer with no Stats plugin: the baseline of the overhead benchmark.
async fn bare_transfer(
    leecher: &RqbitEngine,
    seeder: &RqbitEngine,
    torrent: Vec<u8>,
    rate: u32,
    size: usize,
    data: &[u8],
    leech_dir: &Path,
) -> anyhow::Result<()> {
    let seed_addr = seeder.listen_addr().context("the seeder does not listen")?;
    let started = Instant::now();
    download(leecher, seed_addr, torrent, rate)
        .await?
        .wait_until_completed()
        .await?;
    let elapsed = started.elapsed();
    ensure!(
        leecher.payload_counters().1 == size as u64,
        "the engine moved another amount"
    );
    ensure!(
        std::fs::read(leech_dir.join("swarm.bin"))? == data,
        "the copy differs"
    );
    println!("no Stats plugin; the copy is identical");
    throughput(size, elapsed);
    leecher.stop().await;
    seeder.stop().await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let with_stats = !args.iter().any(|a| a == "--no-stats");
    let mut numbers = args.iter().filter(|a| !a.starts_with("--"));
    let mib: usize = numbers.next().map_or(Ok(32), |a| a.parse())?;
    let rate: u32 = numbers.next().map_or(Ok(8), |a| a.parse())?;
    let size = mib << 20;
    let work = tempfile::tempdir()?;
    let (seed_dir, leech_dir) = (work.path().join("seed"), work.path().join("leech"));
    std::fs::create_dir_all(&seed_dir)?;
    let data = payload(size);
    let file = seed_dir.join("swarm.bin");
    std::fs::write(&file, &data)?;

    let seeder = Arc::new(RqbitEngine::start(EngineOptions::loopback(&seed_dir)).await?);
    let torrent = create_torrent(
        &file,
        CreateTorrentOptions {
            name: None,
            trackers: vec![],
            piece_length: Some(256 << 10),
        },
        &BlockingSpawner::new(2),
    )
    .await?
    .as_bytes()?
    .to_vec();
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
        .context("seeder: no torrent handle")?
        .wait_until_completed()
        .await?; // its check finds every piece
    let seed_addr = seeder.listen_addr().context("the seeder does not listen")?;
    let leecher = Arc::new(RqbitEngine::start(EngineOptions::loopback(&leech_dir)).await?);
    if !with_stats {
        return bare_transfer(&leecher, &seeder, torrent, rate, size, &data, &leech_dir).await;
    }
    let (seed_host, seed_stats) = counted(seeder.clone(), &work.path().join("seed-stats")).await?;
    let (leech_host, leech_stats) =
        counted(leecher.clone(), &work.path().join("leech-stats")).await?;

    println!(
        "{} at {rate} MiB/s over 127.0.0.1 ({seed_addr})",
        format_bytes(size as u64)
    );
    let started = Instant::now();
    let handle = download(&leecher, seed_addr, torrent, rate).await?;
    let mut snapshots = leech_stats.watch();
    let done = handle.wait_until_completed();
    tokio::pin!(done);
    let mut polls_with_bytes = 0;
    loop {
        tokio::select! {
            result = &mut done => { result?; break; }
            changed = snapshots.changed() => {
                changed?;
                let snap = snapshots.borrow_and_update().clone();
                if snap.totals.total_payload_download > 0 {
                    polls_with_bytes += 1;
                }
                println!(
                    "downloader: {:>10} down at {:>10}/s   seeder: {:>10} up",
                    format_bytes(snap.totals.total_payload_download),
                    format_bytes(snap.rates.payload_download_rate),
                    format_bytes(seed_stats.totals()?.total_payload_upload),
                );
            }
        }
    }
    let elapsed = started.elapsed();
    // A limited transfer spans several polls: they must have seen it (an unlimited one
    // may finish between two).
    ensure!(
        rate == 0 || polls_with_bytes > 0,
        "no poll saw the transfer while it ran"
    );

    let down = leech_stats.poll_now().await?;
    let up = seed_stats.poll_now().await?;
    let (_, engine_down) = leecher.payload_counters();
    let (engine_up, _) = seeder.payload_counters();
    println!(
        "downloader counted {} (engine {engine_down}), seeder counted {} (engine {engine_up}), file {size}",
        down.total_payload_download, up.total_payload_upload
    );
    ensure!(
        down.total_payload_download == engine_down,
        "downloader: Stats != engine"
    );
    ensure!(
        up.total_payload_upload == engine_up,
        "seeder: Stats != engine"
    );
    ensure!(
        engine_down == size as u64 && engine_up == size as u64,
        "the engines moved {engine_down} down and {engine_up} up for a {size}-byte file"
    );
    // librqbit counts payload only: the wire totals are not invented.
    ensure!(
        down.total_download == 0 && up.total_upload == 0,
        "wire totals: {down:?} {up:?}"
    );
    let status = leech_stats.status()?;
    ensure!(
        status.measured == ["total_payload_upload", "total_payload_download"],
        "measured: {:?}",
        status.measured
    );
    ensure!(
        std::fs::read(leech_dir.join("swarm.bin"))? == data,
        "the copy differs"
    );
    println!("counted to the byte on both sides; the copy is identical");
    throughput(size, elapsed);

    leech_host.shutdown().await;
    seed_host.shutdown().await;
    leecher.stop().await;
    seeder.stop().await;
    Ok(())
}
