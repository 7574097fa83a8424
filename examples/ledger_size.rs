//! The calendar ledger's size on disk after ten years of one source (issue 19's goal):
//! 5-minute buckets kept 48 hours, hourly ones 400 days, days, months and years forever.
//!
//! Ten years of traffic are written a day at a time (one `Ledger::write` per day, holding
//! its 288 5-minute, 24 hourly, daily, monthly and yearly buckets), pruned once a
//! simulated day as the daemon's checkpoints prune; then a last day is counted as the
//! daemon counts it, a poll every 2 s, each poll's batch written after it and a synced one
//! every 30 s (the default `save_interval`). It prints the file's size and the WAL's at
//! the end, with the bucket counts. `--no-prune` leaves the finer buckets in.
//!
//! ```text
//! cargo run --release --features ledger --example ledger_size              # a temp directory
//! cargo run --release --features ledger --example ledger_size -- ./ledger  # keep the file
//! cargo run --release --features ledger --example ledger_size -- --no-prune
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use torrent_stats::ledger::calendar::{self, Bucket};
use torrent_stats::ledger::{Batch, Ledger, Period, Retention, SourceLedger, SourceState, FILE};
use torrent_stats::{Accumulator, Counters};

/// 2017-01-01T00:00:00+01:00, Europe/Berlin.
const EPOCH: i64 = 1_483_225_200;
/// Ten years of days, 2017 to 2026.
const DAYS: i64 = 3652;
/// Seconds between polls.
const POLL: i64 = 2;
/// Polls between synced saves (`save_interval` 30 s).
const CHECKPOINT_POLLS: i64 = 15;
/// Average bytes per second of each counter.
const RATES: [u64; 4] = [1_250_000, 4_500_000, 1_187_500, 4_275_000];

fn traffic(secs: i64) -> Counters {
    let [a, b, c, d] = RATES.map(|r| r * secs.max(0) as u64);
    Counters {
        total_upload: a,
        total_download: b,
        total_payload_upload: c,
        total_payload_download: d,
    }
}

/// Bytes of `path` on disk, 0 if absent.
fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn sibling(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// The `period` buckets of `[start, end)` (5-minute or hourly), each with its traffic.
fn sub_day(period: Period, ledger: &Ledger, start: i64, end: i64) -> Vec<(Bucket, Counters)> {
    let tz = ledger.time_zone();
    let mut rows = Vec::new();
    let mut t = start;
    while t < end {
        let b = calendar::bucket(period, tz, t);
        t = b.end;
        let secs = b.end - b.start;
        rows.push((b, traffic(secs)));
    }
    rows
}

fn main() -> anyhow::Result<()> {
    let mut prune = true;
    let mut keep = None;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--no-prune" => prune = false,
            dir => keep = Some(std::path::PathBuf::from(dir)),
        }
    }
    let temp = tempfile::tempdir()?;
    let dir = keep.unwrap_or_else(|| temp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(FILE);
    anyhow::ensure!(
        !path.exists(),
        "{} exists: give a new directory",
        path.display()
    );
    let tz = calendar::time_zone("Europe/Berlin")?;
    let ledger = Arc::new(Ledger::open(&dir, tz.clone(), Retention::default())?);
    let began = Instant::now();

    // Ten years less a day, a day's batch at a time.
    let mut totals = Counters::default();
    let mut day = calendar::bucket(Period::Day, &tz, EPOCH);
    for _ in 0..DAYS - 1 {
        let bytes = traffic(day.end - day.start);
        totals = totals.saturating_add(bytes);
        let mut rows = sub_day(Period::FiveMin, &ledger, day.start, day.end);
        rows.extend(sub_day(Period::Hour, &ledger, day.start, day.end));
        for p in [Period::Day, Period::Month, Period::Year] {
            rows.push((calendar::bucket(p, &tz, day.start), bytes));
        }
        let batch = Batch {
            source: "daemon".into(),
            rows,
            state: SourceState {
                accounted: totals,
                latest: day.end - 1,
                imports: 0,
                resets: 0,
            },
            adjustments: Vec::new(),
        };
        ledger.write(&batch, false)?;
        if prune {
            ledger.prune(day.end)?;
        }
        day = calendar::bucket(Period::Day, &tz, day.end);
    }
    let filled = began.elapsed();

    // The last day as the daemon counts it.
    let mut acc = Accumulator {
        totals,
        updated: (day.start - 1) as u64,
        ..Accumulator::default()
    };
    let mut book = SourceLedger::open(ledger.clone(), "daemon", &acc, day.start)?;
    let step = traffic(POLL);
    let mut wal_peak = 0;
    let mut polls = 0;
    let mut now = day.start;
    while now + POLL < day.end {
        now += POLL;
        polls += 1;
        acc.totals = acc.totals.saturating_add(step);
        acc.updated = now as u64;
        book.count(step, now);
        let batch = book.take(&acc, None);
        let durable = polls % CHECKPOINT_POLLS == 0;
        ledger.write(&batch, durable)?;
        book.finish(batch, true, durable);
        if prune && polls % 1800 == 0 {
            ledger.prune(now)?;
        }
        wal_peak = wal_peak.max(size(&sibling(&path, "-wal")));
    }
    let polled = began.elapsed() - filled;

    let count = |p: Period, source: Option<&str>| -> anyhow::Result<usize> {
        Ok(ledger.calendar(p, source, None, None)?.len())
    };
    let mut rows = Vec::new();
    for p in Period::ALL {
        rows.push(format!(
            "{p} {}+{}",
            count(p, Some("daemon"))?,
            count(p, None)?
        ));
    }
    let accounting = ledger.accounting(Some("daemon"))?;
    anyhow::ensure!(accounting.holds(), "the invariant: {accounting:?}");
    let (db, wal) = (size(&path), size(&sibling(&path, "-wal")));
    drop(book);
    let ledger = Arc::into_inner(ledger).context("the ledger is still shared")?;
    drop(ledger);
    println!(
        "ten years of one source, {}: {} days written in {:.1} s, then a day of {polls} polls of 2 s \
         in {:.1} s",
        if prune { "pruned" } else { "not pruned" },
        DAYS - 1,
        filled.as_secs_f64(),
        polled.as_secs_f64()
    );
    println!("buckets (source+combined): {}", rows.join(", "));
    println!(
        "while open: {} {db} bytes ({:.2} MiB), -wal {wal} bytes (peak {wal_peak}); \
         closed: {} bytes ({:.2} MiB), -wal {}",
        FILE,
        db as f64 / 1_048_576.0,
        size(&path),
        size(&path) as f64 / 1_048_576.0,
        size(&sibling(&path, "-wal"))
    );
    Ok(())
}
