//! One JSON API call's outcome, shared by the envelope ([`super::json`]) and the methods
//! answering it ([`super::session_methods`], [`super::deluge_web`]): deluge-web's error
//! codes, the error, the reply with its cookie, and a call of a daemon method at the
//! session's level.

use serde_json::{Map, Value};

use super::login::Login;
use super::WebState;
use crate::export::DispatchError;

/// Not logged in, or the session's level is too low.
pub const CODE_AUTH: u8 = 1;
/// No such method.
pub const CODE_UNKNOWN_METHOD: u8 = 2;
/// The call failed (bad arguments, refused, failed).
pub const CODE_CALL: u8 = 3;

/// A failed call: the answer's `error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CallError {
    /// [`CODE_AUTH`], [`CODE_UNKNOWN_METHOD`] or [`CODE_CALL`].
    pub code: u8,
    /// The exception class (Deluge's name for it).
    pub class: String,
    /// What went wrong.
    pub message: String,
}

impl CallError {
    /// A call that failed (code [`CODE_CALL`]).
    pub(super) fn call(class: &str, message: impl Into<String>) -> Self {
        CallError {
            code: CODE_CALL,
            class: class.to_string(),
            message: message.into(),
        }
    }

    /// No session: deluge-web's answer.
    pub(super) fn not_authenticated() -> Self {
        CallError {
            code: CODE_AUTH,
            class: "NotAuthorizedError".to_string(),
            message: "Not authenticated".to_string(),
        }
    }

    /// No such method: deluge-web's answer.
    pub(super) fn unknown_method() -> Self {
        CallError {
            code: CODE_UNKNOWN_METHOD,
            class: "UnknownMethodError".to_string(),
            message: "Unknown method".to_string(),
        }
    }
}

impl From<&DispatchError> for CallError {
    fn from(e: &DispatchError) -> Self {
        match e {
            DispatchError::UnknownMethod(_) => CallError::unknown_method(),
            DispatchError::NotAuthorized { .. } => CallError {
                code: CODE_AUTH,
                class: e.exception_name().to_string(),
                message: e.to_string(),
            },
            DispatchError::Deluge { class, message, .. } => CallError::call(class, message.clone()),
            _ => CallError::call(e.exception_name(), e.to_string()),
        }
    }
}

/// One call's outcome and what the HTTP answer carries besides.
#[derive(Debug)]
pub(super) struct Reply {
    /// The result, or the error.
    pub answer: Result<Value, CallError>,
    /// A `Set-Cookie` to send.
    pub cookie: Option<String>,
    /// Whether to close the connection (a throttled login).
    pub close: bool,
}

impl From<Result<Value, CallError>> for Reply {
    fn from(answer: Result<Value, CallError>) -> Self {
        Reply {
            answer,
            cookie: None,
            close: false,
        }
    }
}

/// A daemon method (`core.*`, `daemon.*`, `stats.*`, ...) at the session's level.
pub(super) async fn core_call(
    state: &WebState,
    session: &Login,
    method: &str,
    params: Vec<Value>,
) -> Result<Value, CallError> {
    let method_shown: String = method.chars().take(80).collect();
    let answer = state
        .core
        .dispatch(method, params, Map::new(), session.caller())
        .await;
    match answer {
        Ok(result) => {
            tracing::debug!(method = %method_shown, user = %session.user, "web call answered");
            Ok(result)
        }
        Err(e) => {
            tracing::debug!(method = %method_shown, user = %session.user, error = %e, "web call failed");
            Err(CallError::from(&e))
        }
    }
}
