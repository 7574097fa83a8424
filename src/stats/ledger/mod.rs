//! The calendar ledger (feature `ledger`): each source's bytes in 5-minute, hourly, daily,
//! monthly and yearly buckets of local time, in one SQLite file of the config directory,
//! and the data-cap quotas read from it.
//!
//! - [`calendar`]: the buckets of an instant in a time zone (pure, jiff).
//! - [`quota`]: quotas, their periods, use, projection and thresholds (pure).

pub mod calendar;
pub mod quota;
