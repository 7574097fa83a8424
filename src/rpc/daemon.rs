//! The RPC side of the daemon: logins and per-connection sessions.
//!
//! [`Gateway`] answers one call for one [`Session`]: `daemon.login` and
//! `daemon.set_event_interest` itself (they change the connection's state), everything
//! else through the core's [`dispatch`](crate::service::Core::dispatch) as the session's
//! [`Caller`]. Errors are mapped to `deluge.error` classes with their constructors' arities.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::error::DispatchError;
use crate::export::{Args, AuthLevel, Caller};
use crate::rpc::auth::AuthFile;
use crate::rpc::message::{RemoteError, Request};
use crate::service::Core;

pub use crate::event::Event;
pub use crate::service::version;

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

impl Session {
    /// The caller this session makes calls as.
    pub fn caller(&self) -> Caller {
        Caller {
            user: self.user.clone(),
            level: self.level,
        }
    }
}

/// The core and the accounts, as the RPC server sees them.
pub struct Gateway {
    core: Core,
    auth: AuthFile,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("auth", &self.auth.path())
            .finish_non_exhaustive()
    }
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
pub fn remote_error(e: DispatchError) -> RemoteError {
    match &e {
        DispatchError::NotAuthorized { required, have, .. } => not_authorized(*have, *required),
        // deluge.error.DelugeError and its subclasses take one message argument.
        DispatchError::Deluge { class, message, .. } => RemoteError {
            name: class.to_string(),
            args: vec![message.clone()],
            traceback: format!("{class}: {message}"),
        },
        _ => RemoteError::wrapped(e.exception_name(), e.to_string()),
    }
}

impl Gateway {
    /// A gateway over `core`, with accounts from `auth`.
    pub fn new(core: Core, auth: AuthFile) -> Arc<Self> {
        Arc::new(Gateway { core, auth })
    }

    /// The core service.
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// The accounts.
    pub fn auth(&self) -> &AuthFile {
        &self.auth
    }

    /// Answers one call.
    pub async fn call(&self, session: &mut Session, req: Request) -> Result<Value, RemoteError> {
        let Request {
            method,
            args,
            kwargs,
            ..
        } = req;
        match method.as_str() {
            "daemon.login" => self.login(session, &Args::new(method, args, kwargs)),
            "core.get_known_accounts" => {
                // The accounts live in this transport's auth file.
                if session.level < AuthLevel::Admin {
                    return Err(not_authorized(
                        session.level.as_u8(),
                        AuthLevel::Admin.as_u8(),
                    ));
                }
                Args::new(method, args, kwargs)
                    .params(&[], 0)
                    .map_err(remote_error)?;
                let names = ["NONE", "READONLY", "NORMAL", "ADMIN"];
                Ok(Value::Array(
                    self.auth
                        .accounts()
                        .into_iter()
                        .map(|(user, level)| {
                            let name = match level {
                                AuthLevel::Admin => names[3],
                                AuthLevel::Normal => names[2],
                                AuthLevel::ReadOnly => names[1],
                                _ => names[0],
                            };
                            json!({"username": user, "authlevel": name, "authlevel_int": level.as_u8()})
                        })
                        .collect(),
                ))
            }
            "daemon.set_event_interest" => {
                if session.level < AuthLevel::ReadOnly {
                    return Err(not_authorized(
                        session.level.as_u8(),
                        AuthLevel::ReadOnly.as_u8(),
                    ));
                }
                let a = Args::new(method, args, kwargs);
                a.params(&["events"], 1).map_err(remote_error)?;
                let names = a.str_list(0, "events").map_err(remote_error)?;
                session
                    .interests
                    .extend(names.into_iter().map(String::from));
                Ok(json!(true))
            }
            _ => self
                .core
                .dispatch(&method, args, kwargs, session.caller())
                .await
                .map_err(remote_error),
        }
    }

    fn login(&self, session: &mut Session, a: &Args) -> Result<Value, RemoteError> {
        if a.value(usize::MAX, "client_version").is_none() {
            return Err(RemoteError {
                name: "IncompatibleClient".into(),
                args: vec![version()],
                traceback: "IncompatibleClient: daemon.login needs client_version=".into(),
            });
        }
        a.params(&["username", "password", "client_version"], 2)
            .map_err(remote_error)?;
        let user = a.str(0, "username").map_err(remote_error)?;
        let password = a.str(1, "password").map_err(remote_error)?;
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
}
