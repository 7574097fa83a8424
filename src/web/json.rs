//! `POST /json`: Deluge-Web's JSON-RPC envelope over the core service.
//!
//! A request is `{"method": "...", "params": [...], "id": ...}`; the answer is
//! `{"result": ..., "error": null | {"message", "code", "class"}, "id": ...}` with HTTP 200
//! (400 for a body that is not such an object). Error codes are Deluge-Web's:
//! [`CODE_AUTH`](super::call::CODE_AUTH) (not logged in: `"Not authenticated"`, or the level is too low),
//! [`CODE_UNKNOWN_METHOD`](super::call::CODE_UNKNOWN_METHOD) (`"Unknown method"`), [`CODE_CALL`](super::call::CODE_CALL) (the call failed; `class` is
//! the Deluge exception class).
//!
//! `auth.*` ([`super::session_methods`]) answers without a session: logins (one argument,
//! deluge-web's, or two, the page's) set the session cookie. Every other method needs a
//! session: `web.*` ([`super::deluge_web`]), `system.listMethods`, and the daemon's methods,
//! dispatched at the session's level. No cross-site request forgery: every request must be
//! `Content-Type: application/json` (which a form on another site cannot send without a
//! CORS preflight, never granted) and, when the browser says where it comes from
//! (`Origin`, `Sec-Fetch-Site`), come from this server's own origin.
//!
//! The error codes and one call's outcome are in [`super::call`], shared with the methods.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, Extensions, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::call::{CallError, Reply, CODE_CALL};
use super::{call::core_call, deluge_web, session_methods, WebState};

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
pub(super) fn same_origin(headers: &HeaderMap) -> Result<(), String> {
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
    let reply = call(&state, &headers, peer, &method, params).await;
    let answer = match reply.answer {
        // Built by hand: `json!` would copy a large result into a second tree.
        Ok(result) => Value::Object(Map::from_iter([
            ("result".to_string(), result),
            ("error".to_string(), Value::Null),
            ("id".to_string(), id),
        ])),
        Err(e) => error(&id, e.code, &e.class, e.message),
    };
    let mut response = Json(answer).into_response();
    if reply.close {
        response.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    if let Some(cookie) = reply.cookie.and_then(|c| c.parse().ok()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

/// Answers one call: `auth.*` with or without a session, everything else with one.
async fn call(
    state: &WebState,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    method: &str,
    params: Vec<Value>,
) -> Reply {
    if let Some(name) = method.strip_prefix("auth.") {
        return session_methods::call(state, headers, peer, name, params).await;
    }
    let Some(session) = state.logins.get(headers) else {
        return Err(CallError::not_authenticated()).into();
    };
    if let Some(name) = method.strip_prefix("web.") {
        return deluge_web::call(state, &session, name, params).await.into();
    }
    if method == "system.listMethods" {
        return deluge_web::list_methods(state, &session, &params)
            .await
            .into();
    }
    core_call(state, &session, method, params).await.into()
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
