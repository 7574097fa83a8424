//! The embedded engine alone (librqbit through `RqbitEngine`, no Stats, no RPC, no web
//! server) holding torrents, for measuring what librqbit costs by itself: the
//! engine-floor figures in docs/engine-floor.md set this program against the daemon
//! holding the same torrents.
//!
//! usage: cargo run --release --example engine_floor --features rqbit -- DATA STATE [TORRENTS]
//!   DATA: where the torrents' data is (and goes); STATE: the engine's state directory
//!   (its torrent list and fast-resume data, as the daemon's `rqbit/` in its config
//!   directory); TORRENTS: a directory whose `*.torrent` files are added (into DATA) if
//!   the engine does not hold them yet.
//! Loopback only, no DHT, trackers or LSD; the same runtime as the daemon (2 workers).
//! Prints `engine ready: N torrents` once started and added, and stops on SIGTERM or
//! Ctrl-C.

use std::path::PathBuf;
use std::time::Instant;

use torrent_stats::{
    AddOptions, EngineOptions, RqbitEngine, TorrentEngine, TorrentError, TorrentSource,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (data, state) = match (args.first(), args.get(1)) {
        (Some(d), Some(s)) => (PathBuf::from(d), PathBuf::from(s)),
        _ => return Err("usage: engine_floor DATA STATE [TORRENTS]".into()),
    };
    let torrents = args.get(2).map(PathBuf::from);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run(data, state, torrents))
}

async fn run(
    data: PathBuf,
    state: PathBuf,
    torrents: Option<PathBuf>,
) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let mut opts = EngineOptions::loopback(&data);
    opts.state_dir = Some(state);
    let engine = RqbitEngine::start(opts).await?;
    let restored = engine.torrents().len();
    eprintln!(
        "engine started: {restored} torrents restored in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    if let Some(dir) = torrents {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "torrent"))
            .collect();
        files.sort();
        for file in files {
            let mut options = AddOptions::default();
            options.download_location = Some(data.clone());
            match engine
                .add(TorrentSource::File(std::fs::read(&file)?), options)
                .await
            {
                Ok(_) | Err(TorrentError::AlreadyAdded(_)) => {}
                Err(e) => return Err(format!("{}: {e}", file.display()).into()),
            }
        }
    }
    eprintln!("engine ready: {} torrents", engine.torrents().len());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    let stopping = Instant::now();
    engine.stop().await;
    eprintln!(
        "engine stopped in {:.2} s",
        stopping.elapsed().as_secs_f64()
    );
    Ok(())
}
