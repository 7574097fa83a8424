//! The `auth.*` methods of `/json`: logging in and out, with or without a session.
//!
//! - `auth.login(user, password)` (the page's) and `auth.login(password)` (deluge-web's:
//!   the account [`WEB_LOGIN_USER`]) → `true` and a session cookie, or `false`, throttled
//!   per source address with the RPC server's shared counts;
//! - `auth.check_session` → bool; `auth.get_session` → `{"user", "level"}` or null;
//!   `auth.login_hint` → `{"user", "auth_file"}`: who logs in with one argument and which
//!   file holds the password (never the password), for the login form;
//! - `auth.logout` → true; `auth.delete_session` (deluge-web's) → true, with a session;
//! - `auth.change_password` → refused: passwords live in the auth file.

use std::net::SocketAddr;

use axum::http::HeaderMap;
use serde_json::{json, Value};

use super::call::{CallError, Reply};
use super::login::set_cookie;
use super::WebState;
use crate::auth::LOCALCLIENT;
use crate::throttle::shown_user;

/// The account `auth.login(password)` logs in as (deluge-web has one password, no users).
pub const WEB_LOGIN_USER: &str = LOCALCLIENT;

/// Answers `auth.<name>`.
pub(super) async fn call(
    state: &WebState,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    name: &str,
    params: Vec<Value>,
) -> Reply {
    let no_params = |method: &str| -> Result<(), CallError> {
        if params.is_empty() {
            Ok(())
        } else {
            Err(CallError::call(
                "TypeError",
                format!("auth.{method} takes no arguments"),
            ))
        }
    };
    let answer = match name {
        "login" => return login(state, peer, params).await,
        "login_hint" => no_params(name).map(|()| {
            json!({"user": WEB_LOGIN_USER, "auth_file": state.auth.path().display().to_string()})
        }),
        // deluge-web's takes an ignored session id.
        "check_session" => Ok(json!(state.logins.get(headers).is_some())),
        "get_session" => no_params(name).map(|()| {
            state.logins.get(headers).map_or(
                Value::Null,
                |s| json!({"user": s.user, "level": s.level.as_u8()}),
            )
        }),
        "logout" | "delete_session" => {
            if let Err(e) = no_params(name) {
                return Err(e).into();
            }
            if name == "delete_session" && state.logins.get(headers).is_none() {
                return Err(CallError::not_authenticated()).into();
            }
            state.logins.end(headers);
            return Reply {
                answer: Ok(json!(true)),
                cookie: Some(set_cookie(None)),
                close: false,
            };
        }
        "change_password" => match state.logins.get(headers) {
            None => Err(CallError::not_authenticated()),
            Some(_) => Err(CallError::call(
                "NotImplementedError",
                format!(
                    "passwords are not changed through the web API: edit {} (user:password:level lines)",
                    state.auth.path().display()
                ),
            )),
        },
        _ => Err(CallError::unknown_method()),
    };
    answer.into()
}

/// `auth.login(user, password)` or `auth.login(password)`, throttled per source address.
async fn login(state: &WebState, peer: Option<SocketAddr>, params: Vec<Value>) -> Reply {
    let (user, password) = match params.as_slice() {
        [Value::String(u), Value::String(p)] => (u.as_str(), p.as_str()),
        [Value::String(p)] => (WEB_LOGIN_USER, p.as_str()),
        _ => {
            let message = "auth.login takes (password) or (user, password), strings";
            return Err(CallError::call("TypeError", message)).into();
        }
    };
    match state.auth.check(user, password) {
        Ok(level) => match state.logins.start(user, level) {
            Ok(token) => {
                tracing::debug!(user = ?shown_user(user), "web login");
                Reply {
                    answer: Ok(json!(true)),
                    cookie: Some(set_cookie(Some(&token))),
                    close: false,
                }
            }
            Err(e) => Err(CallError::call("OSError", e.to_string())).into(),
        },
        Err(_) => {
            if let Some(n) = state.failed_logins.hit() {
                tracing::warn!(
                    count = n,
                    last_user = ?shown_user(user),
                    last_peer = ?peer.map(|p| p.ip()),
                    "failed web logins (counted over up to 10 s)"
                );
            }
            // Each request counts as a connection's first failure: the address decides.
            let penalty = peer.map(|p| state.throttle.failure(p.ip(), 1));
            let penalty = penalty.unwrap_or_default();
            if !penalty.delay.is_zero() {
                tokio::time::sleep(penalty.delay).await;
            }
            Reply {
                answer: Ok(json!(false)),
                cookie: None,
                close: penalty.close,
            }
        }
    }
}
