//! `torrent-stats daemon`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use std::sync::Arc;

use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};
use torrent_stats::daemon::Daemon;
use torrent_stats::session::SessionSource;

/// The source when none is given: the embedded engine if this build has it.
#[cfg(feature = "rqbit")]
const DEFAULT_SOURCE: &str = "rqbit";
#[cfg(not(feature = "rqbit"))]
const DEFAULT_SOURCE: &str = "sim:up=0,down=0";

/// Options of `torrent-stats daemon`.
#[derive(clap::Args)]
pub struct Args {
    /// Directory for core.conf, stats.*, auth and ssl/.
    #[arg(long, env = "TORRENT_STATS_CONFIG_DIR")]
    config_dir: Option<PathBuf>,
    /// Session source: `rqbit` (the embedded BitTorrent engine, the default when built
    /// in), `sim:up=RATE,down=RATE[,peers=N]` (synthetic traffic) or
    /// `deluge://USER:PASS@HOST[:PORT]` (a running Deluge 2 daemon). Set it through the
    /// environment to keep a password out of the process list.
    #[arg(
        long,
        env = "TORRENT_STATS_SOURCE",
        hide_env_values = true,
        default_value = DEFAULT_SOURCE
    )]
    source: String,
    /// Embedded engine: where torrents' data goes (default: ~/Downloads/torrent-stats, or
    /// <config-dir>/downloads without a home directory).
    #[arg(long, env = "TORRENT_STATS_DOWNLOAD_DIR")]
    download_dir: Option<PathBuf>,
    /// Embedded engine: the port peers connect to (TCP, all addresses; Deluge's default).
    #[arg(long, default_value_t = 6881)]
    listen_port: u16,
    /// Embedded engine: no DHT (trackerless peer discovery).
    #[arg(long)]
    no_dht: bool,
    /// Embedded engine: no trackers and no local service discovery either (with
    /// --no-dht: only peers you connect to yourself).
    #[arg(long)]
    no_trackers: bool,
    /// Embedded engine: forward the listening port with UPnP (off by default).
    #[arg(long)]
    upnp: bool,
    /// Address the RPC server listens on (default 127.0.0.1; 0.0.0.0 with --allow-remote).
    #[arg(long)]
    interface: Option<IpAddr>,
    /// RPC port (Deluge's default).
    #[arg(long, default_value_t = 58846)]
    port: u16,
    /// Allow RPC and web connections from other hosts.
    #[arg(long)]
    allow_remote: bool,
    /// Address the web server listens on (default 127.0.0.1; 0.0.0.0 with --allow-remote).
    #[cfg(feature = "web")]
    #[arg(long)]
    web_interface: Option<IpAddr>,
    /// Web server port: the page, /json, /metrics, /events (Deluge-Web's default).
    #[cfg(feature = "web")]
    #[arg(long, default_value_t = torrent_stats::web::DEFAULT_PORT)]
    web_port: u16,
    /// No web server.
    #[cfg(feature = "web")]
    #[arg(long)]
    no_web: bool,
}

/// `interface`, or the default for `allow_remote`, on `port`.
fn listen_addr(interface: Option<IpAddr>, allow_remote: bool, port: u16) -> SocketAddr {
    let ip = match (interface, allow_remote) {
        (Some(ip), _) => ip,
        (None, true) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (None, false) => IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    SocketAddr::new(ip, port)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = crate::config_dir(args.config_dir.clone())?;
    let addr = listen_addr(args.interface, args.allow_remote, args.port);
    if !addr.ip().is_loopback() && !args.allow_remote {
        anyhow::bail!(
            "--interface {} is not a loopback address; add --allow-remote to accept remote clients",
            addr.ip()
        );
    }
    #[cfg(feature = "web")]
    let web =
        (!args.no_web).then(|| listen_addr(args.web_interface, args.allow_remote, args.web_port));
    #[cfg(feature = "web")]
    if let Some(web) = web.filter(|a| !a.ip().is_loopback() && !args.allow_remote) {
        anyhow::bail!(
            "--web-interface {} is not a loopback address; add --allow-remote to accept remote clients",
            web.ip()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let (source, engine) = open_source(&args, &dir).await?;
        if args.source.starts_with("sim") {
            tracing::warn!(source = %source.describe(), "counting SYNTHETIC traffic from the sim source");
        }
        // Signals first: from here on SIGINT/SIGTERM save instead of killing.
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut builder = Daemon::builder(&dir, source);
        #[cfg(feature = "rqbit")]
        if let Some(engine) = &engine {
            builder = builder.engine(engine.clone());
        }
        builder = builder.rpc(addr).allow_remote(args.allow_remote);
        #[cfg(feature = "web")]
        if let Some(web) = web {
            builder = builder.web(web);
        }
        let daemon = builder
            .build()
            .await
            .with_context(|| format!("starting the daemon on {}", dir.display()))?;
        if let Some(bound) = daemon.rpc_addr() {
            // Tests and scripts that pass --port 0 read the bound port from this line.
            eprintln!("RPC listening on {bound}");
        }
        #[cfg(feature = "web")]
        if let Some(bound) = daemon.web_addr() {
            eprintln!("Web listening on http://{bound}");
        }
        daemon
            .run(async move {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                    _ = int.recv() => tracing::info!("SIGINT received"),
                }
            })
            .await?;
        #[cfg(feature = "rqbit")]
        if let Some(engine) = engine {
            engine.stop().await;
        }
        #[cfg(not(feature = "rqbit"))]
        let _ = engine;
        Ok(())
    })
}

#[cfg(feature = "rqbit")]
type Engine = Arc<torrent_stats::source::RqbitEngine>;
#[cfg(not(feature = "rqbit"))]
type Engine = ();

/// The session source, and the embedded engine when it is the source.
async fn open_source(
    args: &Args,
    config_dir: &std::path::Path,
) -> anyhow::Result<(Arc<dyn SessionSource>, Option<Engine>)> {
    #[cfg(feature = "rqbit")]
    if args.source == "rqbit" {
        use torrent_stats::source::{EngineOptions, RqbitEngine};
        let download_dir = match &args.download_dir {
            Some(dir) => dir.clone(),
            None => match std::env::var_os("HOME") {
                Some(home) => PathBuf::from(home).join("Downloads").join("torrent-stats"),
                None => config_dir.join("downloads"),
            },
        };
        let mut opts = EngineOptions::new(&download_dir, Some(config_dir.join("rqbit")));
        opts.listen = Some(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            args.listen_port,
        ));
        opts.dht = !args.no_dht;
        opts.trackers = !args.no_trackers;
        opts.lsd = !args.no_trackers;
        opts.upnp = args.upnp;
        let engine = Arc::new(
            RqbitEngine::start(opts)
                .await
                .context("starting the embedded BitTorrent engine")?,
        );
        eprintln!("downloads go to {}", download_dir.display());
        return Ok((engine.clone(), Some(engine)));
    }
    let _ = config_dir;
    Ok((torrent_stats::source::from_spec(&args.source)?, None))
}
