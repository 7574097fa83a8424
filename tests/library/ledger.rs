//! The calendar ledger against the totals file, with an injected clock (no sleeping through
//! days): a month of traffic across Berlin's DST change, a day in Kathmandu, and a property
//! test over random traffic, clock jumps, resets, imports and kill points for the invariant
//! "daily (monthly, yearly) buckets = all-time totals − before the ledger".

use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use torrent_stats::ledger::{calendar, Ledger, Period, Retention, SourceLedger};
use torrent_stats::{Accumulator, Counters, Durability, SessionId, Store};

const SOURCE: &str = "engine";

fn ts(text: &str) -> i64 {
    calendar::parse_bound(text, &calendar::time_zone("UTC").unwrap()).unwrap()
}

fn c(up: u64, down: u64) -> Counters {
    Counters {
        total_upload: up,
        total_download: down,
        total_payload_upload: up / 2,
        total_payload_download: down / 2,
    }
}

/// One running "daemon": the totals file, the accumulator and the source's ledger, driven
/// as the poll task drives them (totals saved first, then the ledger's batch).
struct Rig {
    store: Store<Accumulator>,
    acc: Accumulator,
    book: SourceLedger,
    ledger: Arc<Ledger>,
    session: SessionId,
    counters: Counters,
    /// What "before the ledger" must be: the imports less the resets since it began.
    before: [i64; 4],
}

fn signed(c: &Counters) -> [i64; 4] {
    [
        c.total_upload,
        c.total_download,
        c.total_payload_upload,
        c.total_payload_download,
    ]
    .map(|v| v as i64)
}

impl Rig {
    fn open(dir: &Path, zone: &str, now: i64) -> Rig {
        let store = Store::<Accumulator>::open(dir.join("stats.totals")).unwrap();
        let acc = store.load().unwrap().0;
        let ledger = Arc::new(
            Ledger::open(
                dir,
                calendar::time_zone(zone).unwrap(),
                Retention {
                    five_min_hours: 100_000,
                    hour_days: 10_000,
                },
            )
            .unwrap(),
        );
        let book = SourceLedger::open(ledger.clone(), SOURCE, &acc, now).unwrap();
        Rig {
            store,
            acc,
            book,
            ledger,
            session: SessionId(format!("run-{now}")),
            counters: Counters::default(),
            before: [0; 4],
        }
    }

    /// A poll whose session counters grew by `delta`, at `now`.
    fn poll(&mut self, delta: Counters, now: i64) {
        self.counters = self.counters.saturating_add(delta);
        let (mut next, step) = self.acc.apply(&self.session, self.counters);
        if step.changed() {
            next.updated = now as u64;
        }
        self.book
            .count(next.totals.saturating_sub(self.acc.totals), now);
        self.acc = next;
    }

    fn save_totals(&mut self) {
        self.store.save(&self.acc, Durability::Fast).unwrap();
    }

    fn save_ledger(&mut self) {
        let batch = self.book.take(&self.acc, None);
        let ok = self.ledger.write(&batch, false).is_ok();
        assert!(ok);
        self.book.finish(batch, ok, false);
    }

    fn reset(&mut self, now: i64) {
        self.save_totals();
        self.save_ledger();
        let before = self.acc.totals;
        let b = signed(&before);
        self.before = std::array::from_fn(|i| self.before[i] - b[i]);
        self.acc.totals = Counters::default();
        self.acc.updated = now as u64;
        self.acc.resets += 1;
        self.store.save(&self.acc, Durability::Durable).unwrap();
        let batch = self.book.take(
            &self.acc,
            Some(torrent_stats::ledger::reset_adjustment(&before, now)),
        );
        self.ledger.write(&batch, true).unwrap();
        self.book.finish(batch, true, true);
    }

    fn import(&mut self, added: Counters, now: i64, with_ledger: bool) {
        let fingerprint = format!("file-{}", self.acc.imports.len());
        self.acc = self
            .acc
            .import("deluge", &fingerprint, added, now as u64)
            .unwrap();
        self.store.save(&self.acc, Durability::Durable).unwrap();
        let a = signed(&added);
        self.before = std::array::from_fn(|i| self.before[i] + a[i]);
        if with_ledger {
            let adj = torrent_stats::ledger::import_adjustment("deluge", &fingerprint, &added, now);
            let batch = self.book.take(&self.acc, Some(adj));
            self.ledger.write(&batch, true).unwrap();
            self.book.finish(batch, true, true);
        }
    }

    /// Checks the invariant against the totals file, as a fresh start would see it.
    fn check(&self) {
        let file = self.store.load().unwrap().0;
        let a = self.ledger.accounting(Some(SOURCE)).unwrap();
        assert!(a.holds(), "{a:?}");
        assert_eq!(a.accounted, signed(&file.totals), "{a:?}");
        assert_eq!(
            a.before, self.before,
            "imports and resets are before the ledger"
        );
        let combined = self.ledger.accounting(None).unwrap();
        assert!(combined.holds(), "{combined:?}");
    }
}

#[test]
fn a_month_across_berlins_dst_change_sums_to_the_totals_to_the_byte() {
    let dir = tempfile::tempdir().unwrap();
    let start = ts("2026-10-10T00:00:00Z");
    let end = ts("2026-11-10T00:00:00Z");
    let mut rig = Rig::open(dir.path(), "Europe/Berlin", start);
    let mut t = start;
    let mut n = 0u64;
    while t < end {
        n += 1;
        // Uneven traffic every 7 minutes, saved every poll, with a checkpoint now and then.
        rig.poll(c(1_000 + n % 977 * 13, 5_000 + n % 313 * 101), t);
        rig.save_totals();
        rig.save_ledger();
        t += 7 * 60;
    }
    rig.check();
    let berlin = calendar::time_zone("Europe/Berlin").unwrap();
    let days = rig
        .ledger
        .calendar(Period::Day, Some(SOURCE), None, None)
        .unwrap();
    assert_eq!(days.first().unwrap().label, "2026-10-10");
    assert_eq!(days.last().unwrap().label, "2026-11-10"); // 01:00 local on the last poll
    let dst = days.iter().find(|d| d.label == "2026-10-25").unwrap();
    assert_eq!(dst.end - dst.start, 25 * 3600);
    let hours = rig
        .ledger
        .calendar(Period::Hour, Some(SOURCE), Some(dst.start), Some(dst.end))
        .unwrap();
    assert_eq!(hours.len(), 25, "a 25-hour day has 25 hourly buckets");
    let sum = |rows: &[torrent_stats::ledger::CalendarRow]| {
        rows.iter()
            .fold(Counters::default(), |s, r| s.saturating_add(r.totals))
    };
    assert_eq!(
        sum(&hours),
        dst.totals,
        "the hours of the DST day sum to the day"
    );
    let months = rig
        .ledger
        .calendar(Period::Month, None, None, None)
        .unwrap();
    let labels: Vec<&str> = months.iter().map(|m| m.label.as_str()).collect();
    assert_eq!(labels, ["2026-10", "2026-11"]);
    assert_eq!(sum(&months), rig.acc.totals);
    assert_eq!(sum(&days), rig.acc.totals);
    let years = rig.ledger.calendar(Period::Year, None, None, None).unwrap();
    assert_eq!(sum(&years), rig.acc.totals);
    // The bounds of the API: a local date's start.
    let oct = rig
        .ledger
        .calendar(
            Period::Day,
            Some(SOURCE),
            Some(calendar::parse_bound("2026-10-25", &berlin).unwrap()),
            Some(calendar::parse_bound("2026-10-26", &berlin).unwrap()),
        )
        .unwrap();
    assert_eq!(oct.len(), 1);
    assert_eq!(oct[0].label, "2026-10-25");
}

#[test]
fn a_day_in_kathmandu_starts_at_a_quarter_past_six_utc_the_day_before() {
    let dir = tempfile::tempdir().unwrap();
    let start = ts("2026-12-06T18:00:00Z"); // 23:45 on the 6th in Kathmandu
    let mut rig = Rig::open(dir.path(), "Asia/Kathmandu", start);
    for i in 0..12 {
        rig.poll(c(100, 1000), start + i * 300);
        rig.save_totals();
        rig.save_ledger();
    }
    rig.check();
    let days = rig
        .ledger
        .calendar(Period::Day, Some(SOURCE), None, None)
        .unwrap();
    let labels: Vec<(&str, i64)> = days.iter().map(|d| (d.label.as_str(), d.start)).collect();
    assert_eq!(
        labels,
        [
            ("2026-12-06", ts("2026-12-05T18:15:00Z")),
            ("2026-12-07", ts("2026-12-06T18:15:00Z"))
        ]
    );
    // 18:00 and 18:05 and 18:10 UTC are before local midnight.
    assert_eq!(days[0].totals.total_upload, 300);
    assert_eq!(days[1].totals.total_upload, 900);
    let hours = rig
        .ledger
        .calendar(Period::Hour, Some(SOURCE), None, None)
        .unwrap();
    assert_eq!(hours[1].label, "2026-12-07T00:00+05:45");
    assert_eq!(hours[1].start, ts("2026-12-06T18:15:00Z"));
}

#[test]
fn a_clock_that_goes_back_fills_the_latest_bucket_until_it_passes_it() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = ts("2026-12-07T10:00:00Z");
    let mut rig = Rig::open(dir.path(), "UTC", t0);
    rig.poll(c(10, 10), t0 + 3 * 3600); // a clock 3 hours ahead
    rig.poll(c(20, 20), t0); // back to the true time: into the 13:00 bucket
    rig.save_totals();
    rig.save_ledger();
    let hours = rig
        .ledger
        .calendar(Period::Hour, Some(SOURCE), None, None)
        .unwrap();
    assert_eq!(hours.len(), 1);
    assert_eq!(hours[0].label, "2026-12-07T13:00+00:00");
    assert_eq!(hours[0].totals.total_upload, 30);
    // Also after a restart (the latest bucket is in the file).
    drop(rig);
    let mut rig = Rig::open(dir.path(), "UTC", t0 + 60);
    rig.poll(c(5, 5), t0 + 60);
    rig.save_totals();
    rig.save_ledger();
    let hours = rig
        .ledger
        .calendar(Period::Hour, Some(SOURCE), None, None)
        .unwrap();
    assert_eq!(hours.len(), 1, "{hours:?}");
    assert_eq!(hours[0].totals.total_upload, 35);
    rig.check();
}

#[test]
fn a_newer_schema_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    drop(
        Ledger::open(
            dir.path(),
            calendar::time_zone("UTC").unwrap(),
            Retention::default(),
        )
        .unwrap(),
    );
    let db = rusqlite_version_bump(dir.path());
    assert!(db, "bumped");
    let err = Ledger::open(
        dir.path(),
        calendar::time_zone("UTC").unwrap(),
        Retention::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("schema version 99 is newer"), "{err}");
    assert!(err.contains("run the newer version"), "{err}");
}

/// Sets the ledger's schema version to 99, as a newer build would.
fn rusqlite_version_bump(dir: &Path) -> bool {
    rusqlite::Connection::open(dir.join(torrent_stats::ledger::FILE))
        .and_then(|db| db.pragma_update(None, "user_version", 99))
        .is_ok()
}

/// One step of the property test.
#[derive(Debug, Clone)]
enum Op {
    /// Traffic after `advance` seconds of clock (negative: the clock jumped back).
    Poll { up: u64, down: u64, advance: i64 },
    /// Save the totals file, then the ledger.
    Save,
    /// Save the totals file only, then kill (the ledger's batch never written).
    KillBetween,
    /// Kill now (what was counted since the last save is lost from both).
    Kill,
    /// Reset the totals.
    Reset,
    /// Import another client's totals; `ledger`: the ledger saw it before the kill.
    Import { up: u64, ledger: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u64..5_000_000, 0u64..9_000_000, prop_oneof![9 => 1i64..4000, 1 => -90_000i64..0, 1 => 86_400i64..3_000_000])
            .prop_map(|(up, down, advance)| Op::Poll { up, down, advance }),
        4 => Just(Op::Save),
        1 => Just(Op::KillBetween),
        1 => Just(Op::Kill),
        1 => Just(Op::Reset),
        1 => (1u64..1_000_000_000, any::<bool>()).prop_map(|(up, ledger)| Op::Import { up, ledger }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// After every save and every kill (and the restart that follows), each of the daily,
    /// monthly and yearly sums equals the totals file minus "before the ledger", and no
    /// bucket lies after the latest clock reading.
    #[test]
    fn the_invariant_holds_through_traffic_clock_jumps_resets_imports_and_kills(
        ops in proptest::collection::vec(op(), 1..60),
        zone in prop_oneof![Just("Europe/Berlin"), Just("Asia/Kathmandu"), Just("America/New_York")],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut now = ts("2026-03-28T20:00:00Z");
        let mut latest = now;
        let mut rig = Rig::open(dir.path(), zone, now);
        for op in ops {
            match op {
                Op::Poll { up, down, advance } => {
                    now += advance;
                    latest = latest.max(now);
                    rig.poll(c(up, down), now);
                }
                Op::Save => {
                    rig.save_totals();
                    rig.save_ledger();
                    rig.check();
                }
                Op::KillBetween | Op::Kill => {
                    if matches!(op, Op::KillBetween) {
                        rig.save_totals();
                    }
                    let before = rig.before;
                    drop(rig);
                    rig = Rig::open(dir.path(), zone, now);
                    rig.before = before;
                    rig.check();
                }
                Op::Reset => {
                    rig.reset(now);
                    rig.check();
                }
                Op::Import { up, ledger } => {
                    rig.import(c(up, up * 3), now, ledger);
                    if !ledger {
                        let before = rig.before;
                        drop(rig);
                        rig = Rig::open(dir.path(), zone, now);
                        rig.before = before;
                    }
                    rig.check();
                }
            }
        }
        let tz = calendar::time_zone(zone).unwrap();
        let newest = calendar::bucket(Period::FiveMin, &tz, latest);
        for period in Period::ALL {
            for row in rig.ledger.calendar(period, Some(SOURCE), None, None).unwrap() {
                prop_assert!(row.start <= newest.start, "{row:?} after {latest}");
            }
        }
    }
}

/// The ledger's methods on a running Stats plugin: the calendar sums to the totals of a
/// fresh config dir, quotas are checked (an unknown source named), evaluated and kept in
/// `quotas.toml`, their command shown to ADMIN callers only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_calendar_and_quota_methods_on_a_running_plugin() {
    use serde_json::{json, Map, Value};
    use torrent_stats::{AuthLevel, PluginHost, SimSource, Stats};
    let dir = tempfile::tempdir().unwrap();
    let host = PluginHost::open(Arc::new(SimSource::new(1000, 4000, 1)), dir.path()).unwrap();
    let stats = Arc::new(Stats::new());
    let handle = stats.handle();
    host.register(stats).await.unwrap();
    host.enable("Stats").await.unwrap();
    let totals = handle.poll_now().await.unwrap();
    let call = |method: &'static str, args: Vec<Value>, level: AuthLevel| {
        let exports = host.exports().clone();
        async move { exports.dispatch(method, args, Map::new(), level).await }
    };
    let days = call("stats.get_calendar", vec![json!("day")], AuthLevel::Normal)
        .await
        .unwrap();
    let sum: u64 = days
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["total_upload"].as_u64().unwrap())
        .sum();
    assert!(sum <= totals.total_upload && sum > 0, "{days} {totals:?}");
    for (args, needle) in [
        (vec![json!("week")], "unknown period"),
        (vec![json!("day"), json!("nope")], "no source is named"),
        (
            vec![json!("day"), Value::Null, json!("yesterday")],
            "is not a time",
        ),
        (
            vec![json!("day"), Value::Null, json!([1])],
            "expected a date",
        ),
    ] {
        let err = call("stats.get_calendar", args, AuthLevel::Normal)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{err}");
    }
    let quota = |source: &str| {
        json!([{"name": "cap", "source": source, "period": "month", "reset_day": 31,
                "limit": "1 GiB", "command": "true # secret"}])
    };
    let err = call("stats.set_quotas", vec![quota("other")], AuthLevel::Admin)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no source is named other"), "{err}");
    let err = call("stats.set_quotas", vec![quota("sim")], AuthLevel::Normal)
        .await
        .unwrap_err();
    assert!(
        matches!(err, torrent_stats::DispatchError::NotAuthorized { .. }),
        "{err}"
    );
    let set = call("stats.set_quotas", vec![quota("sim")], AuthLevel::Admin)
        .await
        .unwrap();
    assert_eq!(set[0]["name"], "cap");
    let status = &set[0]["status"];
    assert_eq!(status["limit"], 1u64 << 30);
    assert!(status["used"].as_u64().unwrap() > 0, "{set}");
    let file = std::fs::read_to_string(dir.path().join("quotas.toml")).unwrap();
    assert!(file.contains("reset_day = 31"), "{file}");
    let seen = call("stats.get_quotas", vec![], AuthLevel::Normal)
        .await
        .unwrap();
    assert!(!seen.to_string().contains("secret"), "{seen}");
    let admin = call("stats.get_quotas", vec![], AuthLevel::Admin)
        .await
        .unwrap();
    assert!(admin.to_string().contains("secret"), "{admin}");
    host.shutdown().await;
}
