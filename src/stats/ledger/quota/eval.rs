//! A quota's state now: its use, what is left, the rate of the last 24 hours (or of the
//! period so far, if shorter), the projection to the period's end and when the limit will
//! be reached at that rate.

use jiff::{SignedDuration, Timestamp, ZonedDateTime};
use serde::Serialize;

use super::{Direction, Measure, Quota};
use crate::stats::totals::Counters;

/// The longest window the rate is measured over.
const RATE_WINDOW: SignedDuration = SignedDuration::from_hours(24);

/// What the ledger holds for a quota, summed by the caller.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// The bytes from the period's start to now.
    pub used: Counters,
    /// The bytes in the rate window ([`Quota::rate_window`]).
    pub recent: Counters,
    /// The rate window's length, seconds.
    pub recent_secs: f64,
}

/// A quota's state at one instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuotaStatus {
    /// The quota's name.
    pub name: String,
    /// The source it counts; `None`: the combined figure.
    pub source: Option<String>,
    /// Which way the counted bytes flow.
    pub direction: Direction,
    /// Wire or payload bytes.
    pub measure: Measure,
    /// The period as text ([`QuotaPeriod::label`](super::QuotaPeriod::label)).
    pub period: String,
    /// The period's start, Unix seconds.
    pub start: i64,
    /// The period's end (exclusive), Unix seconds.
    pub end: i64,
    /// Bytes counted so far in the period.
    pub used: u64,
    /// The limit, bytes.
    pub limit: u64,
    /// Bytes left before the limit (0 once reached).
    pub left: u64,
    /// `used` as a percentage of `limit` (may exceed 100).
    pub percent: f64,
    /// Bytes/s over the rate window.
    pub rate: f64,
    /// `used` plus the rate over the rest of the period, bytes (saturating).
    pub projected: u64,
    /// When the limit will be reached at `rate`, Unix seconds (rounded up): `None` when
    /// already reached, when the rate is 0, or when not before the period's end.
    pub reached_at: Option<i64>,
    /// Whether `used` has reached the limit.
    pub reached: bool,
}

impl Quota {
    /// The instants the rate is measured over, ending at `now`: the last 24 hours, or the
    /// period so far if shorter; its start and its length in seconds.
    pub fn rate_window(&self, now: &ZonedDateTime) -> (Timestamp, f64) {
        let (period_start, _) = self.period.bounds(now);
        let now = now.timestamp();
        let day_ago = now.checked_sub(RATE_WINDOW).unwrap_or(Timestamp::MIN);
        let start = day_ago.max(period_start.timestamp()).min(now);
        (start, now.duration_since(start).as_secs_f64())
    }
}

/// The state of `q` at `now`, from what the ledger holds (`usage`).
pub fn evaluate(q: &Quota, now: &ZonedDateTime, usage: &Usage) -> QuotaStatus {
    let (start, end) = q.period.bounds(now);
    let used = q.counted(&usage.used);
    let limit = q.limit;
    let rate = if usage.recent_secs > 0.0 && usage.recent_secs.is_finite() {
        q.counted(&usage.recent) as f64 / usage.recent_secs
    } else {
        0.0
    };
    let now_secs = now.timestamp().as_duration().as_secs_f64();
    let end_secs = end.timestamp().as_second();
    let secs_left = (end_secs as f64 - now_secs).max(0.0);
    let reached = used >= limit;
    let reached_at = if reached || rate <= 0.0 {
        None
    } else {
        let at = now_secs + (limit - used) as f64 / rate;
        (at < end_secs as f64).then(|| at.ceil() as i64)
    };
    QuotaStatus {
        name: q.name.clone(),
        source: q.source.as_ref().map(|s| s.as_str().to_string()),
        direction: q.direction,
        measure: q.measure,
        period: q.period.label(now),
        start: start.timestamp().as_second(),
        end: end_secs,
        used,
        limit,
        left: limit.saturating_sub(used),
        percent: used as f64 / limit.max(1) as f64 * 100.0,
        rate,
        // `as` saturates (and maps NaN to 0).
        projected: used.saturating_add((rate * secs_left) as u64),
        reached_at,
        reached,
    }
}
