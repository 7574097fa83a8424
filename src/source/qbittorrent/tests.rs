//! Unit tests of the `qbittorrent://` source: specifications, decoding, and a stub WebUI
//! written from qBittorrent 5.2's source (`src/webui/webapplication.cpp`,
//! `api/authcontroller.cpp`): a login answers 204 and sets `QBT_SID_<port>`, a refused one
//! 401, a banned address 403; a request without a live session 403; an API key is
//! `Authorization: Bearer qbt_…`; a cross-site `Origin`/`Referer` 401.

use std::sync::{Arc, Mutex as StdMutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

const KEY: &str = "qbt_abcdefghijkmnpqrstuvwxyz2345";
/// The stub's clock, as its `Date` header says.
const STUB_DATE: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
const STUB_NOW: i64 = 784_111_777;

#[test]
fn specs() {
    let s = QbittorrentSource::from_spec("qbittorrent://admin:p%40ss@NAS.local").unwrap();
    assert_eq!(s.describe(), "qbittorrent://admin@nas.local:8080");
    assert_eq!(
        s.auth,
        Auth::Login {
            user: "admin".into(),
            password: "p@ss".into()
        }
    );
    assert_eq!(
        s.api("transfer/info"),
        "http://nas.local:8080/api/v2/transfer/info"
    );
    assert!(!format!("{s:?}").contains("p@ss"));

    let s = QbittorrentSource::from_spec("qbittorrent+https://[::1]:8443/qbt/").unwrap();
    assert_eq!(s.auth, Auth::None);
    assert_eq!(s.describe(), "qbittorrent+https://[::1]:8443/qbt");
    assert_eq!(s.api("log/main"), "https://[::1]:8443/qbt/api/v2/log/main");
    assert_eq!(s.origin(), "https://[::1]:8443");

    let s = QbittorrentSource::from_spec(&format!("qbittorrent://apikey:{KEY}@h:1")).unwrap();
    assert_eq!(s.auth, Auth::ApiKey(KEY.into()));
    assert_eq!(s.describe(), "qbittorrent://apikey@h:1");
    assert!(!format!("{s:?}").contains(KEY));
    // Not of a key's form, or another user: a login.
    for spec in [
        "qbittorrent://apikey:qbt_short@h",
        &format!("qbittorrent://admin:{KEY}@h"),
        "qbittorrent://apikey:qbt_abcdefghijkmnpqrstuvwxyz23-5@h",
    ] {
        let s = QbittorrentSource::from_spec(spec).unwrap();
        assert!(matches!(s.auth, Auth::Login { .. }), "{spec}");
    }
    for (bad, want) in [
        ("transmission://h", "expected qbittorrent://"),
        ("qbittorrent://admin@h", "give both USER and PASS"),
        ("qbittorrent://admin:s3cret@h:70000", "not a valid address"),
        ("qbittorrent://h/x?y", "nothing may follow"),
    ] {
        let e = QbittorrentSource::from_spec(bad).unwrap_err().to_string();
        assert!(e.contains(want), "{bad}: {e}");
        assert!(!e.contains("s3cret"), "{e}");
    }
}

#[test]
fn decoding() {
    let body = br#"{"connection_status":"firewalled","dht_nodes":7,"dl_info_data":40000000,"dl_info_speed":12,"dl_rate_limit":0,"up_info_data":5,"up_info_speed":3,"up_rate_limit":0}"#;
    let v = decode_transfer_info(body, &StatusKey::ALL).unwrap();
    assert_eq!(v[&StatusKey::TotalPayloadDownload], 40_000_000);
    assert_eq!(v[&StatusKey::TotalPayloadUpload], 5);
    assert_eq!(v[&StatusKey::PayloadDownloadRate], 12);
    assert_eq!(v[&StatusKey::PayloadUploadRate], 3);
    assert_eq!(v[&StatusKey::DhtNodes], 7);
    // Payload only: no wire totals, nothing invented.
    assert!(!v.contains_key(&StatusKey::TotalDownload));
    assert!(!v.contains_key(&StatusKey::TotalUpload));
    assert_eq!(v.len(), 5);
    let only = decode_transfer_info(body, &[StatusKey::TotalPayloadUpload]).unwrap();
    assert_eq!(only.len(), 1);
    for bad in [
        &br#"{"dl_info_data":1}"#[..],
        br#"{"dl_info_data":-1,"up_info_data":1}"#,
        br#"{"dl_info_data":"1","up_info_data":1}"#,
        br#"[1,2]"#,
        b"<html>nope</html>",
        br#"{"arguments":{},"result":"success"}"#,
    ] {
        assert!(decode_transfer_info(bad, &StatusKey::ALL).is_none());
    }

    assert_eq!(parse_http_date(STUB_DATE), Some(STUB_NOW as u64));
    assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
    assert_eq!(
        parse_http_date("Mon, 07 Dec 2026 00:15:53 GMT"),
        Some(1_796_602_553)
    );
    assert_eq!(
        parse_http_date("Tue, 29 Feb 2000 12:00:00 GMT"),
        Some(951_825_600)
    );
    assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 UTC"), None);
    assert_eq!(parse_http_date("yesterday"), None);

    assert_eq!(form_encode("a b&c=d%é"), "a%20b%26c%3Dd%25%C3%A9");
    assert!(is_api_key(KEY));
    assert!(!is_api_key("qbt_abc"));
}

#[test]
fn log_scan_finds_first_and_last_across_chunks() {
    let log = br#" [{"id":0,"message":"qBittorrent v5.2.0 started, \"x\" ]}, [","timestamp":100,"type":1},
        {"id":1,"message":"b","timestamp":101,"type":2},{"id":2,"message":"c\\","timestamp":102,"type":2}] "#;
    for size in [1, 3, 7, log.len()] {
        let mut scan = ArrayScan::default();
        for chunk in log.chunks(size) {
            scan.feed(chunk).unwrap();
        }
        let (first, last) = scan.finish().unwrap().unwrap();
        assert_eq!((first.id, first.timestamp), (0, 100));
        assert_eq!(first.message, r#"qBittorrent v5.2.0 started, "x" ]}, ["#);
        assert_eq!((last.id, last.message.as_str()), (2, "c\\"));
    }
    let mut empty = ArrayScan::default();
    empty.feed(b"[]").unwrap();
    assert_eq!(empty.finish().unwrap(), None);
    let mut cut = ArrayScan::default();
    cut.feed(br#"[{"id":0"#).unwrap();
    assert!(cut.finish().is_err());
    assert!(ArrayScan::default().feed(b"{}").is_err());
    let mut bad = ArrayScan::default();
    bad.feed(br#"[{"x":1}]"#).unwrap();
    assert!(bad.finish().is_err());
}

/// The stub WebUI's state.
struct Stub {
    port: u16,
    user: &'static str,
    password: &'static str,
    api_key: Option<&'static str>,
    /// Live session ids.
    sessions: Vec<String>,
    next_sid: u32,
    failures: u32,
    login_requests: u32,
    /// Start time (seconds) and number of log messages of the running "process".
    start: i64,
    messages: i64,
    down: u64,
    up: u64,
    /// The oldest message still kept.
    oldest: i64,
    /// Answer everything with this instead (status, content type, body).
    foreign: Option<(u16, &'static str, &'static str)>,
    /// transfer/info's body instead of the counters.
    info: Option<&'static str>,
}

type Shared = Arc<StdMutex<Stub>>;

impl Stub {
    fn restart(&mut self, start: i64) {
        self.sessions.clear();
        self.start = start;
        self.messages = 3;
        self.oldest = 0;
        self.down = 0;
        self.up = 0;
    }

    fn log(&self, last_known_id: i64) -> String {
        let items: Vec<String> = ((last_known_id + 1).max(self.oldest)..self.messages)
            .map(|id| {
                let message = if id == 0 {
                    "qBittorrent v5.2.0 started".to_string()
                } else {
                    format!("message {id}")
                };
                format!(
                    r#"{{"id":{id},"message":"{message}","timestamp":{},"type":1}}"#,
                    self.start + id
                )
            })
            .collect();
        format!("[{}]", items.join(","))
    }

    /// (status, extra headers, body) for one request.
    fn answer(&mut self, head: &str, body: &str) -> (u16, String, String) {
        if let Some((status, content_type, body)) = self.foreign {
            return (
                status,
                format!("content-type: {content_type}\r\n"),
                body.into(),
            );
        }
        let mut lines = head.lines();
        let request_line = lines.next().unwrap_or_default();
        let mut parts = request_line.split(' ');
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let header = |name: &str| {
            head.lines().skip(1).find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
        };
        let text = |status: u16, body: &str| (status, String::new(), body.to_string());
        let origin = format!("http://127.0.0.1:{}", self.port);
        // The CSRF check (skipped for API keys): Origin and Referer must be the host's.
        let bearer =
            header("authorization").and_then(|a| a.strip_prefix("Bearer ").map(str::to_string));
        if bearer.is_none()
            && (header("origin").is_some_and(|o| o != origin)
                || header("referer").is_some_and(|r| !r.starts_with(&format!("{origin}/"))))
        {
            return text(401, "Unauthorized");
        }
        let cookie_name = format!("QBT_SID_{}", self.port);
        let session = match &bearer {
            Some(key) => self.api_key == Some(key.as_str()),
            None => header("cookie").is_some_and(|c| {
                c.split(';').any(|kv| {
                    kv.trim()
                        .strip_prefix(&format!("{cookie_name}="))
                        .is_some_and(|sid| self.sessions.iter().any(|s| s == sid))
                })
            }),
        };
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        match (method, path) {
            ("POST", "/api/v2/auth/login") => {
                self.login_requests += 1;
                if bearer.is_some() {
                    return text(403, "Forbidden");
                }
                if self.failures >= 5 {
                    return text(
                        403,
                        "Your IP address has been banned after too many failed authentication attempts.",
                    );
                }
                let form = |k: &str| {
                    body.split('&').find_map(|kv| {
                        let (n, v) = kv.split_once('=')?;
                        (n == k).then(|| sidecar::percent_decode(v).unwrap())
                    })
                };
                if form("username").as_deref() == Some(self.user)
                    && form("password").as_deref() == Some(self.password)
                {
                    self.next_sid += 1;
                    let sid = format!("sid{}x{}", self.start, self.next_sid);
                    self.sessions.push(sid.clone());
                    (
                        204,
                        format!(
                            "set-cookie: {cookie_name}={sid}; HttpOnly; SameSite=Strict; path=/\r\n"
                        ),
                        String::new(),
                    )
                } else {
                    self.failures += 1;
                    text(401, "Unauthorized")
                }
            }
            _ if !session => text(403, "Forbidden"),
            ("GET", "/api/v2/app/webapiVersion") => text(200, "2.14.1"),
            ("GET", "/api/v2/transfer/info") if self.info.is_some() => {
                text(200, self.info.unwrap_or_default())
            }
            ("GET", "/api/v2/transfer/info") => (
                200,
                "content-type: application/json\r\n".into(),
                format!(
                    r#"{{"connection_status":"connected","dht_nodes":3,"dl_info_data":{},"dl_info_speed":0,"dl_rate_limit":0,"last_external_address_v4":"","last_external_address_v6":"","up_info_data":{},"up_info_speed":0,"up_rate_limit":0}}"#,
                    self.down, self.up
                ),
            ),
            ("GET", "/api/v2/log/main") => {
                let last: i64 = query
                    .strip_prefix("last_known_id=")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(-1);
                (
                    200,
                    "content-type: application/json\r\n".into(),
                    self.log(last),
                )
            }
            _ => text(404, "Not Found"),
        }
    }
}

/// Serves the stub on a free loopback port, one request per connection.
async fn serve(configure: impl FnOnce(&mut Stub)) -> Shared {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut stub = Stub {
        port: listener.local_addr().unwrap().port(),
        user: "admin",
        password: "good pass&=",
        api_key: None,
        sessions: Vec::new(),
        next_sid: 0,
        failures: 0,
        login_requests: 0,
        start: 0,
        messages: 0,
        down: 0,
        up: 0,
        oldest: 0,
        foreign: None,
        info: None,
    };
    stub.restart(STUB_NOW - 100);
    configure(&mut stub);
    let shared = Arc::new(StdMutex::new(stub));
    let stub = shared.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let stub = stub.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (n, v) = l.split_once(':')?;
                        n.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                while buf.len() < head_end + length {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).to_string();
                let (status, headers, body) = stub.lock().unwrap().answer(&head, &body);
                let response = format!(
                    "HTTP/1.1 {status} X\r\ndate: {STUB_DATE}\r\nconnection: close\r\n\
                     content-length: {}\r\n{headers}\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(response.as_bytes()).await;
            });
        }
    });
    shared
}

fn source(stub: &Shared, login: &str) -> QbittorrentSource {
    let port = stub.lock().unwrap().port;
    QbittorrentSource::from_spec(&format!("qbittorrent://{login}127.0.0.1:{port}")).unwrap()
}

async fn poll(src: &QbittorrentSource) -> Result<SessionStatus, SourceError> {
    tokio::time::timeout(Duration::from_secs(20), src.session_status(&StatusKey::ALL))
        .await
        .expect("a poll must not hang")
}

#[tokio::test]
async fn logs_in_with_the_5x_cookie_and_logs_in_again_when_the_session_is_gone() {
    let stub = serve(|s| {
        s.down = 1000;
        s.up = 20;
    })
    .await;
    let src = source(&stub, "admin:good%20pass%26%3D@");
    let port = stub.lock().unwrap().port;
    let st = poll(&src).await.unwrap();
    assert_eq!(
        st.session,
        SessionId::new(format!("qbittorrent://127.0.0.1:{port}"))
    );
    assert_eq!(st.get(StatusKey::TotalPayloadDownload), Some(1000));
    assert_eq!(st.get(StatusKey::TotalPayloadUpload), Some(20));
    assert_eq!(st.get(StatusKey::DhtNodes), Some(3));
    assert_eq!(st.get(StatusKey::TotalDownload), None);
    // Date - start + 1, then our clock.
    let uptime = st.uptime.unwrap();
    assert!((101..=130).contains(&uptime), "{uptime}");
    assert!(src
        .state
        .lock()
        .await
        .cookie
        .as_deref()
        .unwrap()
        .starts_with(&format!("QBT_SID_{port}=")));
    assert_eq!(stub.lock().unwrap().login_requests, 1);

    stub.lock().unwrap().down = 1500;
    let st = poll(&src).await.unwrap();
    assert_eq!(st.get(StatusKey::TotalPayloadDownload), Some(1500));
    assert_eq!(stub.lock().unwrap().login_requests, 1, "the cookie is kept");

    // The session expires: one new login, same identity.
    stub.lock().unwrap().sessions.clear();
    let again = poll(&src).await.unwrap();
    assert_eq!(again.session, st.session);
    assert_eq!(stub.lock().unwrap().login_requests, 2);
}

#[tokio::test]
async fn a_refused_login_is_never_tried_again() {
    let stub = serve(|_| {}).await;
    let src = source(&stub, "admin:s3cret@");
    for _ in 0..4 {
        let e = poll(&src).await.unwrap_err();
        let SourceError::Failed(m) = &e else {
            panic!("{e:?}")
        };
        assert!(
            m.starts_with("wrong user or password for qbittorrent://admin@127.0.0.1:"),
            "{m}"
        );
        assert!(
            m.contains("not retried, qBittorrent bans an address after 5 failures"),
            "{m}"
        );
        assert!(!m.contains("s3cret"), "{m}");
    }
    assert_eq!(stub.lock().unwrap().login_requests, 1);
    assert_eq!(stub.lock().unwrap().failures, 1);
    // A source built again (a corrected spec) logs in.
    let fixed = source(&stub, "admin:good%20pass%26%3D@");
    poll(&fixed).await.unwrap();
}

#[tokio::test]
async fn a_ban_has_its_own_message() {
    let stub = serve(|s| s.failures = 5).await;
    let src = source(&stub, "admin:good%20pass%26%3D@");
    let e = poll(&src).await.unwrap_err().to_string();
    assert!(e.contains("has banned this address"), "{e}");
    let e = poll(&src).await.unwrap_err().to_string();
    assert!(e.contains("has banned this address"), "{e}");
    assert_eq!(
        stub.lock().unwrap().login_requests,
        1,
        "no login during the back-off"
    );
}

#[tokio::test]
async fn api_keys_go_in_a_bearer_header() {
    let stub = serve(|s| {
        s.api_key = Some(KEY);
        s.up = 77;
    })
    .await;
    let src = source(&stub, &format!("apikey:{KEY}@"));
    let st = poll(&src).await.unwrap();
    assert_eq!(st.get(StatusKey::TotalPayloadUpload), Some(77));
    assert_eq!(stub.lock().unwrap().login_requests, 0);
    assert!(src.state.lock().await.cookie.is_none());

    let wrong = source(&stub, "apikey:qbt_zzzzzzzzzzzzzzzzzzzzzzzzzzzz@");
    let e = poll(&wrong).await.unwrap_err().to_string();
    assert!(e.contains("refused the API key"), "{e}");
    assert!(!e.contains("qbt_zzz"), "{e}");
    assert_eq!(stub.lock().unwrap().login_requests, 0);
}

#[tokio::test]
async fn a_restart_shows_in_the_uptime_and_the_identity_stays() {
    let stub = serve(|s| s.down = 5000).await;
    let src = source(&stub, "admin:good%20pass%26%3D@");
    let before = poll(&src).await.unwrap();
    assert!(before.uptime.unwrap() >= 101);
    // Restarted 10 s ago (its clock): counters at 0, a new log, our cookie unknown.
    stub.lock().unwrap().restart(STUB_NOW - 10);
    let after = poll(&src).await.unwrap();
    assert_eq!(after.session, before.session);
    assert_eq!(after.get(StatusKey::TotalPayloadDownload), Some(0));
    let uptime = after.uptime.unwrap();
    assert!((11..=40).contains(&uptime), "{uptime}");
    assert_eq!(stub.lock().unwrap().login_requests, 2);
    // A new instance of the source (our restart) sees the same identity and uptime.
    let fresh = source(&stub, "admin:good%20pass%26%3D@");
    let again = poll(&fresh).await.unwrap();
    assert_eq!(again.session, after.session);
    assert!(again.uptime.unwrap() >= uptime);
    // A log that lost message 0 (over 20 000 messages): no uptime, same identity.
    stub.lock().unwrap().oldest = 1;
    let fresh = source(&stub, "admin:good%20pass%26%3D@");
    let lost = poll(&fresh).await.unwrap();
    assert_eq!((lost.session, lost.uptime), (after.session, None));
}

#[tokio::test]
async fn other_daemons_do_not_pass() {
    for foreign in [
        (404, "text/plain", "Not Found"),
        (200, "text/html", "<html><body>router login</body></html>"),
        (
            409,
            "text/html",
            "<h1>409: Conflict</h1><p>Your request had an invalid session-id header.</p>",
        ),
        (
            401,
            "text/html",
            "<h1>401: Unauthorized</h1>Unauthorized User",
        ),
        (200, "application/json", r#"{"version":"x"}"#),
    ] {
        let stub = serve(|s| s.foreign = Some(foreign)).await;
        for login in ["", "admin:s3cret@"] {
            let src = source(&stub, login);
            let e = poll(&src).await.unwrap_err().to_string();
            assert!(
                e.contains("does not look like qBittorrent"),
                "{foreign:?}: {e}"
            );
        }
    }
    // qBittorrent's login and log, but transfer/info without the counters.
    let stub = serve(|s| s.info = Some(r#"{"connection_status":"connected"}"#)).await;
    let src = source(&stub, "admin:good%20pass%26%3D@");
    let e = poll(&src).await.unwrap_err().to_string();
    assert!(e.contains("does not look like qBittorrent"), "{e}");
    assert!(e.contains("without dl_info_data"), "{e}");
}

#[tokio::test]
async fn a_cross_site_rejection_is_not_a_wrong_password() {
    let stub = serve(|_| {}).await;
    // The stub checks Origin against 127.0.0.1; "localhost" is another origin to it.
    let port = stub.lock().unwrap().port;
    let src = QbittorrentSource::from_spec(&format!(
        "qbittorrent://admin:good%20pass%26%3D@localhost:{port}"
    ))
    .unwrap();
    let e = poll(&src).await.unwrap_err().to_string();
    assert!(e.contains("refused the request's Host or Origin"), "{e}");
    assert_eq!(stub.lock().unwrap().login_requests, 0);
    assert!(src.state.lock().await.refused.is_none());
}
