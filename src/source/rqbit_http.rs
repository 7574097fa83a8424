//! The `rqbit://` sidecar source (feature `sidecars`): a running rqbit server's HTTP API,
//! `GET /stats`.

use std::sync::Mutex;

use async_trait::async_trait;
use serde::Deserialize;

use super::sidecar::{self, Login, SidecarSpecError, SidecarUrl};
use crate::session::{SessionId, SessionSource, SessionStatus, SourceError, StatusKey};

/// rqbit's default HTTP API port (`rqbit server start --http-api-listen-addr`).
const DEFAULT_PORT: u16 = 3030;
/// The specification's form, for messages.
const FORM: &str = "[USER:PASS@]HOST[:PORT][/PATH]";

/// A running rqbit server watched through its HTTP API: `rqbit://[USER:PASS@]HOST[:PORT]`
/// (default port 3030) or `rqbit+https://…` behind a TLS proxy, with an optional path
/// prefix for a reverse proxy. USER:PASS is the API's optional basic authentication
/// (`RQBIT_HTTP_BASIC_AUTH_USERPASS`).
///
/// # What it reports
/// rqbit counts payload only: `GET /stats` (librqbit's session stats) gives
/// `counters.fetched_bytes` and `counters.uploaded_bytes`, reported as
/// [`TotalPayloadDownload`](StatusKey::TotalPayloadDownload) and
/// [`TotalPayloadUpload`](StatusKey::TotalPayloadUpload); the wire totals are never
/// reported (nor invented). `download_speed.mbps` and `upload_speed.mbps` (MiB/s, the
/// server's estimate over its last seconds) become the payload rates, `peers.live` the
/// peers and connections, and `uptime_seconds` the session's uptime.
///
/// # Session identity
/// rqbit's counters start from 0 at each start of the server and its API shows no
/// identity of one run: no start time, pid or random id (its DHT id and torrent ids are
/// kept across restarts), only `uptime_seconds`, whole seconds of its monotonic clock. A
/// start time derived from it and a clock jitters by a second and could not be recomputed
/// exactly by a new instance of this source after a restart of ours, which would count
/// the whole session twice. So the identity is the server's address,
/// `rqbit://HOST:PORT[PATH]` (no user), the same for every instance, and a restart of the
/// server is told by Stats from the figures: any counter going down, or the uptime being
/// shorter than the last sample's plus the time since (also across a restart of ours).
/// Writing the same server differently (`localhost` and `127.0.0.1`) is another identity:
/// that change counts the current session once more.
///
/// # Example
/// ```
/// use torrent_stats::SessionSource;
/// use torrent_stats::RqbitHttpSource;
/// let src = RqbitHttpSource::from_spec("rqbit://me:s3cret@NAS").unwrap();
/// assert_eq!(src.describe(), "rqbit://me@nas:3030");
/// assert!(!format!("{src:?}").contains("s3cret"));
/// ```
#[derive(Debug)]
pub struct RqbitHttpSource {
    url: SidecarUrl,
    id: SessionId,
    client: Mutex<Option<reqwest::Client>>,
}

/// `GET /stats`, the fields read (librqbit 9's `SessionStatsSnapshot`).
#[derive(Debug, Deserialize)]
struct Stats {
    counters: Counters,
    uptime_seconds: u64,
    #[serde(default)]
    download_speed: Option<Speed>,
    #[serde(default)]
    upload_speed: Option<Speed>,
    #[serde(default)]
    peers: Option<Peers>,
}

/// `counters`: payload bytes since the server started.
#[derive(Debug, Deserialize)]
struct Counters {
    fetched_bytes: u64,
    uploaded_bytes: u64,
}

/// A speed, in MiB/s.
#[derive(Debug, Deserialize)]
struct Speed {
    mbps: f64,
}

/// `peers`: the live peer connections.
#[derive(Debug, Deserialize)]
struct Peers {
    live: u64,
}

impl RqbitHttpSource {
    /// Parses `rqbit://[USER:PASS@]HOST[:PORT][/PATH]` or `rqbit+https://…`.
    pub fn from_spec(spec: &str) -> Result<RqbitHttpSource, SidecarSpecError> {
        let url = SidecarUrl::parse(spec, "rqbit", FORM, DEFAULT_PORT, "", Login::Optional)?;
        let id = SessionId::new(format!("rqbit://{}{}", url.authority(), url.path));
        Ok(RqbitHttpSource {
            url,
            id,
            client: Mutex::new(None),
        })
    }

    /// The HTTP client, built on first use.
    fn client(&self) -> Result<reqwest::Client, SourceError> {
        let mut slot = self.client.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = sidecar::client()
            .map_err(|e| SourceError::Failed(format!("{}: {e}", self.url.describe())))?;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// The error for an answer that is not rqbit's.
    fn not_rqbit(&self, what: &str) -> SourceError {
        SourceError::Failed(format!(
            "{}: the daemon there does not look like rqbit's HTTP API (GET {}/stats: {what}); \
             give the address of rqbit's HTTP API (rqbit server start \
             --http-api-listen-addr, default port {DEFAULT_PORT})",
            self.url.describe(),
            self.url.path
        ))
    }

    /// Fetches and decodes `GET /stats`.
    async fn fetch(&self) -> Result<Stats, SourceError> {
        let name = self.url.describe();
        let mut request = self
            .client()?
            .get(self.url.url(&format!("{}/stats", self.url.path)));
        if let (Some(user), Some(pass)) = (&self.url.user, &self.url.password) {
            request = request.basic_auth(user, Some(pass));
        }
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                SourceError::Unavailable(format!(
                    "{name}: no answer in time ({}); is the rqbit server running?",
                    sidecar::error_chain(&e)
                ))
            } else {
                SourceError::Unavailable(format!(
                    "{name}: {}; is the rqbit server running with its HTTP API there?",
                    sidecar::error_chain(&e)
                ))
            }
        })?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(SourceError::Failed(if self.url.user.is_some() {
                format!("{name}: the HTTP API refused the login; check USER:PASS")
            } else {
                format!(
                    "{name}: the HTTP API wants a login; give rqbit://USER:PASS@{}",
                    self.url.authority()
                )
            }));
        }
        if !status.is_success() {
            return Err(self.not_rqbit(&format!("HTTP {status}")));
        }
        let body = sidecar::read_body(response)
            .await
            .map_err(|e| SourceError::Unavailable(format!("{name}: reading the answer: {e}")))?;
        decode(&body).map_err(|e| self.not_rqbit(&e))
    }
}

/// Decodes a `/stats` answer; the error says why it is not rqbit's.
fn decode(body: &[u8]) -> Result<Stats, String> {
    serde_json::from_slice::<Stats>(body).map_err(|e| {
        if serde_json::from_slice::<serde_json::Value>(body).is_ok() {
            format!("JSON without rqbit's session stats: {e}")
        } else {
            "not JSON".to_string()
        }
    })
}

/// Bytes per second from librqbit's MiB/s.
fn mib_per_s(mib: f64) -> u64 {
    (mib * 1_048_576.0).round().max(0.0) as u64
}

#[async_trait]
impl SessionSource for RqbitHttpSource {
    async fn session_status(&self, keys: &[StatusKey]) -> Result<SessionStatus, SourceError> {
        let stats = self.fetch().await?;
        let mut status = SessionStatus::new(self.id.clone()).with_uptime(stats.uptime_seconds);
        for &key in keys {
            let value = match key {
                StatusKey::TotalPayloadDownload => Some(stats.counters.fetched_bytes),
                StatusKey::TotalPayloadUpload => Some(stats.counters.uploaded_bytes),
                StatusKey::PayloadDownloadRate => {
                    stats.download_speed.as_ref().map(|s| mib_per_s(s.mbps))
                }
                StatusKey::PayloadUploadRate => {
                    stats.upload_speed.as_ref().map(|s| mib_per_s(s.mbps))
                }
                StatusKey::NumPeers | StatusKey::NumConnections => {
                    stats.peers.as_ref().map(|p| p.live)
                }
                // Wire totals and rates and DHT figures: not in /stats, never invented.
                _ => None,
            };
            if let Some(v) = value {
                status.values.insert(key, v);
            }
        }
        Ok(status)
    }

    fn describe(&self) -> String {
        self.url.describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `/stats` answer of librqbit 9.1.0's HTTP API, recorded from the library test's
    /// server after its first transfers (3 MiB + 1234 bytes up, 2 MiB + 567 down).
    const RECORDED: &str = r#"{"connections":{"socks":{"v4":{"attempts":0,"errors":0,"successes":0},"v6":{"attempts":0,"errors":0,"successes":0}},"tcp":{"v4":{"attempts":1,"errors":0,"successes":1},"v6":{"attempts":0,"errors":0,"successes":0}},"utp":{"v4":{"attempts":0,"errors":0,"successes":0},"v6":{"attempts":0,"errors":0,"successes":0}}},"counters":{"blocked_incoming":0,"blocked_outgoing":0,"fetched_bytes":2097719,"uploaded_bytes":3146962},"download_speed":{"human_readable":"0.00 MiB/s","mbps":0.0},"peers":{"connecting":0,"dead":0,"live":0,"live_seeders":0,"live_socks":0,"live_tcp":0,"live_utp":0,"not_needed":2,"queued":0,"seen":1,"steals":0},"upload_speed":{"human_readable":"0.00 MiB/s","mbps":0.0},"uptime_seconds":0}"#;

    #[test]
    fn specs_parse_and_never_show_the_password() {
        let s = RqbitHttpSource::from_spec("rqbit://LocalHost").unwrap();
        assert_eq!(s.describe(), "rqbit://localhost:3030");
        assert_eq!(s.url.url("/stats"), "http://localhost:3030/stats");
        assert_eq!(s.id, SessionId::new("rqbit://localhost:3030"));
        let s = RqbitHttpSource::from_spec("rqbit+https://me:s3cret@[::1]:8443/rqbit/").unwrap();
        assert_eq!(s.describe(), "rqbit+https://me@[::1]:8443/rqbit");
        assert_eq!(s.id, SessionId::new("rqbit://[::1]:8443/rqbit"));
        assert!(!format!("{s:?}").contains("s3cret"));
        for (bad, want) in [
            ("rqbit://me@h", "give both USER and PASS"),
            ("rqbit://me:s3cret@h:70000", "not a valid address"),
            ("transmission://h", "expected rqbit://"),
            ("rqbit+http://h", "expected rqbit://"),
            ("rqbit://h/?x", "nothing may follow"),
        ] {
            let e = RqbitHttpSource::from_spec(bad).unwrap_err().to_string();
            assert!(e.contains(want), "{bad}: {e}");
            assert!(!e.contains("s3cret"), "{e}");
        }
    }

    #[test]
    fn a_recorded_answer_decodes() {
        let s = decode(RECORDED.as_bytes()).unwrap();
        assert_eq!(
            (s.counters.fetched_bytes, s.counters.uploaded_bytes),
            ((2 << 20) + 567, (3 << 20) + 1234)
        );
        assert_eq!(s.uptime_seconds, 0);
        assert_eq!(s.peers.map(|p| p.live), Some(0));
        assert_eq!(s.download_speed.map(|v| v.mbps), Some(0.0));
        assert_eq!(s.upload_speed.map(|v| v.mbps), Some(0.0));
        assert_eq!(mib_per_s(0.5), 524288);
        assert_eq!(mib_per_s(-1.0), 0);
    }

    #[test]
    fn other_daemons_answers_are_refused() {
        // Transmission's and qBittorrent's answers, a web page, rqbit's API root.
        for (body, want) in [
            (r#"{"arguments":{},"result":"success"}"#, "JSON without"),
            (r#"{"dl_info_data":1,"up_info_data":2}"#, "JSON without"),
            (r#"{"counters":{"fetched_bytes":1}}"#, "JSON without"),
            (
                r#"{"apis":{},"server":"rqbit","version":"9.1.0"}"#,
                "JSON without",
            ),
            ("<html><body>Not found</body></html>", "not JSON"),
            ("", "not JSON"),
        ] {
            let e = decode(body.as_bytes()).unwrap_err();
            assert!(e.contains(want), "{body}: {e}");
        }
        let s = RqbitHttpSource::from_spec("rqbit://me:s3cret@h:1").unwrap();
        let e = s.not_rqbit("HTTP 404 Not Found").to_string();
        assert!(e.contains("does not look like rqbit's HTTP API"), "{e}");
        assert!(e.contains("rqbit://me@h:1") && !e.contains("s3cret"), "{e}");
    }

    #[tokio::test]
    async fn a_closed_port_is_unavailable() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let s = RqbitHttpSource::from_spec(&format!("rqbit://127.0.0.1:{port}")).unwrap();
        match s.session_status(&StatusKey::COUNTERS).await {
            Err(SourceError::Unavailable(m)) => {
                assert!(m.starts_with(&format!("rqbit://127.0.0.1:{port}")), "{m}")
            }
            other => panic!("{other:?}"),
        }
    }
}
