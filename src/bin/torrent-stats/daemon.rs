//! `torrent-stats daemon`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};
use torrent_stats::host::PluginHost;
use torrent_stats::stats::Stats;

/// Options of `torrent-stats daemon`.
#[derive(clap::Args)]
pub struct Args {
    /// Directory for core.conf, stats.conf, stats.totals, stats.history.
    #[arg(long, env = "TORRENT_STATS_CONFIG_DIR")]
    config_dir: Option<PathBuf>,
    /// Session source: `sim:up=RATE,down=RATE[,peers=N]` (synthetic traffic).
    #[arg(long, default_value = "sim:up=0,down=0")]
    source: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = crate::config_dir(args.config_dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let source = torrent_stats::source::from_spec(&args.source)?;
        if args.source.starts_with("sim") {
            tracing::warn!(source = %source.describe(), "counting SYNTHETIC traffic from the sim source");
        }
        let host = PluginHost::open(source, &dir)
            .with_context(|| format!("opening config dir {}", dir.display()))?;
        host.register(Arc::new(Stats::new())).await?;
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tracing::info!(config_dir = %dir.display(), "daemon started");
        let stop = async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = int.recv() => tracing::info!("SIGINT received"),
            }
        };
        host.run(&["Stats"], stop).await?;
        tracing::info!("daemon stopped");
        Ok(())
    })
}
