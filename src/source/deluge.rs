//! `deluge://USER:PASS@HOST[:PORT]`: session status from a running Deluge 2 daemon; see
//! [`DelugeSource`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Map, Value};
use tokio::sync::Mutex;

use crate::export::AuthLevel;
use crate::rpc::client::{Client, ClientError};
use crate::rpc::tls::CertPolicy;
use crate::session::SourceError;
use crate::session::{SessionId, SessionSource, SessionStatus, StatusKey};

/// Deluge's default daemon port.
pub const DEFAULT_PORT: u16 = 58846;

/// How long connecting (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one call may wait for its answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// libtorrent's tick counter: only used to notice restarts the identity cannot show.
const TICKS: &str = "net.on_tick_counter";
const PEERS_CONNECTED: &str = "peer.num_peers_connected";
const PEERS_HALF_OPEN: &str = "peer.num_peers_half_open";

/// Why [`DelugeSource::from_spec`] rejected a `deluge://` specification. No message
/// repeats the password.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DelugeSpecError {
    /// It does not start with `deluge://`.
    #[error("expected deluge://USER:PASS@HOST[:PORT]")]
    NotDelugeUrl,
    /// No `USER:PASS@`.
    #[error(
        "expected deluge://USER:PASS@HOST[:PORT]: USER:PASS@ is missing (the localclient \
         password is in the daemon's auth file)"
    )]
    MissingLogin,
    /// `USER@` without `:PASS`.
    #[error("expected deluge://USER:PASS@HOST[:PORT]: the password is missing")]
    MissingPassword,
    /// The user is empty.
    #[error("expected deluge://USER:PASS@HOST[:PORT]: the user is empty")]
    EmptyUser,
    /// A `%` not followed by two hex digits in the user or the password.
    #[error("the {what} has a '%' not followed by two hex digits (write '%25' for '%')")]
    BadPercentEscape {
        /// `"user"` or `"password"`.
        what: &'static str,
    },
    /// The user or the password is not UTF-8 once percent-decoded.
    #[error("the {what} is not UTF-8 after percent-decoding")]
    NotUtf8 {
        /// `"user"` or `"password"`.
        what: &'static str,
    },
    /// A path, query or fragment after `HOST:PORT`.
    #[error("expected deluge://USER:PASS@HOST[:PORT]: nothing may follow HOST:PORT")]
    TrailingPath,
    /// `[` without `]`.
    #[error("an IPv6 address needs a closing ']'")]
    UnclosedBracket,
    /// Something other than `:PORT` after `]`.
    #[error("expected ':PORT' after ']'")]
    AfterBracket,
    /// Brackets around something that is not an IPv6 address.
    #[error("[{host}] is not an IPv6 address")]
    NotIpv6 {
        /// What was in the brackets.
        host: String,
    },
    /// An IPv6 address without brackets.
    #[error("write an IPv6 address in brackets: [::1]:58846")]
    UnbracketedIpv6,
    /// The host is empty.
    #[error("expected deluge://USER:PASS@HOST[:PORT]: the host is empty")]
    EmptyHost,
    /// The host has characters no host name or IP address has.
    #[error("{host:?} is not a host name or IP address")]
    BadHost {
        /// The host as given.
        host: String,
    },
    /// The port is not a number from 1 to 65535.
    #[error("port {port:?} is not a number from 1 to 65535")]
    BadPort {
        /// The port as given.
        port: String,
    },
}

/// The Deluge session-status keys one of our keys is made of.
fn deluge_keys(key: StatusKey) -> &'static [&'static str] {
    match key {
        StatusKey::TotalUpload => &["net.sent_bytes"],
        StatusKey::TotalDownload => &["net.recv_bytes"],
        StatusKey::TotalPayloadUpload => &["net.sent_payload_bytes"],
        StatusKey::TotalPayloadDownload => &["net.recv_payload_bytes"],
        StatusKey::UploadRate => &["upload_rate"],
        StatusKey::DownloadRate => &["download_rate"],
        StatusKey::PayloadUploadRate => &["payload_upload_rate"],
        StatusKey::PayloadDownloadRate => &["payload_download_rate"],
        StatusKey::NumPeers => &[PEERS_CONNECTED],
        StatusKey::NumConnections => &[PEERS_CONNECTED, PEERS_HALF_OPEN],
        StatusKey::DhtNodes => &["dht.dht_nodes"],
        StatusKey::DhtCacheNodes => &["dht.dht_node_cache"],
        StatusKey::DhtTorrents => &["dht.dht_torrents"],
    }
}

/// A session-status value as `u64`: floats rounded, negatives and NaN 0, anything that is
/// not a number `None`.
fn to_u64(v: &Value) -> Option<u64> {
    let n = v.as_number()?;
    if let Some(u) = n.as_u64() {
        return Some(u);
    }
    if n.as_i64().is_some() {
        return Some(0); // negative
    }
    let f = n.as_f64()?;
    // `as` saturates: NaN -> 0, above u64::MAX -> u64::MAX.
    Some(if f > 0.0 { f.round() as u64 } else { 0 })
}

/// Decodes `%XX` escapes; the result must be UTF-8. The error never repeats the input.
fn percent_decode(s: &str, what: &'static str) -> Result<String, DelugeSpecError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
            match (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                (Some(hi), Some(lo)) => out.push((hi * 16 + lo) as u8),
                _ => return Err(DelugeSpecError::BadPercentEscape { what }),
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| DelugeSpecError::NotUtf8 { what })
}

/// A parsed `deluge://` specification.
#[derive(Clone, PartialEq, Eq)]
struct Target {
    /// Lowercased, without brackets.
    host: String,
    port: u16,
    user: String,
    password: String,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"***")
            .finish()
    }
}

impl Target {
    fn parse(spec: &str) -> Result<Target, DelugeSpecError> {
        use DelugeSpecError as E;
        let rest = spec.strip_prefix("deluge://").ok_or(E::NotDelugeUrl)?;
        // The host cannot hold '@'; an unescaped '@' in the password still works.
        let (userinfo, hostport) = rest.rsplit_once('@').ok_or(E::MissingLogin)?;
        let (user, password) = userinfo.split_once(':').ok_or(E::MissingPassword)?;
        let user = percent_decode(user, "user")?;
        let password = percent_decode(password, "password")?;
        if user.is_empty() {
            return Err(E::EmptyUser);
        }
        let hostport = hostport.strip_suffix('/').unwrap_or(hostport);
        if hostport.contains(['/', '?', '#']) {
            return Err(E::TrailingPath);
        }
        let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']').ok_or(E::UnclosedBracket)?;
            if !host.contains(':') || !host.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
                return Err(E::NotIpv6 {
                    host: host.to_string(),
                });
            }
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or(E::AfterBracket)?),
            };
            (host, port)
        } else {
            match hostport.split_once(':') {
                Some((_, p)) if p.contains(':') => return Err(E::UnbracketedIpv6),
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(E::EmptyHost);
        }
        if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':'))
        {
            return Err(E::BadHost {
                host: host.to_string(),
            });
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(E::BadPort {
                        port: p.to_string(),
                    })
                }
            },
        };
        Ok(Target {
            host: host.to_ascii_lowercase(),
            port,
            user,
            password,
        })
    }

    /// `host:port`, IPv6 in brackets.
    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// One logged-in connection and the identity of the daemon process behind it.
struct Connection {
    client: Client,
    session: SessionId,
}

#[derive(Default)]
struct State {
    conn: Option<Connection>,
    /// Identity and libtorrent tick counter of the last successful poll.
    last: Option<(SessionId, u64)>,
}

/// `deluge://USER:PASS@HOST[:PORT]`: session status from a running Deluge 2 daemon.
///
/// Keeps one TLS connection to `deluged` (default port 58846) and answers
/// each poll with one `core.get_session_status(keys)` call. The user and password are
/// percent-decoded (`%40` for `@`, `%3A` for `:`, ...); the `localclient` password is in the
/// daemon's `auth` file.
///
/// # Keys
/// Deluge 2 answers with libtorrent's counter names; the old names (`total_upload`,
/// `num_peers`, `dht_nodes`, ...) are deprecated aliases, and names it does not know are
/// dropped silently (`num_connections` and `dht_cache_nodes` are not Deluge session keys:
/// Deluge's own Stats plugin derives them). So this source asks for the native names and
/// derives the rest the same way Deluge's Stats plugin does:
///
/// | key | Deluge / libtorrent key |
/// |---|---|
/// | `total_upload`, `total_download` | `net.sent_bytes`, `net.recv_bytes` |
/// | `total_payload_upload`, `total_payload_download` | `net.sent_payload_bytes`, `net.recv_payload_bytes` |
/// | `upload_rate`, `download_rate`, `payload_*_rate` | same names (floats, bytes/s, recomputed every 2 s) |
/// | `num_peers` | `peer.num_peers_connected` |
/// | `num_connections` | `peer.num_peers_connected + peer.num_peers_half_open` |
/// | `dht_nodes`, `dht_cache_nodes`, `dht_torrents` | `dht.dht_nodes`, `dht.dht_node_cache`, `dht.dht_torrents` |
///
/// Values may be integers or floats; they are rounded to `u64`, negatives and NaN count
/// as 0. A key the daemon does not report is left out of the status.
///
/// # Session identity
/// The identity must stay the same while one `deluged` process runs, also across restarts
/// of *our* daemon (a fresh source must compute the same string, or the accumulator counts
/// the whole session again), and must change when `deluged` restarts (its counters start
/// again from 0). Deluge has no session id and no uptime call; what was checked against a
/// real Deluge 2.0.3:
/// - `core.get_session_state` lists torrent ids; `core.get_config*`,
///   `core.get_listen_port` (the random port is saved in `core.conf`) and the TLS
///   certificate survive restarts: they identify the installation, not the process.
/// - libtorrent's `net.on_tick_counter` gives the uptime only approximately: it ticks every
///   ~505 ms instead of 500 ms, so an uptime-derived start time drifts by ~1 % of the uptime
///   and cannot be recomputed exactly after our restart.
/// - Addresses under `/proc/self/map_files` are randomised per process (ASLR), but the
///   highest one moves over time with the legacy memory layout and the lowest one (the
///   executable) is fixed for Debian's non-PIE Python.
/// - `core.glob("/proc/self/task/*")` lists the daemon's thread ids, the process's own
///   (= its pid) first: Linux lists the thread-group leader first. It is exact, cannot
///   change while the process runs, and a restarted daemon has a new pid.
///
/// So the identity is `deluge://HOST:PORT#pid=PID` (the host and port as configured,
/// lowercased, port always written), read once per connection: a restarted daemon always
/// drops our connection, so the pid is read again on the reconnect. When the daemon has no
/// Linux `/proc` (or no `core.glob`), the identity is `deluge://HOST:PORT#pid=unknown`.
///
/// Limits:
/// - A daemon restarted with the same pid (typical for a container restart: the same
///   startup sequence gives the same pid in a fresh pid namespace) or a daemon on Windows
///   or macOS keeps its identity; the accumulator then still starts a new session when any
///   byte counter went down, which misses a restart only if the new session moved more
///   bytes than the old one had by our last poll before we poll again. While we run, such
///   a restart is logged as a warning (libtorrent's tick counter went down).
/// - Writing the same daemon differently in `--source` (`localhost` vs `127.0.0.1`, another
///   port mapping) is a new identity: that change counts the current session once more.
///
/// # Errors and connection
/// Errors are [`SourceError`] values: `Unavailable` when the daemon cannot be reached or the
/// connection breaks, `Failed` when it answers with an error (bad login, an account below
/// NORMAL, a protocol violation), `Timeout` when a call gets no answer. After an I/O,
/// protocol or timeout error, or a poll abandoned half-way (the poller's timeout drops it),
/// the connection is dropped and the next poll connects and logs in again.
///
/// # Example
/// ```
/// use torrent_stats::SessionSource;
/// use torrent_stats::DelugeSource;
/// let src = DelugeSource::from_spec("deluge://localclient:s%40cret@LocalHost").unwrap();
/// assert_eq!(src.describe(), "deluge://localclient@localhost:58846");
/// assert!(!format!("{src:?}").contains("cret"));
/// assert!(DelugeSource::from_spec("deluge://localhost:58846").is_err()); // no login
/// ```
pub struct DelugeSource {
    target: Target,
    state: Mutex<State>,
}

impl fmt::Debug for DelugeSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DelugeSource")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// Whether a client error leaves the connection usable (the daemon answered in order).
fn keeps_connection(e: &ClientError) -> bool {
    matches!(e, ClientError::Remote { .. })
}

impl DelugeSource {
    /// Parses `deluge://USER:PASS@HOST[:PORT]` (user and password percent-encoded, IPv6 in
    /// brackets, default port 58846). Connects lazily, on the first poll.
    pub fn from_spec(spec: &str) -> Result<Self, DelugeSpecError> {
        Ok(DelugeSource {
            target: Target::parse(spec)?,
            state: Mutex::new(State::default()),
        })
    }

    /// `host:port` of the daemon, IPv6 in brackets.
    pub fn authority(&self) -> String {
        self.target.authority()
    }

    fn error(&self, doing: &str, e: ClientError) -> SourceError {
        let at = self.target.authority();
        match e {
            e @ (ClientError::Io(_) | ClientError::Setup(_) | ClientError::Closed) => {
                SourceError::Unavailable(format!("deluged at {at}: {doing}: {e}"))
            }
            ClientError::Timeout(d) => SourceError::Timeout(d),
            other => SourceError::Failed(format!("deluged at {at}: {doing}: {other}")),
        }
    }

    /// Connects, logs in and reads the daemon process's identity.
    async fn connect(&self) -> Result<Connection, SourceError> {
        let t = &self.target;
        let connect = Client::connect(&t.host, t.port, CertPolicy::AnyCertificate);
        let mut client = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(result) => result.map_err(|e| self.error("connect", e))?,
            Err(_) => {
                return Err(SourceError::Unavailable(format!(
                    "deluged at {}: connect: no connection within {CONNECT_TIMEOUT:?}",
                    t.authority()
                )))
            }
        };
        client.set_timeout(CALL_TIMEOUT);
        let level = client
            .login(&t.user, &t.password)
            .await
            .map_err(|e| self.error(&format!("login as {:?}", t.user), e))?;
        if level < AuthLevel::Normal {
            return Err(SourceError::Failed(format!(
                "deluged at {}: account {:?} has auth level {level:?}; \
                 core.get_session_status needs NORMAL",
                t.authority(),
                t.user
            )));
        }
        let pid = match client
            .call("core.glob", vec![json!("/proc/self/task/*")], Map::new())
            .await
        {
            Ok(Value::Array(paths)) => paths
                .first()
                .and_then(Value::as_str)
                .and_then(|p| p.strip_prefix("/proc/self/task/"))
                .filter(|tid| !tid.is_empty() && tid.bytes().all(|b| b.is_ascii_digit()))
                .map(str::to_string),
            Ok(other) => {
                return Err(SourceError::Failed(format!(
                    "deluged at {}: core.glob returned {other}",
                    t.authority()
                )))
            }
            // A daemon without core.glob: consistently no pid.
            Err(ClientError::Remote { class, .. }) if class == "AttributeError" => None,
            Err(e) => return Err(self.error("core.glob", e)),
        };
        let session = SessionId(format!(
            "deluge://{}#pid={}",
            t.authority(),
            pid.as_deref().unwrap_or("unknown")
        ));
        tracing::info!(source = %self.describe(), %session, "connected to deluged");
        Ok(Connection { client, session })
    }

    /// One `core.get_session_status` call.
    async fn poll(
        &self,
        conn: &mut Connection,
        keys: &[StatusKey],
    ) -> Result<(SessionStatus, Option<u64>), ClientError> {
        let mut names: Vec<&str> = keys.iter().flat_map(|&k| deluge_keys(k)).copied().collect();
        names.push(TICKS);
        names.sort_unstable();
        names.dedup();
        let answer = conn
            .client
            .call("core.get_session_status", vec![json!(names)], Map::new())
            .await?;
        let Value::Object(map) = answer else {
            return Err(ClientError::Protocol(format!(
                "core.get_session_status returned {answer}"
            )));
        };
        let mut values = BTreeMap::new();
        for &key in keys {
            let parts: Option<Vec<u64>> = deluge_keys(key)
                .iter()
                .map(|name| map.get(*name).and_then(to_u64))
                .collect();
            if let Some(parts) = parts {
                values.insert(key, parts.into_iter().fold(0u64, u64::saturating_add));
            }
        }
        let ticks = map.get(TICKS).and_then(to_u64);
        Ok((
            SessionStatus {
                session: conn.session.clone(),
                values,
                uptime: None,
            },
            ticks,
        ))
    }
}

#[async_trait]
impl SessionSource for DelugeSource {
    async fn session_status(&self, keys: &[StatusKey]) -> Result<SessionStatus, SourceError> {
        let mut state = self.state.lock().await;
        // Taken out while in use: a poll dropped half-way (the poller's timeout) must not
        // leave a connection with an unread answer behind.
        let mut conn = match state.conn.take() {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        match self.poll(&mut conn, keys).await {
            Ok((status, ticks)) => {
                if let (Some(now), Some((session, before))) = (ticks, &state.last) {
                    if *session == status.session && now < *before {
                        tracing::warn!(
                            %session,
                            "deluged restarted (its tick counter went down) but its identity \
                             did not change (same pid, or no pid visible); counting relies on \
                             its byte counters going down"
                        );
                    }
                }
                if let Some(now) = ticks {
                    state.last = Some((status.session.clone(), now));
                }
                state.conn = Some(conn);
                Ok(status)
            }
            Err(e) => {
                if keeps_connection(&e) {
                    state.conn = Some(conn);
                }
                Err(self.error("core.get_session_status", e))
            }
        }
    }

    fn kind(&self) -> &'static str {
        "deluge"
    }

    fn describe(&self) -> String {
        format!(
            "deluge://{}@{}",
            self.target.user.replace(['@', ':', '%'], "_"),
            self.target.authority()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(spec: &str) -> Result<Target, DelugeSpecError> {
        Target::parse(spec)
    }

    #[test]
    fn specs() {
        let t = parse("deluge://localclient:abc@127.0.0.1:1234").unwrap();
        assert_eq!(
            (
                t.host.as_str(),
                t.port,
                t.user.as_str(),
                t.password.as_str()
            ),
            ("127.0.0.1", 1234, "localclient", "abc")
        );
        let t = parse("deluge://u%3Ax:p%40ss%3A%25w%C3%A9@Seedbox.Example/").unwrap();
        assert_eq!(t.user, "u:x");
        assert_eq!(t.password, "p@ss:%wé");
        assert_eq!(t.authority(), "seedbox.example:58846");
        // An unescaped '@' or ':' in the password still works.
        let t = parse("deluge://u:p@ss:w@host:1").unwrap();
        assert_eq!((t.password.as_str(), t.port), ("p@ss:w", 1));
        let t = parse("deluge://u:@[::1]:9").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.password.as_str()),
            ("::1", 9, "")
        );
        assert_eq!(t.authority(), "[::1]:9");
        assert_eq!(parse("deluge://u:p@[::1]").unwrap().port, DEFAULT_PORT);

        for bad in [
            "deluge:localhost",
            "deluge://localhost:58846",
            "deluge://user@localhost",
            "deluge://:p@localhost",
            "deluge://u:p@",
            "deluge://u:p@:1",
            "deluge://u:p@host:0",
            "deluge://u:p@host:65536",
            "deluge://u:p@host:x",
            "deluge://u:p@host:1/path",
            "deluge://u:p@host?x=1",
            "deluge://u:p@::1",
            "deluge://u:p@[::1",
            "deluge://u:p@[::1]x",
            "deluge://u:p@[nothex]:1",
            "deluge://u:p@ho st",
            "deluge://u:p%zz@host",
            "deluge://u:p%4@host",
            "deluge://u:%ff@host",
        ] {
            assert!(parse(bad).is_err(), "{bad} accepted");
        }
        use DelugeSpecError as E;
        for (bad, want) in [
            ("deluge:localhost", E::NotDelugeUrl),
            ("deluge://localhost:58846", E::MissingLogin),
            ("deluge://user@localhost", E::MissingPassword),
            ("deluge://:p@localhost", E::EmptyUser),
            ("deluge://u:p@", E::EmptyHost),
            ("deluge://u:p@host/path", E::TrailingPath),
            ("deluge://u:p@::1", E::UnbracketedIpv6),
            ("deluge://u:p@[::1", E::UnclosedBracket),
            ("deluge://u:p@[::1]x", E::AfterBracket),
            (
                "deluge://u:p%4@host",
                E::BadPercentEscape { what: "password" },
            ),
            ("deluge://u:%ff@host", E::NotUtf8 { what: "password" }),
            (
                "deluge://u:p@host:0",
                E::BadPort {
                    port: "0".to_string(),
                },
            ),
        ] {
            assert_eq!(parse(bad), Err(want), "{bad}");
        }
    }

    #[test]
    fn errors_and_descriptions_hide_the_password() {
        for spec in [
            "deluge://u:s3cr3t%zz@h",
            "deluge://u:s3cr3t%ff@h",
            "deluge://u:s3cr3t@h:99999",
            "deluge://u:s3cr3t@h/x",
        ] {
            let e = parse(spec).unwrap_err().to_string();
            assert!(!e.contains("s3cr3t"), "{e}");
        }
        let src = DelugeSource::from_spec("deluge://local%40client:s3cr3t@H:5").unwrap();
        assert_eq!(src.describe(), "deluge://local_client@h:5");
        assert!(!format!("{src:?}").contains("s3cr3t"));
    }

    #[test]
    fn values_become_u64() {
        for (v, want) in [
            (json!(5), Some(5)),
            (json!(-5), Some(0)),
            (json!(2.5), Some(3)),
            (json!(2.4), Some(2)),
            (json!(-0.5), Some(0)),
            (json!(1e30), Some(u64::MAX)),
            (json!(u64::MAX), Some(u64::MAX)),
            (json!(null), None),
            (json!("7"), None),
        ] {
            assert_eq!(to_u64(&v), want, "{v}");
        }
    }

    #[test]
    fn every_key_has_deluge_names() {
        for key in StatusKey::ALL {
            assert!(!deluge_keys(key).is_empty());
        }
        assert_eq!(
            deluge_keys(StatusKey::DhtCacheNodes),
            &["dht.dht_node_cache"]
        );
    }

    #[tokio::test]
    async fn refused_is_unavailable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let src = DelugeSource::from_spec(&format!("deluge://u:p@127.0.0.1:{port}")).unwrap();
        match src.session_status(&StatusKey::ALL).await {
            Err(SourceError::Unavailable(m)) => assert!(!m.contains(":p@"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
