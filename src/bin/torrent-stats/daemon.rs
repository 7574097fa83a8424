//! `torrent-stats daemon`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use tokio::signal::unix::{signal, SignalKind};
use torrent_stats::host::PluginHost;
use torrent_stats::plugin::Shutdown;
use torrent_stats::rpc::{auth::AuthFile, daemon::Daemon, server, tls};
use torrent_stats::stats::Stats;

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

fn listen_addr(args: &Args) -> anyhow::Result<SocketAddr> {
    let ip = match (args.interface, args.allow_remote) {
        (Some(ip), false) if !ip.is_loopback() => {
            bail!("--interface {ip} is not a loopback address; add --allow-remote to accept remote clients")
        }
        (Some(ip), _) => ip,
        (None, true) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (None, false) => IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    Ok(SocketAddr::new(ip, args.port))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = crate::config_dir(args.config_dir.clone())?;
    let addr = listen_addr(&args)?;
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
        // Signals first: from here on SIGINT/SIGTERM save instead of killing.
        let (trigger, stop) = Shutdown::new();
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let auth = AuthFile::open(&dir)?;
        let tls = tls::server_config(&dir)?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the RPC port {addr}"))?;
        // Enable the plugins before serving, so the first client finds their methods.
        host.start_with(&["Stats"]).await?;
        let bound = listener.local_addr()?;
        let daemon = Daemon::new(host.clone(), auth);
        let mut rpc_stop = daemon.stop_requested();
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = int.recv() => tracing::info!("SIGINT received"),
                _ = rpc_stop.wait_for(|s| *s) => {}
            }
            trigger.trigger();
        });
        tracing::info!(config_dir = %dir.display(), "daemon started");
        // Tests and scripts that pass --port 0 read the bound port from this line.
        eprintln!("RPC listening on {bound}");
        let mut server_stop = stop.clone();
        let server = tokio::spawn(server::run(
            listener,
            tls,
            daemon,
            server::Options::default(),
            async move { server_stop.wait().await },
        ));
        let mut host_stop = stop;
        let result = host.run(async move { host_stop.wait().await }).await;
        let _ = server.await;
        result?;
        tracing::info!("daemon stopped");
        Ok(())
    })
}
