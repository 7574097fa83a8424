//! A synthetic session with constant rates.

use async_trait::async_trait;
use tokio::time::Instant;

use crate::session::SourceError;
use crate::session::{SessionId, SessionSource, SessionStatus, StatusKey};
use crate::units::{parse_bytes, ParseBytesError};

/// Why [`SimSource::from_params`] rejected its parameters.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimParamError {
    /// A comma-separated part without `=`.
    #[error("{part:?} is not key=value")]
    NotKeyValue {
        /// The part as given.
        part: String,
    },
    /// `up=` or `down=` is not a byte rate.
    #[error("{key}: {error}")]
    Rate {
        /// `"up"` or `"down"`.
        key: &'static str,
        /// Why the rate was rejected (in this error's message, so not its source).
        error: ParseBytesError,
    },
    /// `peers=` is not a whole number.
    #[error("peers={value:?} is not a number")]
    Peers {
        /// The value as given.
        value: String,
    },
    /// A key other than `up`, `down` and `peers`.
    #[error("unknown parameter {name:?} (up, down, peers)")]
    UnknownParameter {
        /// The key as given.
        name: String,
    },
}

/// Deterministic synthetic traffic: counters grow at fixed rates from 0 at the moment the
/// source is created (the session start), measured on tokio's clock so paused-time tests
/// control it. Payload is 95 % of the total (5 % protocol overhead).
///
/// The session identity is `sim-<pid>-<unix nanoseconds at session start>`: fresh for each
/// process, so a restarted daemon is a new session whose counters start at 0.
#[derive(Debug, Clone)]
pub struct SimSource {
    up: u64,
    down: u64,
    peers: u64,
    started: Instant,
    session: SessionId,
}

impl SimSource {
    /// A session starting now with `up` and `down` bytes/s and `peers` connected peers.
    pub fn new(up: u64, down: u64, peers: u64) -> Self {
        SimSource {
            up,
            down,
            peers,
            started: Instant::now(),
            session: SessionId::fresh("sim"),
        }
    }

    /// Parses `up=RATE,down=RATE,peers=N` (each optional, default 0).
    pub fn from_params(params: &str) -> Result<Self, SimParamError> {
        let (mut up, mut down, mut peers) = (0, 0, 0);
        let rate =
            |key, value| parse_bytes(value).map_err(|error| SimParamError::Rate { key, error });
        for part in params.split(',').filter(|p| !p.trim().is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| SimParamError::NotKeyValue {
                    part: part.to_string(),
                })?;
            match key.trim() {
                "up" => up = rate("up", value)?,
                "down" => down = rate("down", value)?,
                "peers" => {
                    peers = value.trim().parse().map_err(|_| SimParamError::Peers {
                        value: value.to_string(),
                    })?
                }
                other => {
                    return Err(SimParamError::UnknownParameter {
                        name: other.to_string(),
                    })
                }
            }
        }
        Ok(SimSource::new(up, down, peers))
    }

    /// The session identity of this source.
    pub fn session(&self) -> &SessionId {
        &self.session
    }

    fn value(&self, key: StatusKey, elapsed_ns: u128) -> u64 {
        let bytes = |rate: u64| (u128::from(rate) * elapsed_ns / 1_000_000_000) as u64;
        let payload = |v: u64| v / 20 * 19 + v % 20 * 19 / 20;
        match key {
            StatusKey::TotalUpload => bytes(self.up),
            StatusKey::TotalDownload => bytes(self.down),
            StatusKey::TotalPayloadUpload => payload(bytes(self.up)),
            StatusKey::TotalPayloadDownload => payload(bytes(self.down)),
            StatusKey::UploadRate => self.up,
            StatusKey::DownloadRate => self.down,
            StatusKey::PayloadUploadRate => payload(self.up),
            StatusKey::PayloadDownloadRate => payload(self.down),
            StatusKey::NumPeers | StatusKey::NumConnections => self.peers,
            StatusKey::DhtNodes => 300,
            StatusKey::DhtCacheNodes => 120,
            StatusKey::DhtTorrents => 4,
        }
    }
}

#[async_trait]
impl SessionSource for SimSource {
    async fn session_status(&self, keys: &[StatusKey]) -> Result<SessionStatus, SourceError> {
        let elapsed = self.started.elapsed().as_nanos();
        let mut status = SessionStatus::new(self.session.clone());
        for &key in keys {
            status.values.insert(key, self.value(key, elapsed));
        }
        Ok(status)
    }

    fn kind(&self) -> &'static str {
        "sim"
    }

    fn describe(&self) -> String {
        format!(
            "sim:up={}B/s,down={}B/s,peers={}",
            self.up, self.down, self.peers
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn counters_follow_the_clock() {
        let sim = SimSource::from_params("up=1000,down=4k,peers=3").unwrap();
        tokio::time::advance(Duration::from_secs(10)).await;
        let s = sim.session_status(&StatusKey::ALL).await.unwrap();
        assert_eq!(s.get(StatusKey::TotalUpload), Some(10_000));
        assert_eq!(s.get(StatusKey::TotalDownload), Some(40_000));
        assert_eq!(s.get(StatusKey::TotalPayloadUpload), Some(9_500));
        assert_eq!(s.get(StatusKey::NumPeers), Some(3));
        assert!(matches!(
            SimSource::from_params("sideways=1"),
            Err(SimParamError::UnknownParameter { name }) if name == "sideways"
        ));
        let e = SimSource::from_params("up=1,down=fast").unwrap_err();
        assert!(matches!(e, SimParamError::Rate { key: "down", .. }), "{e}");
        assert_eq!(
            e.to_string(),
            r#"down: "fast" does not start with a number"#
        );
        assert!(matches!(
            SimSource::from_params("peers=x"),
            Err(SimParamError::Peers { .. })
        ));
        assert!(matches!(
            SimSource::from_params("up"),
            Err(SimParamError::NotKeyValue { .. })
        ));
    }

    #[test]
    fn each_source_is_a_new_session() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let _guard = rt.enter();
        assert_ne!(
            SimSource::new(1, 1, 0).session(),
            SimSource::new(1, 1, 0).session()
        );
    }
}
