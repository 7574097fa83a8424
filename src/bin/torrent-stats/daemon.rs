//! `torrent-stats daemon`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};
use torrent_stats::daemon::Daemon;

/// Options of `torrent-stats daemon`.
#[derive(clap::Args)]
pub struct Args {
    /// Directory for core.conf, stats.*, auth and ssl/.
    #[arg(long, env = "TORRENT_STATS_CONFIG_DIR")]
    config_dir: Option<PathBuf>,
    /// Session source: `sim:up=RATE,down=RATE[,peers=N]` (synthetic traffic) or
    /// `deluge://USER:PASS@HOST[:PORT]` (a running Deluge 2 daemon). Set it through the
    /// environment to keep a password out of the process list.
    #[arg(
        long,
        env = "TORRENT_STATS_SOURCE",
        hide_env_values = true,
        default_value = "sim:up=0,down=0"
    )]
    source: String,
    /// Address the RPC server listens on (default 127.0.0.1; 0.0.0.0 with --allow-remote).
    #[arg(long)]
    interface: Option<IpAddr>,
    /// RPC port (Deluge's default).
    #[arg(long, default_value_t = 58846)]
    port: u16,
    /// Allow RPC connections from other hosts.
    #[arg(long)]
    allow_remote: bool,
}

fn listen_addr(args: &Args) -> SocketAddr {
    let ip = match (args.interface, args.allow_remote) {
        (Some(ip), _) => ip,
        (None, true) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (None, false) => IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    SocketAddr::new(ip, args.port)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = crate::config_dir(args.config_dir.clone())?;
    let addr = listen_addr(&args);
    if !addr.ip().is_loopback() && !args.allow_remote {
        anyhow::bail!(
            "--interface {} is not a loopback address; add --allow-remote to accept remote clients",
            addr.ip()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let source = torrent_stats::source::from_spec(&args.source)?;
        if args.source.starts_with("sim") {
            tracing::warn!(source = %source.describe(), "counting SYNTHETIC traffic from the sim source");
        }
        // Signals first: from here on SIGINT/SIGTERM save instead of killing.
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let daemon = Daemon::builder(&dir, source)
            .rpc(addr)
            .allow_remote(args.allow_remote)
            .build()
            .await
            .with_context(|| format!("starting the daemon on {}", dir.display()))?;
        if let Some(bound) = daemon.rpc_addr() {
            // Tests and scripts that pass --port 0 read the bound port from this line.
            eprintln!("RPC listening on {bound}");
        }
        daemon
            .run(async move {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                    _ = int.recv() => tracing::info!("SIGINT received"),
                }
            })
            .await?;
        Ok(())
    })
}
