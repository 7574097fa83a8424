//! `transmission://[USER:PASS@]HOST[:PORT][/PATH]`: session status from a running
//! Transmission daemon's RPC; see [`TransmissionSource`].

use std::fmt;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::header::{HeaderMap, LOCATION};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::session::{SessionId, SessionSource, SessionStatus, SourceError, StatusKey};
use crate::source::sidecar::{self, Login, SidecarSpecError, SidecarUrl};

/// Transmission's default RPC port.
pub const DEFAULT_PORT: u16 = 9091;
/// Transmission's default RPC path.
pub const DEFAULT_PATH: &str = "/transmission/rpc";
const FORM: &str = "[USER:PASS@]HOST[:PORT][/PATH]";

/// The CSRF token header: sent back by a 409, expected on every request.
const SESSION_ID_HEADER: &str = "x-transmission-session-id";
/// The RPC version header of a 409 answer (Transmission 4.1 and later, `6.0.0` there).
const RPC_VERSION_HEADER: &str = "x-transmission-rpc-version";
/// The JSON-RPC request id.
const JSONRPC_ID: u64 = 1;

/// The first wait after a 401 before the login is tried again; it doubles up to
/// [`AUTH_RETRY_MAX`].
const AUTH_RETRY_FIRST: Duration = Duration::from_secs(60);
/// The longest wait between two tries of a login the daemon refused.
const AUTH_RETRY_MAX: Duration = Duration::from_secs(15 * 60);

/// Which of Transmission's two RPC dialects a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// Transmission's own protocol (every version; deprecated from 4.1 on):
    /// `{"method":"session-stats"}`, camelCase and kebab-case names.
    Legacy,
    /// JSON-RPC 2.0 with snake_case names (Transmission 4.1, RPC version 6.0.0, on).
    JsonRpc,
}

impl Protocol {
    /// The protocol for a daemon whose 409 answer carried `version` in
    /// `X-Transmission-Rpc-Version` (none before 4.1).
    fn for_version(version: Option<&str>) -> Protocol {
        let major = version
            .and_then(|v| v.trim().split('.').next())
            .and_then(|m| m.parse::<u32>().ok());
        match major {
            Some(m) if m >= 6 => Protocol::JsonRpc,
            _ => Protocol::Legacy,
        }
    }

    /// The `session-stats` request body.
    fn request(self) -> Value {
        match self {
            Protocol::Legacy => json!({ "method": "session-stats" }),
            Protocol::JsonRpc => {
                json!({ "jsonrpc": "2.0", "method": "session_stats", "id": JSONRPC_ID })
            }
        }
    }
}

/// What a `session-stats` answer holds that this source reads.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stats {
    /// `current-stats.uploadedBytes`: payload sent by this run of the daemon.
    uploaded: u64,
    /// `current-stats.downloadedBytes`: payload received by this run.
    downloaded: u64,
    /// `current-stats.secondsActive`: how long this run has lasted.
    seconds_active: u64,
    /// `cumulative-stats.sessionCount`: how many runs the daemon has counted.
    session_count: u64,
    /// `uploadSpeed`, bytes/s.
    upload_speed: u64,
    /// `downloadSpeed`, bytes/s.
    download_speed: u64,
}

/// Why an answer with HTTP 200 is not a `session-stats` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Decode {
    /// A well-formed RPC error (`result` other than `success`, or a JSON-RPC `error`).
    Rpc(String),
    /// Not Transmission's RPC at all (not JSON, or without the fields).
    Foreign(String),
}

/// A JSON number as `u64`: floats rounded, negatives 0.
fn to_u64(v: &Value) -> Option<u64> {
    let n = v.as_number()?;
    if let Some(u) = n.as_u64() {
        return Some(u);
    }
    if n.as_i64().is_some() {
        return Some(0);
    }
    let f = n.as_f64()?;
    Some(if f > 0.0 { f.round() as u64 } else { 0 })
}

/// Decodes a `session-stats` answer of `protocol`.
fn decode(body: &[u8], protocol: Protocol) -> Result<Stats, Decode> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| Decode::Foreign(format!("an answer that is not JSON: {}", snippet(body))))?;
    let (args, names) = match protocol {
        Protocol::Legacy => {
            match value.get("result").and_then(Value::as_str) {
                Some("success") => {}
                Some(error) => return Err(Decode::Rpc(error.to_string())),
                None => return Err(Decode::Foreign("JSON without \"result\"".into())),
            }
            (value.get("arguments"), &LEGACY_NAMES)
        }
        Protocol::JsonRpc => {
            if value.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
                return Err(Decode::Foreign("JSON without \"jsonrpc\": \"2.0\"".into()));
            }
            if let Some(error) = value.get("error") {
                let message = error.get("message").and_then(Value::as_str).unwrap_or("?");
                let code = error.get("code").map(Value::to_string).unwrap_or_default();
                let detail = error
                    .pointer("/data/error_string")
                    .and_then(Value::as_str)
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default();
                return Err(Decode::Rpc(format!("error {code}: {message}{detail}")));
            }
            if value.get("id").and_then(Value::as_u64) != Some(JSONRPC_ID) {
                return Err(Decode::Foreign("a JSON-RPC answer with another id".into()));
            }
            (value.get("result"), &JSONRPC_NAMES)
        }
    };
    let field = |object: Option<&Value>, name: &str| -> Result<u64, Decode> {
        object
            .and_then(|o| o.get(name))
            .and_then(to_u64)
            .ok_or_else(|| Decode::Foreign(format!("an answer without {name}")))
    };
    let current = args.and_then(|a| a.get(names.current));
    let cumulative = args.and_then(|a| a.get(names.cumulative));
    Ok(Stats {
        uploaded: field(current, names.uploaded)?,
        downloaded: field(current, names.downloaded)?,
        seconds_active: field(current, names.seconds_active)?,
        session_count: field(cumulative, names.session_count)?,
        upload_speed: field(args, names.upload_speed)?,
        download_speed: field(args, names.download_speed)?,
    })
}

/// The `session-stats` field names of one protocol.
struct Names {
    current: &'static str,
    cumulative: &'static str,
    uploaded: &'static str,
    downloaded: &'static str,
    seconds_active: &'static str,
    session_count: &'static str,
    upload_speed: &'static str,
    download_speed: &'static str,
}

const LEGACY_NAMES: Names = Names {
    current: "current-stats",
    cumulative: "cumulative-stats",
    uploaded: "uploadedBytes",
    downloaded: "downloadedBytes",
    seconds_active: "secondsActive",
    session_count: "sessionCount",
    upload_speed: "uploadSpeed",
    download_speed: "downloadSpeed",
};

const JSONRPC_NAMES: Names = Names {
    current: "current_stats",
    cumulative: "cumulative_stats",
    uploaded: "uploaded_bytes",
    downloaded: "downloaded_bytes",
    seconds_active: "seconds_active",
    session_count: "session_count",
    upload_speed: "upload_speed",
    download_speed: "download_speed",
};

/// The start of a body as text for a message: tags dropped, whitespace collapsed, at
/// most 120 characters. (Transmission's error pages hold no secrets; ours never hold
/// the password: it travels in a header.)
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out = String::new();
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if in_tag => {}
            c if c.is_control() || c.is_whitespace() => out.push(' '),
            c => out.push(c),
        }
    }
    let collapsed = out.split_whitespace().collect::<Vec<_>>().join(" ");
    match collapsed.char_indices().nth(120) {
        Some((i, _)) => format!("{:?}…", &collapsed[..i]),
        None if collapsed.is_empty() => "an empty body".into(),
        None => format!("{collapsed:?}"),
    }
}

/// How long to wait before trying a refused login again, after `failures` refusals in a
/// row (at least 1).
fn auth_retry_after(failures: u32) -> Duration {
    AUTH_RETRY_FIRST
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(AUTH_RETRY_MAX)
}

/// A login the daemon refused: no request until `retry_at`.
#[derive(Debug, Clone)]
struct Refused {
    failures: u32,
    retry_at: Instant,
    message: String,
}

#[derive(Default)]
struct State {
    client: Option<reqwest::Client>,
    /// The daemon's CSRF token, from its last 409.
    csrf: Option<String>,
    /// The protocol its last 409 asked for (the old one until a 409 says 4.1+).
    protocol: Option<Protocol>,
    refused: Option<Refused>,
}

/// `transmission://[USER:PASS@]HOST[:PORT][/PATH]` (or `transmission+https://…` behind a
/// TLS proxy): session status from a running Transmission daemon's RPC (default port
/// 9091, path `/transmission/rpc`).
///
/// Each poll is one `session-stats` request, HTTP POST with basic authentication when
/// the specification has a login. Transmission answers a request without its current
/// `X-Transmission-Session-Id` (the first one, and after the id expires, hourly, or the
/// daemon restarts) with HTTP 409 and the id; the source keeps it and sends the request
/// again.
///
/// # Protocol
/// Transmission 4.1 added JSON-RPC 2.0 with snake_case names (`session_stats`,
/// `current_stats.uploaded_bytes`) and deprecated its own protocol, which it still
/// answers (a request without `jsonrpc`); its 409 answers carry
/// `X-Transmission-Rpc-Version` (`6.0.0` for 4.1). The source speaks JSON-RPC when a 409
/// names version 6 or later and the old protocol otherwise (Transmission up to 4.0, or a
/// daemon that never asks for the CSRF token).
///
/// # Keys
/// Transmission counts payload only, so the source reports no wire totals:
///
/// | key | Transmission |
/// |---|---|
/// | `total_payload_upload`, `total_payload_download` | `current-stats.uploadedBytes`, `.downloadedBytes` |
/// | `payload_upload_rate`, `payload_download_rate` | `uploadSpeed`, `downloadSpeed` |
/// | uptime | `current-stats.secondsActive` |
///
/// `current-stats` are the counters of the daemon's current run (from 0 at its start).
/// `cumulative-stats` is Transmission's own all-time figure, which it saves only every
/// 6 minutes (Transmission 3.00: only when bytes moved) and at a clean exit, so a crash
/// loses what moved since the last save: it is not counted here.
///
/// Transmission 3.00's upload counter also counts the 13-byte header of each piece
/// message (measured: 41,976,320 bytes sent for a 41,943,040-byte torrent, 2,560 blocks
/// of 16 KiB); its download counter is the payload exactly.
///
/// # Session identity
/// `transmission://HOST:PORT/PATH#session=N`, N being `cumulative-stats.sessionCount`,
/// which Transmission increments at each start: the same for one run of the daemon (and
/// for any source polling it, so also across our restarts). It is saved only with the
/// cumulative figures, so the next run gets a new N only if this one saved them: at a
/// clean exit, or every 6 minutes, after bytes moved (Transmission 3.00 saves nothing for
/// an idle run; 4.x saves every 6 minutes regardless). After an idle run, or a `kill -9`
/// (a crash, a power cut) before a save, N repeats; the restart then shows in the uptime
/// (`secondsActive` starts from 0 again) and in the counters going down. (The
/// `X-Transmission-Session-Id` token is no identity: Transmission renews it hourly.)
///
/// # Errors
/// A wrong user or password (HTTP 401) is reported with what to fix, and the login is not
/// tried again for a minute, doubling to 15 minutes between tries: Transmission 3.00
/// refuses every RPC request, from any client, after 100 failed logins in a row, until it
/// is restarted (4.x when its brute-force protection is on). An answer that is not
/// Transmission's RPC (HTTP 404, a redirect, HTML, JSON without the fields) is reported
/// as a daemon that does not look like Transmission.
///
/// # Example
/// ```
/// use torrent_stats::{SessionSource, TransmissionSource};
/// let src = TransmissionSource::from_spec("transmission://me:s%40cret@NAS").unwrap();
/// assert_eq!(src.describe(), "transmission://me@nas:9091/transmission/rpc");
/// assert!(!format!("{src:?}").contains("cret"));
/// ```
pub struct TransmissionSource {
    url: SidecarUrl,
    state: Mutex<State>,
}

impl fmt::Debug for TransmissionSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransmissionSource")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Why a poll failed.
enum Failure {
    /// The daemon refused the login (HTTP 401): what to say.
    Login(String),
    /// Anything else.
    Other(SourceError),
}

/// One HTTP answer.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl TransmissionSource {
    /// Parses `transmission://[USER:PASS@]HOST[:PORT][/PATH]` or `transmission+https://…`
    /// (user and password percent-encoded, IPv6 in brackets, default port 9091, default
    /// path `/transmission/rpc`). Connects lazily, on the first poll.
    pub fn from_spec(spec: &str) -> Result<TransmissionSource, SidecarSpecError> {
        let url = SidecarUrl::parse(
            spec,
            "transmission",
            FORM,
            DEFAULT_PORT,
            DEFAULT_PATH,
            Login::Optional,
        )?;
        Ok(TransmissionSource {
            url,
            state: Mutex::new(State::default()),
        })
    }

    /// The identity of the daemon's run counted `session_count`.
    fn session_id(&self, session_count: u64) -> SessionId {
        SessionId(format!(
            "transmission://{}{}#session={session_count}",
            self.url.authority(),
            self.url.path
        ))
    }

    /// One POST of `protocol`'s request, with the CSRF token and the login.
    async fn post(
        &self,
        client: &reqwest::Client,
        csrf: Option<&str>,
        protocol: Protocol,
    ) -> Result<Answer, SourceError> {
        let mut request = client
            .post(self.url.url(&self.url.path))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(protocol.request().to_string());
        if let Some(id) = csrf {
            request = request.header(SESSION_ID_HEADER, id);
        }
        if let (Some(user), Some(password)) = (&self.url.user, &self.url.password) {
            request = request.basic_auth(user, Some(password));
        }
        let response = request.send().await.map_err(|e| self.http_error(&e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = sidecar::read_body(response)
            .await
            .map_err(|e| SourceError::Unavailable(format!("{}: {e}", self.describe())))?;
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    fn http_error(&self, e: &reqwest::Error) -> SourceError {
        if e.is_timeout() {
            return SourceError::Timeout(sidecar::REQUEST_TIMEOUT);
        }
        SourceError::Unavailable(format!(
            "{}: {} (is transmission-daemon running, with its RPC on this address?)",
            self.describe(),
            sidecar::error_chain(e)
        ))
    }

    /// The error for an answer that is not Transmission's RPC.
    fn foreign(&self, what: &str) -> SourceError {
        SourceError::Failed(format!(
            "{}: the daemon on port {} does not look like Transmission ({what}); check the \
             port and the path of the source's specification (Transmission's default: \
             {DEFAULT_PORT}, {DEFAULT_PATH})",
            self.describe(),
            self.url.port
        ))
    }

    /// What to say about a refused login (HTTP 401).
    fn login_refused(&self) -> String {
        let d = self.describe();
        if self.url.user.is_none() {
            format!(
                "{d}: transmission-daemon requires a login (HTTP 401): give its rpc-username \
                 and rpc-password in the source's specification, \
                 transmission://USER:PASS@{}{}",
                self.url.authority(),
                self.url.path
            )
        } else {
            format!(
                "{d}: wrong user or password (HTTP 401): fix USER:PASS in the source's \
                 specification to match transmission-daemon's rpc-username and rpc-password"
            )
        }
    }

    /// The error for an HTTP answer other than 200, 401 and 409.
    fn status_error(&self, answer: &Answer) -> SourceError {
        let d = self.describe();
        let status = answer.status;
        match status {
            StatusCode::FORBIDDEN => SourceError::Failed(format!(
                "{d}: transmission-daemon refused the request (HTTP 403: {}): add this \
                 machine's address to its rpc-whitelist, or, after too many failed logins, \
                 restart transmission-daemon",
                snippet(&answer.body)
            )),
            StatusCode::MISDIRECTED_REQUEST => SourceError::Failed(format!(
                "{d}: transmission-daemon does not accept the host name {:?} (HTTP 421): add \
                 it to its rpc-host-whitelist, or give its IP address",
                self.url.host
            )),
            s if s.is_redirection() => {
                let to = answer
                    .headers
                    .get(LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .unwrap_or("?");
                self.foreign(&format!("HTTP {} to {to:?}", s.as_u16()))
            }
            s if s.is_server_error() => SourceError::Failed(format!(
                "{d}: HTTP {}: {}",
                s.as_u16(),
                snippet(&answer.body)
            )),
            s => self.foreign(&format!("HTTP {}: {}", s.as_u16(), snippet(&answer.body))),
        }
    }

    /// One `session-stats` exchange: at most two requests (one 409 handshake).
    async fn fetch(&self, state: &mut State) -> Result<Stats, Failure> {
        let client = match &state.client {
            Some(c) => c.clone(),
            None => {
                let c = sidecar::client().map_err(|e| {
                    Failure::Other(SourceError::Failed(format!("{}: {e}", self.describe())))
                })?;
                state.client = Some(c.clone());
                c
            }
        };
        let mut handshakes = 0;
        loop {
            let protocol = state.protocol.unwrap_or(Protocol::Legacy);
            let answer = self
                .post(&client, state.csrf.as_deref(), protocol)
                .await
                .map_err(Failure::Other)?;
            match answer.status {
                StatusCode::CONFLICT => {
                    let id = answer
                        .headers
                        .get(SESSION_ID_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .filter(|v| !v.is_empty())
                        .ok_or_else(|| {
                            Failure::Other(
                                self.foreign("HTTP 409 without X-Transmission-Session-Id"),
                            )
                        })?;
                    handshakes += 1;
                    if handshakes > 1 {
                        return Err(Failure::Other(SourceError::Failed(format!(
                            "{}: transmission-daemon refused its own X-Transmission-Session-Id \
                             (HTTP 409 twice in a row)",
                            self.describe()
                        ))));
                    }
                    let version = answer
                        .headers
                        .get(RPC_VERSION_HEADER)
                        .and_then(|v| v.to_str().ok());
                    let protocol = Protocol::for_version(version);
                    if state.protocol != Some(protocol) {
                        tracing::debug!(source = %self.describe(), ?protocol, ?version, "Transmission RPC protocol");
                    }
                    state.csrf = Some(id.to_string());
                    state.protocol = Some(protocol);
                }
                StatusCode::OK => {
                    return decode(&answer.body, protocol).map_err(|e| {
                        Failure::Other(match e {
                            Decode::Rpc(message) => SourceError::Failed(format!(
                                "{}: session-stats failed: {message}",
                                self.describe()
                            )),
                            Decode::Foreign(what) => self.foreign(&what),
                        })
                    });
                }
                StatusCode::UNAUTHORIZED => return Err(Failure::Login(self.login_refused())),
                _ => return Err(Failure::Other(self.status_error(&answer))),
            }
        }
    }
}

#[async_trait]
impl SessionSource for TransmissionSource {
    async fn session_status(&self, keys: &[StatusKey]) -> Result<SessionStatus, SourceError> {
        let mut state = self.state.lock().await;
        if let Some(refused) = &state.refused {
            let now = Instant::now();
            if now < refused.retry_at {
                let wait = (refused.retry_at - now).as_secs() + 1;
                return Err(SourceError::Failed(format!(
                    "{} (not trying again for {wait} s)",
                    refused.message
                )));
            }
        }
        let stats = match self.fetch(&mut state).await {
            Ok(stats) => {
                state.refused = None;
                stats
            }
            Err(Failure::Login(message)) => {
                let failures = state.refused.as_ref().map_or(0, |r| r.failures) + 1;
                let wait = auth_retry_after(failures);
                state.refused = Some(Refused {
                    failures,
                    retry_at: Instant::now() + wait,
                    message: message.clone(),
                });
                return Err(SourceError::Failed(format!(
                    "{message} (not trying again for {} s: Transmission locks its RPC after \
                     100 failed logins)",
                    wait.as_secs()
                )));
            }
            Err(Failure::Other(e)) => return Err(e),
        };
        let mut status = SessionStatus::new(self.session_id(stats.session_count))
            .with_uptime(stats.seconds_active);
        for &key in keys {
            let value = match key {
                StatusKey::TotalPayloadUpload => stats.uploaded,
                StatusKey::TotalPayloadDownload => stats.downloaded,
                StatusKey::PayloadUploadRate => stats.upload_speed,
                StatusKey::PayloadDownloadRate => stats.download_speed,
                _ => continue,
            };
            status = status.with(key, value);
        }
        Ok(status)
    }

    fn describe(&self) -> String {
        self.url.describe()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex as StdMutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    const PASSWORD: &str = "pa:ss@wörd";

    fn source(spec: &str) -> TransmissionSource {
        TransmissionSource::from_spec(spec).unwrap()
    }

    #[test]
    fn specs_take_the_defaults_and_never_show_the_password() {
        let src = source("transmission://me:s%40cret@NAS.local");
        assert_eq!(
            src.describe(),
            "transmission://me@nas.local:9091/transmission/rpc"
        );
        assert_eq!(
            src.url.url(&src.url.path),
            "http://nas.local:9091/transmission/rpc"
        );
        assert_eq!(src.url.password.as_deref(), Some("s@cret"));
        assert!(!format!("{src:?}").contains("cret"), "{src:?}");
        let src = source("transmission+https://[::1]:8443/tr/rpc/");
        assert_eq!(src.describe(), "transmission+https://[::1]:8443/tr/rpc");
        assert_eq!(src.url.url(&src.url.path), "https://[::1]:8443/tr/rpc");
        assert_eq!(
            src.session_id(3),
            SessionId::new("transmission://[::1]:8443/tr/rpc#session=3")
        );
        // The identity leaves the user out: another login to the same daemon is the same run.
        assert_eq!(
            source("transmission://a:b@h").session_id(1),
            source("transmission://h:9091/transmission/rpc").session_id(1)
        );
        for bad in [
            "qbittorrent://h",
            "transmission://me@h",
            "transmission://me:s3cret@h/rpc?x",
            "transmission://me:s3cret@h:0x",
        ] {
            let e = TransmissionSource::from_spec(bad).unwrap_err().to_string();
            assert!(!e.contains("s3cret"), "{e}");
            assert!(
                e.contains("transmission") || e.contains("address") || e.contains("follow"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn the_protocol_follows_the_version_header() {
        assert_eq!(Protocol::for_version(None), Protocol::Legacy);
        assert_eq!(Protocol::for_version(Some("5.3.0")), Protocol::Legacy);
        assert_eq!(Protocol::for_version(Some("6.0.0")), Protocol::JsonRpc);
        assert_eq!(Protocol::for_version(Some(" 6.1.0")), Protocol::JsonRpc);
        assert_eq!(Protocol::for_version(Some("10")), Protocol::JsonRpc);
        assert_eq!(Protocol::for_version(Some("x")), Protocol::Legacy);
    }

    /// Transmission 3.00's own answer (recorded from `transmission-daemon` 3.00).
    const LEGACY_ANSWER: &str = r#"{"arguments":{"activeTorrentCount":1,"cumulative-stats":{"downloadedBytes":0,"filesAdded":0,"secondsActive":142,"sessionCount":2,"uploadedBytes":41976320},"current-stats":{"downloadedBytes":7,"filesAdded":0,"secondsActive":2,"sessionCount":1,"uploadedBytes":41976320},"downloadSpeed":5,"pausedTorrentCount":0,"torrentCount":1,"uploadSpeed":1048576},"result":"success"}"#;

    #[test]
    fn answers_decode_in_both_protocols() {
        let want = Stats {
            uploaded: 41976320,
            downloaded: 7,
            seconds_active: 2,
            session_count: 2,
            upload_speed: 1048576,
            download_speed: 5,
        };
        assert_eq!(
            decode(LEGACY_ANSWER.as_bytes(), Protocol::Legacy),
            Ok(want.clone())
        );
        let json_rpc = json!({"jsonrpc": "2.0", "id": 1, "result": {
            "active_torrent_count": 1, "download_speed": 5, "upload_speed": 1048576,
            "paused_torrent_count": 0, "torrent_count": 1,
            "cumulative_stats": {"uploaded_bytes": 9, "downloaded_bytes": 9, "files_added": 0,
                                 "seconds_active": 900, "session_count": 2},
            "current_stats": {"uploaded_bytes": 41976320, "downloaded_bytes": 7, "files_added": 0,
                              "seconds_active": 2, "session_count": 1}}});
        assert_eq!(
            decode(json_rpc.to_string().as_bytes(), Protocol::JsonRpc),
            Ok(want)
        );
        // The other protocol's answer is not taken for this one's.
        assert!(matches!(
            decode(json_rpc.to_string().as_bytes(), Protocol::Legacy),
            Err(Decode::Foreign(_))
        ));
        assert!(matches!(
            decode(LEGACY_ANSWER.as_bytes(), Protocol::JsonRpc),
            Err(Decode::Foreign(_))
        ));
        // Errors of each protocol.
        assert_eq!(
            decode(br#"{"result":"no such method"}"#, Protocol::Legacy),
            Err(Decode::Rpc("no such method".into()))
        );
        let error = json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32601,
            "message": "Method not found", "data": {"error_string": "x"}}});
        assert_eq!(
            decode(error.to_string().as_bytes(), Protocol::JsonRpc),
            Err(Decode::Rpc("error -32601: Method not found (x)".into()))
        );
        // Not Transmission: HTML, qBittorrent's "Fails.", JSON without the fields.
        for body in [
            &b"<html><body>Not Found</body></html>"[..],
            b"Fails.",
            br#"{"result":"success","arguments":{}}"#,
            br#"{"error":"not found"}"#,
        ] {
            assert!(
                matches!(decode(body, Protocol::Legacy), Err(Decode::Foreign(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn snippets_drop_tags_and_stay_short() {
        assert_eq!(
            snippet(b"<h1>401: Unauthorized</h1><p>Unauthorized User.</p>"),
            "\"401: Unauthorized Unauthorized User.\""
        );
        assert_eq!(snippet(b""), "an empty body");
        assert!(snippet(&[b'x'; 500]).chars().count() < 130);
    }

    #[test]
    fn refused_logins_back_off_to_a_quarter_hour() {
        assert_eq!(auth_retry_after(1), Duration::from_secs(60));
        assert_eq!(auth_retry_after(2), Duration::from_secs(120));
        assert_eq!(auth_retry_after(4), Duration::from_secs(480));
        assert_eq!(auth_retry_after(5), AUTH_RETRY_MAX);
        assert_eq!(auth_retry_after(u32::MAX), AUTH_RETRY_MAX);
    }

    /// One request as the stub saw it.
    #[derive(Debug, Clone)]
    struct Seen {
        csrf: Option<String>,
        body: Value,
    }

    /// What the stub answers.
    #[derive(Clone)]
    enum Behaviour {
        /// Transmission 4.1 as docs/rpc-spec.md describes it: basic auth, then the CSRF
        /// token (409 with the token and `X-Transmission-Rpc-Version: 6.0.0`), then
        /// JSON-RPC 2.0 or the old protocol.
        Transmission41 { csrf: String },
        /// Always the same raw answer (status line, extra headers, body).
        Raw(&'static str, &'static str, &'static str),
    }

    /// A minimal HTTP/1.1 server, one request per connection.
    struct Stub {
        port: u16,
        seen: Arc<StdMutex<Vec<Seen>>>,
        behaviour: Arc<StdMutex<Behaviour>>,
    }

    impl Stub {
        async fn start(behaviour: Behaviour) -> Stub {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let stub = Stub {
                port,
                seen: Arc::default(),
                behaviour: Arc::new(StdMutex::new(behaviour)),
            };
            let (seen, behaviour) = (stub.seen.clone(), stub.behaviour.clone());
            tokio::spawn(async move {
                loop {
                    let (mut conn, _) = listener.accept().await.unwrap();
                    let (seen, behaviour) = (seen.clone(), behaviour.clone());
                    tokio::spawn(async move {
                        let mut buf = Vec::new();
                        let head_end = loop {
                            let mut chunk = [0u8; 4096];
                            let n = conn.read(&mut chunk).await.unwrap();
                            assert!(n > 0, "request cut short");
                            buf.extend_from_slice(&chunk[..n]);
                            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                break i + 4;
                            }
                        };
                        let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
                        let header = |name: &str| {
                            head.lines().find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                            })
                        };
                        let length: usize = header("content-length").unwrap().parse().unwrap();
                        while buf.len() < head_end + length {
                            let mut chunk = [0u8; 4096];
                            let n = conn.read(&mut chunk).await.unwrap();
                            assert!(n > 0, "body cut short");
                            buf.extend_from_slice(&chunk[..n]);
                        }
                        assert!(
                            head.starts_with("POST /transmission/rpc HTTP/1.1\r\n"),
                            "{head}"
                        );
                        let body: Value = serde_json::from_slice(&buf[head_end..]).unwrap();
                        let csrf = header(SESSION_ID_HEADER);
                        seen.lock().unwrap().push(Seen {
                            csrf: csrf.clone(),
                            body: body.clone(),
                        });
                        let behaviour = behaviour.lock().unwrap().clone();
                        let (status, headers, body) =
                            answer(&behaviour, header("authorization"), csrf, &body);
                        let reply = format!(
                            "HTTP/1.1 {status}\r\nServer: Transmission\r\n{headers}\
                             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        conn.write_all(reply.as_bytes()).await.unwrap();
                        conn.shutdown().await.ok();
                    });
                }
            });
            stub
        }

        fn spec(&self, login: &str) -> String {
            format!("transmission://{login}127.0.0.1:{}", self.port)
        }

        fn seen(&self) -> Vec<Seen> {
            self.seen.lock().unwrap().clone()
        }
    }

    /// The stub's answer: status line, extra header lines, body.
    fn answer(
        behaviour: &Behaviour,
        authorization: Option<String>,
        csrf: Option<String>,
        request: &Value,
    ) -> (String, String, String) {
        let csrf_now = match behaviour {
            Behaviour::Raw(status, headers, body) => {
                return (status.to_string(), headers.to_string(), body.to_string())
            }
            Behaviour::Transmission41 { csrf } => csrf,
        };
        let login = authorization
            .and_then(|a| a.strip_prefix("Basic ").map(str::to_string))
            .and_then(|b| crate::base64::decode(&b).ok())
            .and_then(|b| String::from_utf8(b).ok());
        if login.as_deref() != Some(&format!("admin:{PASSWORD}")) {
            return (
                "401 Unauthorized".into(),
                "WWW-Authenticate: Basic realm=\"Transmission\"\r\n".into(),
                "<h1>401: Unauthorized</h1>".into(),
            );
        }
        if csrf.as_deref() != Some(csrf_now.as_str()) {
            return (
                "409 Conflict".into(),
                format!(
                    "X-Transmission-Session-Id: {csrf_now}\r\nX-Transmission-Rpc-Version: 6.0.0\r\n"
                ),
                "<h1>409: Conflict</h1>".into(),
            );
        }
        let body = if request["jsonrpc"] == "2.0" {
            assert_eq!(request["method"], "session_stats");
            json!({"jsonrpc": "2.0", "id": request["id"], "result": {
                "active_torrent_count": 0, "download_speed": 20, "upload_speed": 10,
                "paused_torrent_count": 0, "torrent_count": 0,
                "cumulative_stats": {"uploaded_bytes": 5000, "downloaded_bytes": 6000,
                    "files_added": 0, "seconds_active": 5000, "session_count": 7},
                "current_stats": {"uploaded_bytes": 1000, "downloaded_bytes": 2000,
                    "files_added": 0, "seconds_active": 30, "session_count": 1}}})
        } else {
            assert_eq!(request["method"], "session-stats");
            serde_json::from_str(LEGACY_ANSWER).unwrap()
        };
        ("200 OK".into(), String::new(), body.to_string())
    }

    async fn poll(src: &TransmissionSource) -> Result<SessionStatus, SourceError> {
        tokio::time::timeout(Duration::from_secs(30), src.session_status(&StatusKey::ALL))
            .await
            .expect("a poll must not hang")
    }

    #[tokio::test]
    async fn transmission_4_1_gets_json_rpc_after_the_handshake() {
        let stub = Stub::start(Behaviour::Transmission41 { csrf: "one".into() }).await;
        let src = source(&stub.spec("admin:pa%3Ass%40w%C3%B6rd@"));
        let status = poll(&src).await.unwrap();
        let id = format!(
            "transmission://127.0.0.1:{}/transmission/rpc#session=7",
            stub.port
        );
        let want = SessionStatus::new(SessionId::new(id.clone()))
            .with(StatusKey::TotalPayloadUpload, 1000)
            .with(StatusKey::TotalPayloadDownload, 2000)
            .with(StatusKey::PayloadUploadRate, 10)
            .with(StatusKey::PayloadDownloadRate, 20)
            .with_uptime(30);
        assert_eq!(status, want, "payload only: no wire totals");
        // The first request (old protocol, no token) got the 409; the second is JSON-RPC.
        let seen = stub.seen();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(
            (seen[0].csrf.as_deref(), &seen[0].body["method"]),
            (None, &json!("session-stats"))
        );
        assert_eq!(seen[1].csrf.as_deref(), Some("one"));
        assert_eq!(seen[1].body["jsonrpc"], "2.0");

        // The token is kept: one request per poll.
        assert_eq!(poll(&src).await.unwrap(), want);
        assert_eq!(stub.seen().len(), 3);

        // A new token (expired, or a restarted daemon): one more 409, then the answer.
        *stub.behaviour.lock().unwrap() = Behaviour::Transmission41 { csrf: "two".into() };
        assert_eq!(poll(&src).await.unwrap(), want);
        let seen = stub.seen();
        assert_eq!(seen.len(), 5);
        assert_eq!(seen[3].csrf.as_deref(), Some("one"));
        assert_eq!(seen[4].csrf.as_deref(), Some("two"));

        // Only the keys asked for.
        let some = src.session_status(&[StatusKey::TotalPayloadUpload, StatusKey::TotalUpload]);
        let some = some.await.unwrap();
        assert_eq!(some.values.len(), 1);
        assert_eq!(some.get(StatusKey::TotalPayloadUpload), Some(1000));
        // A second source on the same daemon (our restart) computes the same identity.
        let again = source(&stub.spec("admin:pa%3Ass%40w%C3%B6rd@"));
        assert_eq!(poll(&again).await.unwrap().session.0, id);
    }

    #[tokio::test]
    async fn a_daemon_without_the_version_header_gets_the_old_protocol() {
        let stub = Stub::start(Behaviour::Raw(
            "409 Conflict",
            "X-Transmission-Session-Id: abc\r\n",
            "",
        ))
        .await;
        let src = source(&stub.spec(""));
        let e = poll(&src).await.unwrap_err().to_string();
        assert!(e.contains("409 twice"), "{e}");
        let seen = stub.seen();
        assert_eq!(seen.len(), 2, "one handshake, no more");
        assert_eq!(seen[1].csrf.as_deref(), Some("abc"));
        assert_eq!(seen[1].body, json!({"method": "session-stats"}));
    }

    #[tokio::test]
    async fn a_wrong_password_is_named_and_not_hammered() {
        let stub = Stub::start(Behaviour::Transmission41 { csrf: "one".into() }).await;
        let src = source(&stub.spec("admin:s3cret@"));
        let e = poll(&src).await.unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, SourceError::Failed(_)), "{e:?}");
        assert!(text.contains(&src.describe()), "{text}");
        assert!(text.contains("wrong user or password"), "{text}");
        assert!(text.contains("source's specification"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
        assert_eq!(stub.seen().len(), 1);
        // The next polls do not send the refused login again (not before a minute).
        let again = poll(&src).await.unwrap_err().to_string();
        assert!(again.contains("wrong user or password"), "{again}");
        assert!(again.contains("not trying again"), "{again}");
        assert_eq!(stub.seen().len(), 1, "no request while backing off");

        // No login at all for a daemon that wants one.
        let src = source(&stub.spec(""));
        let text = poll(&src).await.unwrap_err().to_string();
        assert!(text.contains("requires a login"), "{text}");
        assert!(
            text.contains("transmission://USER:PASS@127.0.0.1:"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn other_daemons_do_not_look_like_transmission() {
        for (status, headers, body, want) in [
            // qBittorrent's Web UI and rqbit's HTTP API on that port.
            ("404 Not Found", "", "Not Found", "HTTP 404"),
            (
                "200 OK",
                "",
                "<!DOCTYPE html><html>qBittorrent</html>",
                "not JSON",
            ),
            ("200 OK", "", r#"{"apis":{}}"#, "without \"result\""),
            (
                "200 OK",
                "",
                r#"{"result":"success","arguments":{}}"#,
                "without uploadedBytes",
            ),
            (
                "301 Moved Permanently",
                "Location: /transmission/web/\r\n",
                "",
                "HTTP 301 to",
            ),
            (
                "409 Conflict",
                "",
                "",
                "409 without X-Transmission-Session-Id",
            ),
        ] {
            let stub = Stub::start(Behaviour::Raw(status, headers, body)).await;
            let src = source(&stub.spec(""));
            let e = poll(&src).await.unwrap_err();
            let text = e.to_string();
            assert!(matches!(e, SourceError::Failed(_)), "{status}: {e:?}");
            assert!(
                text.contains(&format!(
                    "the daemon on port {} does not look like Transmission",
                    stub.port
                )),
                "{status}: {text}"
            );
            assert!(text.contains(want), "{status}: {text}");
            assert!(text.contains(&src.describe()), "{text}");
        }
        // A 403 (whitelist or brute-force lock) says what to do.
        let stub = Stub::start(Behaviour::Raw(
            "403 Forbidden",
            "",
            "<h1>403: Forbidden</h1><p>Unauthorized IP Address.</p>",
        ))
        .await;
        let text = poll(&source(&stub.spec(""))).await.unwrap_err().to_string();
        assert!(
            text.contains("Unauthorized IP Address") && text.contains("rpc-whitelist"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn nothing_listening_is_unavailable() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let src = source(&format!("transmission://u:s3cret@127.0.0.1:{port}"));
        let e = poll(&src).await.unwrap_err();
        assert!(matches!(e, SourceError::Unavailable(_)), "{e:?}");
        let text = e.to_string();
        assert!(
            text.contains(&src.describe()) && !text.contains("s3cret"),
            "{text}"
        );
    }
}
