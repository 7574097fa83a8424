//! What the HTTP sidecar sources share (feature `sidecars`): their specifications,
//! `KIND://[USER:PASS@]HOST[:PORT][/PATH]` (plain HTTP) or `KIND+https://…` (HTTPS), and
//! an HTTP client with deadlines. A sidecar watches a torrent daemon that runs anyway
//! (Transmission, qBittorrent, rqbit) and keeps its all-time totals.
//!
//! Nothing here ever puts the password in a message: [`SidecarUrl`]'s `Debug` and
//! [`SidecarUrl::describe`] leave it out, and [`SidecarSpecError`] never repeats input
//! beyond the host and port.

use std::fmt;

pub(crate) use super::error_chain;
use std::time::Duration;

/// How long connecting may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one request may take, answer included (the poller's own deadline, the poll
/// interval, is usually shorter).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read from a sidecar's daemon.
pub(crate) const MAX_ANSWER: usize = 1 << 20;

/// Why a sidecar specification was rejected. No message repeats the password.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SidecarSpecError {
    /// It does not start with `KIND://` or `KIND+https://`.
    #[error("expected {kind}://{form} or {kind}+https://{form}")]
    Scheme {
        /// The kind (`transmission`, `qbittorrent`, `rqbit`).
        kind: &'static str,
        /// What follows the scheme.
        form: &'static str,
    },
    /// Not a URL (the parser's reason; it never repeats the input).
    #[error("not a valid address: {0}")]
    Url(String),
    /// A `%` not followed by two hex digits in the user or the password, or not UTF-8.
    #[error(
        "the {what} has a '%' not followed by two hex digits or is not UTF-8 (write '%25' for '%')"
    )]
    BadEscape {
        /// `"user"` or `"password"`.
        what: &'static str,
    },
    /// A user without a password, or a password without a user.
    #[error("give both USER and PASS ({kind}://USER:PASS@HOST:PORT), or neither")]
    HalfLogin {
        /// The kind.
        kind: &'static str,
    },
    /// A query or fragment.
    #[error("nothing may follow the path (no '?' or '#')")]
    Query,
}

/// A parsed sidecar address.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SidecarUrl {
    /// The kind, as in the scheme.
    pub kind: &'static str,
    /// HTTPS rather than HTTP.
    pub https: bool,
    /// Host name or IP address (an IPv6 address without brackets), lowercased.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Path prefix, starting with `/`, without a trailing `/` (empty for none).
    pub path: String,
    /// Login, percent-decoded.
    pub user: Option<String>,
    /// Password, percent-decoded.
    pub password: Option<String>,
}

impl fmt::Debug for SidecarUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SidecarUrl")
            .field("kind", &self.kind)
            .field("https", &self.https)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("path", &self.path)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Whether a kind takes a login. Every kind's daemon has optional authentication (rqbit's
/// HTTP API too: its optional basic authentication).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Login {
    /// `USER:PASS@` may be given (or left out for a daemon without authentication).
    Optional,
}

impl SidecarUrl {
    /// Parses `KIND://[USER:PASS@]HOST[:PORT][/PATH]` or `KIND+https://…`; `default_port`
    /// when no port is given, `default_path` when no path is.
    pub(crate) fn parse(
        spec: &str,
        kind: &'static str,
        form: &'static str,
        default_port: u16,
        default_path: &str,
        login: Login,
    ) -> Result<SidecarUrl, SidecarSpecError> {
        let scheme_error = SidecarSpecError::Scheme { kind, form };
        let (scheme, rest) = spec.split_once("://").ok_or(scheme_error.clone())?;
        let https = match scheme.strip_prefix(kind) {
            Some("") => false,
            Some("+https") => true,
            _ => return Err(scheme_error),
        };
        let scheme = if https { "https" } else { "http" };
        let url = reqwest::Url::parse(&format!("{scheme}://{rest}"))
            .map_err(|e| SidecarSpecError::Url(e.to_string()))?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(SidecarSpecError::Query);
        }
        let host = match url.host_str() {
            Some(h) if !h.is_empty() => h
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase(),
            _ => return Err(SidecarSpecError::Url("empty host".into())),
        };
        let user = match url.username() {
            "" => None,
            u => Some(percent_decode(u).ok_or(SidecarSpecError::BadEscape { what: "user" })?),
        };
        let password = match url.password() {
            None => None,
            Some(p) => {
                Some(percent_decode(p).ok_or(SidecarSpecError::BadEscape { what: "password" })?)
            }
        };
        match (login, &user, &password) {
            (Login::Optional, None, None) => {}
            (Login::Optional, Some(_), Some(_)) => {}
            (Login::Optional, _, _) => return Err(SidecarSpecError::HalfLogin { kind }),
        }
        let path = match url.path().trim_end_matches('/') {
            "" => default_path.trim_end_matches('/').to_string(),
            p => p.to_string(),
        };
        // The URL parser drops a port equal to its scheme's (80, 443): such a port was
        // given, and is not the kind's default.
        let port = match url.port() {
            Some(port) => port,
            None if explicit_port(rest) => url.port_or_known_default().unwrap_or(default_port),
            None => default_port,
        };
        if port == 0 {
            return Err(SidecarSpecError::Url(
                "port 0: give a port from 1 to 65535".into(),
            ));
        }
        Ok(SidecarUrl {
            kind,
            https,
            host,
            port,
            path,
            user,
            password,
        })
    }

    /// `host:port`, an IPv6 address in brackets.
    pub(crate) fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// `http(s)://host:port` followed by `path` (which starts with `/`).
    pub(crate) fn url(&self, path: &str) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.authority())
    }

    /// The address for messages and `describe()`: `KIND[+https]://[USER@]HOST:PORT[PATH]`,
    /// never the password.
    pub(crate) fn describe(&self) -> String {
        let tls = if self.https { "+https" } else { "" };
        let user = match &self.user {
            Some(u) => format!("{}@", u.replace(['@', ':', '%', '/'], "_")),
            None => String::new(),
        };
        format!(
            "{}{tls}://{user}{}{}",
            self.kind,
            self.authority(),
            self.path
        )
    }
}

/// An HTTP client for one sidecar: connect and request deadlines, no redirects (a login
/// page answering with a redirect is an error to report, not to follow), and for HTTPS
/// the system's roots (rustls).
pub(crate) fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("torrent-stats/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// Reads a response's body, at most [`MAX_ANSWER`] bytes.
pub(crate) async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER as u64)
    {
        return Err(format!("an answer over {MAX_ANSWER} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| error_chain(&e))? {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(format!("an answer over {MAX_ANSWER} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Whether the authority of `rest` (what follows `://`) writes a port.
fn explicit_port(rest: &str) -> bool {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let after_host = host_port.rsplit_once(']').map_or(host_port, |(_, p)| p);
    after_host
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.is_empty())
}

/// Decodes `%XX` escapes; `None` for a bad escape or a result that is not UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
            let (hi, lo) = (hex(bytes.get(i + 1))?, hex(bytes.get(i + 2))?);
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(spec: &str) -> Result<SidecarUrl, SidecarSpecError> {
        SidecarUrl::parse(
            spec,
            "transmission",
            "[USER:PASS@]HOST[:PORT][/PATH]",
            9091,
            "/transmission/rpc",
            Login::Optional,
        )
    }

    #[test]
    fn specs_parse_with_defaults_and_never_show_the_password() {
        let u = parse("transmission://me:p%40ss@NAS.local").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.https),
            ("nas.local", 9091, false)
        );
        assert_eq!(u.path, "/transmission/rpc");
        assert_eq!(u.password.as_deref(), Some("p@ss"));
        assert_eq!(
            u.describe(),
            "transmission://me@nas.local:9091/transmission/rpc"
        );
        assert!(!format!("{u:?}").contains("p@ss"));
        let u = parse("transmission+https://[::1]:443/rpc/").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.https), ("::1", 443, true));
        assert_eq!(u.url("/x"), "https://[::1]:443/x");
        assert_eq!(u.path, "/rpc");
        // The scheme's own port written out is that port, not the kind's default.
        for (spec, port) in [
            ("transmission+https://h:443", 443),
            ("transmission://u:p@h:80/x", 80),
            ("transmission://[::1]:80", 80),
            ("transmission://h:", 9091),
            ("transmission://[::1]", 9091),
            ("transmission://u:p@h", 9091),
        ] {
            assert_eq!(parse(spec).unwrap().port, port, "{spec}");
        }
        for (bad, want) in [
            ("qbittorrent://h", "expected transmission://"),
            ("transmission://me@h", "give both USER and PASS"),
            ("transmission://me:s3cret@h:99999", "not a valid address"),
            ("transmission://me:s3cret%zz@h", "'%'"),
            ("transmission://h/rpc?x=1", "nothing may follow"),
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains(want), "{bad}: {e}");
            assert!(!e.contains("s3cret"), "{e}");
        }
    }
}
