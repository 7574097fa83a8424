//! The RPC side of the daemon: logins and per-connection state.
//!
//! [`Gateway`] answers one call for one [`ConnectionState`]: `daemon.login` and
//! `daemon.set_event_interest` itself (they change the connection's state), everything
//! else through the core's [`dispatch`](crate::service::Core::dispatch) as the connection's
//! [`Caller`]. Errors are mapped to `deluge.error` classes with their constructors' arities.
//!
//! Before login (level NONE) every method but the public ones (`daemon.login`,
//! `daemon.info`, the other methods of level NONE) is answered with the same
//! `NotAuthorizedError`, whether it exists or not, so method names cannot be probed.
//! Logins are throttled (`crate::throttle`): one `daemon.login` per message is checked,
//! a wrong user and a wrong password get the same [`BAD_LOGIN`] message, and failures
//! beyond the free ones are answered late (the server waits [`ConnectionState::penalty`]).

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::auth::AuthFile;
use crate::event::Interest;
use crate::export::DispatchError;
use crate::export::{Args, AuthLevel, Caller};
use crate::rpc::message::{RemoteError, Request};
use crate::service::version;
use crate::service::{Core, TorrentsStatus, TORRENTS_STATUS};
use crate::throttle::{shown_user, LoginThrottle, Penalty, Tally};

/// One connection's state.
#[derive(Debug)]
pub struct ConnectionState {
    /// Auth level (NONE until login).
    pub level: AuthLevel,
    /// The logged-in user.
    pub user: Option<String>,
    /// Event names this connection asked for.
    pub interests: HashSet<String>,
    /// Their registration on the core's event bus (events computed on demand are computed
    /// while some connection wants them); dropped with the connection.
    pub interest: Option<Interest>,
    /// The client's address, for login throttling (`None`: not throttled per address).
    pub peer: Option<IpAddr>,
    /// Failed logins on this connection.
    pub login_failures: u32,
    /// Whether the message being answered already had a `daemon.login`; the server
    /// clears it before each message.
    pub login_attempted: bool,
    /// Set by a throttled failed login: the server waits this long before sending the
    /// answer (and closes the connection after it if it says so).
    pub penalty: Option<Penalty>,
}

impl Default for ConnectionState {
    /// A new connection: not logged in (level NONE, not the NORMAL default of methods).
    fn default() -> Self {
        ConnectionState {
            level: AuthLevel::None,
            user: None,
            interests: HashSet::new(),
            interest: None,
            peer: None,
            login_failures: 0,
            login_attempted: false,
            penalty: None,
        }
    }
}

impl ConnectionState {
    /// The caller this connection makes calls as.
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
    throttle: Arc<LoginThrottle>,
    failed_logins: Tally,
}

/// `BadLoginError`'s message for a wrong user and for a wrong password alike.
pub const BAD_LOGIN: &str = "Username or password does not match";

/// How often failed logins are logged (with their count).
const LOG_INTERVAL: Duration = Duration::from_secs(10);

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
pub(crate) fn remote_error(e: DispatchError) -> RemoteError {
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

/// A call's answer ([`Gateway::call`]).
#[derive(Debug)]
pub enum Answer {
    /// Any method's value.
    Value(Value),
    /// `core.get_torrents_status`'s, typed.
    Torrents(TorrentsStatus),
}

impl Gateway {
    /// A gateway over `core`, with accounts from `auth`.
    pub fn new(core: Core, auth: AuthFile) -> Arc<Self> {
        let throttle = LoginThrottle::for_accounts(auth.path());
        Arc::new(Gateway {
            core,
            auth,
            throttle,
            failed_logins: Tally::new(LOG_INTERVAL),
        })
    }

    /// The login throttle (shared with every transport using the same auth file).
    pub fn throttle(&self) -> &Arc<LoginThrottle> {
        &self.throttle
    }

    /// Logs the failed logins counted and not logged yet (the server calls it
    /// periodically).
    pub fn flush_logs(&self) {
        if let Some(n) = self.failed_logins.due() {
            tracing::warn!(
                count = n,
                "failed logins (counted over up to 10 s; see earlier lines)"
            );
        }
    }

    /// The core service.
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// The accounts.
    pub fn auth(&self) -> &AuthFile {
        &self.auth
    }

    /// Answers one call: `core.get_torrents_status` as its typed answer, for the server to
    /// write without building the `Value` (the same checks and answer as dispatching it),
    /// any other as a `Value`.
    pub async fn call(
        &self,
        conn: &mut ConnectionState,
        req: Request,
    ) -> Result<Answer, RemoteError> {
        if req.method == TORRENTS_STATUS {
            return self
                .core
                .torrents_status(req.args, req.kwargs, conn.caller())
                .map(Answer::Torrents)
                .map_err(remote_error);
        }
        self.call_value(conn, req).await.map(Answer::Value)
    }

    /// Answers one call as a `Value`.
    async fn call_value(
        &self,
        conn: &mut ConnectionState,
        req: Request,
    ) -> Result<Value, RemoteError> {
        let Request {
            method,
            args,
            kwargs,
            ..
        } = req;
        if conn.level == AuthLevel::None
            && method != "daemon.login"
            && self.core.exports().level_of(&method) != Some(AuthLevel::None)
        {
            // The same answer for a method that exists and one that does not.
            return Err(not_authorized(
                AuthLevel::None.as_u8(),
                AuthLevel::ReadOnly.as_u8(),
            ));
        }
        match method.as_str() {
            "daemon.login" => self.login(conn, &Args::new(method, args, kwargs)),
            "core.get_known_accounts" => {
                // The accounts live in this transport's auth file.
                if conn.level < AuthLevel::Admin {
                    return Err(not_authorized(conn.level.as_u8(), AuthLevel::Admin.as_u8()));
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
                if conn.level < AuthLevel::ReadOnly {
                    return Err(not_authorized(
                        conn.level.as_u8(),
                        AuthLevel::ReadOnly.as_u8(),
                    ));
                }
                let a = Args::new(method, args, kwargs);
                a.params(&["events"], 1).map_err(remote_error)?;
                let names = a.str_list(0, "events").map_err(remote_error)?;
                conn.interests.extend(names.into_iter().map(String::from));
                // The new registration before the old one goes: no moment without it.
                let interest = self.core.events().register(conn.interests.iter().cloned());
                conn.interest = Some(interest);
                Ok(json!(true))
            }
            _ => self
                .core
                .dispatch(&method, args, kwargs, conn.caller())
                .await
                .map_err(remote_error),
        }
    }

    fn login(&self, conn: &mut ConnectionState, a: &Args) -> Result<Value, RemoteError> {
        let bad_login = |message: &str, user: &str| RemoteError {
            name: "BadLoginError".into(),
            args: vec![message.to_string(), user.to_string()],
            traceback: format!("BadLoginError: {message}"),
        };
        if std::mem::replace(&mut conn.login_attempted, true) {
            // One guess per message: the others are not checked.
            return Err(bad_login(
                "Only one login attempt per message is checked",
                "",
            ));
        }
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
                conn.level = level;
                conn.user = Some(user.to_string());
                tracing::debug!(user = ?shown_user(user), level = level.as_u8(), "login");
                Ok(json!(level.as_u8()))
            }
            Err(_) => {
                conn.login_failures = conn.login_failures.saturating_add(1);
                if let Some(peer) = conn.peer {
                    let penalty = self.throttle.failure(peer, conn.login_failures);
                    if penalty != Penalty::default() {
                        conn.penalty = Some(penalty);
                    }
                }
                if let Some(n) = self.failed_logins.hit() {
                    tracing::warn!(
                        count = n,
                        last_user = ?shown_user(user),
                        last_peer = ?conn.peer,
                        "failed logins (counted over up to 10 s)"
                    );
                }
                Err(bad_login(BAD_LOGIN, user))
            }
        }
    }
}
