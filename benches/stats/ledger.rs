//! The calendar ledger's benchmarks (issue 19, feature `ledger`).
//!
//! - `ledger_count`: `SourceLedger::count` of one poll, alone (the save's `take` untimed).
//! - `poll_tick_ledger`: `poll_tick` plus the ledger's in-memory work of a poll (count and
//!   the save's `take`).
//! - `calendar_buckets`: the five buckets of an instant (what `count` computes when a poll
//!   enters a new 5-minute bucket, once every 150 polls at 2 s).
//! - `ledger_write_fast`, `save_totals_fast_ledger`: one poll's batch written with
//!   `synchronous=NORMAL`, alone and after the totals' fast save (the per-poll save).
//! - `ledger_write_durable`, `checkpoint_ledger`: the same synced, alone and after the
//!   totals' durable save (a checkpoint); `fsync_bare`: one 4 KiB write and `fdatasync` on
//!   the same disk, for comparison.
//! - `ledger_calendar_day_10y_one_source`, `ledger_calendar_day_10y_combined_100`:
//!   `Ledger::calendar(Period::Day, …)` over 10 years of daily buckets.
//!
//! The ledgers are filled over simulated time (Europe/Berlin, from 2017-01-01), a day's
//! batch at a time through `Ledger::write`. Run as a test (`cargo test --bench stats`,
//! each benchmark once) they hold a month instead of ten years, so that the suite stays
//! fast.

use std::hint::black_box;
use std::io::{Seek, SeekFrom, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use torrent_stats::ledger::calendar::{self, Bucket};
use torrent_stats::ledger::{Batch, Ledger, Period, Retention, SourceLedger, SourceState};
use torrent_stats::{Accumulator, Counters};
use torrent_stats::{Durability, Store};

/// The time zone of the benchmarks' ledgers (DST: 23- and 25-hour days).
const ZONE: &str = "Europe/Berlin";
/// 2017-01-01T00:00:00+01:00: where the simulated ten years begin.
const EPOCH: i64 = 1_483_225_200;
/// Seconds between polls.
const POLL: i64 = 2;
/// Average bytes per second of each counter over the simulated years.
const RATES: [u64; 4] = [1_250_000, 4_500_000, 1_187_500, 4_275_000];

/// Whether criterion measures (`cargo bench`), rather than runs each benchmark once as a
/// test.
fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Days of simulated traffic: ten years under `cargo bench`, a month when run as a test.
fn days() -> i64 {
    if measuring() {
        3652
    } else {
        31
    }
}

/// `secs` seconds of traffic at [`RATES`].
fn traffic(secs: i64) -> Counters {
    let [a, b, c, d] = RATES.map(|r| r * secs.max(0) as u64);
    Counters {
        total_upload: a,
        total_download: b,
        total_payload_upload: c,
        total_payload_download: d,
    }
}

fn open(dir: &std::path::Path) -> Arc<Ledger> {
    let tz = calendar::time_zone(ZONE).expect("bundled zone");
    Arc::new(Ledger::open(dir, tz, Retention::default()).expect("open the ledger"))
}

/// A filled ledger in its own temp dir (kept alive with it).
struct Filled {
    _dir: tempfile::TempDir,
    ledger: Arc<Ledger>,
    /// Where the simulated time ended (the start of the day after the last).
    end: i64,
    /// Each source's totals at `end`.
    totals: Counters,
}

/// `sources` sources' traffic over [`days`] from [`EPOCH`], one batch per source
/// and day: its day, month and year buckets, and the hourly ones in the last 400 days.
fn fill(sources: &[String]) -> Filled {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = open(dir.path());
    let tz = ledger.time_zone().clone();
    let end = calendar::bucket(Period::Day, &tz, EPOCH + days() * 86_400 + 7200).start;
    let hourly_from = end - 400 * 86_400;
    let mut totals = Counters::default();
    let mut day = calendar::bucket(Period::Day, &tz, EPOCH);
    while day.start < end {
        let bytes = traffic(day.end - day.start);
        totals = totals.saturating_add(bytes);
        let mut rows: Vec<(Bucket, Counters)> = [Period::Day, Period::Month, Period::Year]
            .map(|p| (calendar::bucket(p, &tz, day.start), bytes))
            .into();
        if day.start >= hourly_from {
            let mut t = day.start;
            while t < day.end {
                let hour = calendar::bucket(Period::Hour, &tz, t);
                t = hour.end;
                let secs = hour.end - hour.start;
                rows.push((hour, traffic(secs)));
            }
        }
        for source in sources {
            let batch = Batch {
                source: source.clone(),
                rows: rows.clone(),
                state: SourceState {
                    accounted: totals,
                    latest: day.end - 1,
                    imports: 0,
                    resets: 0,
                },
                adjustments: Vec::new(),
            };
            ledger.write(&batch, false).expect("write a day");
        }
        day = calendar::bucket(Period::Day, &tz, day.end);
    }
    Filled {
        _dir: dir,
        ledger,
        end,
        totals,
    }
}

/// The totals file of a source at `totals`.
fn accumulator(totals: Counters, now: i64) -> Accumulator {
    Accumulator {
        totals,
        updated: now as u64,
        ..Accumulator::default()
    }
}

/// The ledger's in-memory work of a poll: counting.
fn count(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = open(dir.path());
    let acc = accumulator(Counters::default(), EPOCH);
    let mut book = SourceLedger::open(ledger, "bench", &acc, EPOCH).expect("open");
    let step = traffic(POLL);
    let mut now = EPOCH;
    c.bench_function("ledger_count", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                now += POLL;
                let t = Instant::now();
                book.count(black_box(step), black_box(now));
                spent += t.elapsed();
                // The save that follows every poll empties it.
                black_box(book.take(&acc, None));
            }
            spent
        })
    });

    let (mut acc, mut history) = super::filled();
    let s = super::sample(super::FILL_PUSHES);
    let session = s.session.clone();
    let values = s.values.clone();
    let mut counters = Counters::from_status(&s).expect("sample has the counters");
    let mut secs = super::FILL_PUSHES as f64 * 2.0;
    let mut book = SourceLedger::open(book.ledger().clone(), "tick", &acc, EPOCH).expect("open");
    let mut now = EPOCH;
    c.bench_function("poll_tick_ledger", |b| {
        b.iter(|| {
            counters = counters.saturating_add(step);
            secs += 2.0;
            now += POLL;
            let before = acc.totals;
            let (next, step) = acc.apply(black_box(&session), black_box(counters));
            acc = next;
            book.count(acc.totals.saturating_sub(before), now);
            history.push(black_box(&values), secs);
            black_box(book.take(&acc, None));
            black_box(step)
        })
    });

    let tz = calendar::time_zone(ZONE).expect("bundled zone");
    let mut t = EPOCH;
    c.bench_function("calendar_buckets", |b| {
        b.iter(|| {
            t += 300;
            black_box(calendar::buckets(&tz, black_box(t)))
        })
    });
}

/// A ledger holding ten years of one source, its totals file, and the poll they are at.
struct Saving {
    filled: Filled,
    book: SourceLedger,
    totals: Store<Accumulator>,
    acc: Accumulator,
    now: i64,
}

impl Saving {
    fn new() -> Saving {
        let filled = fill(&["bench".to_string()]);
        let acc = accumulator(filled.totals, filled.end);
        let book =
            SourceLedger::open(filled.ledger.clone(), "bench", &acc, filled.end).expect("open");
        let totals =
            Store::<Accumulator>::open(filled._dir.path().join("stats.totals")).expect("open");
        let now = filled.end;
        Saving {
            filled,
            book,
            totals,
            acc,
            now,
        }
    }

    /// One poll: counted, then saved as the poll task saves it (the totals file first,
    /// if `totals`, then the ledger's batch).
    fn poll(&mut self, durable: bool, totals: Option<Durability>) {
        let step = traffic(POLL);
        self.now += POLL;
        self.acc.totals = self.acc.totals.saturating_add(step);
        self.acc.updated = self.now as u64;
        self.book.count(step, self.now);
        if let Some(durability) = totals {
            self.totals
                .save(&self.acc, durability)
                .expect("save the totals");
        }
        let batch = self.book.take(&self.acc, None);
        self.filled
            .ledger
            .write(&batch, durable)
            .expect("write the batch");
        self.book.finish(batch, true, durable);
    }
}

/// The per-poll save and the checkpoint, on a ledger holding ten years of one source.
fn write(c: &mut Criterion) {
    let mut saving: Option<Saving> = None;
    for (name, durable, totals) in [
        ("ledger_write_fast", false, None),
        ("save_totals_fast_ledger", false, Some(Durability::Fast)),
        ("ledger_write_durable", true, None),
        ("checkpoint_ledger", true, Some(Durability::Durable)),
    ] {
        c.bench_function(name, |b| {
            let s = saving.get_or_insert_with(Saving::new);
            b.iter(|| s.poll(durable, totals))
        });
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let mut file = std::fs::File::create(dir.path().join("fsync")).expect("create");
    let page = [0x5a_u8; 4096];
    c.bench_function("fsync_bare", |b| {
        b.iter(|| {
            file.seek(SeekFrom::Start(0)).expect("seek");
            file.write_all(&page).expect("write");
            file.sync_data().expect("fdatasync")
        })
    });
}

/// `Ledger::calendar(Period::Day, …)` over ten years: one source, and the combined series
/// of 100.
fn read(c: &mut Criterion) {
    for (name, n) in [
        ("ledger_calendar_day_10y_one_source", 1),
        ("ledger_calendar_day_10y_combined_100", 100),
    ] {
        let mut filled: Option<Filled> = None;
        c.bench_function(name, |b| {
            let f = filled.get_or_insert_with(|| {
                let sources: Vec<String> = (0..n).map(|i| format!("source-{i:03}")).collect();
                let f = fill(&sources);
                let source = (n == 1).then_some("source-000");
                let rows = f
                    .ledger
                    .calendar(Period::Day, source, None, None)
                    .expect("calendar");
                assert_eq!(rows.len() as i64, days());
                let total = rows
                    .iter()
                    .fold(Counters::default(), |a, r| a.saturating_add(r.totals));
                assert_eq!(total.total_download, f.totals.total_download * n as u64);
                f
            });
            let source = (n == 1).then_some("source-000");
            b.iter(|| {
                black_box(
                    f.ledger
                        .calendar(Period::Day, black_box(source), None, None)
                        .expect("calendar"),
                )
            })
        });
    }
}

/// Every ledger benchmark.
pub fn ledger(c: &mut Criterion) {
    count(c);
    write(c);
    read(c);
}
