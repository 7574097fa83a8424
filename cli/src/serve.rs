//! `torrent-stats daemon`: builds the daemon on its source and serves until a stop signal.
//!
//! Signals: SIGTERM, SIGINT, SIGQUIT (and SIGALRM, SIGVTALRM, SIGPROF, SIGIO, SIGPWR,
//! SIGXCPU, whose default would kill it unsaved) save everything and stop; SIGHUP re-reads
//! `auth`, the TLS key pair, `stats.conf` and `sources.toml` (a file that cannot be used is refused,
//! logged, and the running settings stay); SIGUSR1, SIGUSR2 and SIGXFSZ are logged and ignored (SIGPIPE is ignored
//! by Rust programs). The exit status is 0 after a clean stop, 1 when the daemon could
//! not start or its final save failed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};
use torrent_stats::{Daemon, Reloader};
use torrent_stats::{SourceContext, SourceSet};

/// The source when neither the sources file nor the command line has one: the embedded
/// engine if this build has it.
#[cfg(feature = "rqbit")]
const DEFAULT_SOURCE: &str = "engine";
#[cfg(not(feature = "rqbit"))]
const DEFAULT_SOURCE: &str = "sim:up=0,down=0";

/// Options of `torrent-stats daemon`.
#[derive(clap::Args)]
pub struct Args {
    /// Directory for core.conf, stats.*, auth and ssl/.
    #[arg(long, env = "TORRENT_STATS_CONFIG_DIR")]
    config_dir: Option<PathBuf>,
    /// A source to count, `[NAME=]SPEC` (repeatable), added to the sources file
    /// (`sources.toml` in the config directory, which keeps every source): `engine` (the
    /// embedded BitTorrent engine, the default when built in and no source is in the
    /// file), `sim:up=RATE,down=RATE[,peers=N]` (synthetic traffic),
    /// `deluge://USER:PASS@HOST[:PORT]`, `transmission://USER:PASS@HOST[:PORT]`,
    /// `qbittorrent://USER:PASS@HOST[:PORT]`, `rqbit://HOST[:PORT]`. Without NAME, the
    /// source is named after its kind. Passwords belong in the sources file (mode 0600),
    /// not on a command line: `torrent-stats source add` writes it.
    #[arg(long, env = "TORRENT_STATS_SOURCE", hide_env_values = true)]
    source: Vec<String>,
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
    /// RPC port [default: 58846, Deluge's; when another program holds it, the next free
    /// one of the ten after it, said on stderr and written to listen.toml].
    #[arg(long)]
    port: Option<u16>,
    /// Allow RPC and web connections from other hosts.
    #[arg(long)]
    allow_remote: bool,
    /// Address the web server listens on (default 127.0.0.1; 0.0.0.0 with --allow-remote).
    #[cfg(feature = "web")]
    #[arg(long)]
    web_interface: Option<IpAddr>,
    /// Web server port: the page, /json, /metrics, /events [default: 8112, Deluge-Web's;
    /// when another program holds it, the next free one of the ten after it].
    #[cfg(feature = "web")]
    #[arg(long)]
    web_port: Option<u16>,
    /// No web server.
    #[cfg(feature = "web")]
    #[arg(long)]
    no_web: bool,
    /// Serve the web server over HTTPS (`--web-https=false`: plain HTTP), overriding
    /// `https` in web.toml; the key pair is web.toml's `cert` and `pkey`, by default the
    /// daemon's own (ssl/daemon.cert, the one Deluge RPC uses).
    #[cfg(feature = "web")]
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    web_https: Option<bool>,
    /// HTTPS certificate (chain), PEM, instead of web.toml's `cert` (with --web-key; turns
    /// HTTPS on).
    #[cfg(feature = "web")]
    #[arg(long, requires = "web_key", value_name = "FILE")]
    web_cert: Option<PathBuf>,
    /// HTTPS private key, PEM, mode 0600, instead of web.toml's `pkey` (with --web-cert).
    #[cfg(feature = "web")]
    #[arg(long, requires = "web_cert", value_name = "FILE")]
    web_key: Option<PathBuf>,
    /// Accept a config directory that group or other users may write to (refused by
    /// default: they could plant files the daemon reads and writes).
    #[arg(long)]
    allow_insecure_config_dir: bool,
}

/// What a signal asks of the daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    /// Save everything and exit.
    Stop,
    /// Re-read `auth`, the TLS key pair and `stats.conf`.
    Reload,
    /// Log it; nothing else.
    Ignore,
}

/// Every signal the daemon handles: the ones whose default action would end it without a
/// save are either a stop (after the save) or harmless. SIGKILL and SIGSTOP cannot be
/// caught; fault signals (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT) are not handled.
fn signals() -> Vec<(&'static str, SignalKind, Action)> {
    let mut list = vec![
        ("SIGTERM", SignalKind::terminate(), Action::Stop),
        ("SIGINT", SignalKind::interrupt(), Action::Stop),
        ("SIGQUIT", SignalKind::quit(), Action::Stop),
        ("SIGHUP", SignalKind::hangup(), Action::Reload),
        ("SIGUSR1", SignalKind::user_defined1(), Action::Ignore),
        ("SIGUSR2", SignalKind::user_defined2(), Action::Ignore),
        ("SIGALRM", SignalKind::alarm(), Action::Stop),
        ("SIGIO", SignalKind::io(), Action::Stop),
    ];
    // Numbers tokio does not name, as Linux numbers them on x86, ARM, RISC-V, PowerPC and
    // s390 (asm-generic; MIPS, SPARC and Alpha differ).
    #[cfg(all(
        target_os = "linux",
        any(
            target_arch = "x86",
            target_arch = "x86_64",
            target_arch = "arm",
            target_arch = "aarch64",
            target_arch = "riscv64",
            target_arch = "powerpc64",
            target_arch = "s390x"
        )
    ))]
    list.extend([
        // A write beyond the file-size limit: ignored, the write fails with EFBIG and the
        // save reports it (counting goes on in memory).
        ("SIGXFSZ", SignalKind::from_raw(25), Action::Ignore),
        ("SIGXCPU", SignalKind::from_raw(24), Action::Stop),
        ("SIGVTALRM", SignalKind::from_raw(26), Action::Stop),
        ("SIGPROF", SignalKind::from_raw(27), Action::Stop),
        ("SIGPWR", SignalKind::from_raw(30), Action::Stop),
    ]);
    list
}

/// Listens for [`signals`]; answers the next stop, reloading and ignoring meanwhile.
struct Signals {
    streams: Vec<(&'static str, Action, tokio::signal::unix::Signal)>,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        let mut streams = Vec::new();
        for (name, kind, action) in signals() {
            let stream = signal(kind).with_context(|| format!("installing the {name} handler"))?;
            streams.push((name, action, stream));
        }
        Ok(Signals { streams })
    }

    /// The next signal: its name and action.
    async fn next(&mut self) -> (&'static str, Action) {
        let waits = self.streams.iter_mut().map(|(name, action, stream)| {
            Box::pin(async move {
                stream.recv().await;
                (*name, *action)
            })
        });
        futures_select_all(waits).await
    }
}

/// The first of `futures` to complete (a small `select_all`).
async fn futures_select_all<F: std::future::Future + Unpin>(
    futures: impl Iterator<Item = F>,
) -> F::Output {
    let mut futures: Vec<F> = futures.collect();
    std::future::poll_fn(move |cx| {
        for f in futures.iter_mut() {
            if let std::task::Poll::Ready(out) = std::pin::Pin::new(f).poll(cx) {
                return std::task::Poll::Ready(out);
            }
        }
        std::task::Poll::Pending
    })
    .await
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

/// web.toml with the command line's HTTPS flags over it (a given key pair turns HTTPS
/// on). Given files are relative to the
/// working directory (web.toml's to the config directory).
#[cfg(feature = "web")]
fn web_config(args: &Args, dir: &std::path::Path) -> anyhow::Result<torrent_stats::WebConfig> {
    let mut config = torrent_stats::WebConfig::read(dir)?;
    if let Some(https) = args.web_https {
        config.https = https;
    }
    if let (Some(cert), Some(key)) = (&args.web_cert, &args.web_key) {
        if args.web_https == Some(false) {
            anyhow::bail!("--web-cert and --web-key are for HTTPS: drop --web-https=false");
        }
        config.https = true;
        config.cert =
            std::path::absolute(cert).with_context(|| format!("--web-cert {}", cert.display()))?;
        config.pkey =
            std::path::absolute(key).with_context(|| format!("--web-key {}", key.display()))?;
    }
    Ok(config)
}

/// Where the transports listen: Deluge RPC, and the web server unless it is off.
struct Listen {
    rpc: SocketAddr,
    #[cfg(feature = "web")]
    web: Option<SocketAddr>,
}

/// The listening addresses the flags give; a non-loopback one needs `--allow-remote`.
fn listen(args: &Args) -> anyhow::Result<Listen> {
    let rpc = listen_addr(
        args.interface,
        args.allow_remote,
        args.port.unwrap_or(58846),
    );
    if !rpc.ip().is_loopback() && !args.allow_remote {
        anyhow::bail!(
            "--interface {} is not a loopback address; add --allow-remote to accept remote clients",
            rpc.ip()
        );
    }
    #[cfg(feature = "web")]
    let web = (!args.no_web).then(|| {
        let port = args.web_port.unwrap_or(torrent_stats::DEFAULT_WEB_PORT);
        listen_addr(args.web_interface, args.allow_remote, port)
    });
    #[cfg(feature = "web")]
    if let Some(web) = web.filter(|a| !a.ip().is_loopback() && !args.allow_remote) {
        anyhow::bail!(
            "--web-interface {} is not a loopback address; add --allow-remote to accept remote clients",
            web.ip()
        );
    }
    let rpc = crate::listen::free_or_fallback(rpc, args.port.is_some(), "Deluge RPC");
    #[cfg(feature = "web")]
    let web =
        web.map(|w| crate::listen::free_or_fallback(w, args.web_port.is_some(), "the web server"));
    Ok(Listen {
        rpc,
        #[cfg(feature = "web")]
        web,
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = crate::config_dir(args.config_dir.clone())?;
    // Before anything writes into it (the embedded engine keeps its files there).
    torrent_stats::prepare_config_dir(&dir, args.allow_insecure_config_dir)?;
    let listen = listen(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(serve(args, dir, listen))
}

/// Builds the daemon on its source, runs it until a stop signal, then stops the source.
async fn serve(args: Args, dir: PathBuf, listen: Listen) -> anyhow::Result<()> {
    // Signals first: from here on no signal of `signals()` ends the daemon unsaved (one
    // that arrives while it starts is answered once it runs).
    let signals = Signals::install()?;
    let set = open_sources(&args, &dir).await?;
    let builder = Daemon::builder_with_sources(&dir, set)
        .allow_insecure_config_dir(args.allow_insecure_config_dir)
        .rpc(listen.rpc)
        .allow_remote(args.allow_remote);
    #[cfg(feature = "web")]
    let builder = match listen.web {
        Some(web) => builder.web(web).web_config(web_config(&args, &dir)?),
        None => builder,
    };
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
        let scheme = if daemon.web_https() { "https" } else { "http" };
        eprintln!("Web listening on {scheme}://{bound}");
        // A newcomer's first login: where the page is, who logs in, where the password is.
        let mut page = bound;
        if page.ip().is_unspecified() {
            page.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        eprintln!(
            "Web page {scheme}://{page}/ — {}",
            torrent_stats::web_login_hint(&dir.join("auth"))
        );
    }
    let listening = crate::listen::Listening {
        rpc: daemon.rpc_addr(),
        #[cfg(feature = "web")]
        web: daemon.web_addr(),
        #[cfg(not(feature = "web"))]
        web: None,
        pid: std::process::id(),
    };
    if let Err(e) = crate::listen::write(&dir, &listening) {
        tracing::warn!(error = %e, "could not write {}: torrent-stats commands need --port", crate::listen::LISTEN_FILE);
    }
    let reloader = daemon.reloader();
    // Memory freed after a burst of clients goes back to the system.
    crate::trim::spawn();
    // systemd (Type=notify): ready once every transport listens and Stats counts.
    let status = Status(crate::notify::Notifier::from_env());
    status.send(&format!(
        "READY=1\nMAINPID={}\nSTATUS=counting; Deluge RPC on {}",
        std::process::id(),
        daemon
            .rpc_addr()
            .map_or_else(|| "-".to_string(), |a| a.to_string())
    ));
    let result = daemon.run(until_stop(signals, reloader, status)).await;
    // A failed final save is an error exit: the files lag what was counted.
    result.context("stopping the daemon")?;
    Ok(())
}

/// The daemon's state for systemd, when it runs under it (`Type=notify`).
struct Status(Option<crate::notify::Notifier>);

impl Status {
    fn send(&self, state: &str) {
        if let Some(n) = &self.0 {
            n.send(state);
        }
    }
}

/// Answers signals until one says stop: SIGHUP reloads, the ignored ones are logged.
async fn until_stop(mut signals: Signals, reloader: Reloader, status: Status) {
    loop {
        match signals.next().await {
            (name, Action::Stop) => {
                tracing::info!(signal = name, "{name} received: saving and stopping");
                status.send("STOPPING=1\nSTATUS=saving and stopping");
                return;
            }
            (name, Action::Reload) => {
                tracing::info!(
                    signal = name,
                    "{name} received: reloading auth, the TLS key pair and stats.conf"
                );
                // Each refusal is logged by the reload itself.
                match reloader.reload().await {
                    Ok(()) => status.send("STATUS=counting; reloaded"),
                    Err(e) => status.send(&format!(
                        "STATUS=counting; reload refused: {}",
                        e.to_string().replace('\n', " ")
                    )),
                }
            }
            (name, Action::Ignore) => {
                tracing::info!(signal = name, "{name} received: ignored");
            }
        }
    }
}

/// The sources file with the command line's sources added, each built on the library's
/// one path (specification, then context): the embedded engine's flags are part of the
/// context whatever the kinds.
async fn open_sources(args: &Args, config_dir: &std::path::Path) -> anyhow::Result<SourceSet> {
    let given = torrent_stats::name_sources(&args.source)?;
    #[allow(unused_mut)]
    let mut context = SourceContext::new(config_dir);
    #[cfg(feature = "rqbit")]
    {
        let engine = &mut context.engine;
        if let Some(dir) = &args.download_dir {
            engine.download_dir = dir.clone();
        }
        engine.listen = Some(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            args.listen_port,
        ));
        engine.dht = !args.no_dht;
        engine.trackers = !args.no_trackers;
        engine.lsd = !args.no_trackers;
        engine.upnp = args.upnp;
    }
    #[cfg(feature = "rqbit")]
    let download_dir = context.engine.download_dir.clone();
    let set = SourceSet::open(given, DEFAULT_SOURCE, context).await?;
    // Logged, not printed: with --log-format json every line before `RPC listening on`
    // is one JSON object.
    for m in set.members() {
        let name = &m.entry.name;
        match &m.built {
            Some(b) => {
                let describe = b.source.describe();
                tracing::info!(source = %name, %describe, "source {name}: {describe}");
            }
            None => tracing::info!(source = %name, "source {name}: retired"),
        }
    }
    #[cfg(feature = "rqbit")]
    if set.engine().is_some() {
        let dir = download_dir.display();
        tracing::info!(download_dir = %dir, "downloads go to {dir}");
    }
    Ok(set)
}
