//! The calendar: which 5-minute, hourly, daily, monthly and yearly bucket of local time an
//! instant falls in, in a time zone (jiff and its time-zone database).
//!
//! 5-minute and hourly buckets are intervals of local time named by their start with its
//! offset (`2026-10-25T02:00+01:00`): a 25-hour DST day has 25 hourly buckets, and in
//! Asia/Kathmandu (+05:45) an hour starts at :15 UTC. Days, months and years are local
//! dates (`2026-10-25`, `2026-10`, `2026`): a DST day lasts 23 or 25 hours.

use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, ZonedDateTime};

/// A bucket size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Period {
    /// 5 minutes of local time.
    FiveMin,
    /// An hour of local time.
    Hour,
    /// A local date.
    Day,
    /// A calendar month.
    Month,
    /// A calendar year.
    Year,
}

/// Why a text is not a [`Period`] or a time bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CalendarError {
    /// Not one of the period names.
    #[error("unknown period {0:?}: one of 5min, hour, day, month, year")]
    Period(String),
    /// Not a date, a date-time or Unix seconds.
    #[error(
        "{0:?} is not a time: give an ISO 8601 date (2026-12-01), a date-time \
         (2026-12-01T08:00, local time, or with an offset) or Unix seconds"
    )]
    Bound(String),
    /// Not a time zone of the database.
    #[error("unknown time zone {0:?}: give an IANA name such as Europe/Berlin or UTC")]
    TimeZone(String),
}

impl Period {
    /// Every period, shortest first.
    pub const ALL: [Period; 5] = [
        Period::FiveMin,
        Period::Hour,
        Period::Day,
        Period::Month,
        Period::Year,
    ];

    /// Its name in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::FiveMin => "5min",
            Period::Hour => "hour",
            Period::Day => "day",
            Period::Month => "month",
            Period::Year => "year",
        }
    }

    /// The period named `name` (also `hours`, `days`, ... as the CLI's flags say them).
    pub fn parse(name: &str) -> Result<Period, CalendarError> {
        Ok(match name.trim().to_ascii_lowercase().as_str() {
            "5min" | "5m" | "fivemin" => Period::FiveMin,
            "hour" | "hours" | "hourly" => Period::Hour,
            "day" | "days" | "daily" => Period::Day,
            "month" | "months" | "monthly" => Period::Month,
            "year" | "years" | "yearly" => Period::Year,
            _ => return Err(CalendarError::Period(name.to_string())),
        })
    }
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One bucket: its local name and its UTC interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// Its size.
    pub period: Period,
    /// Its local name: `2026-10-25T02:00+01:00`, `2026-10-25`, `2026-10` or `2026`.
    pub label: String,
    /// Unix seconds of its first instant.
    pub start: i64,
    /// Unix seconds of the first instant after it.
    pub end: i64,
}

impl Bucket {
    /// Whether the instant `t` (Unix seconds) lies in it.
    pub fn contains(&self, t: i64) -> bool {
        self.start <= t && t < self.end
    }
}

/// The time zone named `name`: an IANA name from the bundled database (`UTC` too), or
/// the system's zone for `""` (UTC if the system has none).
pub fn time_zone(name: &str) -> Result<TimeZone, CalendarError> {
    if name.trim().is_empty() {
        return Ok(TimeZone::try_system().unwrap_or(TimeZone::UTC));
    }
    TimeZone::get(name.trim()).map_err(|_| CalendarError::TimeZone(name.to_string()))
}

/// The name of a time zone as the ledger records it (`UTC` offsets as `+05:45`).
pub fn zone_name(tz: &TimeZone) -> String {
    tz.iana_name().map_or_else(
        || tz.to_offset(Timestamp::now()).to_string(),
        str::to_string,
    )
}

fn at(t: i64, tz: &TimeZone) -> ZonedDateTime {
    Timestamp::from_second(t)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_zoned_datetime(tz.clone())
}

/// The `period` bucket of the instant `t` (Unix seconds) in `tz`.
pub fn bucket(period: Period, tz: &TimeZone, t: i64) -> Bucket {
    let z = at(t, tz);
    match period {
        Period::FiveMin => sub_day(&z, t, 300),
        Period::Hour => sub_day(&z, t, 3600),
        Period::Day => {
            let start = z.start_of_day().unwrap_or_else(|_| z.clone());
            let end = z
                .tomorrow()
                .and_then(|d| d.start_of_day())
                .map_or(start.timestamp().as_second() + 86_400, |e| {
                    e.timestamp().as_second()
                });
            Bucket {
                period,
                label: z.date().to_string(),
                start: start.timestamp().as_second(),
                end,
            }
        }
        Period::Month | Period::Year => {
            let first = if period == Period::Month {
                z.first_of_month()
            } else {
                z.first_of_year()
            };
            let start = first
                .and_then(|d| d.start_of_day())
                .unwrap_or_else(|_| z.clone());
            let step = if period == Period::Month {
                1.month()
            } else {
                1.year()
            };
            let end = start
                .date()
                .checked_add(step)
                .ok()
                .and_then(|d| d.to_zoned_datetime(tz.clone()).ok())
                .and_then(|d| d.start_of_day().ok())
                .map_or(t + 1, |e| e.timestamp().as_second());
            let label = if period == Period::Month {
                format!("{:04}-{:02}", z.year(), z.month())
            } else {
                format!("{:04}", z.year())
            };
            Bucket {
                period,
                label,
                start: start.timestamp().as_second(),
                end,
            }
        }
    }
}

/// A 5-minute or hourly bucket: local time floored to `len` seconds at the instant's own
/// offset (an interval of local time identified by its UTC start).
fn sub_day(z: &ZonedDateTime, t: i64, len: i64) -> Bucket {
    let offset = i64::from(z.offset().seconds());
    let local = t + offset;
    let start_local = local.div_euclid(len) * len;
    let start = start_local - offset;
    let sz = at(start, z.time_zone());
    Bucket {
        period: if len == 300 {
            Period::FiveMin
        } else {
            Period::Hour
        },
        label: format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}{}",
            sz.year(),
            sz.month(),
            sz.day(),
            sz.hour(),
            sz.minute(),
            offset_text(offset)
        ),
        start,
        end: start + len,
    }
}

fn offset_text(seconds: i64) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let s = seconds.abs();
    format!("{sign}{:02}:{:02}", s / 3600, (s % 3600) / 60)
}

/// The five buckets of the instant `t`, shortest first.
pub fn buckets(tz: &TimeZone, t: i64) -> [Bucket; 5] {
    Period::ALL.map(|p| bucket(p, tz, t))
}

/// A time bound as the API takes it: Unix seconds, an ISO 8601 date (its local start), a
/// local date-time, or a date-time with an offset or `Z`.
pub fn parse_bound(text: &str, tz: &TimeZone) -> Result<i64, CalendarError> {
    let t = text.trim();
    let bad = || CalendarError::Bound(text.to_string());
    if let Ok(secs) = t.parse::<i64>() {
        return Ok(secs);
    }
    if let Ok(ts) = t.parse::<Timestamp>() {
        return Ok(ts.as_second());
    }
    if let Ok(dt) = t.parse::<jiff::civil::DateTime>() {
        return dt
            .to_zoned_datetime(tz.clone())
            .map(|z| z.timestamp().as_second())
            .map_err(|_| bad());
    }
    if let Ok(d) = t.parse::<jiff::civil::Date>() {
        return d
            .to_zoned_datetime(tz.clone())
            .and_then(|z| z.start_of_day())
            .map(|z| z.timestamp().as_second())
            .map_err(|_| bad());
    }
    Err(bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tz(name: &str) -> TimeZone {
        time_zone(name).unwrap()
    }

    fn ts(text: &str) -> i64 {
        text.parse::<Timestamp>().unwrap().as_second()
    }

    #[test]
    fn a_dst_day_in_berlin_has_23_or_25_hourly_buckets() {
        let berlin = tz("Europe/Berlin");
        for (day, hours) in [("2026-03-29", 23), ("2026-10-25", 25), ("2026-10-26", 24)] {
            let d = bucket(Period::Day, &berlin, parse_bound(day, &berlin).unwrap());
            assert_eq!(d.label, day);
            assert_eq!((d.end - d.start) / 3600, hours, "{day}");
            let mut t = d.start;
            let mut labels = Vec::new();
            while t < d.end {
                let h = bucket(Period::Hour, &berlin, t);
                assert_eq!(h.start, t);
                labels.push(h.label);
                t = h.end;
            }
            assert_eq!(labels.len(), hours as usize, "{day}");
            let distinct: std::collections::BTreeSet<_> = labels.iter().collect();
            assert_eq!(distinct.len(), labels.len(), "{labels:?}");
        }
        // The repeated hour has two buckets, told apart by their offset.
        let first = bucket(Period::Hour, &berlin, ts("2026-10-25T00:30:00Z"));
        let second = bucket(Period::Hour, &berlin, ts("2026-10-25T01:30:00Z"));
        assert_eq!(first.label, "2026-10-25T02:00+02:00");
        assert_eq!(second.label, "2026-10-25T02:00+01:00");
    }

    #[test]
    fn kathmandu_hours_start_at_a_quarter_past_utc() {
        let k = tz("Asia/Kathmandu");
        let h = bucket(Period::Hour, &k, ts("2026-12-07T10:20:00Z"));
        assert_eq!(h.start, ts("2026-12-07T10:15:00Z"));
        assert_eq!(h.label, "2026-12-07T16:00+05:45");
        let d = bucket(Period::Day, &k, ts("2026-12-07T10:20:00Z"));
        assert_eq!(d.start, ts("2026-12-06T18:15:00Z"));
        assert_eq!(d.end - d.start, 86_400);
        let f = bucket(Period::FiveMin, &k, ts("2026-12-07T10:19:59Z"));
        assert_eq!(
            (f.start, f.end),
            (ts("2026-12-07T10:15:00Z"), ts("2026-12-07T10:20:00Z"))
        );
    }

    #[test]
    fn months_and_years_are_calendar_ones() {
        let berlin = tz("Europe/Berlin");
        let t = ts("2028-02-29T23:30:00Z"); // 1 March 00:30 in Berlin
        let m = bucket(Period::Month, &berlin, t);
        assert_eq!(m.label, "2028-03");
        assert_eq!(m.start, ts("2028-02-29T23:00:00Z"));
        assert_eq!(m.end, ts("2028-03-31T22:00:00Z")); // DST began in March
        let feb = bucket(Period::Month, &berlin, t - 3600);
        assert_eq!(
            (feb.label.as_str(), (feb.end - feb.start) / 86_400),
            ("2028-02", 29)
        );
        let y = bucket(Period::Year, &berlin, t);
        assert_eq!(y.label, "2028");
        assert_eq!(y.start, ts("2027-12-31T23:00:00Z"));
        assert_eq!(y.end, ts("2028-12-31T23:00:00Z"));
        for p in Period::ALL {
            let b = bucket(p, &berlin, t);
            assert!(b.contains(t), "{p}");
            assert_eq!(Period::parse(p.as_str()), Ok(p));
        }
    }

    #[test]
    fn bounds_are_unix_seconds_dates_or_date_times() {
        let berlin = tz("Europe/Berlin");
        assert_eq!(parse_bound("1796594400", &berlin), Ok(1_796_594_400));
        assert_eq!(
            parse_bound("2026-12-01", &berlin),
            Ok(ts("2026-11-30T23:00:00Z"))
        );
        assert_eq!(
            parse_bound("2026-12-01T08:00", &berlin),
            Ok(ts("2026-12-01T07:00:00Z"))
        );
        assert_eq!(
            parse_bound("2026-12-01T08:00:00Z", &berlin),
            Ok(ts("2026-12-01T08:00:00Z"))
        );
        assert!(matches!(
            parse_bound("yesterday", &berlin),
            Err(CalendarError::Bound(_))
        ));
        assert!(matches!(
            Period::parse("week"),
            Err(CalendarError::Period(_))
        ));
        assert!(matches!(
            time_zone("Mars/Olympus"),
            Err(CalendarError::TimeZone(_))
        ));
    }
}
