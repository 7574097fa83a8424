//! The HTTP server (feature `web`): the page, a Deluge-Web-style JSON API, Prometheus
//! metrics and server-sent events, on axum, over the same core service and auth file as
//! Deluge RPC.
//!
//! | route | what | auth |
//! |---|---|---|
//! | `GET /` | the page (`assets/index.html`) | none (it logs in through `/json`) |
//! | `GET /assets/<file>` | the page's scripts, styles and uPlot, built into the binary | none |
//! | `POST /json` | `{"method", "params", "id"}` → `{"result", "error", "id"}` ([`json`]): the daemon's methods and deluge-web's `auth.*` and `web.*` | session cookie from `auth.login`; same origin |
//! | `POST /upload` | deluge-web's torrent upload: multipart `file` fields → `{"success", "files"}` ([`upload`]) | same origin (files usable only by a logged-in `web.add_torrents`) |
//! | `GET /events` | server-sent events: the Stats snapshot at connect and after every poll | session cookie |
//! | `GET /metrics` | Prometheus text (OpenMetrics) ([`metrics`]) | none (as exporters are; loopback by default) |
//!
//! Every response carries a strict Content-Security-Policy (nothing inline, nothing from
//! elsewhere), `X-Content-Type-Options: nosniff` and `X-Frame-Options: DENY`.
//! [`run`] takes its shutdown future, as the RPC server's `run` does; event streams end
//! with it. `run_https` (with feature `rpc`) serves the same over TLS ([`tls`]), as `web.toml`
//! ([`WebConfig`]) or the daemon's `--web-https` asks; the login cookie is then `Secure`.

mod assets;
mod call;
mod config;
mod deluge_web;
mod events;
mod file_tree;
pub mod json;
mod login;
pub mod metrics;
mod session_methods;
pub mod upload;

use session_methods::WEB_LOGIN_USER;
#[cfg(feature = "ledger")]
pub mod quota_metrics;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::AuthFile;
use crate::service::Core;
use crate::stats::StatsHandle;
use crate::throttle::{LoginThrottle, Tally};
use crate::torrent::MAX_TORRENT_FILE;

pub use config::{WebConfig, WebConfigError, WEB_CONFIG_FILE};
pub use tls::WebTlsError;

/// Largest `/json` body: a torrent file in base64 with room for the envelope.
const MAX_BODY: usize = MAX_TORRENT_FILE / 3 * 4 + (64 << 10);

/// Deluge-Web's port.
pub const DEFAULT_PORT: u16 = 8112;

const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
                   script-src 'self'; connect-src 'self'; frame-ancestors 'none'; \
                   base-uri 'none'; form-action 'self'";

/// What the web handlers share.
#[derive(Clone)]
pub struct WebState {
    core: Core,
    stats: StatsHandle,
    auth: Arc<AuthFile>,
    logins: Arc<login::Logins>,
    metrics: Arc<metrics::Metrics>,
    stopped: watch::Receiver<bool>,
    /// Shared with the RPC server on the same auth file.
    throttle: Arc<LoginThrottle>,
    failed_logins: Arc<Tally>,
    /// Served over HTTPS: cookies are `Secure`.
    secure_cookies: bool,
    /// Files uploaded to `/upload`, for `web.add_torrents`.
    uploads: Arc<upload::Uploads>,
    /// The Deluge RPC address, for `web.get_hosts`.
    rpc_addr: Option<SocketAddr>,
    /// This server's address (set by [`run`]), for `web.get_config`.
    local_addr: Option<SocketAddr>,
}

impl std::fmt::Debug for WebState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebState")
            .field("auth", &self.auth.path())
            .finish_non_exhaustive()
    }
}

impl WebState {
    /// State over `core` and its Stats plugin's handle, logging users in against `auth`.
    /// Event streams end when `stopped` turns true.
    pub fn new(
        core: Core,
        stats: StatsHandle,
        auth: Arc<AuthFile>,
        stopped: watch::Receiver<bool>,
    ) -> Self {
        WebState {
            throttle: LoginThrottle::for_accounts(auth.path()),
            failed_logins: Arc::new(Tally::new(std::time::Duration::from_secs(10))),
            metrics: Arc::new(metrics::Metrics::new(stats.clone())),
            core,
            stats,
            auth,
            logins: Arc::new(login::Logins::default()),
            stopped,
            secure_cookies: false,
            uploads: Arc::new(upload::Uploads::default()),
            rpc_addr: None,
            local_addr: None,
        }
    }

    /// Marks the cookies it sets `Secure` (browsers send them over HTTPS only): for a
    /// router served over HTTPS (`run_https` does it).
    #[cfg_attr(not(feature = "rpc"), allow(dead_code))]
    pub fn secure_cookies(mut self, on: bool) -> Self {
        self.secure_cookies = on;
        self
    }

    /// Names the daemon's Deluge RPC address (`web.get_hosts` lists it).
    pub fn with_rpc_addr(mut self, addr: Option<SocketAddr>) -> Self {
        self.rpc_addr = addr;
        self
    }
}

/// "log in as localclient, password in `<auth file>`": what the daemon's start message and
/// the login page say.
pub fn login_hint(auth_file: &std::path::Path) -> String {
    format!(
        "log in as {WEB_LOGIN_USER}, password in {}",
        auth_file.display()
    )
}

/// The routes, with the security headers on every response.
pub fn router(state: WebState) -> Router {
    let secure_cookies = state.secure_cookies;
    let router = Router::new()
        .route("/", get(assets::index))
        .route("/assets/{*path}", get(assets::file))
        .route("/json", post(json::handle))
        .route("/upload", post(upload::handle))
        .route("/events", get(events::handle))
        .route("/metrics", get(metrics::handle))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response(security_headers));
    match secure_cookies {
        true => router.layer(axum::middleware::map_response(login::secure_cookies)),
        false => router,
    }
    .with_state(state)
}

async fn security_headers(mut response: axum::response::Response) -> axum::response::Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// Serves `state` on `listener` until `shutdown` completes (open event streams end then,
/// as they watch the state's stop signal, which the caller turns on with it).
pub async fn run(
    listener: TcpListener,
    state: WebState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut state = state;
    state.local_addr = listener.local_addr().ok();
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Serves `state` over HTTPS with `tls` (from the key pair of [`WebConfig`]) on
/// `listener`, as [`run`] serves plain HTTP: the same router, its cookies `Secure`, each
/// request with its peer address (the login throttle's), handshakes bounded as [`tls`]
/// says.
#[cfg(feature = "rpc")]
#[cfg_attr(docsrs, doc(cfg(all(feature = "web", feature = "rpc"))))]
pub async fn run_https(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: WebState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // `tap_io` (doing nothing) gives the listener axum's `ConnectInfo<SocketAddr>`, which
    // it implements for a tapped listener of any kind.
    let listener = tls::TlsListener::new(listener, tls)?.tap_io(|_| {});
    axum::serve(
        listener,
        router(state.secure_cookies(true)).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
