//! The fuzz targets' bodies, shared by the cargo-fuzz crate (`fuzz/fuzz_targets/`, run on
//! nightly) and the corpus replay every CI run makes on stable (`tests/fuzz_corpus.rs`).
//! A body panics only on a real defect: a decoder's error is an answer, not a failure.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request};
use torrent_stats::auth::{AuthFile, LOCALCLIENT};
use torrent_stats::daemon::Daemon;
use torrent_stats::rpc::{codec, frame};
use torrent_stats::source::SimSource;
use torrent_stats::web::{self, WebState};
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
        let _ = torrent_stats::stats::config::parse_file(text, Path::new("stats.conf"));
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
            let router = web::router(state);
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
