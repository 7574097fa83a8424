//! Browser logins (login sessions): a random token in an HttpOnly, SameSite=Strict cookie (also Secure over HTTPS), expiring after an
//! hour without use, at most [`MAX_LOGINS`] at once (the least recently used goes).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue};

use crate::export::{AuthLevel, Caller};

/// The cookie's name (Deluge-Web's).
pub const LOGIN_COOKIE: &str = "_session_id";
/// Idle time after which a session ends.
pub const LOGIN_TTL: Duration = Duration::from_secs(3600);
/// Logins kept at once.
pub const MAX_LOGINS: usize = 1024;

/// A logged-in browser.
#[derive(Debug, Clone)]
pub struct Login {
    /// The account.
    pub user: String,
    /// Its level at login.
    pub level: AuthLevel,
    last_used: Instant,
}

impl Login {
    /// The caller this session dispatches as.
    pub fn caller(&self) -> Caller {
        Caller::user(self.user.clone(), self.level)
    }
}

/// The live logins by token.
#[derive(Debug, Default)]
pub struct Logins {
    map: Mutex<HashMap<String, Login>>,
}

impl Logins {
    /// Starts a session; returns its token.
    pub fn start(&self, user: &str, level: AuthLevel) -> std::io::Result<String> {
        let token = crate::auth::random_hex(32)?;
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| now.duration_since(s.last_used) < LOGIN_TTL);
        if map.len() >= MAX_LOGINS {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(t, _)| t.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(
            token.clone(),
            Login {
                user: user.to_string(),
                level,
                last_used: now,
            },
        );
        Ok(token)
    }

    /// The live session of the request's cookie, its idle time restarted.
    pub fn get(&self, headers: &HeaderMap) -> Option<Login> {
        let token = cookie(headers, LOGIN_COOKIE)?;
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        match map.get_mut(token) {
            Some(s) if now.duration_since(s.last_used) < LOGIN_TTL => {
                s.last_used = now;
                Some(s.clone())
            }
            Some(_) => {
                map.remove(token);
                None
            }
            None => None,
        }
    }

    /// Ends the request's session, if any.
    pub fn end(&self, headers: &HeaderMap) {
        if let Some(token) = cookie(headers, LOGIN_COOKIE) {
            let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
            map.remove(token);
        }
    }
}

/// The `Set-Cookie` value that starts (`Some(token)`) or clears a session.
pub fn set_cookie(token: Option<&str>) -> String {
    match token {
        Some(t) => format!(
            "{LOGIN_COOKIE}={t}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
            LOGIN_TTL.as_secs()
        ),
        None => format!("{LOGIN_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    }
}

/// Marks every cookie a response sets `Secure`: what responses over HTTPS get, so that a
/// browser never sends the login cookie over plain HTTP.
pub async fn secure_cookies(mut response: axum::response::Response) -> axum::response::Response {
    let headers = response.headers_mut();
    let marked: Vec<HeaderValue> = headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| secure(v).parse().ok())
        .collect();
    headers.remove(SET_COOKIE);
    for value in marked {
        headers.append(SET_COOKIE, value);
    }
    response
}

/// A `Set-Cookie` value with the `Secure` attribute.
fn secure(cookie: &str) -> String {
    let has = cookie
        .split(';')
        .any(|a| a.trim().eq_ignore_ascii_case("secure"));
    match has {
        true => cookie.to_string(),
        false => format!("{cookie}; Secure"),
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_start_resolve_and_end() {
        let logins = Logins::default();
        let token = logins.start("alice", AuthLevel::ReadOnly).unwrap();
        assert_eq!(token.len(), 64);
        let mut headers = HeaderMap::new();
        headers.insert(
            "cookie",
            format!("other=1; {LOGIN_COOKIE}={token}").parse().unwrap(),
        );
        let s = logins.get(&headers).unwrap();
        assert_eq!((s.user.as_str(), s.level), ("alice", AuthLevel::ReadOnly));
        logins.end(&headers);
        assert!(logins.get(&headers).is_none());
        let mut forged = HeaderMap::new();
        forged.insert("cookie", format!("{LOGIN_COOKIE}=00").parse().unwrap());
        assert!(logins.get(&forged).is_none());
    }

    #[test]
    fn the_least_recently_used_session_goes_first() {
        let logins = Logins::default();
        let first = logins.start("a", AuthLevel::Normal).unwrap();
        for _ in 0..MAX_LOGINS {
            logins.start("b", AuthLevel::Normal).unwrap();
        }
        let mut headers = HeaderMap::new();
        headers.insert("cookie", format!("{LOGIN_COOKIE}={first}").parse().unwrap());
        assert!(logins.get(&headers).is_none());
        assert_eq!(logins.map.lock().unwrap().len(), MAX_LOGINS);
    }

    #[test]
    fn cookie_flags() {
        let c = set_cookie(Some("ab"));
        for flag in ["HttpOnly", "SameSite=Strict", "Max-Age=3600", "Path=/"] {
            assert!(c.contains(flag), "{c}");
        }
        assert!(set_cookie(None).contains("Max-Age=0"));
    }

    #[test]
    fn cookies_over_https_are_secure() {
        let mut response = axum::response::Response::new(axum::body::Body::empty());
        let h = response.headers_mut();
        h.append(SET_COOKIE, set_cookie(Some("ab")).parse().unwrap());
        h.append(SET_COOKIE, "x=1; Secure".parse().unwrap());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let response = rt.block_on(secure_cookies(response));
        let got: Vec<&str> = response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(
            got,
            [
                format!("{}; Secure", set_cookie(Some("ab"))).as_str(),
                "x=1; Secure"
            ]
        );
    }
}
