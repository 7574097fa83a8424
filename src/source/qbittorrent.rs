//! `qbittorrent://[USER:PASS@]HOST[:PORT][/PATH]` (feature `sidecars`): session status from
//! a running qBittorrent's WebUI API v2; see [`QbittorrentSource`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

use super::sidecar::{self, Login, SidecarSpecError, SidecarUrl};
use crate::session::{SessionId, SessionSource, SessionStatus, SourceError, StatusKey};

/// qBittorrent's default WebUI port.
pub const DEFAULT_PORT: u16 = 8080;

/// The user whose "password" is an API key (`qbittorrent://apikey:qbt_…@HOST:PORT`).
const API_KEY_USER: &str = "apikey";
/// qBittorrent's API keys: this prefix and 28 letters and digits.
const API_KEY_PREFIX: &str = "qbt_";
const API_KEY_LEN: usize = 4 + 28;

/// How long to wait before trying to log in again after qBittorrent said it banned us.
const BAN_BACKOFF: Duration = Duration::from_secs(300);
/// The most bytes of `log/main` scanned for its first and last messages (qBittorrent keeps
/// at most 20 000 messages in memory).
const MAX_LOG_SCAN: usize = 64 << 20;
/// The largest single log message accepted.
const MAX_LOG_MESSAGE: usize = 64 << 10;

/// How this source authenticates.
#[derive(Clone, PartialEq, Eq)]
enum Auth {
    /// No `USER:PASS@`: the WebUI must not ask for a login from this address.
    None,
    /// `USER:PASS@`: `POST /api/v2/auth/login`, then the session cookie it sets.
    Login { user: String, password: String },
    /// `apikey:qbt_…@`: `Authorization: Bearer qbt_…` on every request (qBittorrent ≥ 5.2).
    ApiKey(String),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Login { user, .. } => write!(f, "Login {{ user: {user:?}, password: *** }}"),
            Auth::ApiKey(_) => f.write_str("ApiKey(***)"),
        }
    }
}

/// One message of qBittorrent's in-memory log (`/api/v2/log/main`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
struct LogMessage {
    id: i64,
    timestamp: i64,
    message: String,
}

/// What identifies the qBittorrent process being polled: the newest log message seen
/// (the next answer must start with it while the process runs) and, when the log still
/// holds message 0 (written at start), its uptime at an instant of ours.
#[derive(Debug, Clone)]
struct Process {
    anchor: LogMessage,
    uptime_at: Option<(u64, Instant)>,
}

impl Process {
    /// The uptime now, in seconds, rounded up (never below the real one).
    fn uptime(&self) -> Option<u64> {
        self.uptime_at.map(|(base, at)| {
            let elapsed = at.elapsed();
            base + elapsed.as_secs() + u64::from(elapsed.subsec_nanos() > 0)
        })
    }
}

#[derive(Default)]
struct State {
    /// `NAME=VALUE` of the session cookie(s) the last login set.
    cookie: Option<String>,
    /// The login was refused: this message, and no login request ever again.
    refused: Option<String>,
    /// qBittorrent said this address is banned: no login before this instant.
    banned_until: Option<Instant>,
    /// The process polled last.
    process: Option<Process>,
}

/// `qbittorrent://[USER:PASS@]HOST[:PORT][/PATH]` or `qbittorrent+https://…`: session status
/// from a running qBittorrent (4.1 or later: WebUI API v2), default port 8080. `PATH` is
/// the WebUI's prefix behind a reverse proxy (none by default).
///
/// # Logins
/// - `USER:PASS@` (percent-encoded: `%40` for `@`, `%3A` for `:`): `POST
///   /api/v2/auth/login` with a `Referer` and `Origin` naming the host as written (the WebUI
///   refuses cross-site requests), then the session cookie the answer sets, whatever its
///   name (`SID` up to 5.1, `QBT_SID_<port>` from 5.2). A request refused with 401 or 403
///   (the session expired, or qBittorrent restarted) logs in again, at most once per poll.
/// - A login qBittorrent refuses (up to 5.1: `200 Fails.`; from 5.2: `401`) is never
///   retried: qBittorrent bans an address after 5 failures (its default), so every later
///   poll fails with "wrong user or password for …" without contacting qBittorrent, until
///   the source is built again from a corrected spec.
/// - `403` "Your IP address has been banned …" on the login: reported as such; the next
///   login attempt waits 5 minutes.
/// - `apikey:KEY@`, where KEY has the form of qBittorrent's API keys (`qbt_` and 28 letters
///   and digits; qBittorrent 5.2, WebUI API 2.14.1, Options → WebUI → API key): sent as
///   `Authorization: Bearer KEY` on every request, no login and no cookie. A user named
///   `apikey` whose password does not have that form logs in normally. qBittorrent answers
///   a wrong key with 403 (no ban counts it).
/// - No login: for a WebUI that lets this address in without one (localhost or a whitelisted
///   subnet).
///
/// Before logging in, `GET /api/v2/app/webapiVersion` tells which case applies: `403` asks
/// for a login, a version number needs none, `401` means the WebUI refused the `Host`
/// header (its "server domains" list) and anything else is not qBittorrent.
///
/// # Counters
/// `GET /api/v2/transfer/info` each poll. Its `dl_info_data` / `up_info_data` are payload
/// bytes (libtorrent's `net.recv_payload_bytes` / `net.sent_payload_bytes` for the running
/// session; checked against a real qBittorrent 4.5.2: a 40 000 000-byte torrent downloaded
/// over loopback gives exactly 40 000 000 on both sides, while the wire totals, which only
/// `alltime_dl` / `alltime_ul` include, grew by 41 254 075). The API has no per-session
/// wire total (`alltime_*` are persisted totals over all sessions, saved every 15 minutes,
/// so they go back after a crash), so this source is payload-only:
///
/// | key | transfer/info |
/// |---|---|
/// | `total_payload_download`, `total_payload_upload` | `dl_info_data`, `up_info_data` |
/// | `payload_download_rate`, `payload_upload_rate` | `dl_info_speed`, `up_info_speed` |
/// | `dht_nodes` | `dht_nodes` |
///
/// An answer without `dl_info_data` and `up_info_data` as integers (a 404, an HTML page,
/// another daemon on that port) fails the poll: the daemon does not look like qBittorrent.
///
/// # Session identity and restarts
/// qBittorrent's API has no session id, process id or uptime; its session counters start
/// from 0 at each start. What it has is its in-memory log, `/api/v2/log/main`: messages
/// numbered from 0 at each start (message 0 is "qBittorrent vX started", with the start
/// time in seconds), at most 20 000 kept. So:
/// - the identity is `qbittorrent://HOST:PORT` (as written, lowercased): the same for every
///   run of one qBittorrent, and for every instance of this source;
/// - `uptime` is the HTTP `Date` of qBittorrent's answer minus message 0's time, plus one
///   second (both in whole seconds of qBittorrent's clock: never below the real uptime),
///   then advanced by our monotonic clock while the process is the same. After a restart
///   it is shorter than the time since the last sample, which Stats counts as a new
///   session, also when the restart happened while our daemon was down;
/// - each poll asks the log for the messages since the newest one seen
///   (`last_known_id`): while the same process runs the answer starts with that message;
///   when it does not, qBittorrent restarted and the log is read from the start again.
///   The counters are read between two such checks: when the process changes in between,
///   the poll fails rather than mix two processes.
///
/// Limits: once a run of qBittorrent has logged more than 20 000 messages, message 0 is
/// gone and a fresh instance of this source reports no uptime; a restart during our own
/// downtime is then noticed only by the counters going down (Stats' other rule). A
/// backwards step of qBittorrent's wall clock between its start and our first poll makes
/// the uptime look shorter (a negative one is not reported).
///
/// # Example
/// ```
/// use torrent_stats::{QbittorrentSource, SessionSource};
/// let src = QbittorrentSource::from_spec("qbittorrent://admin:s%40cret@NAS").unwrap();
/// assert_eq!(src.describe(), "qbittorrent://admin@nas:8080");
/// assert!(!format!("{src:?}").contains("cret"));
/// let key = QbittorrentSource::from_spec(
///     "qbittorrent+https://apikey:qbt_abcdefghijkmnpqrstuvwxyz2345@nas:443",
/// )
/// .unwrap();
/// assert_eq!(key.describe(), "qbittorrent+https://apikey@nas:443");
/// ```
pub struct QbittorrentSource {
    url: SidecarUrl,
    auth: Auth,
    client: reqwest::Client,
    state: Mutex<State>,
}

impl fmt::Debug for QbittorrentSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QbittorrentSource")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Whether `s` has the form of a qBittorrent API key.
fn is_api_key(s: &str) -> bool {
    s.len() == API_KEY_LEN
        && s.starts_with(API_KEY_PREFIX)
        && s[API_KEY_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric())
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Seconds since the epoch of an HTTP `Date` (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn parse_http_date(s: &str) -> Option<u64> {
    let mut it = s.split_whitespace();
    let _weekday = it.next()?;
    let day: u64 = it.next()?.parse().ok()?;
    let month = match it.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = it.next()?.parse().ok()?;
    let mut hms = it.next()?.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if it.next()? != "GMT" || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    // Days from 1970-01-01 to year-month-day (proleptic Gregorian).
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400)
        .ok()
        .map(|d| d + h * 3600 + m * 60 + sec)
}

/// The first and last elements of a JSON array read piece by piece, without holding it
/// all: elements are split at depth 1 outside strings.
#[derive(Default)]
struct ArrayScan {
    started: bool,
    ended: bool,
    depth: u32,
    in_string: bool,
    escaped: bool,
    element: Vec<u8>,
    first: Option<Vec<u8>>,
    last: Option<Vec<u8>>,
    scanned: usize,
}

impl ArrayScan {
    fn feed(&mut self, chunk: &[u8]) -> Result<(), String> {
        self.scanned += chunk.len();
        if self.scanned > MAX_LOG_SCAN {
            return Err(format!("a log over {MAX_LOG_SCAN} bytes"));
        }
        for &b in chunk {
            if self.ended {
                if !b.is_ascii_whitespace() {
                    return Err("text after the log's array".into());
                }
                continue;
            }
            if !self.started {
                match b {
                    b'[' => self.started = true,
                    b if b.is_ascii_whitespace() => {}
                    _ => return Err("the log is not a JSON array".into()),
                }
                continue;
            }
            if self.in_string {
                self.element.push(b);
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
            } else {
                match b {
                    b'"' => {
                        self.in_string = true;
                        self.element.push(b);
                    }
                    b'{' | b'[' => {
                        self.depth += 1;
                        self.element.push(b);
                    }
                    b'}' | b']' if self.depth > 0 => {
                        self.depth -= 1;
                        self.element.push(b);
                    }
                    b']' => {
                        self.finish_element();
                        self.ended = true;
                    }
                    b',' if self.depth == 0 => self.finish_element(),
                    _ => self.element.push(b),
                }
            }
            if self.element.len() > MAX_LOG_MESSAGE {
                return Err(format!("a log message over {MAX_LOG_MESSAGE} bytes"));
            }
        }
        Ok(())
    }

    fn finish_element(&mut self) {
        let element = std::mem::take(&mut self.element);
        if element.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        if self.first.is_none() {
            self.first = Some(element.clone());
        }
        self.last = Some(element);
    }

    /// The first and last messages; `None` for an empty array.
    fn finish(self) -> Result<Option<(LogMessage, LogMessage)>, String> {
        if !self.ended {
            return Err("the log's array is cut short".into());
        }
        let parse = |e: &[u8]| {
            serde_json::from_slice::<LogMessage>(e)
                .map_err(|e| format!("a log message without id/timestamp/message: {e}"))
        };
        match (self.first, self.last) {
            (Some(first), Some(last)) => Ok(Some((parse(&first)?, parse(&last)?))),
            _ => Ok(None),
        }
    }
}

/// The counters and rates of a `transfer/info` answer; `None` when it is not
/// qBittorrent's.
fn decode_transfer_info(body: &[u8], keys: &[StatusKey]) -> Option<BTreeMap<StatusKey, u64>> {
    let Value::Object(map) = serde_json::from_slice::<Value>(body).ok()? else {
        return None;
    };
    let down = map.get("dl_info_data")?.as_u64()?;
    let up = map.get("up_info_data")?.as_u64()?;
    let mut values = BTreeMap::new();
    for &key in keys {
        let value = match key {
            StatusKey::TotalPayloadDownload => Some(down),
            StatusKey::TotalPayloadUpload => Some(up),
            StatusKey::PayloadDownloadRate => map.get("dl_info_speed").and_then(Value::as_u64),
            StatusKey::PayloadUploadRate => map.get("up_info_speed").and_then(Value::as_u64),
            StatusKey::DhtNodes => map.get("dht_nodes").and_then(Value::as_u64),
            _ => None,
        };
        if let Some(v) = value {
            values.insert(key, v);
        }
    }
    Some(values)
}

/// The `NAME=VALUE` pairs of a response's `Set-Cookie` headers, `; `-joined.
fn session_cookie(response: &reqwest::Response) -> Option<String> {
    let pairs: Vec<String> = response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .map(str::trim)
        .filter(|pair| {
            pair.split_once('=')
                .is_some_and(|(n, v)| !n.is_empty() && !v.is_empty())
        })
        .map(str::to_string)
        .collect();
    (!pairs.is_empty()).then(|| pairs.join("; "))
}

/// A short, printable excerpt of an answer for error messages.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(80)]);
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!("{:?}", text.trim())
}

impl QbittorrentSource {
    /// Parses `qbittorrent://[USER:PASS@]HOST[:PORT][/PATH]` or `qbittorrent+https://…`
    /// (`apikey:qbt_…@` for an API key). Connects lazily, on the first poll.
    pub fn from_spec(spec: &str) -> Result<Self, SidecarSpecError> {
        let url = SidecarUrl::parse(
            spec,
            "qbittorrent",
            "[USER:PASS@]HOST[:PORT][/PATH]",
            DEFAULT_PORT,
            "",
            Login::Optional,
        )?;
        let auth = match (&url.user, &url.password) {
            (Some(u), Some(p)) if u == API_KEY_USER && is_api_key(p) => Auth::ApiKey(p.clone()),
            (Some(u), Some(p)) => Auth::Login {
                user: u.clone(),
                password: p.clone(),
            },
            _ => Auth::None,
        };
        let client = sidecar::client().map_err(SidecarSpecError::Url)?;
        Ok(QbittorrentSource {
            url,
            auth,
            client,
            state: Mutex::new(State::default()),
        })
    }

    /// `scheme://host:port`, what the WebUI compares `Origin` and `Referer` with.
    fn origin(&self) -> String {
        self.url.url("")
    }

    fn api(&self, endpoint: &str) -> String {
        self.url
            .url(&format!("{}/api/v2/{endpoint}", self.url.path))
    }

    /// A request with the headers every request carries: `Referer` and `Origin` of the
    /// host, and the API key or the session cookie.
    fn request(
        &self,
        method: reqwest::Method,
        endpoint: &str,
        cookie: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut r = self
            .client
            .request(method, self.api(endpoint))
            .header(
                reqwest::header::REFERER,
                format!("{}{}/", self.origin(), self.url.path),
            )
            .header(reqwest::header::ORIGIN, self.origin());
        if let Auth::ApiKey(key) = &self.auth {
            r = r.bearer_auth(key);
        } else if let Some(cookie) = cookie {
            r = r.header(reqwest::header::COOKIE, cookie);
        }
        r
    }

    async fn send(&self, r: reqwest::RequestBuilder) -> Result<reqwest::Response, SourceError> {
        r.send().await.map_err(|e| {
            if e.is_timeout() {
                SourceError::Unavailable(format!(
                    "{}: no answer within {:?}",
                    self.describe(),
                    sidecar::REQUEST_TIMEOUT
                ))
            } else {
                SourceError::Unavailable(format!(
                    "{}: {}",
                    self.describe(),
                    sidecar::error_chain(&e)
                ))
            }
        })
    }

    async fn body(&self, response: reqwest::Response) -> Result<Vec<u8>, SourceError> {
        sidecar::read_body(response).await.map_err(|e| {
            SourceError::Unavailable(format!("{}: reading the answer: {e}", self.describe()))
        })
    }

    fn not_qbittorrent(&self, what: &str) -> SourceError {
        SourceError::Failed(format!(
            "{}: the daemon on that port does not look like qBittorrent ({what}); check the \
             host and port (qBittorrent's WebUI port, default 8080) in the source's spec",
            self.describe()
        ))
    }

    fn refused_message(&self) -> String {
        format!(
            "wrong user or password for {}; fix the source's spec (stats.add_source or the \
             sources file) — not retried, qBittorrent bans an address after 5 failures",
            self.describe()
        )
    }

    /// Finds out whether a login is needed and logs in; sets `state.cookie`.
    async fn login(&self, state: &mut State) -> Result<(), SourceError> {
        let d = self.describe();
        if let Some(refused) = &state.refused {
            return Err(SourceError::Failed(refused.clone()));
        }
        if let Some(until) = state.banned_until {
            if Instant::now() < until {
                return Err(self.banned_error());
            }
            state.banned_until = None;
        }
        if !self.probe(state).await? {
            return Ok(());
        }
        let Auth::Login { user, password } = &self.auth else {
            return Err(SourceError::Failed(format!(
                "{d}: qBittorrent asks for a login; give it in the source's spec: \
                 qbittorrent://USER:PASS@{}",
                self.url.authority()
            )));
        };
        let form = format!(
            "username={}&password={}",
            form_encode(user),
            form_encode(password)
        );
        let response = self
            .send(
                self.request(reqwest::Method::POST, "auth/login", None)
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(form),
            )
            .await?;
        let status = response.status().as_u16();
        let cookie = session_cookie(&response);
        let body = self.body(response).await?;
        let text = body.trim_ascii();
        match (status, text) {
            (200, b"Ok.") | (204, _) | (200, b"") => match cookie {
                Some(cookie) => {
                    tracing::info!(source = %d, "logged in to qBittorrent");
                    state.cookie = Some(cookie);
                    Ok(())
                }
                None => Err(self.not_qbittorrent("its login set no session cookie")),
            },
            (200, b"Fails.") | (401, _) => {
                let message = self.refused_message();
                tracing::error!(source = %d, "{message}");
                state.refused = Some(message.clone());
                Err(SourceError::Failed(message))
            }
            (403, text) if String::from_utf8_lossy(text).contains("banned") => {
                state.banned_until = Some(Instant::now() + BAN_BACKOFF);
                Err(self.banned_error())
            }
            (status, _) if status >= 500 => Err(SourceError::Unavailable(format!(
                "{d}: the login answered {status} {}",
                excerpt(&body)
            ))),
            (status, _) => {
                Err(self
                    .not_qbittorrent(&format!("its login answered {status} {}", excerpt(&body))))
            }
        }
    }

    /// Asks `app/webapiVersion` without a session: whether a login is needed (`true`), or
    /// the answer started a session (`false`, `state.cookie` set); an error for anything
    /// that is not qBittorrent.
    async fn probe(&self, state: &mut State) -> Result<bool, SourceError> {
        let d = self.describe();
        let probe = self
            .send(self.request(reqwest::Method::GET, "app/webapiVersion", None))
            .await?;
        let status = probe.status().as_u16();
        let cookie = session_cookie(&probe);
        let body = self.body(probe).await?;
        match status {
            200 => {
                let text = String::from_utf8_lossy(&body);
                let text = text.trim();
                if text.is_empty()
                    || !text
                        .split('.')
                        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                {
                    return Err(self.not_qbittorrent(&format!(
                        "app/webapiVersion answered {}",
                        excerpt(&body)
                    )));
                }
                // No login needed from this address: the answer started a session.
                state.cookie = Some(cookie.unwrap_or_default());
                return Ok(false);
            }
            403 => {}
            401 if body.trim_ascii() == b"Unauthorized" => {
                return Err(SourceError::Failed(format!(
                    "{d}: qBittorrent refused the request's Host or Origin (401): add the host \
                     as written in the source's spec to the WebUI's server domains, or write \
                     the address qBittorrent expects"
                )));
            }
            other => {
                return Err(self.not_qbittorrent(&format!(
                    "app/webapiVersion answered {other} {}",
                    excerpt(&body)
                )))
            }
        }
        Ok(true)
    }

    fn banned_error(&self) -> SourceError {
        SourceError::Failed(format!(
            "{}: qBittorrent has banned this address after too many failed logins (from any \
             client at this address); the ban lasts the WebUI's ban duration (default 1 \
             hour) or until qBittorrent restarts; the next login attempt is in at most 5 \
             minutes",
            self.describe()
        ))
    }

    /// A GET of `endpoint` with the session; logs in first when there is none, and once
    /// again when the session was refused (expired, or qBittorrent restarted).
    async fn get(
        &self,
        state: &mut State,
        endpoint: &str,
    ) -> Result<reqwest::Response, SourceError> {
        for attempt in 0..2 {
            if !matches!(self.auth, Auth::ApiKey(_)) && state.cookie.is_none() {
                self.login(state).await?;
            }
            let cookie = state.cookie.as_deref().filter(|c| !c.is_empty());
            let response = self
                .send(self.request(reqwest::Method::GET, endpoint, cookie))
                .await?;
            let status = response.status().as_u16();
            match (&self.auth, status) {
                (_, 200) => return Ok(response),
                (Auth::ApiKey(_), 401 | 403) => {
                    let body = self.body(response).await.unwrap_or_default();
                    return Err(SourceError::Failed(format!(
                        "{}: qBittorrent refused the API key ({status} {}); copy the key from \
                         qBittorrent's Options → WebUI → API key (qBittorrent 5.2 or later) \
                         into the source's spec",
                        self.describe(),
                        excerpt(&body)
                    )));
                }
                (_, 401 | 403) if attempt == 0 => {
                    tracing::info!(source = %self.describe(), status, "qBittorrent session refused; logging in again");
                    state.cookie = None;
                }
                (_, status) => {
                    let body = self.body(response).await.unwrap_or_default();
                    if status >= 500 {
                        return Err(SourceError::Unavailable(format!(
                            "{}: {endpoint} answered {status} {}",
                            self.describe(),
                            excerpt(&body)
                        )));
                    }
                    return Err(self.not_qbittorrent(&format!(
                        "{endpoint} answered {status} {}",
                        excerpt(&body)
                    )));
                }
            }
        }
        unreachable!("the second attempt returns")
    }

    /// The first and last log messages after `last_known_id`, and qBittorrent's clock.
    async fn read_log(
        &self,
        state: &mut State,
        last_known_id: i64,
    ) -> Result<(Option<(LogMessage, LogMessage)>, Option<u64>, Instant), SourceError> {
        let mut response = self
            .get(state, &format!("log/main?last_known_id={last_known_id}"))
            .await?;
        let at = Instant::now();
        let date = response
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_http_date);
        let mut scan = ArrayScan::default();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => scan
                    .feed(&chunk)
                    .map_err(|e| self.not_qbittorrent(&format!("log/main: {e}")))?,
                Ok(None) => break,
                Err(e) => {
                    return Err(SourceError::Unavailable(format!(
                        "{}: reading log/main: {}",
                        self.describe(),
                        sidecar::error_chain(&e)
                    )))
                }
            }
        }
        let ends = scan
            .finish()
            .map_err(|e| self.not_qbittorrent(&format!("log/main: {e}")))?;
        Ok((ends, date, at))
    }

    /// Which process answers: `known` again (`true`) when the log continues from its
    /// newest message, else the process found by reading the log from its start.
    async fn check_process(
        &self,
        state: &mut State,
        known: Option<&Process>,
    ) -> Result<(Process, bool), SourceError> {
        if let Some(known) = known {
            let (ends, _, _) = self.read_log(state, known.anchor.id - 1).await?;
            if let Some((first, last)) = ends {
                if first == known.anchor {
                    let process = Process {
                        anchor: last,
                        uptime_at: known.uptime_at,
                    };
                    return Ok((process, true));
                }
            }
        }
        let (ends, date, at) = self.read_log(state, -1).await?;
        let Some((first, last)) = ends else {
            return Err(self.not_qbittorrent("an empty log/main"));
        };
        // Seconds; milliseconds should a later version switch to what its docs say.
        let start = if first.timestamp > 100_000_000_000 {
            first.timestamp / 1000
        } else {
            first.timestamp
        };
        let uptime_at = match (first.id, date) {
            (0, Some(now)) if start >= 0 && now >= start as u64 => {
                Some((now - start as u64 + 1, at))
            }
            _ => None,
        };
        if uptime_at.is_none() {
            tracing::info!(
                source = %self.describe(),
                "qBittorrent's log no longer holds its start message: no uptime for this run"
            );
        }
        Ok((
            Process {
                anchor: last,
                uptime_at,
            },
            false,
        ))
    }
}

#[async_trait]
impl SessionSource for QbittorrentSource {
    async fn session_status(&self, keys: &[StatusKey]) -> Result<SessionStatus, SourceError> {
        let mut state = self.state.lock().await;
        if let Some(refused) = &state.refused {
            return Err(SourceError::Failed(refused.clone()));
        }
        // Taken out while in use: a poll dropped half-way starts over.
        let known = state.process.take();
        let (before, same) = self.check_process(&mut state, known.as_ref()).await?;
        if known.is_some() && !same {
            tracing::info!(source = %self.describe(), "qBittorrent restarted (its log started over)");
        }
        let response = self.get(&mut state, "transfer/info").await?;
        let body = self.body(response).await?;
        let values = decode_transfer_info(&body, keys).ok_or_else(|| {
            self.not_qbittorrent(&format!(
                "transfer/info answered {} without dl_info_data and up_info_data",
                excerpt(&body)
            ))
        })?;
        let (after, same) = self.check_process(&mut state, Some(&before)).await?;
        if !same {
            state.process = Some(after);
            return Err(SourceError::Unavailable(format!(
                "{}: qBittorrent restarted during the poll; the next poll reads the new run",
                self.describe()
            )));
        }
        let uptime = after.uptime();
        state.process = Some(after);
        let mut status = SessionStatus::new(SessionId::new(format!(
            "qbittorrent://{}",
            self.url.authority()
        )));
        status.values = values;
        status.uptime = uptime;
        Ok(status)
    }

    fn describe(&self) -> String {
        self.url.describe()
    }
}

#[cfg(test)]
mod tests;
