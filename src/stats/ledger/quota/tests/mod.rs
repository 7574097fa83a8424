//! The quota logic's tests, one file per concern, on fixed instants (no clock).

use jiff::civil::date;
use jiff::tz::TimeZone;
use jiff::ZonedDateTime;

use super::*;

mod eval;
mod form;
mod period;
mod threshold;

/// `y-m-d h:mi` local time in zone `tz` (the bundled database).
fn at(tz: &str, y: i16, m: i8, d: i8, h: i8, mi: i8) -> ZonedDateTime {
    date(y, m, d)
        .at(h, mi, 0, 0)
        .to_zoned_datetime(TimeZone::get(tz).unwrap())
        .unwrap()
}

/// A quota of `limit` bytes per `period` on the combined wire bytes, both ways.
fn quota(period: QuotaPeriod, limit: u64) -> Quota {
    Quota {
        name: "cap".into(),
        source: None,
        direction: Direction::Both,
        measure: Measure::Wire,
        period,
        limit,
        thresholds: DEFAULT_THRESHOLDS.to_vec(),
        command: None,
        action: QuotaAction::None,
    }
}
