//! Data-cap quotas: a limit on a source's (or the combined) bytes per day, week, month
//! (from a reset day) or rolling N days, in the configured time zone. Pure: the caller
//! sums the ledger over the instants these functions name.
//!
//! - `error`: [`QuotaError`], naming the quota and the field.
//! - `form`: the flat form of a quota in `quotas.toml` (`[[quota]]` tables) and in JSON.
//! - `period`: [`QuotaPeriod`] and its bounds in a time zone.
//! - `eval`: [`evaluate`] a quota's use into a [`QuotaStatus`] (left, percent, projection).
//! - `threshold`: [`crossed`], the thresholds newly reached in a period.

use serde::{Deserialize, Serialize};

use crate::stats::totals::{Counters, MAX_TOTAL};
use crate::store::Persist;
use crate::SourceName;

mod error;
mod eval;
mod form;
mod period;
mod threshold;

pub use error::QuotaError;
pub use eval::{evaluate, QuotaStatus, Usage};
pub use period::QuotaPeriod;
pub use threshold::{crossed, ThresholdState};

/// The file of [`QuotasFile`] in the config directory.
pub const QUOTAS_FILE: &str = "quotas.toml";

/// The thresholds of a quota that names none, in percent.
pub const DEFAULT_THRESHOLDS: [u16; 2] = [80, 100];

/// Which way the bytes a quota counts flow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Bytes received.
    Download,
    /// Bytes sent.
    Upload,
    /// Both, added.
    #[default]
    Both,
}

/// Which counters a quota counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Measure {
    /// All bytes on the wire (`total_upload`, `total_download`): what a provider bills.
    #[default]
    Wire,
    /// Payload bytes only (`total_payload_upload`, `total_payload_download`).
    Payload,
}

/// What the embedded engine does when a quota is reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QuotaAction {
    /// Nothing beyond the thresholds' notices.
    #[default]
    None,
    /// Pause every torrent.
    Pause,
    /// Set the engine's rate limits, bytes/s (absent: left as they are).
    Limit {
        /// The upload limit.
        upload: Option<u64>,
        /// The download limit.
        download: Option<u64>,
    },
}

/// One data-cap quota.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "form::QuotaForm", into = "form::QuotaForm")]
pub struct Quota {
    /// Its unique name, 1..=64 characters, no control characters.
    pub name: String,
    /// The source it counts; `None`: the combined figure of every source.
    pub source: Option<SourceName>,
    /// Which way the counted bytes flow.
    pub direction: Direction,
    /// Wire or payload bytes.
    pub measure: Measure,
    /// The stretch of local time the limit applies to.
    pub period: QuotaPeriod,
    /// The limit, bytes per period (1..=`MAX_TOTAL`).
    pub limit: u64,
    /// Percents of the limit (1..=1000, strictly increasing) that fire once per period.
    pub thresholds: Vec<u16>,
    /// A program run at each threshold crossing.
    pub command: Option<String>,
    /// What the embedded engine does when the limit is reached.
    pub action: QuotaAction,
}

impl Quota {
    /// The bytes this quota counts among `c`, saturating.
    pub fn counted(&self, c: &Counters) -> u64 {
        let (up, down) = match self.measure {
            Measure::Wire => (c.total_upload, c.total_download),
            Measure::Payload => (c.total_payload_upload, c.total_payload_download),
        };
        match self.direction {
            Direction::Download => down,
            Direction::Upload => up,
            Direction::Both => up.saturating_add(down),
        }
    }

    /// Checks every field: the name, the ranges, the thresholds' order, the command and
    /// the action's limits.
    pub fn validate(&self) -> Result<(), QuotaError> {
        let quota = || self.name.clone();
        let chars = self.name.chars().count();
        if !(1..=64).contains(&chars) || self.name.chars().any(char::is_control) {
            return Err(QuotaError::Name {
                quota: quota(),
                chars,
            });
        }
        let range = |field, value: u64, lo: u64, hi: u64, text| {
            if (lo..=hi).contains(&value) {
                Ok(())
            } else {
                Err(QuotaError::OutOfRange {
                    quota: quota(),
                    field,
                    value,
                    range: text,
                })
            }
        };
        match self.period {
            QuotaPeriod::Month { reset_day } => {
                range("reset_day", reset_day.into(), 1, 31, "1..=31")?
            }
            QuotaPeriod::Rolling { days } => range("days", days.into(), 1, 400, "1..=400")?,
            QuotaPeriod::Day | QuotaPeriod::Week => {}
        }
        const BYTES: &str = "1..=9223372036854775807 (1 byte to 8 EiB)";
        range("limit", self.limit, 1, MAX_TOTAL, BYTES)?;
        for &t in &self.thresholds {
            range("thresholds", t.into(), 1, 1000, "1..=1000 (percent)")?;
        }
        if let Some(w) = self.thresholds.windows(2).find(|w| w[0] >= w[1]) {
            return Err(QuotaError::Thresholds {
                quota: quota(),
                previous: w[0],
                next: w[1],
            });
        }
        if let Some(command) = &self.command {
            if command.trim().is_empty() || command.chars().any(char::is_control) {
                return Err(QuotaError::Command { quota: quota() });
            }
        }
        if let QuotaAction::Limit { upload, download } = self.action {
            if upload.is_none() && download.is_none() {
                return Err(QuotaError::Missing {
                    quota: quota(),
                    choice: "action = \"limit\"",
                    field: "upload_limit or download_limit (bytes/s)",
                });
            }
            const RATE: &str = "1..=9223372036854775807 (bytes/s)";
            for (field, value) in [("upload_limit", upload), ("download_limit", download)] {
                if let Some(v) = value {
                    range(field, v, 1, MAX_TOTAL, RATE)?;
                }
            }
        }
        Ok(())
    }
}

/// The content of `quotas.toml`: `[[quota]]` tables, hand-editable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotasFile {
    /// The quotas, in the file's order.
    pub quota: Vec<Quota>,
}

impl QuotasFile {
    /// Checks every quota, then that no two share a name.
    pub fn check(&self) -> Result<(), QuotaError> {
        for (i, q) in self.quota.iter().enumerate() {
            q.validate()?;
            if self.quota[..i].iter().any(|p| p.name == q.name) {
                return Err(QuotaError::Duplicate {
                    quota: q.name.clone(),
                });
            }
        }
        Ok(())
    }
}

impl Persist for QuotasFile {
    const SEALED: bool = false;

    fn validate(&self) -> Result<(), String> {
        self.check().map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests;
