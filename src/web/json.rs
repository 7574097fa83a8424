//! `POST /json`: Deluge-Web's JSON-RPC envelope over the core service.
//!
//! A request is `{"method": "...", "params": [...], "id": ...}`; the answer is
//! `{"result": ..., "error": null | {"message", "code", "class"}, "id": ...}` with HTTP 200
//! (400 for a body that is not such an object). Error codes are Deluge-Web's:
//! [`CODE_AUTH`] (not logged in, or the level is too low), [`CODE_UNKNOWN_METHOD`],
//! [`CODE_CALL`] (the call failed; `class` is the Deluge exception class).
//!
//! Logins: `auth.login(user, password)` against the daemon's auth file → `true` and a
//! session cookie, or `false` (throttled as Deluge RPC logins are, per source address and
//! with the same shared counts: after [`crate::throttle::FREE_FAILURES`] failures the
//! `false` comes late and with `Connection: close`); `auth.logout`; `auth.check_session` → bool;
//! `auth.get_session` → `{"user", "level"}` or null. Every other method needs a session
//! and is dispatched at its level. No cross-site request forgery: every request must be
//! `Content-Type: application/json` (which a form on another site cannot send without a
//! CORS preflight, never granted) and, when the browser says where it comes from
//! (`Origin`, `Sec-Fetch-Site`), come from this server's own origin.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, Extensions, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::login::set_cookie;
use super::WebState;
use crate::export::DispatchError;
use crate::throttle::shown_user;

/// Not logged in, or the session's level is too low.
pub const CODE_AUTH: u8 = 1;
/// No such method.
pub const CODE_UNKNOWN_METHOD: u8 = 2;
/// The call failed (bad arguments, refused, failed).
pub const CODE_CALL: u8 = 3;

/// One error answer.
fn error(id: &Value, code: u8, class: &str, message: impl Into<String>) -> Value {
    json!({
        "result": null,
        "error": {"message": message.into(), "code": code, "class": class},
        "id": id,
    })
}

/// The request is not one this endpoint takes: HTTP `status` with a JSON error.
fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(error(&Value::Null, CODE_CALL, "BadRequest", message)),
    )
        .into_response()
}

/// Whether the browser says the request comes from a page of this server.
fn same_origin(headers: &HeaderMap) -> Result<(), String> {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        if !matches!(site, "same-origin" | "none") {
            return Err(format!(
                "cross-site request refused (Sec-Fetch-Site: {site})"
            ));
        }
    }
    if let Some(origin) = text("origin") {
        let host = text("host").unwrap_or_default();
        let ours = ["http://", "https://"]
            .iter()
            .any(|scheme| origin.strip_prefix(scheme) == Some(host));
        if !ours {
            return Err(format!(
                "cross-origin request refused (Origin {origin:?} is not this server)"
            ));
        }
    }
    Ok(())
}

/// The handler.
pub(super) async fn handle(
    State(state): State<WebState>,
    headers: HeaderMap,
    extensions: Extensions,
    body: axum::body::Bytes,
) -> Response {
    // Served with connect info by `run`; a router served without it is not throttled.
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr);
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json_type {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be JSON, sent with Content-Type: application/json",
        );
    }
    if let Err(why) = same_origin(&headers) {
        return refuse(StatusCode::FORBIDDEN, why);
    }
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("the body is not JSON: {e}"),
            )
        }
    };
    let Value::Object(mut request) = request else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "the body must be an object: {\"method\", \"params\", \"id\"}",
        );
    };
    let id = request.remove("id").unwrap_or(Value::Null);
    let Some(Value::String(method)) = request.remove("method") else {
        return refuse(StatusCode::BAD_REQUEST, "\"method\" must be a string");
    };
    let params = match request.remove("params") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(params)) => params,
        Some(_) => return refuse(StatusCode::BAD_REQUEST, "\"params\" must be a list"),
    };
    let (answer, cookie, close) = call(&state, &headers, peer, &method, params, &id).await;
    let mut response = Json(answer).into_response();
    if close {
        response.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    if let Some(cookie) = cookie.and_then(|c| c.parse().ok()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

/// Answers one call; then a `Set-Cookie` to send, and whether to close the connection.
async fn call(
    state: &WebState,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    method: &str,
    params: Vec<Value>,
    id: &Value,
) -> (Value, Option<String>, bool) {
    if method == "auth.login" {
        return login(state, peer, params, id).await;
    }
    let (answer, cookie) = other_call(state, headers, method, params, id).await;
    (answer, cookie, false)
}

/// `auth.login(user, password)`, throttled per source address.
async fn login(
    state: &WebState,
    peer: Option<SocketAddr>,
    params: Vec<Value>,
    id: &Value,
) -> (Value, Option<String>, bool) {
    let ok = |result: Value| json!({"result": result, "error": null, "id": id});
    let (user, password) = match params.as_slice() {
        [Value::String(u), Value::String(p)] => (u.as_str(), p.as_str()),
        _ => {
            let message = "auth.login takes (user, password), two strings";
            return (error(id, CODE_CALL, "TypeError", message), None, false);
        }
    };
    match state.auth.check(user, password) {
        Ok(level) => match state.logins.start(user, level) {
            Ok(token) => {
                tracing::debug!(user = ?shown_user(user), "web login");
                (ok(json!(true)), Some(set_cookie(Some(&token))), false)
            }
            Err(e) => (error(id, CODE_CALL, "OSError", e.to_string()), None, false),
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
            (ok(json!(false)), None, penalty.close)
        }
    }
}

/// Every call but `auth.login`; the second value is a `Set-Cookie` to send.
async fn other_call(
    state: &WebState,
    headers: &HeaderMap,
    method: &str,
    params: Vec<Value>,
    id: &Value,
) -> (Value, Option<String>) {
    let ok = |result: Value| json!({"result": result, "error": null, "id": id});
    match method {
        "auth.logout" => {
            state.logins.end(headers);
            (ok(json!(true)), Some(set_cookie(None)))
        }
        "auth.check_session" => (ok(json!(state.logins.get(headers).is_some())), None),
        "auth.get_session" => {
            let session = state.logins.get(headers);
            let value = session.map_or(
                Value::Null,
                |s| json!({"user": s.user, "level": s.level.as_u8()}),
            );
            (ok(value), None)
        }
        _ => {
            let Some(session) = state.logins.get(headers) else {
                return (
                    error(id, CODE_AUTH, "NotAuthorizedError", "Not authenticated"),
                    None,
                );
            };
            let method_shown: String = method.chars().take(80).collect();
            let answer = state
                .core
                .dispatch(method, params, Map::new(), session.caller())
                .await;
            match answer {
                Ok(result) => {
                    tracing::debug!(method = %method_shown, user = %session.user, "web call answered");
                    (ok(result), None)
                }
                Err(e) => {
                    tracing::debug!(method = %method_shown, user = %session.user, error = %e, "web call failed");
                    (dispatch_error(id, &e), None)
                }
            }
        }
    }
}

fn dispatch_error(id: &Value, e: &DispatchError) -> Value {
    match e {
        DispatchError::UnknownMethod(_) => {
            error(id, CODE_UNKNOWN_METHOD, e.exception_name(), e.to_string())
        }
        DispatchError::NotAuthorized { .. } => {
            error(id, CODE_AUTH, e.exception_name(), e.to_string())
        }
        DispatchError::Deluge { class, message, .. } => {
            error(id, CODE_CALL, class, message.clone())
        }
        _ => error(id, CODE_CALL, e.exception_name(), e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn origin_checks() {
        assert!(
            same_origin(&headers(&[])).is_ok(),
            "no browser headers: a tool"
        );
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:8112"),
            ("origin", "http://127.0.0.1:8112")
        ]))
        .is_ok());
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:8112"),
            ("origin", "http://evil.example")
        ]))
        .is_err());
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:8112"),
            ("origin", "http://127.0.0.1:8112.evil")
        ]))
        .is_err());
        assert!(same_origin(&headers(&[("sec-fetch-site", "cross-site")])).is_err());
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-site")])).is_err());
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin")])).is_ok());
    }
}
