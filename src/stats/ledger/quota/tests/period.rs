use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ZonedDateTime};
use proptest::prelude::*;

use super::{at, QuotaPeriod};

/// The bounds as RFC 9557 text (local time, offset, zone).
fn bounds(p: QuotaPeriod, now: &ZonedDateTime) -> (String, String) {
    let (s, e) = p.bounds(now);
    (s.to_string(), e.to_string())
}

fn length(p: QuotaPeriod, now: &ZonedDateTime) -> SignedDuration {
    let (s, e) = p.bounds(now);
    e.timestamp().duration_since(s.timestamp())
}

fn dates(p: QuotaPeriod, now: &ZonedDateTime) -> (String, String) {
    let (s, e) = p.bounds(now);
    (s.date().to_string(), e.date().to_string())
}

#[test]
fn berlin_spring_forward_day_is_23_hours() {
    let now = at("Europe/Berlin", 2026, 3, 29, 12, 0);
    assert_eq!(
        bounds(QuotaPeriod::Day, &now),
        (
            "2026-03-29T00:00:00+01:00[Europe/Berlin]".into(),
            "2026-03-30T00:00:00+02:00[Europe/Berlin]".into()
        )
    );
    assert_eq!(
        length(QuotaPeriod::Day, &now),
        SignedDuration::from_hours(23)
    );
    // An instant just before the gap is in the same day.
    let early = at("Europe/Berlin", 2026, 3, 29, 1, 59);
    assert_eq!(
        QuotaPeriod::Day.bounds(&early),
        QuotaPeriod::Day.bounds(&now)
    );
}

#[test]
fn berlin_fall_back_day_is_25_hours() {
    let now = at("Europe/Berlin", 2026, 10, 25, 12, 0);
    assert_eq!(
        bounds(QuotaPeriod::Day, &now),
        (
            "2026-10-25T00:00:00+02:00[Europe/Berlin]".into(),
            "2026-10-26T00:00:00+01:00[Europe/Berlin]".into()
        )
    );
    assert_eq!(
        length(QuotaPeriod::Day, &now),
        SignedDuration::from_hours(25)
    );
    // The second 02:30 (after the clocks went back) is in the same day.
    let second = at("Europe/Berlin", 2026, 10, 25, 2, 30)
        .timestamp()
        .checked_add(SignedDuration::from_hours(1))
        .unwrap()
        .to_zoned_datetime(TimeZone::get("Europe/Berlin").unwrap());
    assert_eq!(
        second.to_string(),
        "2026-10-25T02:30:00+01:00[Europe/Berlin]"
    );
    assert_eq!(
        QuotaPeriod::Day.bounds(&second),
        QuotaPeriod::Day.bounds(&now)
    );
}

#[test]
fn kathmandu_day_starts_at_18_15_utc() {
    let now = at("Asia/Kathmandu", 2026, 6, 1, 3, 0);
    let (start, end) = QuotaPeriod::Day.bounds(&now);
    assert_eq!(start.timestamp().to_string(), "2026-05-31T18:15:00Z");
    assert_eq!(end.timestamp().to_string(), "2026-06-01T18:15:00Z");
}

#[test]
fn a_day_whose_midnight_does_not_exist_starts_at_its_first_instant() {
    // Brazil's DST began at midnight on 2018-11-04: 00:00 became 01:00.
    let now = at("America/Sao_Paulo", 2018, 11, 4, 12, 0);
    let (start, end) = QuotaPeriod::Day.bounds(&now);
    assert_eq!(
        start.to_string(),
        "2018-11-04T01:00:00-02:00[America/Sao_Paulo]"
    );
    assert_eq!(start, now.start_of_day().unwrap());
    assert_eq!(
        end.to_string(),
        "2018-11-05T00:00:00-02:00[America/Sao_Paulo]"
    );
    assert_eq!(
        length(QuotaPeriod::Day, &now),
        SignedDuration::from_hours(23)
    );
    // The day before ends where this one starts.
    let before = at("America/Sao_Paulo", 2018, 11, 3, 12, 0);
    assert_eq!(QuotaPeriod::Day.bounds(&before).1, start);
}

#[test]
fn weeks_run_monday_to_monday() {
    let sunday = at("Europe/Berlin", 2026, 3, 29, 23, 59);
    assert_eq!(
        bounds(QuotaPeriod::Week, &sunday),
        (
            "2026-03-23T00:00:00+01:00[Europe/Berlin]".into(),
            "2026-03-30T00:00:00+02:00[Europe/Berlin]".into()
        )
    );
    assert_eq!(
        length(QuotaPeriod::Week, &sunday),
        SignedDuration::from_hours(167)
    );
    let monday = at("Europe/Berlin", 2026, 3, 30, 0, 0);
    let (start, end) = QuotaPeriod::Week.bounds(&monday);
    assert_eq!(start, monday);
    assert_eq!(end, at("Europe/Berlin", 2026, 4, 6, 0, 0));
    assert_eq!(QuotaPeriod::Week.label(&monday), "2026-03-30 → 2026-04-06");
}

#[test]
fn month_from_the_15th() {
    let p = QuotaPeriod::Month { reset_day: 15 };
    let z = "Europe/Berlin";
    let d = |y, m, day, h, mi| dates(p, &at(z, y, m, day, h, mi));
    let s = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(d(2026, 3, 14, 23, 59), s("2026-02-15", "2026-03-15"));
    assert_eq!(d(2026, 3, 15, 0, 0), s("2026-03-15", "2026-04-15"));
    assert_eq!(d(2026, 3, 31, 12, 0), s("2026-03-15", "2026-04-15"));
    // Across the year's end, both ways.
    assert_eq!(d(2026, 12, 20, 12, 0), s("2026-12-15", "2027-01-15"));
    assert_eq!(d(2027, 1, 10, 12, 0), s("2026-12-15", "2027-01-15"));
    assert_eq!(d(2027, 1, 15, 0, 0), s("2027-01-15", "2027-02-15"));
    let now = at(z, 2026, 12, 20, 12, 0);
    assert_eq!(p.label(&now), "2026-12-15 → 2027-01-15");
    let (start, _) = p.bounds(&now);
    assert_eq!(
        start.to_string(),
        "2026-12-15T00:00:00+01:00[Europe/Berlin]"
    );
}

#[test]
fn month_from_the_1st_is_the_calendar_month() {
    let p = QuotaPeriod::Month { reset_day: 1 };
    let now = at("UTC", 2026, 3, 1, 0, 0);
    let (start, end) = p.bounds(&now);
    assert_eq!(start, now);
    assert_eq!(end, at("UTC", 2026, 4, 1, 0, 0));
    let last = at("UTC", 2026, 2, 28, 23, 59);
    assert_eq!(p.bounds(&last).1, now);
}

#[test]
fn reset_day_31_is_the_last_day_of_a_short_month() {
    let p = QuotaPeriod::Month { reset_day: 31 };
    let d = |y, m, day| dates(p, &at("Europe/Berlin", y, m, day, 10, 0));
    let s = |a: &str, b: &str| (a.to_string(), b.to_string());
    // Leap February: the 29th.
    assert_eq!(d(2024, 2, 28), s("2024-01-31", "2024-02-29"));
    assert_eq!(d(2024, 2, 29), s("2024-02-29", "2024-03-31"));
    // Common February: the 28th.
    assert_eq!(d(2026, 2, 27), s("2026-01-31", "2026-02-28"));
    assert_eq!(d(2026, 2, 28), s("2026-02-28", "2026-03-31"));
    // April: the 30th.
    assert_eq!(d(2026, 4, 29), s("2026-03-31", "2026-04-30"));
    assert_eq!(d(2026, 4, 30), s("2026-04-30", "2026-05-31"));
    assert_eq!(d(2026, 5, 1), s("2026-04-30", "2026-05-31"));
    assert_eq!(d(2026, 5, 31), s("2026-05-31", "2026-06-30"));
}

#[test]
fn rolling_7_days_is_today_and_the_6_before() {
    let p = QuotaPeriod::Rolling { days: 7 };
    let now = at("Europe/Berlin", 2026, 3, 29, 12, 0);
    assert_eq!(
        bounds(p, &now),
        (
            "2026-03-23T00:00:00+01:00[Europe/Berlin]".into(),
            "2026-03-30T00:00:00+02:00[Europe/Berlin]".into()
        )
    );
    assert_eq!(p.label(&now), "2026-03-23 → 2026-03-30");
    // A day later the window has moved by a day.
    let next = at("Europe/Berlin", 2026, 3, 30, 0, 0);
    assert_eq!(dates(p, &next), ("2026-03-24".into(), "2026-03-31".into()));
    let one = QuotaPeriod::Rolling { days: 1 };
    assert_eq!(one.bounds(&now), QuotaPeriod::Day.bounds(&now));
    assert_eq!(QuotaPeriod::Day.label(&now), "2026-03-29");
}

const ZONES: [&str; 6] = [
    "UTC",
    "Europe/Berlin",
    "America/Sao_Paulo",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "America/St_Johns",
];

fn any_period() -> impl Strategy<Value = QuotaPeriod> {
    prop_oneof![
        Just(QuotaPeriod::Day),
        Just(QuotaPeriod::Week),
        (1u8..=31).prop_map(|reset_day| QuotaPeriod::Month { reset_day }),
        (1u16..=400).prop_map(|days| QuotaPeriod::Rolling { days }),
    ]
}

proptest! {
    /// Every instant is in its period, which starts at a local day's first instant; a
    /// calendar period's start is in the same period (periods tile time).
    #[test]
    fn an_instant_lies_in_its_period(
        secs in 0i64..4_102_444_800,
        zone in 0..ZONES.len(),
        p in any_period(),
    ) {
        let tz = TimeZone::get(ZONES[zone]).unwrap();
        let now = Timestamp::from_second(secs).unwrap().to_zoned_datetime(tz);
        let (start, end) = p.bounds(&now);
        prop_assert!(start <= now && now < end, "{start} {now} {end}");
        prop_assert_eq!(&start, &start.start_of_day().unwrap());
        prop_assert_eq!(&end, &end.start_of_day().unwrap());
        match p {
            QuotaPeriod::Rolling { days } => {
                let n = start.date().until(end.date()).unwrap().get_days();
                prop_assert_eq!(n, i32::from(days));
            }
            _ => prop_assert_eq!(p.bounds(&start), (start.clone(), end.clone())),
        }
        if let QuotaPeriod::Month { reset_day } = p {
            let want = i8::try_from(reset_day).unwrap().min(start.date().days_in_month());
            prop_assert_eq!(start.day(), want);
        }
        if p == QuotaPeriod::Week {
            prop_assert_eq!(start.weekday(), jiff::civil::Weekday::Monday);
        }
    }
}
