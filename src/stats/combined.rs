//! The combined session of a daemon's sources as one [`SessionSource`]: what Deluge's
//! `core.get_session_status` answers on a daemon without an embedded engine, so Deluge's
//! clients (the console's `status`, the GTK status bar) show the sum of every active
//! source's current session: counters, rates, peers, connections and DHT nodes as each
//! source's last poll gave them.

use async_trait::async_trait;

use crate::session::{SessionId, SessionSource, SessionStatus, SourceError, StatusKey};
use crate::stats::StatsHandle;

/// The sum of the active sources' sessions, read from the Stats plugin's latest snapshot
/// (no source is polled for it).
#[derive(Debug, Clone)]
pub struct CombinedSession {
    stats: StatsHandle,
}

impl CombinedSession {
    /// The combined session of `stats`' sources.
    pub fn new(stats: StatsHandle) -> Self {
        CombinedSession { stats }
    }
}

#[async_trait]
impl SessionSource for CombinedSession {
    async fn session_status(&self, keys: &[StatusKey]) -> Result<SessionStatus, SourceError> {
        let s = self.stats.watch().borrow().clone();
        if !s.running {
            return Err(SourceError::Unavailable(
                "the Stats plugin, which counts the sources, is not running".into(),
            ));
        }
        let measured = |key: StatusKey| {
            s.sources
                .iter()
                .any(|src| !src.retired && src.health.measured.iter().any(|m| m == key.as_str()))
        };
        let t = s.session_totals;
        let r = s.rates;
        let mut status = SessionStatus::new(SessionId::new("combined"));
        for &key in keys {
            let value = match key {
                StatusKey::TotalUpload => t.total_upload,
                StatusKey::TotalDownload => t.total_download,
                StatusKey::TotalPayloadUpload => t.total_payload_upload,
                StatusKey::TotalPayloadDownload => t.total_payload_download,
                StatusKey::UploadRate => r.upload_rate,
                StatusKey::DownloadRate => r.download_rate,
                StatusKey::PayloadUploadRate => r.payload_upload_rate,
                StatusKey::PayloadDownloadRate => r.payload_download_rate,
                StatusKey::NumPeers => r.num_peers,
                StatusKey::NumConnections => r.num_connections,
                StatusKey::DhtNodes => r.dht_nodes,
                _ => continue,
            };
            // A counter no source measures is left out, as a single source leaves it.
            if StatusKey::COUNTERS.contains(&key) && !measured(key) {
                continue;
            }
            status.values.insert(key, value);
        }
        Ok(status)
    }

    fn describe(&self) -> String {
        "the combined session of the daemon's sources".into()
    }

    fn kind(&self) -> &'static str {
        "combined"
    }
}
