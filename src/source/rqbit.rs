//! The embedded BitTorrent engine: a librqbit session as a session source (feature `rqbit`).
//!
//! librqbit counts **payload only** (`fetched_bytes`, `uploaded_bytes`): the engine reports
//! `total_payload_upload` and `total_payload_download`, and leaves `total_upload` /
//! `total_download` (wire bytes including protocol overhead) out rather than inventing
//! them; `stats.get_status` lists what is measured. Rates are derived by Stats from the
//! counter deltas (librqbit's own speeds are smoothed averages). Every start of the engine
//! is a new session identity: its counters begin at 0.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use librqbit::{ListenerMode, ListenerOptions, Session, SessionOptions, SessionPersistenceConfig};

use crate::error::SourceError;

use crate::session::{SessionId, SessionSource, SessionStatus, StatusKey};
/// The librqbit this engine is built on, for adding and managing torrents.
pub use librqbit;

/// How to start the engine.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EngineOptions {
    /// Where torrents' data goes.
    pub download_dir: PathBuf,
    /// Where the engine keeps its torrent list and fast-resume data (`None`: nothing is
    /// kept, torrents are gone after a restart).
    pub state_dir: Option<PathBuf>,
    /// Address and port for incoming peer connections (`None`: no listening).
    pub listen: Option<SocketAddr>,
    /// The DHT (trackerless peer discovery).
    pub dht: bool,
    /// Trackers.
    pub trackers: bool,
    /// Local service discovery (multicast on the LAN).
    pub lsd: bool,
    /// UPnP port forwarding of the listening port.
    pub upnp: bool,
}

impl EngineOptions {
    /// Defaults for a daemon: listen on all addresses at 6881 (Deluge's default), DHT,
    /// trackers and LSD on, UPnP off; the torrent list kept in `state_dir`.
    pub fn new(download_dir: impl Into<PathBuf>, state_dir: Option<PathBuf>) -> Self {
        EngineOptions {
            download_dir: download_dir.into(),
            state_dir,
            listen: Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 6881)),
            dht: true,
            trackers: true,
            lsd: true,
            upnp: false,
        }
    }

    /// For tests and demos on one machine: listen on 127.0.0.1 (any free port), no DHT,
    /// trackers, LSD or UPnP, nothing persisted.
    pub fn loopback(download_dir: impl Into<PathBuf>) -> Self {
        EngineOptions {
            download_dir: download_dir.into(),
            state_dir: None,
            listen: Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)),
            dht: false,
            trackers: false,
            lsd: false,
            upnp: false,
        }
    }
}

/// The engine could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A directory could not be created.
    #[error("creating {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// librqbit refused to start (its message).
    #[error("the BitTorrent engine did not start: {0}")]
    Start(String),
}

/// A running librqbit session and its identity.
pub struct RqbitEngine {
    session: Arc<Session>,
    id: SessionId,
    describe: String,
}

impl std::fmt::Debug for RqbitEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RqbitEngine")
            .field("session", &self.id)
            .field("listen", &self.listen_addr())
            .finish_non_exhaustive()
    }
}

impl RqbitEngine {
    /// Starts a librqbit session (restoring the persisted torrent list, if any).
    pub async fn start(opts: EngineOptions) -> Result<Self, EngineError> {
        let mut dirs = vec![opts.download_dir.clone()];
        dirs.extend(opts.state_dir.clone());
        for dir in dirs {
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(|source| EngineError::Dir { path: dir, source })?;
        }
        let session_opts = SessionOptions {
            dht: if opts.dht {
                Some(Default::default())
            } else {
                None
            },
            disable_trackers: !opts.trackers,
            disable_local_service_discovery: !opts.lsd,
            fastresume: opts.state_dir.is_some(),
            persistence: opts
                .state_dir
                .clone()
                .map(|folder| SessionPersistenceConfig::Json {
                    folder: Some(folder),
                }),
            listen: opts.listen.map(|addr| ListenerOptions {
                mode: ListenerMode::TcpOnly,
                listen_addr: addr,
                enable_upnp_port_forwarding: opts.upnp,
                ipv4_only: addr.is_ipv4(),
                ..Default::default()
            }),
            ipv4_only: opts.listen.is_some_and(|a| a.is_ipv4()),
            ..Default::default()
        };
        let session = Session::new_with_opts(opts.download_dir.clone(), session_opts)
            .await
            .map_err(|e| EngineError::Start(format!("{e:#}")))?;
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let id = SessionId::new(format!("rqbit-{}-{started}", std::process::id()));
        let listen = session.listen_addr().map_or_else(
            || "not listening".to_string(),
            |a| format!("port {}", a.port()),
        );
        let describe = format!("rqbit ({listen}, data in {})", opts.download_dir.display());
        tracing::info!(session = %id, %describe, "BitTorrent engine started");
        Ok(RqbitEngine {
            session,
            id,
            describe,
        })
    }

    /// The librqbit session (add, pause, remove torrents; its own statistics).
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// The address peers connect to, if the engine listens.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.session.listen_addr()
    }

    /// The payload bytes the engine counted this session: (uploaded, downloaded).
    pub fn payload_counters(&self) -> (u64, u64) {
        let c = self.session.stats_snapshot().counters;
        (c.uploaded_bytes, c.fetched_bytes)
    }

    /// Stops the session and every torrent task (the torrent list stays persisted).
    pub async fn stop(&self) {
        self.session.stop().await;
    }
}

#[async_trait]
impl SessionSource for RqbitEngine {
    async fn session_status(&self, keys: &[StatusKey]) -> Result<SessionStatus, SourceError> {
        let snap = self.session.stats_snapshot();
        let mut status = SessionStatus::new(self.id.clone());
        for &key in keys {
            let value = match key {
                StatusKey::TotalPayloadUpload => snap.counters.uploaded_bytes,
                StatusKey::TotalPayloadDownload => snap.counters.fetched_bytes,
                StatusKey::NumPeers | StatusKey::NumConnections => u64::from(snap.peers.live),
                // Wire totals, rates (derived by Stats from the counters) and DHT figures
                // are not measured by librqbit: left out, never invented.
                _ => continue,
            };
            status.values.insert(key, value);
        }
        Ok(status)
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}
