//! The daemon builder: config directory + session source + plugins + transports, then
//! [`Daemon::run`] until a shutdown future completes (mini-redis style: the binary passes
//! its stop signals, tests and embedding applications pass any future). A
//! [`Reloader`] (from [`Daemon::reloader`]) re-reads `auth` and `stats.conf` while it runs
//! (the binary's SIGHUP). The config directory is refused if others may write to it
//! ([`prepare_config_dir`]); `run` returns an error when the final save failed.
//!
//! The [`Stats`] plugin is always registered and enabled; other plugins are added with
//! [`DaemonBuilder::plugin`]. With the `rpc` feature, [`DaemonBuilder::rpc`] serves Deluge's
//! RPC protocol, so an embedding application answers stock Deluge clients with one call:
//!
//! ```no_run
//! use std::sync::Arc;
//! use torrent_stats::{Daemon, SimSource};
//!
//! # async fn demo() -> Result<(), torrent_stats::DaemonError> {
//! let builder = Daemon::builder("./stats-dir", Arc::new(SimSource::new(0, 0, 0)));
//! # #[cfg(feature = "rpc")] // the example compiles without the feature too
//! let builder = builder.rpc("127.0.0.1:58846".parse().unwrap());
//! let daemon = builder.build().await?;
//! # #[cfg(feature = "rpc")]
//! println!("Deluge RPC on {:?}", daemon.rpc_addr());
//! daemon.run(async { /* your app's shutdown signal */ }).await
//! # }
//! ```

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::host::PluginHost;
use crate::plugin::CorePlugin;
use crate::plugin::PluginError;
use crate::service::Core;
use crate::session::SessionSource;
use crate::source::{BuiltSource, SourceSet};
use crate::stats::{Stats, StatsHandle};
use crate::store::StoreError;
use crate::torrent::TorrentEngine;

#[cfg(any(feature = "rpc", feature = "web"))]
use std::net::SocketAddr;

/// Why a daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// The config directory's `core.conf` or `engine.conf` could not be used.
    #[error("config directory {dir}: {source}")]
    Store {
        /// The config directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// A plugin could not be registered, enabled or disabled.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// The core's methods could not be exported.
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
    /// An RPC transport could not be set up (auth file, TLS key pair).
    #[cfg(feature = "rpc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rpc")))]
    #[error(transparent)]
    Rpc(#[from] crate::rpc::RpcError),
    /// A listening address could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The auth file could not be created or read.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    /// The config directory may be written by other users, who could then plant files the
    /// daemon reads and writes.
    #[error(
        "config directory {dir} is writable by other users (mode {mode:04o}): they could \
         plant files the daemon reads and writes; fix it with `chmod go-w {dir}` (or accept \
         it explicitly: --allow-insecure-config-dir, DaemonBuilder::allow_insecure_config_dir)",
        dir = dir.display()
    )]
    InsecureConfigDir {
        /// The config directory.
        dir: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The config directory could not be created or examined.
    #[error("config directory {dir}: {source}")]
    ConfigDir {
        /// The config directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The web server's settings (`web.toml`) or its HTTPS key pair could not be used.
    #[cfg(feature = "web")]
    #[cfg_attr(docsrs, doc(cfg(feature = "web")))]
    #[error(transparent)]
    WebTls(#[from] crate::web::WebTlsError),
    /// A non-loopback address was given without allowing remote clients.
    #[error("{addr} is not a loopback address; allow remote clients explicitly to listen on it")]
    RemoteNotAllowed {
        /// The address.
        addr: String,
    },
}

/// Deluge RPC settings of a daemon.
#[cfg(feature = "rpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "rpc")))]
#[derive(Debug, Clone)]
pub struct RpcSettings {
    /// Where to listen (port 0: any free port, see [`Daemon::rpc_addr`]).
    pub addr: SocketAddr,
    /// Whether a non-loopback `addr` is allowed.
    pub allow_remote: bool,
    /// Limits and timeouts.
    pub options: crate::rpc::server::Options,
}

/// Builds a `Daemon`; see the module docs.
#[must_use = "a builder does nothing until build() is awaited"]
pub struct DaemonBuilder {
    config_dir: PathBuf,
    source: Arc<dyn SessionSource>,
    plugins: Vec<Arc<dyn CorePlugin>>,
    enable: Vec<String>,
    engine: Option<Arc<dyn TorrentEngine>>,
    #[cfg(feature = "rpc")]
    rpc: Option<RpcSettings>,
    #[cfg(feature = "web")]
    web: Option<SocketAddr>,
    #[cfg(feature = "web")]
    web_config: crate::web::WebConfig,
    allow_remote: bool,
    allow_insecure_config_dir: bool,
    sources: Option<Arc<tokio::sync::Mutex<SourceSet>>>,
}

/// Makes sure the config directory is safe to use: created with mode 0700 if missing; if
/// group or other users may write to it, refused ([`DaemonError::InsecureConfigDir`],
/// which says how to fix it) unless `allow_insecure` (then a warning is logged). The
/// builder calls it; a program that writes into the directory before building the daemon
/// (the binary's embedded engine) calls it first.
pub fn prepare_config_dir(dir: &Path, allow_insecure: bool) -> Result<(), DaemonError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let io_error = |source| DaemonError::ConfigDir {
        dir: dir.to_path_buf(),
        source,
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error)?;
    }
    let mode = std::fs::metadata(dir)
        .map_err(io_error)?
        .permissions()
        .mode()
        & 0o7777;
    if mode & 0o022 != 0 {
        if !allow_insecure {
            return Err(DaemonError::InsecureConfigDir {
                dir: dir.to_path_buf(),
                mode,
            });
        }
        tracing::warn!(
            dir = %dir.display(),
            mode = format!("{mode:04o}"),
            "config directory is writable by other users; accepted as asked (--allow-insecure-config-dir)"
        );
    }
    Ok(())
}

impl DaemonBuilder {
    /// Accepts a config directory that group or other users may write to (refused by
    /// default: see [`prepare_config_dir`]).
    pub fn allow_insecure_config_dir(mut self, allow: bool) -> Self {
        self.allow_insecure_config_dir = allow;
        self
    }

    /// Puts a torrent engine behind Deluge's torrent methods (`core.add_torrent_file`,
    /// `core.get_torrents_status`, …) and torrent events; usually the same engine that is
    /// the session source.
    pub fn engine(mut self, engine: Arc<dyn TorrentEngine>) -> Self {
        self.engine = Some(engine);
        self
    }

    /// Registers another plugin (enabled at start if it is remembered in `core.conf` or
    /// named with [`enable`](DaemonBuilder::enable)).
    pub fn plugin(mut self, plugin: Arc<dyn CorePlugin>) -> Self {
        self.plugins.push(plugin);
        self
    }

    /// Enables `name` at start (Stats always is).
    pub fn enable(mut self, name: &str) -> Self {
        self.enable.push(name.to_string());
        self
    }

    /// Serves Deluge's RPC protocol on `addr` (a loopback address unless
    /// [`allow_remote`](DaemonBuilder::allow_remote)), with the `auth` file and TLS key pair
    /// of the config directory (created at first start).
    #[cfg(feature = "rpc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rpc")))]
    pub fn rpc(mut self, addr: SocketAddr) -> Self {
        let settings = self.rpc.get_or_insert(RpcSettings {
            addr,
            allow_remote: false,
            options: Default::default(),
        });
        settings.addr = addr;
        self
    }

    /// Allows non-loopback addresses for the RPC and web servers.
    pub fn allow_remote(mut self, allow: bool) -> Self {
        self.allow_remote = allow;
        self
    }

    /// Serves the web page, `POST /json`, `GET /metrics` and `GET /events` on `addr` (a
    /// loopback address unless [`allow_remote`](DaemonBuilder::allow_remote)); logins
    /// use the config directory's `auth` file.
    #[cfg(feature = "web")]
    #[cfg_attr(docsrs, doc(cfg(feature = "web")))]
    pub fn web(mut self, addr: SocketAddr) -> Self {
        self.web = Some(addr);
        self
    }

    /// The web server's settings: HTTPS and its key pair (default: plain HTTP; the file's
    /// are [`WebConfig::read`](crate::web::WebConfig::read)'s).
    #[cfg(feature = "web")]
    #[cfg_attr(docsrs, doc(cfg(feature = "web")))]
    pub fn web_config(mut self, config: crate::web::WebConfig) -> Self {
        self.web_config = config;
        self
    }

    /// RPC limits and timeouts (after [`rpc`](DaemonBuilder::rpc)).
    #[cfg(feature = "rpc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rpc")))]
    pub fn rpc_options(mut self, options: crate::rpc::server::Options) -> Self {
        if let Some(settings) = self.rpc.as_mut() {
            settings.options = options;
        }
        self
    }

    /// Opens the config directory, registers the plugins, sets up and binds the
    /// transports, then enables the remembered plugins and Stats, so the first client
    /// finds every method.
    pub async fn build(self) -> Result<Daemon, DaemonError> {
        let dir = self.config_dir.clone();
        prepare_config_dir(&dir, self.allow_insecure_config_dir)?;
        let stats = Arc::new(
            match &self.sources {
                Some(set) => Stats::with_sources(set.clone()),
                None => Stats::new(),
            }
            .with_engine(self.engine.clone()),
        );
        let handle = stats.handle();
        // Without an engine, Deluge's core answers the sources' combined session.
        let source: Arc<dyn SessionSource> = match (&self.sources, &self.engine) {
            (Some(_), None) => Arc::new(crate::stats::CombinedSession::new(handle.clone())),
            _ => self.source,
        };
        let host = PluginHost::open(source, &dir).map_err(|source| DaemonError::Store {
            dir: dir.clone(),
            source,
        })?;
        // engine.conf is read once, here: a file that cannot be used stops the start.
        let engine_conf = match &self.engine {
            Some(_) => Some(crate::service::EngineConf::open(&dir).map_err(|source| {
                DaemonError::Store {
                    dir: dir.clone(),
                    source,
                }
            })?),
            None => None,
        };
        let core = Core::with_engine_conf(host, self.engine, engine_conf)?;
        core.host().register(stats).await?;
        for plugin in self.plugins {
            core.host().register(plugin).await?;
        }
        #[cfg(feature = "rpc")]
        let rpc = match self.rpc {
            Some(mut settings) => {
                settings.allow_remote |= self.allow_remote;
                let allow_remote = settings.allow_remote;
                let bound = rpc::bind(&core, &dir, settings).await?;
                core.set_listening(crate::service::Listening {
                    rpc_port: Some(bound.addr.port()),
                    allow_remote,
                });
                Some(bound)
            }
            None => None,
        };
        #[cfg(feature = "web")]
        let web = match self.web {
            Some(addr) => Some(web::bind(&dir, addr, self.allow_remote, self.web_config).await?),
            None => None,
        };
        let mut enable: Vec<&str> = vec!["Stats"];
        enable.extend(self.enable.iter().map(String::as_str));
        core.host().start_with(&enable).await?;
        tracing::info!(config_dir = %dir.display(), source = %core.source().describe(), "daemon started");
        Ok(Daemon {
            core,
            stats: handle,
            sources: self.sources,
            #[cfg(feature = "rpc")]
            rpc,
            #[cfg(feature = "web")]
            web,
        })
    }
}

/// Re-reads the files a person edits while the daemon runs: the `auth` file (every
/// transport's copy), the TLS key pair (new connections get it) and `stats.conf`. What
/// cannot be used is refused with the reason, logged, and the running settings stay.
#[derive(Clone)]
pub struct Reloader {
    dir: PathBuf,
    stats: StatsHandle,
    #[cfg(feature = "rpc")]
    rpc_auth: Option<Arc<crate::rpc::gateway::Gateway>>,
    #[cfg(feature = "rpc")]
    rpc_tls: Option<Arc<crate::rpc::tls::ServedKeyPair>>,
    #[cfg(feature = "web")]
    web_auth: Option<Arc<crate::auth::AuthFile>>,
    #[cfg(all(feature = "web", feature = "rpc"))]
    web_tls: Option<Arc<crate::rpc::tls::ServedKeyPair>>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("config_dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// What a [`Reloader::reload`] could not use (the running settings stay for each).
#[derive(Debug, thiserror::Error)]
#[error("{}", .problems.join("; "))]
#[non_exhaustive]
pub struct ReloadError {
    /// One message per file refused.
    pub problems: Vec<String>,
}

impl Reloader {
    /// Re-reads `auth`, the TLS key pair (for new connections), `stats.conf` and the
    /// sources file (its difference applied); logs each refusal (with how to fix it) and
    /// returns them all.
    pub async fn reload(&self) -> Result<(), ReloadError> {
        let mut problems = Vec::new();
        #[allow(unused_mut)]
        let mut auths: Vec<&crate::auth::AuthFile> = Vec::new();
        #[cfg(feature = "rpc")]
        if let Some(gateway) = &self.rpc_auth {
            auths.push(gateway.auth());
        }
        #[cfg(feature = "web")]
        if let Some(auth) = &self.web_auth {
            auths.push(auth);
        }
        let mut auth_error = None;
        for auth in auths {
            if let Err(e) = auth.reload() {
                auth_error.get_or_insert(e.to_string());
            }
        }
        if let Some(e) = auth_error {
            tracing::error!(error = %e, "auth file not reloaded; the accounts read last stay in use");
            problems.push(e);
        }
        #[cfg(feature = "rpc")]
        if let Some(key_pair) = &self.rpc_tls {
            if let Err(e) = key_pair.reload() {
                tracing::error!(error = %e, "TLS key pair not reloaded; the pair read last stays in use");
                problems.push(e.to_string());
            }
        }
        #[cfg(all(feature = "web", feature = "rpc"))]
        if let Some(key_pair) = &self.web_tls {
            if let Err(e) = key_pair.reload() {
                tracing::error!(error = %e, "web server's HTTPS key pair not reloaded; the pair read last stays in use");
                problems.push(e.to_string());
            }
        }
        match self.stats.reload_config().await {
            Ok(_) => {}
            Err(crate::stats::StatsError::NotRunning) => {}
            Err(e) => problems.push(e.to_string()),
        }
        #[cfg(feature = "ledger")]
        match self.stats.reload_quotas().await {
            Ok(n) => tracing::info!(quotas = n, "quotas file reloaded"),
            Err(crate::stats::StatsError::NotRunning) => {}
            Err(e) => {
                tracing::error!(error = %e, "quotas file: refused");
                problems.push(e.to_string());
            }
        }
        match self.stats.reload_sources().await {
            Ok(done) => {
                for change in done {
                    tracing::info!("sources file reloaded: {change}");
                }
            }
            Err(refused) => {
                for e in refused {
                    tracing::error!(error = %e, "sources file: refused");
                    problems.push(e);
                }
            }
        }
        if problems.is_empty() {
            tracing::info!(config_dir = %self.dir.display(), "reloaded auth, the TLS key pair and stats.conf");
            Ok(())
        } else {
            Err(ReloadError { problems })
        }
    }
}

/// A built daemon: plugins enabled, transports bound; [`run`](Daemon::run) serves.
pub struct Daemon {
    core: Core,
    stats: StatsHandle,
    sources: Option<Arc<tokio::sync::Mutex<SourceSet>>>,
    #[cfg(feature = "rpc")]
    rpc: Option<rpc::Bound>,
    #[cfg(feature = "web")]
    web: Option<web::Bound>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("config_dir", &self.core.host().config_dir())
            .finish_non_exhaustive()
    }
}

impl Daemon {
    /// A builder for a daemon on `config_dir` counting `source`.
    pub fn builder(
        config_dir: impl Into<PathBuf>,
        source: Arc<dyn SessionSource>,
    ) -> DaemonBuilder {
        DaemonBuilder {
            config_dir: config_dir.into(),
            source,
            plugins: Vec::new(),
            enable: Vec::new(),
            engine: None,
            #[cfg(feature = "rpc")]
            rpc: None,
            #[cfg(feature = "web")]
            web: None,
            #[cfg(feature = "web")]
            web_config: Default::default(),
            allow_remote: false,
            allow_insecure_config_dir: false,
            sources: None,
        }
    }

    /// A builder for a daemon on `config_dir` counting a set of named sources (from
    /// [`SourceSet::open`]): the embedded engine, if one of them is, behind Deluge's
    /// torrent methods and `core.get_session_status`; without one, the core answers the
    /// sources' combined session ([`CombinedSession`](crate::stats::CombinedSession)).
    /// Sources are added and removed at run time; [`run`](Daemon::run) stops them when
    /// the daemon stopped.
    pub fn builder_with_sources(config_dir: impl Into<PathBuf>, set: SourceSet) -> DaemonBuilder {
        let primary = set
            .primary()
            .unwrap_or_else(|| Arc::new(crate::source::SimSource::new(0, 0, 0)));
        let engine = set.engine();
        let mut builder = Daemon::builder(config_dir, primary);
        builder.engine = engine;
        builder.sources = Some(Arc::new(tokio::sync::Mutex::new(set)));
        builder
    }

    /// A builder for a daemon on `config_dir` counting a built source (from
    /// [`SourceSpec::build`](crate::source::SourceSpec::build)), with its torrent engine
    /// when it has one.
    pub fn builder_for(config_dir: impl Into<PathBuf>, built: &BuiltSource) -> DaemonBuilder {
        let builder = Daemon::builder(config_dir, built.source.clone());
        match &built.engine {
            Some(engine) => builder.engine(engine.clone()),
            None => builder,
        }
    }

    /// A handle that re-reads what the daemon reads from its config directory (the binary
    /// calls it on SIGHUP); valid while [`run`](Daemon::run) serves.
    pub fn reloader(&self) -> Reloader {
        Reloader {
            dir: self.core.host().config_dir().to_path_buf(),
            stats: self.stats.clone(),
            #[cfg(feature = "rpc")]
            rpc_auth: self.rpc.as_ref().map(|b| b.gateway()),
            #[cfg(feature = "rpc")]
            rpc_tls: self.rpc.as_ref().map(|b| b.key_pair()),
            #[cfg(feature = "web")]
            web_auth: self.web.as_ref().map(|b| b.auth()),
            #[cfg(all(feature = "web", feature = "rpc"))]
            web_tls: self.web.as_ref().and_then(|b| b.key_pair()),
        }
    }

    /// The core service (method table, host, events).
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// The typed handle on the Stats plugin.
    pub fn stats(&self) -> StatsHandle {
        self.stats.clone()
    }

    /// The bound RPC address, if RPC is served.
    #[cfg(feature = "rpc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rpc")))]
    pub fn rpc_addr(&self) -> Option<SocketAddr> {
        self.rpc.as_ref().map(|b| b.addr)
    }

    /// The bound web address, if the web server runs.
    #[cfg(feature = "web")]
    #[cfg_attr(docsrs, doc(cfg(feature = "web")))]
    pub fn web_addr(&self) -> Option<SocketAddr> {
        self.web.as_ref().map(|b| b.addr)
    }

    /// Whether the web server speaks HTTPS (`https://` + [`web_addr`](Daemon::web_addr)).
    #[cfg(feature = "web")]
    #[cfg_attr(docsrs, doc(cfg(feature = "web")))]
    pub fn web_https(&self) -> bool {
        self.web.as_ref().is_some_and(|b| b.https())
    }

    /// Serves until `shutdown` completes or a client calls `daemon.shutdown`, then stops
    /// the transports and disables every plugin so each saves. Returns the first plugin
    /// error of the shutdown: a failed final save of the Stats plugin is one (callers
    /// should exit non-zero: the files lag what was counted).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        // The web server names the RPC address (deluge-web's host list).
        #[cfg(all(feature = "web", feature = "rpc"))]
        let rpc_addr = self.rpc.as_ref().map(|b| b.addr);
        #[cfg(all(feature = "web", not(feature = "rpc")))]
        let rpc_addr = None;
        #[cfg(feature = "rpc")]
        let server = self.rpc.map(|bound| bound.serve(stopped.clone()));
        #[cfg(feature = "web")]
        let web_server = self
            .web
            .map(|bound| bound.serve(&self.core, &self.stats, rpc_addr, stopped.clone()));
        let _ = &stopped;
        tokio::select! {
            _ = shutdown => {}
            _ = self.core.shutdown_requested() => {}
        }
        tracing::info!("shutting down");
        stop.send_replace(true);
        #[cfg(feature = "rpc")]
        if let Some(server) = server {
            let _ = server.await;
        }
        #[cfg(feature = "web")]
        if let Some(server) = web_server {
            let _ = server.await;
        }
        let failures = self.core.host().shutdown().await;
        if let Some(set) = &self.sources {
            set.lock().await.stop().await;
        }
        tracing::info!("daemon stopped");
        match failures.into_iter().next() {
            Some((_, e)) => Err(e.into()),
            None => Ok(()),
        }
    }
}

#[cfg(feature = "rpc")]
mod rpc {
    use std::path::Path;
    use std::sync::Arc;

    use tokio::net::TcpListener;
    use tokio::sync::watch;
    use tokio::task::JoinHandle;

    use super::{DaemonError, RpcSettings, SocketAddr};
    use crate::auth::AuthFile;
    use crate::rpc::gateway::Gateway;
    use crate::rpc::{server, tls, RpcError};
    use crate::service::Core;

    pub(super) struct Bound {
        pub addr: SocketAddr,
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        key_pair: Arc<tls::ServedKeyPair>,
        gateway: Arc<Gateway>,
        options: server::Options,
    }

    pub(super) async fn bind(
        core: &Core,
        dir: &Path,
        settings: RpcSettings,
    ) -> Result<Bound, DaemonError> {
        let addr = settings.addr;
        if !addr.ip().is_loopback() && !settings.allow_remote {
            return Err(DaemonError::RemoteNotAllowed {
                addr: addr.to_string(),
            });
        }
        // Key generation and file I/O off the async workers.
        let d = dir.to_path_buf();
        let (auth, (tls, key_pair)) = tokio::task::spawn_blocking(move || {
            Ok::<_, RpcError>((AuthFile::open(&d)?, tls::server_tls(&d)?))
        })
        .await
        .map_err(|e| RpcError::Tls(format!("setup task failed: {e}")))??;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| DaemonError::Bind {
                addr: addr.to_string(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| DaemonError::Bind {
            addr: addr.to_string(),
            source,
        })?;
        Ok(Bound {
            addr,
            listener,
            tls,
            key_pair,
            gateway: Gateway::new(core.clone(), auth),
            options: settings.options,
        })
    }

    impl Bound {
        pub(super) fn gateway(&self) -> Arc<Gateway> {
            self.gateway.clone()
        }

        pub(super) fn key_pair(&self) -> Arc<tls::ServedKeyPair> {
            self.key_pair.clone()
        }

        pub(super) fn serve(self, mut stopped: watch::Receiver<bool>) -> JoinHandle<()> {
            tracing::info!(addr = %self.addr, "serving Deluge RPC");
            tokio::spawn(server::run(
                self.listener,
                self.tls,
                self.gateway,
                self.options,
                async move {
                    let _ = stopped.wait_for(|s| *s).await;
                },
            ))
        }
    }
}

#[cfg(feature = "web")]
mod web {
    use std::path::Path;
    use std::sync::Arc;

    use tokio::net::TcpListener;
    use tokio::sync::watch;
    use tokio::task::JoinHandle;

    use super::{DaemonError, SocketAddr};
    use crate::auth::AuthFile;
    use crate::service::Core;
    use crate::stats::StatsHandle;
    use crate::web::{self, WebConfig, WebState};

    /// HTTPS: the server configuration and the key pair behind it (to reload it).
    #[cfg(feature = "rpc")]
    type Tls = (
        Arc<rustls::ServerConfig>,
        Arc<crate::rpc::tls::ServedKeyPair>,
    );
    #[cfg(not(feature = "rpc"))]
    type Tls = std::convert::Infallible;

    pub(super) struct Bound {
        pub addr: SocketAddr,
        listener: TcpListener,
        auth: Arc<AuthFile>,
        tls: Option<Tls>,
    }

    pub(super) async fn bind(
        dir: &Path,
        addr: SocketAddr,
        allow_remote: bool,
        config: WebConfig,
    ) -> Result<Bound, DaemonError> {
        if !addr.ip().is_loopback() && !allow_remote {
            return Err(DaemonError::RemoteNotAllowed {
                addr: addr.to_string(),
            });
        }
        let tls = load_tls(dir, config).await?;
        let d = dir.to_path_buf();
        let auth = tokio::task::spawn_blocking(move || AuthFile::open(&d))
            .await
            .map_err(|e| DaemonError::Bind {
                addr: addr.to_string(),
                source: std::io::Error::other(e.to_string()),
            })?
            .map_err(DaemonError::Auth)?;
        let bind_error = |source| DaemonError::Bind {
            addr: addr.to_string(),
            source,
        };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        Ok(Bound {
            addr,
            listener,
            auth: Arc::new(auth),
            tls,
        })
    }

    /// The HTTPS key pair `config` asks for (key generation and file I/O off the async
    /// workers), or `None` for plain HTTP.
    async fn load_tls(dir: &Path, config: WebConfig) -> Result<Option<Tls>, DaemonError> {
        if !config.https {
            return Ok(None);
        }
        #[cfg(feature = "rpc")]
        {
            let d = dir.to_path_buf();
            let loaded = tokio::task::spawn_blocking(move || web::tls::load(&d, &config))
                .await
                .map_err(|e| web::WebTlsError::KeyPair(format!("setup task failed: {e}")))??;
            Ok(Some(loaded))
        }
        #[cfg(not(feature = "rpc"))]
        {
            let _ = dir;
            Err(web::WebTlsError::NotBuilt.into())
        }
    }

    impl Bound {
        pub(super) fn auth(&self) -> Arc<AuthFile> {
            self.auth.clone()
        }

        pub(super) fn https(&self) -> bool {
            self.tls.is_some()
        }

        #[cfg(feature = "rpc")]
        pub(super) fn key_pair(&self) -> Option<Arc<crate::rpc::tls::ServedKeyPair>> {
            self.tls.as_ref().map(|(_, pair)| pair.clone())
        }

        pub(super) fn serve(
            self,
            core: &Core,
            stats: &StatsHandle,
            rpc: Option<SocketAddr>,
            mut stopped: watch::Receiver<bool>,
        ) -> JoinHandle<()> {
            let scheme = if self.https() { "https" } else { "http" };
            tracing::info!(addr = %self.addr, scheme, "serving the web page, JSON API and metrics");
            let state = WebState::new(core.clone(), stats.clone(), self.auth, stopped.clone())
                .with_rpc_addr(rpc);
            let addr = self.addr;
            tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stopped.wait_for(|s| *s).await;
                };
                let served = match self.tls {
                    #[cfg(feature = "rpc")]
                    Some((tls, _)) => web::run_https(self.listener, tls, state, shutdown).await,
                    #[cfg(not(feature = "rpc"))]
                    Some(never) => match never {},
                    None => web::run(self.listener, state, shutdown).await,
                };
                if let Err(e) = served {
                    tracing::error!(%addr, error = %e, "web server stopped");
                }
            })
        }
    }
}
