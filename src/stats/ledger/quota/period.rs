//! A quota's period in local time: the day, the Monday-to-Monday week, the month from a
//! reset day, or the last N days, as the instants it starts and ends at in a time zone.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, ZonedDateTime};

/// The stretch of local time a quota's limit applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaPeriod {
    /// One local day, midnight to midnight.
    Day,
    /// One week, Monday 00:00 to the next Monday 00:00.
    Week,
    /// A month from the reset day (1..=31) 00:00 to the next month's reset day 00:00; a
    /// reset day past a month's end means that month's last day.
    Month {
        /// The day of the month it restarts on.
        reset_day: u8,
    },
    /// The last `days` local days, today included (1..=400).
    Rolling {
        /// How many days.
        days: u16,
    },
}

impl QuotaPeriod {
    /// The start and the end (exclusive) of the period holding `now`, in now's zone. Each
    /// starts at the first instant of its local day (midnight, or the end of a gap that
    /// swallows midnight).
    pub fn bounds(&self, now: &ZonedDateTime) -> (ZonedDateTime, ZonedDateTime) {
        let (start, end) = self.dates(now.date());
        let tz = now.time_zone();
        (day_start(start, tz), day_start(end, tz))
    }

    /// The period holding `now` as text: `2026-03-29` for a day, otherwise its first day
    /// and the day it ends at, `2026-12-15 → 2027-01-15`.
    pub fn label(&self, now: &ZonedDateTime) -> String {
        let (start, end) = self.dates(now.date());
        match self {
            QuotaPeriod::Day => start.to_string(),
            _ => format!("{start} → {end}"),
        }
    }

    /// The first local day of the period holding `today`, and the day after its last.
    fn dates(&self, today: Date) -> (Date, Date) {
        match *self {
            QuotaPeriod::Day => (today, add_days(today, 1)),
            QuotaPeriod::Week => {
                let monday = add_days(today, -i64::from(today.weekday().to_monday_zero_offset()));
                (monday, add_days(monday, 7))
            }
            QuotaPeriod::Month { reset_day } => {
                let this = reset_in(today, 0, reset_day);
                if this <= today {
                    (this, reset_in(today, 1, reset_day))
                } else {
                    (reset_in(today, -1, reset_day), this)
                }
            }
            QuotaPeriod::Rolling { days } => (
                add_days(today, 1 - i64::from(days.max(1))),
                add_days(today, 1),
            ),
        }
    }
}

/// `date` moved by `days`, held at the calendar's ends (years -9999 and 9999).
fn add_days(date: Date, days: i64) -> Date {
    date.saturating_add(days.days())
}

/// The reset date `months` months from `date`'s month: `reset_day`, or the month's last day
/// when it has fewer days.
fn reset_in(date: Date, months: i32, reset_day: u8) -> Date {
    let first = date.first_of_month().saturating_add(months.months());
    let day = i8::try_from(reset_day)
        .unwrap_or(i8::MAX)
        .clamp(1, first.days_in_month());
    Date::new(first.year(), first.month(), day).unwrap_or(first)
}

/// The first instant of local day `date` in `tz`: midnight, or, when a gap swallows
/// midnight, the instant the gap ends (jiff's "compatible" choice, as `start_of_day`).
/// A day at the end of the calendar that no instant can start is held at its limit.
fn day_start(date: Date, tz: &TimeZone) -> ZonedDateTime {
    date.to_zoned_datetime(tz.clone()).unwrap_or_else(|_| {
        let limit = if date.year() < 0 {
            Timestamp::MIN
        } else {
            Timestamp::MAX
        };
        limit.to_zoned_datetime(tz.clone())
    })
}
