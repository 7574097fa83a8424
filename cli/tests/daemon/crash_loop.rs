//! Issue 9's crash-loop and clock-jump suites, against the daemon binary on a `sim` source
//! (`update_interval` 1 s, `save_interval` 5 s).
//!
//! **Crash loop** (`crash_loop_kill_9_loses_at_most_one_poll`): the daemon is killed with
//! `kill -9` and restarted on the same config dir, 20 times (200 with
//! `TORRENT_STATS_LONG=1`). The kill moments, drawn from a seeded xorshift (the seed is
//! printed; `CRASH_LOOP_SEED=N` replays a run), take turns between
//! - `kill -9` after a random delay of 0–2 s once the daemon listens (start-up included),
//! - SIGKILL at the first or second poll tick, −1 ms to +2 ms: the ticks are timed from
//!   the log timestamp of the daemon's first poll (`counting a new session`); tokio's
//!   timer fires up to about a millisecond late and a poll with its fast save takes about
//!   0.3 ms, so some kills land before the poll, some between the poll and its save's
//!   rename, most after;
//! - the same at the fifth tick, −1 ms to +3 ms, where the first checkpoint (durable
//!   totals save with fsync and `.bak`, then the history save) runs.
//!
//! The timed kills are sent from this process (kill(2)), not through kill(1), whose fork
//! and exec would blur the aim by a millisecond or more; the totals are read over RPC 5 ms
//! before. Temp files a kill left behind (a save killed between create and rename) are
//! counted and printed: they show which kills landed mid-save.
//!
//! After each kill: every file in the config dir parses (temp files a kill left behind are
//! counted, not parsed: they are never read), the daemon starts again without a recovery
//! or a refusal, the totals never decrease (the file across crashes, the restarted daemon
//! against the file), and the loss is at most one poll: the totals read over RPC
//! (`stats.get_totals`) right before the kill, less the totals in the file after it
//! (`totals --offline`), is at most [`INTERVAL`] + [`SLACK`] seconds of the sim's rate, and
//! so is any excess (no double counting); the restarted daemon starts from the file, plus
//! no more than its own session has moved. Since that read must come before the kill, the
//! loss is also measured against the sim's ground truth at the signal (`session_loss`,
//! the method of `crash.rs`): what the killed session had moved by then, less what
//! the file gained, is at most the same bound.
//!
//! The calendar ledger (`ledger.sqlite3`, saved after the totals file at every save) is
//! checked too. After each kill, in the file as the kill left it: its invariant holds
//! (daily, monthly and yearly sums each equal the totals it accounts for less its
//! adjustments), it has no adjustment (the sim's totals start at 0 and are never reset or
//! imported), and its daily sum is at most the totals file's and lags it, and the RPC
//! read before the kill, by at most the same bound. After each restart timed from the
//! first poll, once that poll's save is logged (`totals saved`): the restarted daemon
//! has reconciled, so the daily sum holds at least the totals file's totals after the
//! kill (the bytes the kill kept out of the ledger are in it) and at most the daemon's
//! totals over RPC just after. After the last, clean stop: the daily sum is the totals
//! file's to the byte.
//!
//! **Clock jumps** (`clock_jumps_keep_totals_and_history_sane`): the daemon runs under
//! libfaketime (Debian's `faketime`; the test fails without it) with the offset read from
//! a file on every call, so the wall clock can be moved while it runs. The monotonic clock
//! is not faked (`FAKETIME_DONT_FAKE_MONOTONIC=1`): a real wall-clock change (NTP step,
//! `date -s`) leaves it alone. Runs on one config dir: real time; restarted a day back,
//! then jumped two days forward and two days back while running; restarted a day ahead;
//! restarted on real time. Each phase checks that the totals never decrease and grow with
//! the traffic (not by a day of it), that the history gains a point per poll (and the 5 s
//! level its roll-ups) whatever the clock did,
//! its `_last_update` follows the daemon's (faked) clock, and that `stats.get_status`
//! shows fresh times on the faked clock and no errors.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use serde_json::Value;
use tokio::runtime::Runtime;
use torrent_stats::remote::RemoteStats;
use torrent_stats::rpc::client::Client;
use torrent_stats::rpc::tls::CertPolicy;
use torrent_stats::unstable;
use torrent_stats::unstable::History;
use torrent_stats::{Accumulator, Counters};
use torrent_stats::{HostConfig, SourcesFile};

use crate::support::daemon::{offline_totals, DaemonProc, SIM};
use crate::support::ledger;
use crate::support::{counter_values, source_files, unix_now, XorShift, BIN, COUNTERS};

/// Sim rates, bytes/s; payload counters run at 95 % of them.
const UP: u64 = 4_000_000;
const DOWN: u64 = 16_000_000;
const PEERS: u64 = 3;
/// Seconds between polls (`update_interval`).
const INTERVAL: f64 = 1.0;
/// Seconds of traffic allowed on top of one poll: tick jitter on a loaded 2-core machine,
/// the RPC read and the kill's own latency.
const SLACK: f64 = 0.5;
const CONF: &str = "update_interval = 1\nlength = 150\nsave_interval = 5\n";
const LOG_FILTER: &str = "info,torrent_stats::stats::poller=trace";
/// Logged by the poll task at its first poll (the first tick).
const FIRST_POLL: &str = "counting a new session";
/// Logged by the poll task (trace) after a save of the totals file and the ledger.
const SAVED: &str = "totals saved";
/// Logged at start when the totals file holds bytes the ledger had not saved (a kill
/// between the two saves).
const RECONCILED: &str = "the totals file holds bytes the ledger had not saved";
/// Log lines that must never appear: a recovery, a refusal, a panic.
const BAD_LOG: [&str; 6] = [
    "recovered from backup",
    "unusable",
    "refusing",
    "panicked",
    "corrupt",
    " ERROR ",
];

fn source() -> String {
    format!("sim:up={UP},down={DOWN},peers={PEERS}")
}

/// Bytes per second of each counter.
fn rates() -> [f64; 4] {
    let (up, down) = (UP as f64, DOWN as f64);
    [up, down, up * 0.95, down * 0.95]
}

fn ensure_not_below(ctx: &str, before: &Counters, after: &Counters) -> Result<()> {
    for ((name, b), a) in COUNTERS
        .iter()
        .zip(counter_values(before))
        .zip(counter_values(after))
    {
        ensure!(a >= b, "{ctx}: {name} went down from {b} to {a}");
    }
    Ok(())
}

/// `after − before` per counter in seconds of its traffic, the smallest and the largest.
fn gain_secs(before: &Counters, after: &Counters) -> (f64, f64) {
    let mut range = (f64::MAX, f64::MIN);
    for ((b, a), rate) in counter_values(before)
        .into_iter()
        .zip(counter_values(after))
        .zip(rates())
    {
        let secs = (a as f64 - b as f64) / rate;
        range = (range.0.min(secs), range.1.max(secs));
    }
    range
}

/// A fresh config dir with `stats.conf`.
fn config_dir() -> Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    fs::write(dir.path().join("stats.conf"), CONF)?;
    Ok(dir)
}

/// The daemon on `dir` with the sim source, the poll task's trace lines in its log, and
/// `env` set.
fn start(dir: tempfile::TempDir, env: &[(&str, &str)]) -> Result<DaemonProc> {
    let mut command = Command::new(BIN);
    command
        .arg("daemon")
        .arg("--config-dir")
        .arg(dir.path())
        .args(["--port", "0", "--web-port", "0", "--source", &source()])
        .env("RUST_LOG", LOG_FILTER)
        .env_remove("TORRENT_STATS_SOURCE");
    for (k, v) in env {
        command.env(k, v);
    }
    let d = DaemonProc::launch(command, dir)?;
    check_log(&d, "at start")?;
    Ok(d)
}

fn check_log(d: &DaemonProc, ctx: &str) -> Result<()> {
    let log = d.log();
    for bad in BAD_LOG {
        ensure!(
            !log.contains(bad),
            "{ctx}: the daemon logged {bad:?}:\n{log}"
        );
    }
    Ok(())
}

/// A logged-in RPC client of `d`.
fn connect(rt: &Runtime, d: &DaemonProc) -> Result<Client> {
    rt.block_on(async {
        let mut c = Client::connect("127.0.0.1", d.port(), CertPolicy::AnyCertificate).await?;
        c.set_timeout(Duration::from_secs(10));
        c.login("localclient", &d.password).await?;
        Ok::<_, anyhow::Error>(c)
    })
    .with_context(|| format!("connect to the daemon; its log:\n{}", d.log()))
}

fn get_totals(rt: &Runtime, c: &mut Client) -> Result<Counters> {
    Ok(rt.block_on(c.stats().get_totals())?)
}

fn call(rt: &Runtime, c: &mut Client, method: &str, args: Vec<Value>) -> Result<Value> {
    rt.block_on(c.call(method, args, serde_json::Map::new()))
        .with_context(|| method.to_string())
}

/// What the files in `dir` look like after a kill: every file parses, except temp files
/// a save was writing when it was killed (never read: the next save replaces them), which
/// are returned.
fn check_files(dir: &Path, ctx: &str) -> Result<Vec<String>> {
    let mut leftovers = Vec::new();
    let source_dir = source_files(dir, SIM);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for entry in fs::read_dir(&at)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let name = path.strip_prefix(dir)?.to_string_lossy().into_owned();
            let bad = |why: String| anyhow!("{ctx}: {name} does not parse: {why}");
            // The sim source's own files (`sources/sim/…`) are matched by their file name.
            let in_source = path.parent() == Some(source_dir.as_path());
            let key = match path.file_name() {
                Some(file) if in_source => file.to_string_lossy().into_owned(),
                _ => name.clone(),
            };
            match (in_source, key.as_str()) {
                (_, n) if n.starts_with('.') && n.ends_with(".lock") => {}
                (_, n)
                    if n.starts_with('.') && (n.ends_with(".tmp") || n.ends_with(".tmp.bak")) =>
                {
                    leftovers.push(name.clone())
                }
                (true, "stats.totals" | "stats.totals.bak") => {
                    unstable::read::<Accumulator>(&path).map_err(|e| bad(e.to_string()))?;
                }
                (true, "stats.history" | "stats.history.bak") => {
                    unstable::read::<History>(&path).map_err(|e| bad(e.to_string()))?;
                }
                (false, "sources.toml" | "sources.toml.bak") => {
                    let file =
                        unstable::read::<SourcesFile>(&path).map_err(|e| bad(e.to_string()))?;
                    ensure!(
                        file.sources.len() == 1 && file.sources[0].name.as_str() == SIM,
                        "{ctx}: {name} holds {file:?}, not the one sim source"
                    );
                }
                (false, "ledger.toml") => {
                    unstable::read::<torrent_stats::ledger::LedgerSettings>(&path)
                        .map_err(|e| bad(e.to_string()))?;
                }
                // Read through SQLite by `ledger_after_kill`.
                (false, "ledger.sqlite3" | "ledger.sqlite3-wal" | "ledger.sqlite3-shm") => {}
                (false, "core.conf" | "core.conf.bak") => {
                    unstable::read::<HostConfig>(&path).map_err(|e| bad(e.to_string()))?;
                }
                (false, "stats.conf" | "stats.conf.bak") => {
                    unstable::read_stats_conf(&path)
                        .map_err(|e| bad(e.to_string()))?
                        .ok_or_else(|| bad("gone".into()))?;
                }
                (false, "listen.toml") => {
                    let text = fs::read_to_string(&path)?;
                    ensure!(
                        text.lines().any(|l| l.starts_with("rpc = \"127.0.0.1:")),
                        "{ctx}: listen.toml names no RPC address: {text:?}"
                    );
                }
                (false, "auth") => {
                    let text = fs::read_to_string(&path)?;
                    ensure!(
                        text.lines().any(|l| l.starts_with("localclient:")),
                        "{ctx}: auth has no localclient line: {text:?}"
                    );
                }
                (false, "ssl/daemon.cert" | "ssl/daemon.pkey") => {
                    let text = fs::read_to_string(&path)?;
                    ensure!(
                        text.starts_with("-----BEGIN ") && text.trim_end().ends_with("-----"),
                        "{ctx}: {name} is not PEM"
                    );
                }
                _ => bail!("{ctx}: unexpected file {name} in the config dir"),
            }
        }
    }
    leftovers.sort();
    Ok(leftovers)
}

/// Seconds of the killed session's traffic that the file lacks, `None` if the file does
/// not hold that session (killed before its first save). The sim's counters are exactly
/// `rate × (t − start)`, its session id `sim-<pid>-<start, unix ns>`: by the signal the
/// session had moved `rate × (signalled − start)`; the file must have gained that, less
/// what the loss is allowed, and no more than it had moved by the exit (no double count).
fn session_loss(
    cfg: &Path,
    pid: u32,
    prev: &Counters,
    after: &Counters,
    signalled: f64,
    exited: f64,
) -> Result<Option<f64>> {
    let acc = unstable::read::<Accumulator>(&source_files(cfg, SIM).join("stats.totals"))
        .map_err(|e| anyhow!("stats.totals: {e}"))?;
    let Some(start) = acc
        .session
        .as_ref()
        .and_then(|s| {
            s.0.strip_prefix(&format!("sim-{pid}-"))?
                .parse::<u128>()
                .ok()
        })
        .map(|ns| ns as f64 / 1e9)
    else {
        return Ok(None);
    };
    let mut worst = f64::MIN;
    for (((name, rate), p), a) in COUNTERS
        .iter()
        .zip(rates())
        .zip(counter_values(prev))
        .zip(counter_values(after))
    {
        let gained = (a - p) as f64;
        let loss = (signalled - start) - gained / rate;
        let over = gained / rate - (exited - start);
        ensure!(
            over <= 0.05,
            "{name}: the file gained {gained} bytes, {over:.3} s of traffic more than the \
             session moved from its start to the daemon's exit"
        );
        worst = worst.max(loss);
    }
    Ok(Some(worst))
}

/// Unix seconds of a log line's timestamp (`2026-11-26T15:33:38.720786Z  INFO …`, UTC).
fn log_time(line: &str) -> Option<f64> {
    let stamp = line.split_whitespace().next()?.strip_suffix('Z')?;
    let (date, time) = stamp.split_once('T')?;
    let mut ymd = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (ymd.next()??, ymd.next()??, ymd.next()??);
    let mut hms = time.split(':');
    let (h, mi) = (
        hms.next()?.parse::<i64>().ok()?,
        hms.next()?.parse::<i64>().ok()?,
    );
    let s: f64 = hms.next()?.parse().ok()?;
    // Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    Some((days * 86_400 + h * 3_600 + mi * 60) as f64 + s)
}

/// The unix time the daemon logged its first poll at (`counting a new session`): its poll
/// ticks come every [`INTERVAL`] after it, a checkpoint with every fifth.
fn first_poll_time(d: &DaemonProc) -> Result<f64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = d.log();
        if let Some(line) = log.lines().find(|l| l.contains(FIRST_POLL)) {
            return log_time(line).with_context(|| format!("no timestamp in {line:?}"));
        }
        ensure!(
            Instant::now() < deadline,
            "no {FIRST_POLL:?} line within 10 s; log:\n{log}"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// Sleeps until unix time `t` (the test's and the daemon's wall clock).
fn sleep_until_unix(t: f64) {
    let left = t - unix_now();
    if left > 0.0 {
        thread::sleep(Duration::from_secs_f64(left));
    }
}

/// SIGKILL sent straight from this process (`Child::kill`, i.e. kill(2), in
/// `DaemonProc`'s drop, which also reaps it): it lands within microseconds of the moment
/// aimed at, where `kill -9` (a fork and exec of kill(1)) takes a millisecond or more.
/// The config dir was taken out of `d` beforehand.
fn sigkill_now(d: DaemonProc) {
    drop(d);
}

/// `counters` as the ledger's signed amounts.
fn amounts(c: &Counters) -> [i64; 4] {
    counter_values(c).map(|v| i64::try_from(v).expect("fits the ledger's integers"))
}

/// `a − b` per counter in seconds of its traffic, the smallest and the largest.
fn lag_secs(a: [i64; 4], b: [i64; 4]) -> (f64, f64) {
    let mut range = (f64::MAX, f64::MIN);
    for ((a, b), rate) in a.into_iter().zip(b).zip(rates()) {
        let secs = (a - b) as f64 / rate;
        range = (range.0.min(secs), range.1.max(secs));
    }
    range
}

/// The ledger's invariant for the sim source, with nothing before it; its daily sum.
fn ledger_days(a: &torrent_stats::ledger::Accounting, ctx: &str) -> Result<[i64; 4]> {
    ensure!(
        a.holds(),
        "{ctx}: the ledger's invariant does not hold (days, months and years must each be \
         accounted − before): {a:?}"
    );
    ensure!(
        a.before == [0; 4],
        "{ctx}: the ledger recorded adjustments (start, reset, import or lost bytes) for a \
         source that began at 0 and was never reset: {a:?}"
    );
    Ok(a.days)
}

/// The ledger as a kill left it (the daemon is gone): its invariant holds, and its daily
/// sum is at most `file` (the totals file after the kill), lagging it and `rpc` (the
/// totals read just before the kill) by at most `bound` seconds of traffic. Answers the
/// lag behind the file, in seconds.
fn ledger_after_kill(
    cfg: &Path,
    file: &Counters,
    rpc: &Counters,
    bound: f64,
    ctx: &str,
) -> Result<f64> {
    let Some(l) = ledger::open(cfg)? else {
        // Killed before the ledger was created: nothing was counted.
        ensure!(
            *file == Counters::default(),
            "{ctx}: no ledger, but the totals file holds {file:?}"
        );
        return Ok(0.0);
    };
    let a = ledger::accounting(&l, SIM)?;
    let days = ledger_days(&a, &format!("{ctx}, after the kill"))?;
    let (least, most) = lag_secs(amounts(file), days);
    ensure!(
        least >= 0.0,
        "{ctx}: the ledger's days hold more than the totals file: {days:?} > {file:?}"
    );
    ensure!(
        most <= bound,
        "{ctx}: the ledger's days lag the totals file by {most:.3} s of traffic (more than \
         one poll, {bound} s): {days:?}, file {file:?}"
    );
    let (_, loss) = lag_secs(amounts(rpc), days);
    ensure!(
        loss <= bound,
        "{ctx}: the ledger's days lack {loss:.3} s of the traffic read over RPC before the \
         kill (more than one poll, {bound} s): {days:?}, RPC {rpc:?}"
    );
    Ok(most)
}

/// The ledger of the restarted daemon `d` once its first poll is saved: reconciled with
/// `file` (the totals file it started from), so its daily sum holds at least `file` and
/// at most the daemon's totals over RPC right after.
fn ledger_after_restart(
    rt: &Runtime,
    client: &mut Client,
    d: &DaemonProc,
    cfg: &Path,
    file: &Counters,
    ctx: &str,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = d.log();
        let first = log.find(FIRST_POLL);
        if first.is_some_and(|at| log[at..].contains(SAVED)) {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "{ctx}: no {SAVED:?} after {FIRST_POLL:?} within 10 s; log:\n{log}"
        );
        thread::sleep(Duration::from_millis(5));
    }
    let l = ledger::open(cfg)?.context("no ledger after the first poll's save")?;
    let a = ledger::accounting(&l, SIM)?;
    let rpc = get_totals(rt, client)?;
    let days = ledger_days(&a, &format!("{ctx}, after the restart"))?;
    let (least, _) = lag_secs(days, amounts(file));
    ensure!(
        least >= 0.0,
        "{ctx}: the restarted daemon's ledger holds less than the totals file it started \
         from: {days:?} < {file:?}"
    );
    let (least, _) = lag_secs(amounts(&rpc), days);
    ensure!(
        least >= 0.0,
        "{ctx}: the ledger's days hold more than the daemon's totals: {days:?} > {rpc:?}"
    );
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Moment {
    /// `kill -9` this many ms after the daemon listens.
    Delay(u64),
    /// SIGKILL at poll tick `n` (after the first poll), shifted by `offset_us`: before the
    /// poll, during it, during the fast save that follows it, or just after.
    AtPoll { n: u64, offset_us: i64 },
    /// The same at the fifth tick, where the first checkpoint (durable totals save with
    /// fsync and `.bak`, then the history save) runs next to the poll.
    AtCheckpoint { offset_us: i64 },
}

#[test]
fn crash_loop_kill_9_loses_at_most_one_poll() -> Result<()> {
    let began = Instant::now();
    let long = std::env::var("TORRENT_STATS_LONG").is_ok_and(|v| v == "1");
    let cycles: u32 = if long { 200 } else { 20 };
    let mut rng = XorShift::from_env_or_clock("CRASH_LOOP_SEED");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut dir = config_dir()?;
    let cfg = dir.path().to_path_buf();
    let bound = INTERVAL + SLACK;
    // The totals in the file after the last kill.
    let mut file = Counters::default();
    let (mut worst_loss, mut worst_excess, mut worst_truth) = (f64::MIN, f64::MIN, f64::MIN);
    let mut unsaved = 0;
    let mut mid_save = Vec::new();
    let mut worst_ledger_lag = 0.0_f64;
    let mut restarts_checked = 0;
    // Restarts that found bytes in the totals file the ledger lacked.
    let mut reconciled = 0;
    for cycle in 1..=cycles {
        let moment = match cycle % 5 {
            0 => Moment::AtCheckpoint {
                offset_us: rng.between(0, 4000) as i64 - 1000,
            },
            c if c % 2 == 1 => Moment::Delay(rng.between(0, 2000)),
            _ => Moment::AtPoll {
                n: rng.between(1, 2),
                offset_us: rng.between(0, 3000) as i64 - 1000,
            },
        };
        let spawned = Instant::now();
        let mut d = start(dir, &[])?;
        // Kept out of `d`: a kill drops `d` with the temp dir it then holds.
        dir = std::mem::replace(&mut d.dir, tempfile::tempdir()?);
        let ctx = format!("cycle {cycle}/{cycles} ({moment:?}, pid {})", d.pid);
        let mut client = connect(&rt, &d)?;
        let at_start = get_totals(&rt, &mut client)?;
        // The restarted daemon starts from the file, plus what its new session moved.
        ensure_not_below(&format!("{ctx}, at restart vs the file"), &file, &at_start)?;
        let (_, over) = gain_secs(&file, &at_start);
        let lived = spawned.elapsed().as_secs_f64();
        ensure!(
            over <= lived + SLACK,
            "{ctx}: the restarted daemon reports {over:.3} s of traffic more than the file, \
             but it has run only {lived:.3} s: {file:?} -> {at_start:?}"
        );

        let pid = d.pid;
        // (totals over RPC right before, unix time just before the signal, just after
        // the exit)
        let (before, signalled, exited) = match moment {
            Moment::Delay(ms) => {
                thread::sleep(Duration::from_millis(ms));
                reconciled += usize::from(d.log().contains(RECONCILED));
                let before = get_totals(&rt, &mut client)?;
                let signalled = unix_now();
                d.kill9()?;
                (before, signalled, unix_now())
            }
            Moment::AtPoll { .. } | Moment::AtCheckpoint { .. } => {
                let (n, offset_us) = match moment {
                    Moment::AtPoll { n, offset_us } => (n, offset_us),
                    Moment::AtCheckpoint { offset_us } => (5, offset_us),
                    Moment::Delay(_) => unreachable!(),
                };
                let target = first_poll_time(&d)? + n as f64 * INTERVAL + offset_us as f64 / 1e6;
                ledger_after_restart(&rt, &mut client, &d, &cfg, &file, &ctx)?;
                restarts_checked += 1;
                reconciled += usize::from(d.log().contains(RECONCILED));
                // The totals right before: read 5 ms ahead, so the read does not delay
                // the kill.
                sleep_until_unix(target - 0.005);
                let before = get_totals(&rt, &mut client)?;
                sleep_until_unix(target);
                let signalled = unix_now();
                sigkill_now(d);
                (before, signalled, unix_now())
            }
        };
        drop(client);
        let leftovers = check_files(dir.path(), &ctx)?;
        if !leftovers.is_empty() {
            mid_save.push(format!("cycle {cycle}: {leftovers:?}"));
        }
        ensure_not_below(&format!("{ctx}, over RPC"), &at_start, &before)?;
        let after = offline_totals(&cfg)?;
        ensure_not_below(&format!("{ctx}, the file across the crash"), &file, &after)?;
        // Loss: what was counted (over RPC) before the kill and is not in the file.
        let (least, most) = gain_secs(&before, &after);
        let (loss, excess) = (-least, most);
        ensure!(
            loss <= bound,
            "{ctx}: the crash lost {loss:.3} s of traffic (more than one poll, {bound} s): \
             {before:?} over RPC before the kill, {after:?} in the file"
        );
        ensure!(
            excess <= bound,
            "{ctx}: the file holds {excess:.3} s of traffic more than the daemon reported \
             just before the kill: {before:?} -> {after:?}"
        );
        // The same against the sim's ground truth at the kill (see `session_loss`): what
        // the session had moved when the signal went, not what the daemon last reported.
        let truth = session_loss(&cfg, pid, &file, &after, signalled, exited)
            .with_context(|| ctx.clone())?;
        let ledger_lag = ledger_after_kill(&cfg, &after, &before, bound, &ctx)?;
        worst_ledger_lag = worst_ledger_lag.max(ledger_lag);
        if let Some(lost) = truth {
            ensure!(
                lost <= bound,
                "{ctx}: the file lacks {lost:.3} s of the traffic the session had moved when \
                 it was killed (more than one poll, {bound} s): {file:?} -> {after:?}"
            );
            worst_truth = worst_truth.max(lost);
        } else {
            // Killed before its first save: the file must be as it was.
            ensure!(
                after == file,
                "{ctx}: the file changed, but not by the killed session"
            );
            unsaved += 1;
        }
        println!(
            "{ctx}: {loss:.3} s of traffic below the RPC read (negative: the file is ahead), \
             {} s of the session's traffic at the kill, the ledger {ledger_lag:.3} s behind \
             the file, temp files left: {leftovers:?}",
            truth.map_or("- (no save yet)".to_string(), |t| format!("{t:.3}"))
        );
        worst_loss = worst_loss.max(loss);
        worst_excess = worst_excess.max(excess);
        file = after;
    }

    // A last start on the crashed-into files, stopped cleanly.
    let d = start(dir, &[])?;
    let mut client = connect(&rt, &d)?;
    let at_start = get_totals(&rt, &mut client)?;
    ensure_not_below("last start", &file, &at_start)?;
    thread::sleep(Duration::from_millis(1500));
    let before = get_totals(&rt, &mut client)?;
    drop(client);
    check_log(&d, "last run")?;
    let stopped = d.stop()?;
    // The final save replaced whatever temp file a killed save had left.
    let leftovers = check_files(stopped.path(), "after a clean stop")?;
    ensure!(
        leftovers.is_empty(),
        "temp files after a clean stop: {leftovers:?}"
    );
    let after = offline_totals(&cfg)?;
    ensure_not_below("after a clean stop", &before, &after)?;
    let l = ledger::open(&cfg)?.context("no ledger after a clean stop")?;
    let days = ledger_days(&ledger::accounting(&l, SIM)?, "after a clean stop")?;
    ensure!(
        days == amounts(&after),
        "after a clean stop: the ledger's days {days:?} are not the totals file's {after:?}"
    );
    println!(
        "{cycles} kill -9 cycles in {:.1} s: the file at most {worst_loss:.3} s of traffic \
         below the RPC read before the kill and at most {worst_excess:.3} s above it; at \
         most {worst_truth:.3} s below what the session had moved at the kill (bound \
         {bound} s); {unsaved} kills came before the first save; {} kills left a save's \
         temp file (killed mid-save): {mid_save:?}; the ledger at most \
         {worst_ledger_lag:.3} s of traffic behind the totals file after a kill, checked \
         after {restarts_checked} restarts' first poll; {reconciled} restarts found bytes \
         the ledger lacked",
        began.elapsed().as_secs_f64(),
        mid_save.len()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Clock jumps.

/// libfaketime's multi-threaded build (the daemon runs tokio worker threads).
pub(crate) fn libfaketime() -> Result<PathBuf> {
    let mut dirs = vec![PathBuf::from("/usr/lib"), PathBuf::from("/usr/local/lib")];
    if let Ok(entries) = fs::read_dir("/usr/lib") {
        dirs.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()));
    }
    dirs.into_iter()
        .map(|d| d.join("faketime/libfaketimeMT.so.1"))
        .find(|p| p.is_file())
        .context(
            "libfaketime is missing (no faketime/libfaketimeMT.so.1 under /usr/lib): \
             apt-get install faketime (scripts/test.sh installs it)",
        )
}

/// A daemon run under libfaketime, its wall-clock offset read from `rc` on every call.
struct Faked<'a> {
    rt: &'a Runtime,
    rc: &'a Path,
    d: DaemonProc,
    client: Client,
    /// Unix seconds (real) at the spawn.
    spawned: f64,
}

/// What the previous phase ended with.
#[derive(Debug, Default, Clone)]
struct Seen {
    totals: Counters,
    /// Points per level, `upload_rate` series.
    points: [usize; 4],
}

const LEVELS: [u64; 4] = [1, 5, 30, 300];
const DAY: f64 = 86_400.0;

impl<'a> Faked<'a> {
    fn start(
        rt: &'a Runtime,
        rc: &'a Path,
        lib: &Path,
        dir: tempfile::TempDir,
        offset: &str,
    ) -> Result<Self> {
        fs::write(rc, format!("{offset}\n"))?;
        let spawned = unix_now();
        let lib = lib.to_string_lossy().into_owned();
        let rc_path = rc.to_string_lossy().into_owned();
        let d = start(
            dir,
            &[
                ("LD_PRELOAD", &lib),
                ("FAKETIME_TIMESTAMP_FILE", &rc_path),
                ("FAKETIME_NO_CACHE", "1"),
                ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
            ],
        )?;
        let client = connect(rt, &d)?;
        Ok(Faked {
            rt,
            rc,
            d,
            client,
            spawned,
        })
    }

    /// Moves the daemon's wall clock while it runs.
    fn jump(&self, offset: &str) -> Result<()> {
        fs::write(self.rc, format!("{offset}\n"))?;
        Ok(())
    }

    fn call(&mut self, method: &str, args: Vec<Value>) -> Result<Value> {
        call(self.rt, &mut self.client, method, args)
    }

    fn history(&mut self, level: usize) -> Result<Value> {
        self.call(
            "stats.get_stats",
            vec![
                serde_json::json!(["upload_rate", "download_rate", "num_peers"]),
                serde_json::json!(LEVELS[level]),
            ],
        )
    }

    /// Runs for `secs` and checks totals, history and status against the clock being
    /// `offset` seconds off and `seen` (the previous phase); returns what this phase saw.
    fn phase(&mut self, name: &str, offset: f64, secs: f64, seen: &Seen) -> Result<Seen> {
        let ctx = format!("{name} (clock {offset:+} s, pid {})", self.d.pid);
        let t0 = Instant::now();
        let first = get_totals(self.rt, &mut self.client)?;
        ensure_not_below(&format!("{ctx}, at its start"), &seen.totals, &first)?;
        let mut points0 = [0; 4];
        for (level, p) in points0.iter_mut().enumerate() {
            let h = self.history(level)?;
            *p = h["upload_rate"].as_array().map_or(0, Vec::len);
            ensure!(
                *p >= seen.points[level],
                "{ctx}: level {level} history shrank from {} to {p} points",
                seen.points[level]
            );
        }
        // Read the totals now and then: they never go down.
        let mut last = first;
        while t0.elapsed().as_secs_f64() < secs {
            thread::sleep(Duration::from_millis(500));
            let now = get_totals(self.rt, &mut self.client)?;
            ensure_not_below(&format!("{ctx}, while running"), &last, &now)?;
            last = now;
        }
        let elapsed = t0.elapsed().as_secs_f64();
        // Grown with the traffic (the sim counts on the monotonic clock): no day of
        // traffic made up, none lost.
        let (least, most) = gain_secs(&first, &last);
        ensure!(
            least >= elapsed - INTERVAL - SLACK && most <= elapsed + INTERVAL + SLACK,
            "{ctx}: totals grew by {least:.3}..{most:.3} s of traffic in {elapsed:.3} s: \
             {first:?} -> {last:?}"
        );
        let faked_now = unix_now() + offset;
        let mut points = [0; 4];
        let mut newest = f64::NAN;
        for (level, p) in points.iter_mut().enumerate() {
            let h = self.history(level)?;
            let up = h["upload_rate"].as_array().context("upload_rate series")?;
            *p = up.len();
            let last_update = h["_last_update"].as_f64().context("_last_update")?;
            ensure!(
                h["_update_interval"] == serde_json::json!(LEVELS[level]),
                "{ctx}: level {level}: {h}"
            );
            if level == 0 {
                newest = last_update;
                // One point per poll, whatever the wall clock did.
                let polls = (elapsed / INTERVAL) as usize;
                ensure!(
                    *p >= (points0[0] + polls.saturating_sub(2)).min(150),
                    "{ctx}: the 1 s history went from {} to {p} points in {elapsed:.1} s",
                    points0[0]
                );
                ensure!(
                    up[0] == serde_json::json!(UP) && h["num_peers"][0] == serde_json::json!(PEERS),
                    "{ctx}: newest point {} B/s, {} peers; expected {UP}, {PEERS}",
                    up[0],
                    h["num_peers"][0]
                );
            }
            if level <= 1 {
                // Level 1 gets a point every 5 polls: within this phase, on its clock.
                ensure!(
                    last_update.is_finite()
                        && (last_update - faked_now).abs() <= LEVELS[level] as f64 + 3.0,
                    "{ctx}: level {level} _last_update {last_update} is not the daemon's \
                     clock ({faked_now:.0})"
                );
            }
            ensure!(
                last_update.is_finite() && last_update >= 0.0,
                "{ctx}: level {level} _last_update {last_update}"
            );
            ensure!(
                *p >= points0[level],
                "{ctx}: level {level} history shrank from {} to {p} points",
                points0[level]
            );
        }
        ensure!(
            points[1] > points0[1],
            "{ctx}: the 5 s history got no point in {elapsed:.1} s ({} -> {})",
            points0[1],
            points[1]
        );
        let status = self.call("stats.get_status", vec![])?;
        let fresh = |key: &str, within: f64| -> Result<()> {
            let t = status[key]
                .as_f64()
                .with_context(|| format!("{ctx}: status {key}: {status}"))?;
            ensure!(
                (t - faked_now).abs() <= within,
                "{ctx}: status {key} = {t:.0} is {:.0} s off the daemon's clock ({faked_now:.0}): \
                 {status}",
                t - faked_now
            );
            Ok(())
        };
        fresh("last_poll", 3.0)?;
        fresh("last_save", 3.0)?;
        fresh("last_checkpoint", 5.0 + 3.0)?;
        for (key, want) in [
            ("source_up", Value::Bool(true)),
            ("save_failing", Value::Bool(false)),
            ("last_error", Value::Null),
            ("failing_since", Value::Null),
            ("save_error", Value::Null),
            ("poll_errors", serde_json::json!(0)),
            ("save_errors", serde_json::json!(0)),
        ] {
            ensure!(status[key] == want, "{ctx}: status {key}: {status}");
        }
        ensure!(
            status["polls"]
                .as_u64()
                .is_some_and(|n| n as f64 >= elapsed - 2.0),
            "{ctx}: status polls: {status}"
        );
        check_log(&self.d, &ctx)?;
        println!(
            "{ctx}: +{most:.1} s of traffic in {elapsed:.1} s; history points {points0:?} -> \
             {points:?}, 1 s level's _last_update {:+.1} s from the real clock",
            newest - (faked_now - offset)
        );
        Ok(Seen {
            totals: last,
            points,
        })
    }

    /// The session started on the faked clock: libfaketime is in effect.
    fn check_faked(&mut self, offset: f64) -> Result<()> {
        let status = self.call("stats.get_status", vec![])?;
        let session = status["session"].as_str().context("status session")?;
        let nanos: f64 = session
            .rsplit('-')
            .next()
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("session {session:?}"))?;
        let started = nanos / 1e9;
        ensure!(
            (started - (self.spawned + offset)).abs() <= 10.0,
            "the daemon's session started at {started:.0} on its clock, not {:.0}: is \
             libfaketime in effect?",
            self.spawned + offset
        );
        Ok(())
    }

    /// SIGTERM (exit 0); every file parses and holds at least what was last seen.
    fn stop(self, seen: &Seen) -> Result<tempfile::TempDir> {
        let cfg = self.d.config_dir().to_path_buf();
        drop(self.client);
        let dir = self.d.stop()?;
        let leftovers = check_files(dir.path(), "after a clean stop")?;
        ensure!(
            leftovers.is_empty(),
            "temp files after a clean stop: {leftovers:?}"
        );
        let after = offline_totals(&cfg)?;
        ensure_not_below("after a clean stop", &seen.totals, &after)?;
        Ok(dir)
    }
}

#[test]
#[ignore = "needs faketime (libfaketime)"]
fn clock_jumps_keep_totals_and_history_sane() -> Result<()> {
    let began = Instant::now();
    let lib = libfaketime()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let rc_dir = tempfile::tempdir()?;
    let rc = rc_dir.path().join("faketimerc");
    // Long enough for a checkpoint (5 s) and a 5 s history point in every phase.
    let secs = 6.5;

    let mut run = Faked::start(&rt, &rc, &lib, config_dir()?, "+0")?;
    let seen = run.phase("real clock", 0.0, secs, &Seen::default())?;
    let dir = run.stop(&seen)?;

    let mut run = Faked::start(&rt, &rc, &lib, dir, "-1d")?;
    run.check_faked(-DAY)?;
    let seen = run.phase("restarted a day back", -DAY, secs, &seen)?;
    run.jump("+1d")?;
    let seen = run.phase("jumped two days forward while running", DAY, secs, &seen)?;
    run.jump("-1d")?;
    let seen = run.phase("jumped two days back while running", -DAY, secs, &seen)?;
    let dir = run.stop(&seen)?;

    let mut run = Faked::start(&rt, &rc, &lib, dir, "+1d")?;
    run.check_faked(DAY)?;
    let seen = run.phase("restarted a day ahead", DAY, secs, &seen)?;
    let dir = run.stop(&seen)?;

    let mut run = Faked::start(&rt, &rc, &lib, dir, "+0")?;
    let seen = run.phase("restarted on the real clock", 0.0, secs, &seen)?;
    run.stop(&seen)?;
    println!("clock jumps: {:.1} s in all", began.elapsed().as_secs_f64());
    Ok(())
}
