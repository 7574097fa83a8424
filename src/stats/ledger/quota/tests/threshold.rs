use super::{at, crossed, evaluate, quota, QuotaPeriod, ThresholdState, Usage};
use crate::stats::totals::Counters;

fn used(bytes: u64) -> Usage {
    Usage {
        used: Counters {
            total_upload: bytes,
            ..Counters::default()
        },
        ..Usage::default()
    }
}

#[test]
fn thresholds_fire_once_per_period_lowest_first() {
    let mut q = quota(QuotaPeriod::Day, 1000);
    q.thresholds = vec![50, 80, 100];
    let mut state = ThresholdState::default();
    let day1 = at("UTC", 2026, 6, 1, 12, 0);
    let mut step = |now, bytes| crossed(&q, &evaluate(&q, now, &used(bytes)), &mut state);
    assert_eq!(step(&day1, 499), Vec::<u16>::new());
    assert_eq!(step(&day1, 500), [50]);
    assert_eq!(step(&day1, 700), Vec::<u16>::new());
    // Several at once.
    assert_eq!(step(&day1, 1200), [80, 100]);
    assert_eq!(step(&day1, 1300), Vec::<u16>::new());
    // A new period clears what had fired.
    let day2 = at("UTC", 2026, 6, 2, 0, 5);
    assert_eq!(step(&day2, 900), [50, 80]);
    assert_eq!(step(&day2, 950), Vec::<u16>::new());
    assert_eq!(state.fired, [50, 80]);
    assert_eq!(
        state.period_start,
        day2.start_of_day().unwrap().timestamp().as_second()
    );
}

#[test]
fn the_comparison_is_exact() {
    let mut q = quota(QuotaPeriod::Day, 3);
    q.thresholds = vec![66, 67, 1000];
    let now = at("UTC", 2026, 6, 1, 12, 0);
    let mut state = ThresholdState::default();
    // 2 of 3 is 66.67 %: 66 is reached, 67 not.
    assert_eq!(crossed(&q, &evaluate(&q, &now, &used(2)), &mut state), [66]);
    assert_eq!(
        crossed(&q, &evaluate(&q, &now, &used(29)), &mut state),
        [67]
    );
    assert_eq!(
        crossed(&q, &evaluate(&q, &now, &used(30)), &mut state),
        [1000]
    );
}

#[test]
fn a_state_kept_across_a_restart_still_knows_what_fired() {
    let q = quota(QuotaPeriod::Week, 100);
    let now = at("Europe/Berlin", 2026, 3, 29, 12, 0);
    let mut state = ThresholdState::default();
    assert_eq!(
        crossed(&q, &evaluate(&q, &now, &used(85)), &mut state),
        [80]
    );
    let text = serde_json::to_string(&state).unwrap();
    let mut back: ThresholdState = serde_json::from_str(&text).unwrap();
    assert_eq!(
        crossed(&q, &evaluate(&q, &now, &used(90)), &mut back),
        Vec::<u16>::new()
    );
    assert_eq!(
        crossed(&q, &evaluate(&q, &now, &used(100)), &mut back),
        [100]
    );
}
