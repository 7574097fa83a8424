//! The core service: Deluge's `core.*` and `daemon.*` methods in the same method table as
//! the plugins', the session source, the plugin host and the event bus, behind one
//! [`dispatch`](Core::dispatch) that every transport calls.
//!
//! ```
//! use std::sync::Arc;
//! use torrent_stats::export::AuthLevel;
//! use torrent_stats::service::Core;
//! use torrent_stats::source::SimSource;
//!
//! # torrent_stats::tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
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
use std::str::FromStr;
use std::sync::Arc;

use serde_json::{json, Map, Value};
use tokio::sync::watch;

use crate::error::{DispatchError, ExportError, PluginError, StoreError};
use crate::event::EventBus;
use crate::export::{Args, AuthLevel, Caller, ExportScope, Exports};
use crate::host::{PluginHost, WeakHost};
use crate::session::{SessionSource, StatusKey};
use crate::store::Store;
use crate::torrent::TorrentEngine;

mod torrents;

pub(crate) use torrents::check_engine_conf;
pub use torrents::{EngineConfig, ENGINE_CONF};

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
    /// (`core.add_torrent_file`, `core.get_torrents_status`, …) and torrent events.
    pub fn with_engine(
        host: PluginHost,
        engine: Option<Arc<dyn TorrentEngine>>,
    ) -> Result<Core, ExportError> {
        let (stop, _) = watch::channel(false);
        let core = Core {
            host,
            engine,
            stop: Arc::new(stop),
        };
        core.export()?;
        if let Some(engine) = &core.engine {
            torrents::watch_states(engine.clone(), core.events().clone(), core.host.downgrade());
        }
        Ok(core)
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

    fn export(&self) -> Result<(), ExportError> {
        let exports = self.exports().clone();
        let daemon = ExportScope::new(exports.clone(), OWNER, "daemon");
        let core = ExportScope::new(exports.clone(), OWNER, "core");
        let host = self.host.downgrade();
        let source = self.source();

        daemon.export_at("info", AuthLevel::None, |a: Args| async move {
            a.params(&[], 0)?;
            Ok(json!(version()))
        })?;
        daemon.export_at("get_version", AuthLevel::ReadOnly, |a: Args| async move {
            a.params(&[], 0)?;
            Ok(json!(version()))
        })?;
        // Answered by a connection's transport, which keeps per-connection state; listed
        // here so the method list and `authorized_call` know them.
        for (name, level) in [
            ("login", AuthLevel::None),
            ("set_event_interest", AuthLevel::ReadOnly),
        ] {
            daemon.export_at(name, level, |a: Args| async move {
                Err(DispatchError::TransportOnly {
                    method: a.method().to_string(),
                })
            })?;
        }
        let table = exports.clone();
        daemon.export_at("get_method_list", AuthLevel::ReadOnly, move |a: Args| {
            let result = a.params(&[], 0).map(|()| json!(table.method_list()));
            async move { result }
        })?;
        let table = exports.clone();
        daemon.export_at("authorized_call", AuthLevel::ReadOnly, move |a: Args| {
            let result = (|| {
                a.params(&["rpc"], 1)?;
                let target: String = a.get(0, "rpc")?;
                Ok(json!(table
                    .level_of(&target)
                    .is_some_and(|l| a.caller().level >= l)))
            })();
            async move { result }
        })?;
        let stop = self.stop.clone();
        daemon.export_at("shutdown", AuthLevel::Admin, move |a: Args| {
            let stop = stop.clone();
            async move {
                a.params(&[], 0)?;
                tracing::info!(user = ?a.caller().user, "shutdown requested");
                stop.send_replace(true);
                Ok(Value::Null)
            }
        })?;

        // The accounts are the connection transport's (its auth file).
        core.export_at(
            "get_known_accounts",
            AuthLevel::Admin,
            |a: Args| async move {
                Err(DispatchError::TransportOnly {
                    method: a.method().to_string(),
                })
            },
        )?;
        core.export_at(
            "get_external_ip",
            AuthLevel::ReadOnly,
            |a: Args| async move {
                // Not discovered by this daemon: Deluge's "unknown".
                a.params(&[], 0)?;
                Ok(Value::Null)
            },
        )?;
        core.export_at(
            "get_auth_levels_mappings",
            AuthLevel::None,
            |a: Args| async move {
                a.params(&[], 0)?;
                Ok(json!([
                    {"NONE": 0, "READONLY": 1, "DEFAULT": 5, "NORMAL": 5, "ADMIN": 10},
                    {"0": "NONE", "1": "READONLY", "5": "NORMAL", "10": "ADMIN"}
                ]))
            },
        )?;
        let src = source.clone();
        core.export_at("get_session_status", AuthLevel::ReadOnly, move |a: Args| {
            let src = src.clone();
            async move {
                a.params(&["keys"], 1)?;
                let names: Vec<String> = a.get(0, "keys")?;
                // Deluge answers only the keys it knows.
                let keys: Vec<StatusKey> = names
                    .iter()
                    .filter_map(|n| StatusKey::from_str(n).ok())
                    .collect();
                // The payload rates too, for the wire rates' fallback below.
                let mut asked = keys.clone();
                for (wire, payload) in [
                    (StatusKey::DownloadRate, StatusKey::PayloadDownloadRate),
                    (StatusKey::UploadRate, StatusKey::PayloadUploadRate),
                ] {
                    if asked.contains(&wire) && !asked.contains(&payload) {
                        asked.push(payload);
                    }
                }
                let status = src
                    .session_status(&asked)
                    .await
                    .map_err(|e| failed(&a, e))?;
                // A known key the source does not measure answers Deluge's neutral 0:
                // clients index the dict by every key they asked for (deluge-console's
                // `status` hangs otherwise). Except a wire rate next to a measured payload
                // rate (the embedded engine): it answers the payload rate, its lower bound,
                // as clients show `wire - payload` as protocol overhead (negative with 0).
                let value = |k: StatusKey| {
                    status.get(k).or_else(|| match k {
                        StatusKey::DownloadRate => status.get(StatusKey::PayloadDownloadRate),
                        StatusKey::UploadRate => status.get(StatusKey::PayloadUploadRate),
                        _ => None,
                    })
                };
                let mut out: Map<String, Value> = keys
                    .iter()
                    .map(|&k| (k.as_str().to_string(), json!(value(k).unwrap_or(0))))
                    .collect();
                // Deluge's one boolean key (the web UI and the GTK status bar ask for it):
                // not measured here, so its neutral value.
                if names.iter().any(|n| n == "has_incoming_connections") {
                    out.insert("has_incoming_connections".into(), json!(false));
                }
                Ok(Value::Object(out))
            }
        })?;
        let src = source.clone();
        core.export_at(
            "get_num_connections",
            AuthLevel::ReadOnly,
            move |a: Args| {
                let src = src.clone();
                async move {
                    a.params(&[], 0)?;
                    let status = src
                        .session_status(&[StatusKey::NumConnections])
                        .await
                        .map_err(|e| failed(&a, e))?;
                    Ok(json!(status.get(StatusKey::NumConnections).unwrap_or(0)))
                }
            },
        )?;
        on_host(
            &core,
            &host,
            "get_available_plugins",
            AuthLevel::ReadOnly,
            |h, a| async move {
                a.params(&[], 0)?;
                Ok(json!(h.available().await))
            },
        )?;
        on_host(
            &core,
            &host,
            "get_enabled_plugins",
            AuthLevel::ReadOnly,
            |h, a| async move {
                a.params(&[], 0)?;
                Ok(json!(h.enabled().await))
            },
        )?;
        on_host(
            &core,
            &host,
            "enable_plugin",
            AuthLevel::Admin,
            |h, a| async move { switch_plugin(&h, &a, true).await },
        )?;
        on_host(
            &core,
            &host,
            "disable_plugin",
            AuthLevel::Admin,
            |h, a| async move { switch_plugin(&h, &a, false).await },
        )?;
        let saved = self
            .engine
            .as_ref()
            .and_then(|e| torrents::restore(e.as_ref(), self.host.config_dir()));
        let cx = Ctx {
            host,
            engine: self.engine.clone(),
            events: self.events().clone(),
            saved,
        };
        torrents::export(&Methods::new(core, cx))
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
}

impl Ctx {
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
    fn new(scope: ExportScope, cx: Ctx) -> Self {
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

/// Exports `name` into `scope` with a body that gets the host (held weakly by the table,
/// so the table never keeps the host alive).
fn on_host<F, Fut>(
    scope: &ExportScope,
    host: &WeakHost,
    name: &str,
    level: AuthLevel,
    body: F,
) -> Result<(), ExportError>
where
    F: Fn(PluginHost, Args) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, DispatchError>> + Send + 'static,
{
    let host = host.clone();
    scope.export_at(name, level, move |a: Args| {
        let host = host.upgrade();
        let body = body.clone();
        async move {
            let host = host.ok_or_else(|| failed(&a, "the daemon is shutting down"))?;
            body(host, a).await
        }
    })
}

async fn switch_plugin(host: &PluginHost, a: &Args, enable: bool) -> Result<Value, DispatchError> {
    a.params(&["plugin"], 1)?;
    let name: String = a.get(0, "plugin")?;
    let result = if enable {
        host.enable(&name).await
    } else {
        host.disable(&name).await
    };
    match result {
        Ok(()) => Ok(json!(true)),
        Err(PluginError::NotFound(_)) => Err(a.value_error(
            "plugin",
            format!(
                "no plugin named {name:?}; available: {:?}",
                host.available().await
            ),
        )),
        Err(e) => {
            // Deluge answers False; the reason goes to the log.
            tracing::warn!(plugin = %name, error = %e, "plugin change failed");
            Ok(json!(false))
        }
    }
}
