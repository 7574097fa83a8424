//! The fuzz targets' bodies, shared by the cargo-fuzz crate (`fuzz/fuzz_targets/`, run on
//! nightly) and the corpus replay every CI run makes on stable (`tests/library/fuzz_corpus.rs`).
//! A body panics only on a real defect: a decoder's error is an answer, not a failure.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request};
use torrent_stats::auth::{AuthFile, LOCALCLIENT};
use torrent_stats::import;
use torrent_stats::unstable::history::{self, History};
use torrent_stats::unstable::{self, codec, frame, WebState};
use torrent_stats::{Accumulator, Counters, Daemon, EngineConfig, HostConfig, SimSource};
use torrent_stats::{SessionId, StatusKey};
use tower::ServiceExt;

/// The RPC server's framing, then rencode on every message it yields.
pub fn frame(data: &[u8]) {
    let limits = frame::Limits::default();
    let mut decoder = frame::FrameDecoder::new(limits);
    // In two pieces, as bytes arrive from a socket.
    let cut = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    for piece in [&data[..cut], &data[cut..]] {
        decoder.extend(piece);
        loop {
            match decoder.next_item() {
                Ok(Some(frame::Item::Message(body))) => {
                    let _ = codec::decode(&body, limits.max_depth);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
}

/// rencode: whatever decodes re-encodes to bytes that decode to the same value.
pub fn rencode(data: &[u8]) {
    if let Ok(value) = codec::decode(data, 64) {
        let again = codec::decode(&codec::encode(&value), 64).expect("a re-encoded value decodes");
        assert_eq!(again, value, "rencode round trip");
    }
}

/// A hand-edited `stats.conf`.
pub fn stats_conf(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = torrent_stats::unstable::parse_stats_conf(text, Path::new("stats.conf"));
    }
}

/// The files the daemon loads: `stats.totals` and `stats.history` (machine-owned: when the
/// first byte's high bit is set the rest is sealed with a valid checksum line first, so the
/// fuzzer reaches the TOML and the checks behind it), `core.conf` and `engine.conf` (a
/// person's), and the other programs' totals `import` reads. Whatever loads must be usable:
/// saved again it loads to the same value, the totals take a sample without going down, the
/// history takes a point and answers for every level and series.
pub fn files(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let sealed;
    let bytes = match std::str::from_utf8(body) {
        Ok(text) if selector & 0x80 != 0 => {
            sealed = unstable::sealed(text);
            sealed.as_bytes()
        }
        _ => body,
    };
    match (selector & 0x7f) % 6 {
        0 => {
            if let Ok(totals) = unstable::parse::<Accumulator>(bytes) {
                reloads(&totals);
                let sample = Counters {
                    total_upload: 1 << 20,
                    ..Counters::default()
                };
                for session in [
                    SessionId::new("fuzz"),
                    totals.session.clone().unwrap_or_default(),
                ] {
                    let (next, _) = totals.apply(&session, sample);
                    assert!(!next.totals.any_below(&totals.totals), "totals went down");
                    reloads(&next);
                }
            }
        }
        1 => {
            if let Ok(mut history) = unstable::parse::<History>(bytes) {
                reloads(&history);
                let intervals = history.intervals();
                let values = BTreeMap::from([(StatusKey::UploadRate, u64::MAX)]);
                history.push(&values, 1.0e9);
                for (level, interval) in intervals.into_iter().enumerate() {
                    assert_eq!(history.level_for(interval), Some(level));
                    for key in history::SERIES {
                        let series = history.series(level, key.as_str());
                        assert!(series.is_none_or(|s| s.len() as u64 <= history.length));
                    }
                }
                history.set_length(10);
                reloads(&history);
            }
        }
        2 => {
            if let Ok(core) = unstable::parse::<HostConfig>(bytes) {
                reloads(&core);
            }
        }
        3 => {
            if let Ok(engine) = unstable::parse::<EngineConfig>(bytes) {
                reloads(&engine);
            }
        }
        4 => {
            let _ = import::ImportFormat::Deluge.parse(body);
        }
        _ => {
            let _ = import::ImportFormat::Transmission.parse(body);
        }
    }
}

/// Saved as [`store::Store::save`] would, `value` loads back equal.
fn reloads<T: torrent_stats::Persist + PartialEq + std::fmt::Debug>(value: &T) {
    let text = unstable::to_text(value).expect("a loaded value serializes");
    match unstable::parse::<T>(text.as_bytes()) {
        Ok(again) => assert_eq!(&again, value, "reloaded differs:\n{text}"),
        Err(e) => panic!("a saved value does not load: {e}\n{text}"),
    }
}

/// `POST /json` through the web router of a daemon on a sim source, logged in as ADMIN:
/// any method, any parameters.
pub struct JsonApi {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    cookie: String,
    _daemon: Daemon,
    _stop: tokio::sync::watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl JsonApi {
    /// The daemon and a logged-in session.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let (daemon, router, cookie) = runtime.block_on(async {
            let source = Arc::new(SimSource::new(1000, 4000, 3));
            let daemon = Daemon::builder(dir.path(), source).build().await.expect("daemon");
            let auth = Arc::new(AuthFile::open(dir.path()).expect("auth file"));
            let password = auth.password_of(LOCALCLIENT).expect("localclient");
            let state = WebState::new(daemon.core().clone(), daemon.stats(), auth, stopped);
            let router = unstable::router(state);
            let login = serde_json::json!({"method": "auth.login", "params": [LOCALCLIENT, password], "id": 1});
            let response = router
                .clone()
                .oneshot(post(login.to_string().into_bytes(), None))
                .await
                .expect("login");
            let cookie = response
                .headers()
                .get(header::SET_COOKIE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .expect("a session cookie")
                .to_string();
            (daemon, router, cookie)
        });
        JsonApi {
            runtime,
            router,
            cookie,
            _daemon: daemon,
            _stop: stop,
            _dir: dir,
        }
    }

    /// One request; the server must answer it (any status) without panicking.
    pub fn call(&self, body: &[u8]) {
        let request = post(body.to_vec(), Some(&self.cookie));
        let response = self
            .runtime
            .block_on(self.router.clone().oneshot(request))
            .expect("an answer");
        assert!(
            response.status().as_u16() < 500,
            "server error {}",
            response.status()
        );
    }
}

impl Default for JsonApi {
    fn default() -> Self {
        JsonApi::new()
    }
}

fn post(body: Vec<u8>, cookie: Option<&str>) -> Request<Body> {
    let mut request = Request::post("/json").header(header::CONTENT_TYPE, "application/json");
    if let Some(c) = cookie {
        request = request.header(header::COOKIE, c);
    }
    request.body(Body::from(body)).expect("request")
}
