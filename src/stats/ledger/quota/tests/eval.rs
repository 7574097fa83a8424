use crate::stats::totals::Counters;

use super::{at, evaluate, quota, Direction, Measure, QuotaPeriod, Usage};

fn counters(up: u64, down: u64, payload_up: u64, payload_down: u64) -> Counters {
    Counters {
        total_upload: up,
        total_download: down,
        total_payload_upload: payload_up,
        total_payload_download: payload_down,
    }
}

/// `used` bytes so far and `recent` bytes in a window of `secs` seconds, all downloads.
fn usage(used: u64, recent: u64, secs: f64) -> Usage {
    Usage {
        used: counters(0, used, 0, 0),
        recent: counters(0, recent, 0, 0),
        recent_secs: secs,
    }
}

#[test]
fn counted_picks_the_direction_and_the_measure() {
    let c = counters(1, 20, 300, 4000);
    let mut q = quota(QuotaPeriod::Day, 1);
    let mut seen = Vec::new();
    for measure in [Measure::Wire, Measure::Payload] {
        for direction in [Direction::Download, Direction::Upload, Direction::Both] {
            q.measure = measure;
            q.direction = direction;
            seen.push(q.counted(&c));
        }
    }
    assert_eq!(seen, [20, 1, 21, 4000, 300, 4300]);
    assert_eq!(q.counted(&counters(0, 0, u64::MAX, 5)), u64::MAX);
}

#[test]
fn the_rate_window_is_24_hours_or_the_period_so_far() {
    let now = at("UTC", 2026, 6, 3, 12, 0); // a Wednesday
    let (start, secs) = quota(QuotaPeriod::Day, 1).rate_window(&now);
    assert_eq!(
        (start, secs),
        (at("UTC", 2026, 6, 3, 0, 0).timestamp(), 43_200.0)
    );
    let (start, secs) = quota(QuotaPeriod::Week, 1).rate_window(&now);
    assert_eq!(
        (start, secs),
        (at("UTC", 2026, 6, 2, 12, 0).timestamp(), 86_400.0)
    );
    // At the period's first instant the window is empty.
    let monday = at("UTC", 2026, 6, 1, 0, 0);
    assert_eq!(quota(QuotaPeriod::Week, 1).rate_window(&monday).1, 0.0);
}

#[test]
fn projection_and_reached_at_within_the_period() {
    let q = quota(QuotaPeriod::Day, 50_000);
    let now = at("UTC", 2026, 6, 1, 12, 0);
    let now_s = now.timestamp().as_second();
    // 1 B/s, 43 200 s left: reached after 49 600 s, past the end.
    let s = evaluate(&q, &now, &usage(400, 43_200, 43_200.0));
    assert_eq!((s.used, s.left, s.limit), (400, 49_600, 50_000));
    assert_eq!((s.start, s.end), (now_s - 43_200, now_s + 43_200));
    assert_eq!(s.percent, 0.8);
    assert_eq!(s.rate, 1.0);
    assert_eq!(s.projected, 43_600);
    assert_eq!(s.reached_at, None);
    assert!(!s.reached);
    assert_eq!(s.period, "2026-06-01");
    // 2 B/s: reached after 24 800 s, inside the period.
    let s = evaluate(&q, &now, &usage(400, 86_400, 43_200.0));
    assert_eq!(s.projected, 86_800);
    assert_eq!(s.reached_at, Some(now_s + 24_800));
    // A fractional time rounds up to the second by which it is reached.
    let s = evaluate(&q, &now, &usage(49_999, 86_400, 43_200.0));
    assert_eq!(s.reached_at, Some(now_s + 1));
}

#[test]
fn reached_exactly_at_the_end_is_not_within_the_period() {
    let q = quota(QuotaPeriod::Day, 43_200);
    let now = at("UTC", 2026, 6, 1, 12, 0);
    let end = now.timestamp().as_second() + 43_200;
    assert_eq!(
        evaluate(&q, &now, &usage(0, 43_200, 43_200.0)).reached_at,
        None
    );
    let s = evaluate(&q, &now, &usage(1, 43_200, 43_200.0));
    assert_eq!(s.reached_at, Some(end - 1));
    assert_eq!(s.projected, 43_201);
}

#[test]
fn already_over_the_limit() {
    let q = quota(QuotaPeriod::Day, 1000);
    let now = at("UTC", 2026, 6, 1, 12, 0);
    let s = evaluate(&q, &now, &usage(1500, 43_200, 43_200.0));
    assert!(s.reached);
    assert_eq!((s.left, s.reached_at), (0, None));
    assert_eq!(s.percent, 150.0);
    let s = evaluate(&q, &now, &usage(1000, 0, 43_200.0));
    assert!(s.reached);
    assert_eq!(s.percent, 100.0);
}

#[test]
fn no_rate_projects_the_use_so_far() {
    let q = quota(QuotaPeriod::Day, 1000);
    let now = at("UTC", 2026, 6, 1, 0, 0);
    // An empty window (the period's first instant) gives rate 0, whatever it holds.
    let s = evaluate(&q, &now, &usage(10, 10, 0.0));
    assert_eq!((s.rate, s.projected, s.reached_at), (0.0, 10, None));
    let s = evaluate(&q, &now, &usage(10, 0, 3600.0));
    assert_eq!((s.rate, s.projected, s.reached_at), (0.0, 10, None));
}

#[test]
fn a_huge_rate_saturates_the_projection() {
    let q = quota(QuotaPeriod::Day, 1000);
    let now = at("UTC", 2026, 6, 1, 0, 0);
    let s = evaluate(&q, &now, &usage(10, u64::MAX, 1.0));
    assert_eq!(s.projected, u64::MAX);
    // 990 bytes at 1.8e19 B/s: within the second.
    assert_eq!(s.reached_at, Some(now.timestamp().as_second()));
}

#[test]
fn the_status_names_the_quota_and_serializes() {
    let mut q = quota(QuotaPeriod::Month { reset_day: 15 }, 1000);
    q.source = Some(crate::SourceName::new("engine").unwrap());
    q.direction = Direction::Upload;
    let now = at("Europe/Berlin", 2026, 12, 20, 12, 0);
    let s = evaluate(&q, &now, &usage(0, 0, 0.0));
    assert_eq!(s.source.as_deref(), Some("engine"));
    assert_eq!(s.period, "2026-12-15 → 2027-01-15");
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["direction"], "upload");
    assert_eq!(json["measure"], "wire");
    assert_eq!(json["start"], 1_797_289_200_i64); // 2026-12-14T23:00:00Z
    assert_eq!(json["reached_at"], serde_json::Value::Null);
}
