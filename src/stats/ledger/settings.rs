//! The ledger's settings, `ledger.toml` in the config directory (hand-editable; read when
//! the Stats plugin is enabled).

use serde::{Deserialize, Serialize};

use super::calendar::{self, CalendarError};
use super::db::Retention;
use crate::store::Persist;

/// The settings file's name.
pub const SETTINGS_FILE: &str = "ledger.toml";

/// `ledger.toml`: the time zone of the buckets and how long the finer ones are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LedgerSettings {
    /// The IANA time zone of days, months and years (`Europe/Berlin`); empty: the
    /// system's. A change applies to bytes counted after it.
    pub time_zone: String,
    /// Hours of 5-minute buckets kept (1..=8784, default 48).
    pub keep_5min_hours: u32,
    /// Days of hourly buckets kept (1..=36600, default 400).
    pub keep_hourly_days: u32,
}

impl Default for LedgerSettings {
    fn default() -> Self {
        let r = Retention::default();
        LedgerSettings {
            time_zone: String::new(),
            keep_5min_hours: r.five_min_hours,
            keep_hourly_days: r.hour_days,
        }
    }
}

impl LedgerSettings {
    /// The retention they set.
    pub fn retention(&self) -> Retention {
        Retention {
            five_min_hours: self.keep_5min_hours,
            hour_days: self.keep_hourly_days,
        }
    }

    /// The time zone they set (the system's if none).
    pub fn zone(&self) -> Result<jiff::tz::TimeZone, CalendarError> {
        calendar::time_zone(&self.time_zone)
    }
}

impl Persist for LedgerSettings {
    const SEALED: bool = false;

    fn validate(&self) -> Result<(), String> {
        if !(1..=8784).contains(&self.keep_5min_hours) {
            return Err(format!(
                "keep_5min_hours = {} is out of range 1..=8784",
                self.keep_5min_hours
            ));
        }
        if !(1..=36600).contains(&self.keep_hourly_days) {
            return Err(format!(
                "keep_hourly_days = {} is out of range 1..=36600",
                self.keep_hourly_days
            ));
        }
        self.zone().map(drop).map_err(|e| format!("time_zone: {e}"))
    }
}

/// What a missing `ledger.toml` is written as: the defaults, explained.
const TEMPLATE: &str = "# The calendar ledger's settings (read when torrent-stats starts).
# The IANA time zone of its days, months and years, e.g. \"Europe/Berlin\"; empty: the
# system's. A change applies to the bytes counted after it.
time_zone = \"\"
# How long 5-minute buckets are kept, in hours (days, months and years are kept forever).
keep_5min_hours = 48
# How long hourly buckets are kept, in days.
keep_hourly_days = 400
";

impl LedgerSettings {
    /// Reads `ledger.toml` in `dir`, refused with where and why; a missing file is written
    /// with the defaults, explained, so that users can see and edit them.
    pub fn read(dir: &std::path::Path) -> Result<LedgerSettings, String> {
        let path = dir.join(SETTINGS_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let tmp = dir.join(format!(".{SETTINGS_FILE}.tmp"));
                let written =
                    std::fs::write(&tmp, TEMPLATE).and_then(|()| std::fs::rename(&tmp, &path));
                if let Err(e) = written {
                    tracing::warn!(file = %path.display(), error = %e, "could not write the default ledger settings");
                }
                return Ok(LedgerSettings::default());
            }
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let settings: LedgerSettings =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        settings
            .validate()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(settings)
    }
}
