//! The calendar ledger (feature `ledger`): each source's bytes in 5-minute, hourly, daily,
//! monthly and yearly buckets of local time, in one SQLite file of the config directory
//! (`ledger.sqlite3`), and the data-cap quotas read from it.
//!
//! - [`calendar`]: the buckets of an instant in a time zone (pure, jiff).
//! - `db.rs`: the file: schema, one transaction per save, reads, purge, retention, backup.
//! - `source.rs`: one source's bytes since the last save, and the reconciliation with the
//!   totals file at start.
//! - `settings.rs`: `ledger.toml`, the time zone and the retention.
//! - [`backup`]: a consistent copy of the config directory, the ledger by SQLite's backup
//!   API.
//! - [`quota`]: quotas, their periods, use, projection and thresholds (pure).
//!
//! The schema is documented for `sqlite3` and Grafana users in `docs/ledger.md`.

pub mod backup;
pub mod calendar;
mod db;
pub mod quota;
mod settings;
mod source;

pub use calendar::{Bucket, CalendarError, Period};
pub use db::{
    Accounting, Adjustment, Amount, Batch, CalendarRow, Ledger, LedgerError, Retention,
    SourceState, COMBINED, FILE, SCHEMA_VERSION,
};
pub use settings::{LedgerSettings, SETTINGS_FILE};
pub use source::{import_adjustment, reset_adjustment, SourceLedger};
