//! The core service: Deluge's `core.*` and `daemon.*` methods in the same method table as
//! the plugins', the session source, the plugin host and the event bus, behind one
//! [`dispatch`](Core::dispatch) that every transport calls.
//!
//! Each method is one small `async fn` taking the state the methods share and the call's
//! arguments, in the file of its group (`daemon`, `session`, `plugins`, and `torrents/`
//! for the torrent methods and configuration); one table per namespace registers them by
//! name and auth level.
//!
//! ```
//! use std::sync::{Arc, OnceLock};
//! use torrent_stats::AuthLevel;
//! use torrent_stats::Core;
//! use torrent_stats::SimSource;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let dir = std::env::temp_dir().join(format!("ts-doc-core-{}", std::process::id()));
//! let core = Core::open(Arc::new(SimSource::new(0, 0, 3)), &dir).unwrap();
//! let status = core
//!     .dispatch("core.get_session_status", vec![["num_peers"].into()], Default::default(), AuthLevel::ReadOnly)
//!     .await
//!     .unwrap();
//! assert_eq!(status["num_peers"], 3);
//! # drop(core); std::fs::remove_dir_all(&dir).unwrap();
//! # });
//! ```

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use serde_json::{json, Map, Value};
use tokio::sync::watch;

use crate::event::EventBus;
use crate::export::{Args, AuthLevel, Caller, ExportScope, Exports};
use crate::export::{DispatchError, ExportError};
use crate::host::{PluginHost, WeakHost};
use crate::session::SessionSource;
use crate::store::{Store, StoreError};
use crate::torrent::TorrentEngine;

mod daemon_methods;
mod plugins;
mod session;
mod session_keys;
mod torrents;

pub(crate) use torrents::EngineConf;
pub use torrents::{EngineConfig, TorrentsStatus};

/// The method [`Core::torrents_status`] answers.
pub const TORRENTS_STATUS: &str = "core.get_torrents_status";

/// The owner name of the core's methods in the method table.
pub const OWNER: &str = "<core>";

/// The version string `daemon.info` and `daemon.get_version` report: Deluge's protocol
/// generation, then ours.
pub fn version() -> String {
    format!("2.0.3-torrent-stats-{}", env!("CARGO_PKG_VERSION"))
}

/// The core service. Clones share it; dropping the last clone (and every
/// [`PluginHost`] clone) releases the host.
#[derive(Clone)]
pub struct Core {
    host: PluginHost,
    engine: Option<Arc<dyn TorrentEngine>>,
    stop: Arc<watch::Sender<bool>>,
    listening: Arc<OnceLock<Listening>>,
}

/// Where the daemon's Deluge RPC server listens, as `core.get_config` reports it
/// (`daemon_port`, `allow_remote`); set once by the daemon when it has bound it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Listening {
    /// The RPC port (`None`: no RPC server).
    pub rpc_port: Option<u16>,
    /// Whether other hosts may connect.
    pub allow_remote: bool,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("host", &self.host)
            .field("engine", &self.engine.as_ref().map(|e| e.version()))
            .finish()
    }
}

impl Core {
    /// Opens the plugin host on `config_dir` with `source`, and exports the core's methods.
    pub fn open(
        source: Arc<dyn SessionSource>,
        config_dir: impl Into<PathBuf>,
    ) -> Result<Core, StoreError> {
        let host = PluginHost::open(source, config_dir)?;
        Ok(Core::from_host(host).expect("a new method table has no core namespaces yet"))
    }

    /// Adds the core's methods to an existing host's method table (fails if a plugin
    /// already took the `core` or `daemon` namespace). Without an engine the torrent
    /// methods answer an empty session and refuse adds.
    pub fn from_host(host: PluginHost) -> Result<Core, ExportError> {
        Core::with_engine(host, None)
    }

    /// The same with a torrent engine behind Deluge's torrent methods
    /// (`core.add_torrent_file`, `core.get_torrents_status`, …) and torrent events. The
    /// engine's settings are restored from the config directory's `engine.conf`; a file
    /// that cannot be used is reported and the engine runs on its defaults (settings
    /// changed later are then not kept).
    pub fn with_engine(
        host: PluginHost,
        engine: Option<Arc<dyn TorrentEngine>>,
    ) -> Result<Core, ExportError> {
        let conf = engine
            .as_ref()
            .and_then(|_| EngineConf::open_or_report(host.config_dir()));
        Core::with_engine_conf(host, engine, conf)
    }

    /// The same with `engine.conf` already opened and loaded by the caller
    /// ([`EngineConf::open`]: the daemon refuses to start on a file that cannot be used).
    /// Without it, the engine's settings are not kept.
    pub(crate) fn with_engine_conf(
        host: PluginHost,
        engine: Option<Arc<dyn TorrentEngine>>,
        conf: Option<EngineConf>,
    ) -> Result<Core, ExportError> {
        let (stop, _) = watch::channel(false);
        let core = Core {
            host,
            engine,
            stop: Arc::new(stop),
            listening: Arc::default(),
        };
        core.export(conf)?;
        if let Some(engine) = &core.engine {
            torrents::watch_states(engine.clone(), core.events(), core.host.downgrade());
        }
        Ok(core)
    }

    /// Records where the RPC server listens (the first call wins), for `core.get_config`.
    #[cfg_attr(not(feature = "rpc"), allow(dead_code))]
    pub(crate) fn set_listening(&self, listening: Listening) {
        let _ = self.listening.set(listening);
    }

    /// The torrent engine, if the core has one.
    pub fn engine(&self) -> Option<&Arc<dyn TorrentEngine>> {
        self.engine.as_ref()
    }

    /// The plugin host.
    pub fn host(&self) -> &PluginHost {
        &self.host
    }

    /// The method table.
    pub fn exports(&self) -> &Exports {
        self.host.exports()
    }

    /// The event bus.
    pub fn events(&self) -> &EventBus {
        self.host.events()
    }

    /// The session source.
    pub fn source(&self) -> Arc<dyn SessionSource> {
        self.host.source()
    }

    /// Calls any exported method (core, daemon or plugin) on behalf of `caller`.
    pub async fn dispatch(
        &self,
        method: &str,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
        caller: impl Into<Caller>,
    ) -> Result<Value, DispatchError> {
        self.exports().dispatch(method, args, kwargs, caller).await
    }

    /// `core.get_torrents_status(filter_dict, keys, diff=False)` answered as a
    /// [`TorrentsStatus`], for a transport that writes it to its wire itself (a thousand
    /// torrents' dicts as `Value`s are most of that call's cost): the same checks, errors
    /// and answer as [`dispatch`](Core::dispatch)ing it.
    pub fn torrents_status(
        &self,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
        caller: impl Into<Caller>,
    ) -> Result<TorrentsStatus, DispatchError> {
        let caller = caller.into();
        let level = self
            .exports()
            .level_of(TORRENTS_STATUS)
            .ok_or_else(|| DispatchError::UnknownMethod(TORRENTS_STATUS.to_string()))?;
        if caller.level < level {
            return Err(DispatchError::NotAuthorized {
                method: TORRENTS_STATUS.to_string(),
                required: level.as_u8(),
                have: caller.level.as_u8(),
            });
        }
        let a = Args::new(TORRENTS_STATUS, args, kwargs).with_caller(caller);
        torrents::torrents_status(self.engine.as_ref(), &a)
    }

    /// Asks the daemon to stop (what `daemon.shutdown` does).
    pub fn request_shutdown(&self) {
        self.stop.send_replace(true);
    }

    /// Completes when a shutdown was requested (by `daemon.shutdown` or
    /// [`request_shutdown`](Core::request_shutdown)).
    pub fn shutdown_requested(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.stop.subscribe();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }

    /// Exports the core's methods: `daemon.*`, then `core.*` (the torrent methods last).
    /// One line per method: its name, auth level and the function answering it.
    /// `conf`'s settings are applied to the engine first.
    fn export(&self, conf: Option<EngineConf>) -> Result<(), ExportError> {
        use AuthLevel as L;
        let saved = match (&self.engine, conf) {
            (Some(engine), Some(conf)) => Some(conf.restore(engine.as_ref())),
            _ => None,
        };
        let cx = Ctx {
            host: self.host.downgrade(),
            engine: self.engine.clone(),
            events: self.events().clone(),
            saved,
            source: self.source(),
            table: self.exports().clone(),
            stop: self.stop.clone(),
            listening: self.listening.clone(),
        };
        let daemon = Methods::new(ExportScope::new(cx.table.clone(), OWNER, "daemon"), &cx);
        daemon.add("info", L::None, daemon_methods::info)?;
        daemon.add("get_version", L::ReadOnly, daemon_methods::get_version)?;
        daemon.add("login", L::None, transport_only)?;
        daemon.add("set_event_interest", L::ReadOnly, transport_only)?;
        daemon.add(
            "get_method_list",
            L::ReadOnly,
            daemon_methods::get_method_list,
        )?;
        daemon.add(
            "authorized_call",
            L::ReadOnly,
            daemon_methods::authorized_call,
        )?;
        daemon.add("shutdown", L::Admin, daemon_methods::shutdown)?;
        let core = Methods::new(ExportScope::new(cx.table.clone(), OWNER, "core"), &cx);
        core.add("get_known_accounts", L::Admin, transport_only)?;
        core.add("get_external_ip", L::ReadOnly, session::get_external_ip)?;
        core.add(
            "get_auth_levels_mappings",
            L::None,
            get_auth_levels_mappings,
        )?;
        core.add(
            "get_session_status",
            L::ReadOnly,
            session::get_session_status,
        )?;
        core.add(
            "get_num_connections",
            L::ReadOnly,
            session::get_num_connections,
        )?;
        core.add(
            "get_available_plugins",
            L::ReadOnly,
            plugins::get_available_plugins,
        )?;
        core.add(
            "get_enabled_plugins",
            L::ReadOnly,
            plugins::get_enabled_plugins,
        )?;
        core.add("enable_plugin", L::Admin, plugins::enable_plugin)?;
        core.add("disable_plugin", L::Admin, plugins::disable_plugin)?;
        torrents::export(&core)
    }
}

/// What the core's methods work with. [`Methods::add`] gives each call its own clone; the
/// host is held weakly, so the method table never keeps it alive.
#[derive(Clone)]
struct Ctx {
    host: WeakHost,
    engine: Option<Arc<dyn TorrentEngine>>,
    events: EventBus,
    /// `engine.conf`, where `core.set_config` keeps the rate limits (none without an
    /// engine, or when the file could not be used).
    saved: Option<Arc<Store<EngineConfig>>>,
    source: Arc<dyn SessionSource>,
    /// The method table itself, for `daemon.get_method_list` and `authorized_call`.
    table: Exports,
    /// What `daemon.shutdown` sets.
    stop: Arc<watch::Sender<bool>>,
    /// Where the RPC server listens, once bound.
    listening: Arc<OnceLock<Listening>>,
}

impl Ctx {
    /// Where the RPC server listens (nothing known: no RPC server yet).
    fn listening(&self) -> Listening {
        self.listening.get().copied().unwrap_or_default()
    }

    /// The host, or the error of a call made while the daemon shuts down.
    fn host(&self, a: &Args) -> Result<PluginHost, DispatchError> {
        self.host
            .upgrade()
            .ok_or_else(|| failed(a, "the daemon is shutting down"))
    }
}

/// One namespace of the method table as the core fills it: each method is an
/// `async fn(Ctx, Args)`.
struct Methods {
    scope: ExportScope,
    cx: Ctx,
}

impl Methods {
    fn new(scope: ExportScope, cx: &Ctx) -> Self {
        let cx = cx.clone();
        Methods { scope, cx }
    }

    /// Exports `name` at `level`, answered by `method` with its own clone of the context.
    fn add<F, Fut>(&self, name: &str, level: AuthLevel, method: F) -> Result<(), ExportError>
    where
        F: Fn(Ctx, Args) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, DispatchError>> + Send + 'static,
    {
        let cx = self.cx.clone();
        self.scope
            .export_at(name, level, move |a: Args| method(cx.clone(), a))
    }
}

fn failed(a: &Args, e: impl std::fmt::Display) -> DispatchError {
    DispatchError::Plugin {
        method: a.method().to_string(),
        message: e.to_string(),
    }
}

/// Methods a connection's transport answers, as it keeps per-connection state (the
/// login, the events asked for) or has the accounts (its auth file): listed here so the
/// method list and `daemon.authorized_call` know them.
async fn transport_only(_cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    Err(DispatchError::TransportOnly {
        method: a.method().to_string(),
    })
}

/// `core.get_auth_levels_mappings()`: Deluge's auth level names and numbers, both ways.
async fn get_auth_levels_mappings(_cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    a.params(&[], 0)?;
    Ok(json!([
        {"NONE": 0, "READONLY": 1, "DEFAULT": 5, "NORMAL": 5, "ADMIN": 10},
        {"0": "NONE", "1": "READONLY", "5": "NORMAL", "10": "ADMIN"}
    ]))
}
