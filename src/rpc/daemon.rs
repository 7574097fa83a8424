//! The `daemon.*` and `core.*` methods, sessions, and events.
//!
//! [`Daemon`] answers one call for one [`Session`]: the login and session methods itself,
//! core methods from the plugin host and the session source, and everything else through
//! [`Exports::dispatch`](crate::export::Exports::dispatch) at the session's auth level.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;

use serde_json::{json, Map, Value};
use tokio::sync::{broadcast, watch};

use crate::core::StatusKey;
use crate::error::DispatchError;
use crate::export::{kind, Args, AuthLevel};
use crate::host::PluginHost;
use crate::rpc::auth::AuthFile;
use crate::rpc::message::{RemoteError, Request};

/// The version string `daemon.info` and `daemon.get_version` report: Deluge's protocol
/// generation, then ours.
pub fn version() -> String {
    format!("2.0.3-torrent-stats-{}", env!("CARGO_PKG_VERSION"))
}

/// An event for subscribed sessions.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Event class name, e.g. `PluginEnabledEvent`.
    pub name: String,
    /// Its arguments.
    pub args: Vec<Value>,
}

/// One connection's state.
#[derive(Debug)]
pub struct Session {
    /// Auth level (NONE until login).
    pub level: AuthLevel,
    /// The logged-in user.
    pub user: Option<String>,
    /// Event names this session asked for.
    pub interests: HashSet<String>,
}

impl Default for Session {
    /// A new connection: not logged in (level NONE, not the NORMAL default of methods).
    fn default() -> Self {
        Session {
            level: AuthLevel::None,
            user: None,
            interests: HashSet::new(),
        }
    }
}

/// The methods of the daemon itself.
const DAEMON_METHODS: [(&str, AuthLevel); 7] = [
    ("daemon.info", AuthLevel::None),
    ("daemon.login", AuthLevel::None),
    ("daemon.get_method_list", AuthLevel::ReadOnly),
    ("daemon.get_version", AuthLevel::ReadOnly),
    ("daemon.set_event_interest", AuthLevel::ReadOnly),
    ("daemon.authorized_call", AuthLevel::ReadOnly),
    ("daemon.shutdown", AuthLevel::Admin),
];

/// Core methods and the levels they need: what a stats client and deluge-console
/// (`connect`, `plugin`, `status`) call.
const CORE_METHODS: [(&str, AuthLevel); 12] = [
    ("core.get_auth_levels_mappings", AuthLevel::None),
    ("core.get_session_state", AuthLevel::ReadOnly),
    ("core.get_config", AuthLevel::ReadOnly),
    ("core.get_session_status", AuthLevel::ReadOnly),
    ("core.get_available_plugins", AuthLevel::ReadOnly),
    ("core.get_enabled_plugins", AuthLevel::ReadOnly),
    ("core.enable_plugin", AuthLevel::Admin),
    ("core.disable_plugin", AuthLevel::Admin),
    ("core.get_config_value", AuthLevel::ReadOnly),
    ("core.get_torrents_status", AuthLevel::ReadOnly),
    ("core.get_num_connections", AuthLevel::ReadOnly),
    ("core.get_free_space", AuthLevel::ReadOnly),
];

/// The daemon: host, accounts, events and the shutdown request.
pub struct Daemon {
    host: PluginHost,
    auth: AuthFile,
    events: broadcast::Sender<Event>,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("auth", &self.auth.path())
            .finish_non_exhaustive()
    }
}

fn level_of(table: &[(&str, AuthLevel)], method: &str) -> Option<AuthLevel> {
    table.iter().find(|(m, _)| *m == method).map(|(_, l)| *l)
}

/// `NotAuthorizedError(current_level, required_level)`, the arguments as strings (Deluge
/// sends integers, which crash deluge-client's error formatting).
fn not_authorized(have: u8, required: u8) -> RemoteError {
    RemoteError {
        name: "NotAuthorizedError".into(),
        args: vec![have.to_string(), required.to_string()],
        traceback: format!("NotAuthorizedError: Auth level too low: {have} < {required}"),
    }
}

/// Maps a dispatch error to an exception of `deluge.error` with its constructor's
/// arguments (deluge-console hangs on any other name or arity).
fn from_dispatch(e: DispatchError) -> RemoteError {
    match &e {
        DispatchError::NotAuthorized { required, have, .. } => not_authorized(*have, *required),
        _ => RemoteError::wrapped(e.exception_name(), e.to_string()),
    }
}

impl Daemon {
    /// A daemon over `host`, with accounts from `auth`.
    pub fn new(host: PluginHost, auth: AuthFile) -> Arc<Self> {
        let (events, _) = broadcast::channel(256);
        let (stop, _) = watch::channel(false);
        Arc::new(Daemon {
            host,
            auth,
            events,
            stop,
        })
    }

    /// The plugin host.
    pub fn host(&self) -> &PluginHost {
        &self.host
    }

    /// The accounts.
    pub fn auth(&self) -> &AuthFile {
        &self.auth
    }

    /// A receiver of every event (the server filters by session interest).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Fires when a client called `daemon.shutdown`.
    pub fn stop_requested(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    fn emit(&self, name: &str, args: Vec<Value>) {
        let _ = self.events.send(Event {
            name: name.to_string(),
            args,
        });
    }

    /// The level `method` needs, if it exists.
    pub fn method_level(&self, method: &str) -> Option<AuthLevel> {
        level_of(&DAEMON_METHODS, method)
            .or_else(|| level_of(&CORE_METHODS, method))
            .or_else(|| self.host.exports().level_of(method))
    }

    /// Every method a client can call, sorted.
    pub fn method_list(&self) -> Vec<String> {
        let mut all: Vec<String> = DAEMON_METHODS
            .iter()
            .chain(CORE_METHODS.iter())
            .map(|(m, _)| m.to_string())
            .chain(self.host.exports().method_list())
            .collect();
        all.sort();
        all
    }

    /// Answers one call.
    pub async fn call(&self, session: &mut Session, req: Request) -> Result<Value, RemoteError> {
        let Request {
            method,
            args,
            kwargs,
            ..
        } = req;
        // Plugin methods: the method table checks existence, then the level.
        let own = level_of(&DAEMON_METHODS, &method).or_else(|| level_of(&CORE_METHODS, &method));
        let Some(required) = own else {
            return self
                .host
                .exports()
                .dispatch(&method, args, kwargs, session.level)
                .await
                .map_err(from_dispatch);
        };
        if session.level < required {
            return Err(not_authorized(session.level.as_u8(), required.as_u8()));
        }
        let a = Args::new(method, args, kwargs);
        match a.method() {
            "daemon.info" | "daemon.get_version" => {
                a.expect(&[], 0).map_err(from_dispatch)?;
                Ok(json!(version()))
            }
            "daemon.login" => self.login(session, &a),
            "daemon.get_method_list" => {
                a.expect(&[], 0).map_err(from_dispatch)?;
                Ok(json!(self.method_list()))
            }
            "daemon.set_event_interest" => {
                a.expect(&["events"], 1).map_err(from_dispatch)?;
                let names = a.str_list(0, "events").map_err(from_dispatch)?;
                session
                    .interests
                    .extend(names.into_iter().map(String::from));
                Ok(json!(true))
            }
            "daemon.authorized_call" => {
                a.expect(&["rpc"], 1).map_err(from_dispatch)?;
                let target = a.str(0, "rpc").map_err(from_dispatch)?;
                Ok(json!(self
                    .method_level(target)
                    .is_some_and(|l| session.level >= l)))
            }
            "daemon.shutdown" => {
                a.expect(&[], 0).map_err(from_dispatch)?;
                tracing::info!(user = ?session.user, "shutdown requested over RPC");
                self.stop.send_replace(true);
                Ok(Value::Null)
            }
            _ => self.core(&a).await.map_err(from_dispatch),
        }
    }

    fn login(&self, session: &mut Session, a: &Args) -> Result<Value, RemoteError> {
        if a.get(usize::MAX, "client_version").is_none() {
            return Err(RemoteError {
                name: "IncompatibleClient".into(),
                args: vec![version()],
                traceback: "IncompatibleClient: daemon.login needs client_version=".into(),
            });
        }
        a.expect(&["username", "password", "client_version"], 2)
            .map_err(from_dispatch)?;
        let user = a.str(0, "username").map_err(from_dispatch)?;
        let password = a.str(1, "password").map_err(from_dispatch)?;
        match self.auth.check(user, password) {
            Ok(level) => {
                session.level = level;
                session.user = Some(user.to_string());
                tracing::debug!(user, level = level.as_u8(), "login");
                Ok(json!(level.as_u8()))
            }
            Err(reason) => {
                tracing::info!(user, %reason, "failed login");
                Err(RemoteError {
                    name: "BadLoginError".into(),
                    args: vec![reason.to_string(), user.to_string()],
                    traceback: format!("BadLoginError: {reason}"),
                })
            }
        }
    }

    async fn core(&self, a: &Args) -> Result<Value, DispatchError> {
        match a.method() {
            "core.get_session_status" => {
                a.expect(&["keys"], 1)?;
                let names = a.str_list(0, "keys")?;
                let keys: Vec<StatusKey> = names
                    .iter()
                    .filter_map(|n| StatusKey::from_str(n).ok())
                    .collect();
                let status = self.host.core().session_status(&keys).await.map_err(|e| {
                    DispatchError::Plugin {
                        method: a.method().into(),
                        message: e.to_string(),
                    }
                })?;
                let mut out = Map::new();
                for (k, v) in status.values {
                    out.insert(k.as_str().to_string(), json!(v));
                }
                Ok(Value::Object(out))
            }
            "core.get_available_plugins" => {
                a.expect(&[], 0)?;
                Ok(json!(self.host.available().await))
            }
            "core.get_enabled_plugins" => {
                a.expect(&[], 0)?;
                Ok(json!(self.host.enabled().await))
            }
            "core.enable_plugin" | "core.disable_plugin" => {
                a.expect(&["plugin"], 1)?;
                let name = a.str(0, "plugin")?;
                let enable = a.method() == "core.enable_plugin";
                let was = self.host.enabled().await.iter().any(|n| n == name);
                let result = if enable {
                    self.host.enable(name).await
                } else {
                    self.host.disable(name).await
                };
                match result {
                    Ok(()) => {
                        if was != enable {
                            let event = if enable {
                                "PluginEnabledEvent"
                            } else {
                                "PluginDisabledEvent"
                            };
                            self.emit(event, vec![json!(name)]);
                        }
                        Ok(json!(true))
                    }
                    Err(crate::error::PluginError::NotFound(_)) => Err(a.value_error(
                        "plugin",
                        format!(
                            "no plugin named {name:?}; available: {:?}",
                            self.host.available().await
                        ),
                    )),
                    Err(e) => {
                        tracing::warn!(plugin = name, error = %e, "plugin change failed");
                        Ok(json!(false))
                    }
                }
            }
            "core.get_auth_levels_mappings" => {
                a.expect(&[], 0)?;
                Ok(json!([
                    {"NONE": 0, "READONLY": 1, "DEFAULT": 5, "NORMAL": 5, "ADMIN": 10},
                    {"0": "NONE", "1": "READONLY", "5": "NORMAL", "10": "ADMIN"}
                ]))
            }
            "core.get_session_state" => {
                // Torrent ids: this daemon keeps statistics, not torrents.
                a.expect(&[], 0)?;
                Ok(json!([]))
            }
            "core.get_config" => {
                a.expect(&[], 0)?;
                Ok(json!({ "enabled_plugins": self.host.enabled().await }))
            }
            "core.get_config_value" => {
                a.expect(&["key"], 1)?;
                let key = a.str(0, "key")?;
                Ok(match key {
                    "enabled_plugins" => json!(self.host.enabled().await),
                    _ => Value::Null,
                })
            }
            "core.get_torrents_status" => {
                a.expect(&["filter_dict", "keys", "diff"], 2)?;
                if !matches!(a.get(0, "filter_dict"), Some(Value::Object(_))) {
                    let got = a.get(0, "filter_dict").map_or("nothing", kind);
                    return Err(a.type_error("filter_dict", format!("expected a dict, got {got}")));
                }
                Ok(json!({}))
            }
            "core.get_num_connections" => {
                a.expect(&[], 0)?;
                let status = self
                    .host
                    .core()
                    .session_status(&[StatusKey::NumConnections])
                    .await
                    .map_err(|e| DispatchError::Plugin {
                        method: a.method().into(),
                        message: e.to_string(),
                    })?;
                Ok(json!(status.get(StatusKey::NumConnections).unwrap_or(0)))
            }
            "core.get_free_space" => {
                a.expect(&["path"], 0)?;
                Ok(json!(-1))
            }
            other => Err(DispatchError::UnknownMethod(other.to_string())),
        }
    }
}
