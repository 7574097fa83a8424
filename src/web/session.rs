//! Web sessions: a random token in an HttpOnly, SameSite=Strict cookie, expiring after an
//! hour without use, at most [`MAX_SESSIONS`] at once (the least recently used goes).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;

use crate::export::{AuthLevel, Caller};

/// The cookie's name (Deluge-Web's).
pub const SESSION_COOKIE: &str = "_session_id";
/// Idle time after which a session ends.
pub const SESSION_TTL: Duration = Duration::from_secs(3600);
/// Sessions kept at once.
pub const MAX_SESSIONS: usize = 1024;

/// A logged-in browser.
#[derive(Debug, Clone)]
pub struct WebSession {
    /// The account.
    pub user: String,
    /// Its level at login.
    pub level: AuthLevel,
    last_used: Instant,
}

impl WebSession {
    /// The caller this session dispatches as.
    pub fn caller(&self) -> Caller {
        Caller::user(self.user.clone(), self.level)
    }
}

/// The live sessions by token.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, WebSession>>,
}

impl Sessions {
    /// Starts a session; returns its token.
    pub fn start(&self, user: &str, level: AuthLevel) -> std::io::Result<String> {
        let token = crate::auth::random_hex(32)?;
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| now.duration_since(s.last_used) < SESSION_TTL);
        if map.len() >= MAX_SESSIONS {
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
            WebSession {
                user: user.to_string(),
                level,
                last_used: now,
            },
        );
        Ok(token)
    }

    /// The live session of the request's cookie, its idle time restarted.
    pub fn get(&self, headers: &HeaderMap) -> Option<WebSession> {
        let token = cookie(headers, SESSION_COOKIE)?;
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        match map.get_mut(token) {
            Some(s) if now.duration_since(s.last_used) < SESSION_TTL => {
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
        if let Some(token) = cookie(headers, SESSION_COOKIE) {
            let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
            map.remove(token);
        }
    }
}

/// The `Set-Cookie` value that starts (`Some(token)`) or clears a session.
pub fn set_cookie(token: Option<&str>) -> String {
    match token {
        Some(t) => format!(
            "{SESSION_COOKIE}={t}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
            SESSION_TTL.as_secs()
        ),
        None => format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
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
        let sessions = Sessions::default();
        let token = sessions.start("alice", AuthLevel::ReadOnly).unwrap();
        assert_eq!(token.len(), 64);
        let mut headers = HeaderMap::new();
        headers.insert(
            "cookie",
            format!("other=1; {SESSION_COOKIE}={token}")
                .parse()
                .unwrap(),
        );
        let s = sessions.get(&headers).unwrap();
        assert_eq!((s.user.as_str(), s.level), ("alice", AuthLevel::ReadOnly));
        sessions.end(&headers);
        assert!(sessions.get(&headers).is_none());
        let mut forged = HeaderMap::new();
        forged.insert("cookie", format!("{SESSION_COOKIE}=00").parse().unwrap());
        assert!(sessions.get(&forged).is_none());
    }

    #[test]
    fn the_least_recently_used_session_goes_first() {
        let sessions = Sessions::default();
        let first = sessions.start("a", AuthLevel::Normal).unwrap();
        for _ in 0..MAX_SESSIONS {
            sessions.start("b", AuthLevel::Normal).unwrap();
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            "cookie",
            format!("{SESSION_COOKIE}={first}").parse().unwrap(),
        );
        assert!(sessions.get(&headers).is_none());
        assert_eq!(sessions.map.lock().unwrap().len(), MAX_SESSIONS);
    }

    #[test]
    fn cookie_flags() {
        let c = set_cookie(Some("ab"));
        for flag in ["HttpOnly", "SameSite=Strict", "Max-Age=3600", "Path=/"] {
            assert!(c.contains(flag), "{c}");
        }
        assert!(set_cookie(None).contains("Max-Age=0"));
    }
}
