//! The core's session status: typed keys, samples and the [`SessionSource`] trait.
//!
//! A source is whatever knows the torrent session's counters: the synthetic
//! [`SimSource`](crate::source::SimSource), an embedded engine, a remote Deluge daemon or an
//! embedding application. Keys use Deluge's names so RPC clients see familiar data.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// A session source could not produce a status sample.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SourceError {
    /// The source is reachable but answered with an error.
    #[error("session source failed: {0}")]
    Failed(String),
    /// The source could not be reached (connection refused, daemon down, ...).
    #[error("session source unavailable: {0}")]
    Unavailable(String),
    /// The source did not answer within the poll interval.
    #[error("session source timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The source answered without a counter that is required.
    #[error("session source did not report {0}")]
    Missing(StatusKey),
}

/// One session-status key, named as Deluge's `core.get_session_status` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum StatusKey {
    /// All bytes sent, protocol overhead included (libtorrent `net.sent_bytes`).
    TotalUpload,
    /// All bytes received, protocol overhead included (`net.recv_bytes`).
    TotalDownload,
    /// Payload bytes sent (`net.sent_payload_bytes`).
    TotalPayloadUpload,
    /// Payload bytes received (`net.recv_payload_bytes`).
    TotalPayloadDownload,
    /// Current upload rate, bytes/s.
    UploadRate,
    /// Current download rate, bytes/s.
    DownloadRate,
    /// Current payload upload rate, bytes/s.
    PayloadUploadRate,
    /// Current payload download rate, bytes/s.
    PayloadDownloadRate,
    /// Connected peers.
    NumPeers,
    /// Open connections.
    NumConnections,
    /// DHT routing-table nodes.
    DhtNodes,
    /// DHT node cache size.
    DhtCacheNodes,
    /// Torrents tracked by the DHT.
    DhtTorrents,
}

impl StatusKey {
    /// Every key, in Deluge's order.
    pub const ALL: [StatusKey; 13] = [
        StatusKey::TotalUpload,
        StatusKey::TotalDownload,
        StatusKey::TotalPayloadUpload,
        StatusKey::TotalPayloadDownload,
        StatusKey::UploadRate,
        StatusKey::DownloadRate,
        StatusKey::PayloadUploadRate,
        StatusKey::PayloadDownloadRate,
        StatusKey::NumPeers,
        StatusKey::NumConnections,
        StatusKey::DhtNodes,
        StatusKey::DhtCacheNodes,
        StatusKey::DhtTorrents,
    ];

    /// The four cumulative byte counters the Stats plugin accumulates.
    pub const COUNTERS: [StatusKey; 4] = [
        StatusKey::TotalUpload,
        StatusKey::TotalDownload,
        StatusKey::TotalPayloadUpload,
        StatusKey::TotalPayloadDownload,
    ];

    /// Deluge's name for the key.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusKey::TotalUpload => "total_upload",
            StatusKey::TotalDownload => "total_download",
            StatusKey::TotalPayloadUpload => "total_payload_upload",
            StatusKey::TotalPayloadDownload => "total_payload_download",
            StatusKey::UploadRate => "upload_rate",
            StatusKey::DownloadRate => "download_rate",
            StatusKey::PayloadUploadRate => "payload_upload_rate",
            StatusKey::PayloadDownloadRate => "payload_download_rate",
            StatusKey::NumPeers => "num_peers",
            StatusKey::NumConnections => "num_connections",
            StatusKey::DhtNodes => "dht_nodes",
            StatusKey::DhtCacheNodes => "dht_cache_nodes",
            StatusKey::DhtTorrents => "dht_torrents",
        }
    }
}

impl fmt::Display for StatusKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name is not a known session-status key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown session status key {0:?}")]
pub struct UnknownKey(pub String);

impl FromStr for StatusKey {
    type Err = UnknownKey;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StatusKey::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKey(s.to_string()))
    }
}

/// Identity of one torrent session: changes whenever the session (and so its counters)
/// restarts, and stays the same while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct SessionId(pub String);

impl SessionId {
    /// Wraps a string identity.
    pub fn new(id: impl Into<String>) -> Self {
        SessionId(id.into())
    }

    /// A new identity for a session of this process starting now:
    /// `<kind>-<pid>-<unix nanoseconds>`, so a restarted process is a new session.
    pub fn fresh(kind: &str) -> Self {
        SessionId(format!(
            "{kind}-{}-{}",
            std::process::id(),
            crate::clock::unix_nanos()
        ))
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One answer of a source: the session's identity and the values of the requested keys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionStatus {
    /// The session these values belong to.
    pub session: SessionId,
    /// Values by key; a key the source does not know is absent.
    pub values: BTreeMap<StatusKey, u64>,
    /// How long the session has been running, in seconds, when the source knows it (a
    /// remote daemon's uptime). Stats counts a new session when it goes down, or when it
    /// is too short for the time since the last sample: a restart the identity cannot
    /// show (see `docs/counting.md`).
    pub uptime: Option<u64>,
}

impl SessionStatus {
    /// A status for `session` with no values yet.
    pub fn new(session: SessionId) -> Self {
        SessionStatus {
            session,
            values: BTreeMap::new(),
            uptime: None,
        }
    }

    /// The value of `key`, if the source supplied it.
    pub fn get(&self, key: StatusKey) -> Option<u64> {
        self.values.get(&key).copied()
    }

    /// Sets `key` (builder style).
    pub fn with(mut self, key: StatusKey, value: u64) -> Self {
        self.values.insert(key, value);
        self
    }

    /// Sets the session's uptime in seconds (builder style).
    pub fn with_uptime(mut self, seconds: u64) -> Self {
        self.uptime = Some(seconds);
        self
    }
}

/// Where session status comes from.
///
/// Implement this to feed the Stats plugin from your own torrent engine. Errors are values:
/// a failed poll is logged and retried on the next tick.
///
/// ```
/// use torrent_stats::{SessionId, SessionSource, SessionStatus, SourceError, StatusKey};
///
/// struct Fixed;
///
/// #[torrent_stats::async_trait]
/// impl SessionSource for Fixed {
///     async fn session_status(&self, keys: &[StatusKey]) -> Result<SessionStatus, SourceError> {
///         let mut status = SessionStatus::new(SessionId::new("fixed"));
///         for &k in keys {
///             status.values.insert(k, 42);
///         }
///         Ok(status)
///     }
/// }
/// ```
#[async_trait]
pub trait SessionSource: Send + Sync + 'static {
    /// Returns the current values of `keys` (unknown keys may be left out) and the session
    /// identity they belong to.
    async fn session_status(&self, keys: &[StatusKey]) -> Result<SessionStatus, SourceError>;

    /// A short description for logs (`"sim"`, `"deluge://host:port"`, ...).
    fn describe(&self) -> String {
        "custom".to_string()
    }

    /// The kind of source (`sim`, `deluge`, `engine`, …): the name of a source not
    /// given one.
    fn kind(&self) -> &'static str {
        "custom"
    }
}
