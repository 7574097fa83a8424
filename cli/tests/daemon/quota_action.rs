//! A quota's action on the embedded engine, with the real daemon, a real transfer and a
//! wall clock the test moves (libfaketime; the monotonic clock stays real, as after an
//! NTP step).
//!
//! A leecher daemon (time zone `Europe/Berlin` in `ledger.toml`, polls every second) starts
//! at 23:50 local time of day D and downloads from a second daemon (real clock) at a rate
//! limit, under a daily quota of a few MiB with action `pause` and a command recording its
//! environment. A second torrent, complete, was paused by the user first.
//! 1. Once the day's use reaches the limit, the downloading torrent is paused; the 80 and
//!    100 % thresholds ran the command once each, with the quota's figures in
//!    `TORRENT_STATS_QUOTA_*`; `stats.get_quotas` shows the quota reached.
//! 2. Stopped (SIGTERM) and restarted while the quota holds the torrent: `quota_state` in
//!    `ledger.sqlite3` names the torrent it paused, the torrents come back paused and stay
//!    paused, and the thresholds do not fire again.
//! 3. The clock moves past local midnight: the quota's torrent resumes and downloads, the
//!    user's stays paused; the new day reaches the limit in its turn (the thresholds fire
//!    once more, in the new period, and the torrent is paused again); the daily buckets of
//!    `stats.get_calendar("day")` hold bytes on both days and add up to the all-time
//!    totals (a fresh config dir: the ledger began at zero).
//! 4. Stopped while the quota holds the torrent and started again on day D+2 (a daemon off
//!    for the night): the first evaluation, as the engine comes back, resumes it.
//!
//! The quota counts payload bytes: the embedded engine measures no wire bytes, so its
//! `total_upload` and `total_download` stay 0 and a `wire` quota would never fill.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use torrent_stats::ledger::calendar::{self, Bucket, Period};
use torrent_stats::ledger::{Ledger, Retention};
use torrent_stats::rpc::client::Client;

use crate::crash_loop::libfaketime;
use crate::engine::{
    base64, call, engine_command, fetch_from, login, payload, seeding, torrent_of,
};
use crate::support::daemon::DaemonProc;
use crate::support::unix_now;

/// The file downloaded: larger than two days of the quota with any overshoot.
const SIZE: usize = 32 << 20;
/// The leecher's download limit, bytes/s: the limit is reached in a few seconds.
const RATE: u64 = 1 << 20;
/// The daily quota, bytes (payload, both directions, every source: the embedded engine
/// counts no wire bytes).
const LIMIT: u64 = 3 << 20;
const ZONE: &str = "Europe/Berlin";
const QUOTA: &str = "daily";
/// How long any awaited state may take on a loaded 2-core machine.
const WAIT: Duration = Duration::from_secs(60);

/// The leecher's wall clock: an offset from the real one in libfaketime's file, read by
/// the daemon on every call.
struct Clock {
    rc: PathBuf,
    offset: i64,
}

impl Clock {
    /// Sets the daemon's wall clock to Unix second `faked` now.
    fn set(&mut self, faked: i64) -> Result<()> {
        self.offset = faked - unix_now() as i64;
        std::fs::write(&self.rc, format!("{:+}\n", self.offset))?;
        Ok(())
    }
}

/// The leecher: our daemon on the embedded engine, under libfaketime.
fn leecher(config: tempfile::TempDir, data: &Path, clock: &Clock) -> Result<DaemonProc> {
    let mut command = engine_command(config.path(), data);
    command
        .env("LD_PRELOAD", libfaketime()?)
        .env("FAKETIME_TIMESTAMP_FILE", &clock.rc)
        .env("FAKETIME_NO_CACHE", "1")
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    DaemonProc::launch(command, config)
}

/// Polls `method(args)` every 100 ms until `done` accepts its answer (at most [`WAIT`]).
async fn until(
    c: &mut Client,
    d: &DaemonProc,
    method: &str,
    args: Value,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = call(c, method, args.clone()).await?;
        if done(&v) {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            let totals = call(c, "stats.get_totals", json!([])).await?;
            let hours = call(c, "stats.get_calendar", json!(["hour"])).await?;
            anyhow::bail!(
                "{what}: not within {WAIT:?}; last {method}: {v}\ntotals {totals}\n\
                 hourly buckets {hours}\nleecher log:\n{}",
                d.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `core.get_torrents_status` until `done` accepts the states by torrent id.
async fn until_states(
    c: &mut Client,
    d: &DaemonProc,
    what: &str,
    done: impl Fn(&dyn Fn(&str) -> String) -> bool,
) -> Result<Value> {
    let args = json!([{}, ["state", "total_done", "is_finished"]]);
    until(c, d, "core.get_torrents_status", args, what, |v| {
        done(&|id: &str| v[id]["state"].as_str().unwrap_or("").to_string())
    })
    .await
}

/// `stats.get_quotas` until `done` accepts the quota's status (null before the first
/// evaluation).
async fn until_quota(
    c: &mut Client,
    d: &DaemonProc,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let v = until(c, d, "stats.get_quotas", json!([]), what, |v| {
        v[0]["name"] == QUOTA && done(&v[0]["status"])
    })
    .await?;
    Ok(v[0]["status"].clone())
}

/// One run of the quota's command: its period's label, its threshold, its variables.
type Run = (String, u64, HashMap<String, String>);

/// Waits (at most [`WAIT`]) for a line of the daemon's log holding each of `parts` (a
/// thread reads the log from its stderr: a line comes a little after what it tells).
async fn until_log(d: &DaemonProc, parts: &[&str]) -> Result<()> {
    let deadline = Instant::now() + WAIT;
    while !d.log().lines().any(|l| parts.iter().all(|p| l.contains(p))) {
        ensure!(
            Instant::now() < deadline,
            "no log line with {parts:?} within {WAIT:?}:\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// The environments the quota's command recorded.
fn runs(dir: &Path) -> Result<Vec<Run>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "env") {
            continue;
        }
        let env: HashMap<String, String> = std::fs::read_to_string(&path)?
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let get = |k: &str| env.get(k).cloned().unwrap_or_default();
        let threshold = get("TORRENT_STATS_QUOTA_THRESHOLD")
            .parse()
            .with_context(|| format!("{}: {env:?}", path.display()))?;
        out.push((get("TORRENT_STATS_QUOTA_PERIOD"), threshold, env));
    }
    Ok(out)
}

/// Waits (filesystem, at most [`WAIT`]) for the command's runs at 80 and 100 % in `day`,
/// then checks there is exactly one of each, with the quota's figures; the used bytes
/// of the 100 % run.
fn check_runs(dir: &Path, day: &Bucket) -> Result<u64> {
    let deadline = Instant::now() + WAIT;
    let of_day = |runs: &[Run], t: u64| {
        runs.iter()
            .filter(|(p, th, _)| *p == day.label && *th == t)
            .map(|(_, _, env)| env.clone())
            .collect::<Vec<_>>()
    };
    loop {
        let all = runs(dir)?;
        if !of_day(&all, 80).is_empty() && !of_day(&all, 100).is_empty() {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the quota's command did not run at 80 and 100 % in {} within {WAIT:?}: {all:?}",
            day.label
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let all = runs(dir)?;
    let mut used_at_100 = 0;
    for t in [80, 100] {
        let found = of_day(&all, t);
        ensure!(
            found.len() == 1,
            "the command ran {} times at {t} % in {}: {found:?}",
            found.len(),
            day.label
        );
        let env = &found[0];
        let get = |k: &str| {
            env.get(&format!("TORRENT_STATS_QUOTA_{k}"))
                .cloned()
                .with_context(|| format!("no TORRENT_STATS_QUOTA_{k} at {t} %: {env:?}"))
        };
        let num = |k: &str| -> Result<u64> {
            get(k)?
                .parse()
                .with_context(|| format!("TORRENT_STATS_QUOTA_{k} at {t} %: {env:?}"))
        };
        for (k, want) in [
            ("NAME", QUOTA.to_string()),
            ("SOURCE", String::new()),
            ("DIRECTION", "both".into()),
            ("MEASURE", "payload".into()),
            ("START", day.start.to_string()),
            ("END", day.end.to_string()),
            ("LIMIT", LIMIT.to_string()),
        ] {
            ensure!(get(k)? == want, "{k} at {t} % in {}: {env:?}", day.label);
        }
        let used = num("USED")?;
        ensure!(
            u128::from(used) * 100 >= u128::from(t) * u128::from(LIMIT)
                && num("LEFT")? == LIMIT.saturating_sub(used)
                && num("PROJECTED")? >= used,
            "used, left, projected at {t} %: {env:?}"
        );
        let percent: f64 = get("PERCENT")?.parse()?;
        ensure!(
            (percent - used as f64 * 100.0 / LIMIT as f64).abs() < 0.01,
            "PERCENT at {t} %: {env:?}"
        );
        if used >= LIMIT {
            ensure!(
                get("REACHED_AT")?.is_empty(),
                "REACHED_AT when reached: {env:?}"
            );
        }
        if t == 100 {
            used_at_100 = used;
        }
    }
    Ok(used_at_100)
}

/// The payload bytes of calendar row `v`, both ways: what the quota counts.
fn payload_bytes(v: &Value) -> u64 {
    v["total_payload_upload"].as_u64().unwrap_or(0)
        + v["total_payload_download"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs faketime (libfaketime)"]
async fn a_daily_quota_pauses_the_engine_until_local_midnight_across_a_restart() -> Result<()> {
    let began = Instant::now();
    libfaketime()?;
    let tz = calendar::time_zone(ZONE)?;
    // Day D is tomorrow in Berlin; the leecher starts at 23:50 of it.
    let today = calendar::bucket(Period::Day, &tz, unix_now() as i64);
    let day = calendar::bucket(Period::Day, &tz, today.end);
    let next = calendar::bucket(Period::Day, &tz, day.end);
    let work = tempfile::tempdir()?;
    let mut clock = Clock {
        rc: work.path().join("faketimerc"),
        offset: 0,
    };
    clock.set(day.end - 600)?;

    // The command: its TORRENT_STATS_QUOTA_* variables into one file per run.
    let runs_dir = work.path().join("runs");
    std::fs::create_dir(&runs_dir)?;
    let script = work.path().join("record.sh");
    std::fs::write(
        &script,
        format!(
            "out='{}'/\"$TORRENT_STATS_QUOTA_PERIOD.$TORRENT_STATS_QUOTA_THRESHOLD.$$\"\n\
             env | grep '^TORRENT_STATS_QUOTA_' > \"$out.tmp\" && mv \"$out.tmp\" \"$out.env\"\n",
            runs_dir.display()
        ),
    )?;

    // The seeder (real clock) and the file it seeds.
    let seed_data = tempfile::tempdir()?;
    let file = seed_data.path().join("capped.bin");
    std::fs::write(&file, payload(SIZE))?;
    let (id, bytes) = torrent_of(&file).await?;
    let dump = base64(&bytes);
    let (_seeder, seeded, peer_port) = seeding(seed_data.path(), "capped.torrent", &dump).await?;
    ensure!(seeded == id, "the seeder's id {seeded} vs {id}");

    // The leecher, with a complete torrent of its own that the user pauses.
    let leech_data = tempfile::tempdir()?;
    let kept = leech_data.path().join("kept.bin");
    std::fs::write(&kept, payload(1 << 20))?;
    let (kept_id, kept_bytes) = torrent_of(&kept).await?;
    let config = tempfile::tempdir()?;
    std::fs::write(config.path().join("stats.conf"), "update_interval = 1\n")?;
    std::fs::write(
        config.path().join("ledger.toml"),
        format!("time_zone = \"{ZONE}\"\n"),
    )?;
    let d = leecher(config, leech_data.path(), &clock)?;
    let mut c = login(d.port(), &d.password).await?;
    call(
        &mut c,
        "core.add_torrent_file",
        json!(["kept.torrent", base64(&kept_bytes), {}]),
    )
    .await?;
    until_states(&mut c, &d, "the kept torrent seeding", |s| {
        s(&kept_id) == "Seeding"
    })
    .await?;
    call(&mut c, "core.pause_torrent", json!([[kept_id]])).await?;
    until_states(&mut c, &d, "the kept torrent paused by the user", |s| {
        s(&kept_id) == "Paused"
    })
    .await?;

    let command = format!("sh '{}'", script.display());
    let quotas = json!([[{
        "name": QUOTA, "period": "day", "limit": LIMIT, "measure": "payload", "action": "pause",
        "command": command,
    }]]);
    let set = call(&mut c, "stats.set_quotas", quotas).await?;
    let st = &set[0]["status"];
    ensure!(
        set[0]["command"] == json!(command)
            && st["period"] == json!(day.label)
            && st["start"] == json!(day.start)
            && st["end"] == json!(day.end)
            && st["reached"] == false,
        "stats.set_quotas on the faked clock ({}, local day {}): {set}",
        day.end - 600,
        day.label
    );

    // 1. Downloading at RATE until the day's limit.
    call(
        &mut c,
        "core.set_config",
        json!([{"max_download_speed": RATE / 1024}]),
    )
    .await?;
    fetch_from(&mut c, &dump, &id, &peer_port).await?;
    let st = until_quota(&mut c, &d, "the limit reached on day D", |s| {
        s["reached"] == true
    })
    .await?;
    ensure!(
        st["period"] == json!(day.label) && st["used"].as_u64() >= Some(LIMIT),
        "{st}"
    );
    let states = until_states(&mut c, &d, "paused by the quota", |s| s(&id) == "Paused").await?;
    ensure!(
        states[&kept_id]["state"] == "Paused" && states[&id]["is_finished"] == false,
        "after the quota's pause: {states}"
    );
    let used_at_100 = check_runs(&runs_dir, &day)?;
    until_log(&d, &["torrents paused until the period ends", "paused=1"]).await?;

    // 2. A restart while the quota holds the torrent.
    drop(c);
    let config = d.stop()?;
    {
        let ledger = Ledger::open(config.path(), tz.clone(), Retention::default())?;
        let state = ledger.quota_state(QUOTA)?.context("no quota_state saved")?;
        let state: Value = serde_json::from_str(&state)?;
        ensure!(
            state["action"]["paused"] == json!([id])
                && state["action"]["period_start"] == json!(day.start)
                && state["thresholds"]["fired"] == json!([80, 100]),
            "quota_state after the stop: {state}"
        );
    }
    let d = leecher(config, leech_data.path(), &clock)?;
    let mut c = login(d.port(), &d.password).await?;
    until_states(&mut c, &d, "both torrents back, paused", |s| {
        s(&id) == "Paused" && s(&kept_id) == "Paused"
    })
    .await?;
    until_quota(&mut c, &d, "the quota evaluated after the restart", |s| {
        s["reached"] == true && s["period"] == json!(day.label)
    })
    .await?;
    // The peer is given again (librqbit re-adds the torrent, paused as it was).
    call(
        &mut c,
        "core.connect_peer",
        json!([id, "127.0.0.1", peer_port]),
    )
    .await?;
    until_states(&mut c, &d, "re-added with its peer, paused", |s| {
        s(&id) == "Paused"
    })
    .await?;
    let polls = |v: &Value| v["polls"].as_u64().unwrap_or(0);
    let from = polls(&call(&mut c, "stats.get_status", json!([])).await?);
    until(
        &mut c,
        &d,
        "stats.get_status",
        json!([]),
        "three polls",
        |v| polls(v) >= from + 3,
    )
    .await?;
    let states = call(&mut c, "core.get_torrents_status", json!([{}, ["state"]])).await?;
    ensure!(
        states[&id]["state"] == "Paused" && states[&kept_id]["state"] == "Paused",
        "three polls after the restart: {states}"
    );
    check_runs(&runs_dir, &day)?;

    // 3. Past local midnight: a new period.
    clock.set(next.start + 5)?;
    let states = until_states(&mut c, &d, "resumed in the new day", |s| {
        s(&id) == "Downloading"
    })
    .await?;
    ensure!(
        states[&kept_id]["state"] == "Paused",
        "the user's paused torrent after the new day: {states}"
    );
    until_log(&d, &["the quota's action is undone", "resumed=1"]).await?;
    let st = until_quota(&mut c, &d, "the limit reached on day D+1", |s| {
        s["reached"] == true && s["start"] == json!(next.start)
    })
    .await?;
    ensure!(st["period"] == json!(next.label), "{st}");
    let states = until_states(&mut c, &d, "paused again on day D+1", |s| {
        s(&id) == "Paused"
    })
    .await?;
    ensure!(
        states[&kept_id]["state"] == "Paused" && states[&id]["is_finished"] == false,
        "day D+1, the quota reached: {states}"
    );
    check_runs(&runs_dir, &next)?;
    check_runs(&runs_dir, &day)?;
    let all = runs(&runs_dir)?;
    ensure!(all.len() == 4, "the command's runs: {all:?}");

    // The calendar: both days, adding up to the all-time totals once the traffic stopped.
    let deadline = Instant::now() + WAIT;
    let (days, totals) = loop {
        let days = call(&mut c, "stats.get_calendar", json!(["day"])).await?;
        let totals = call(&mut c, "stats.get_totals", json!([])).await?;
        let rows = days.as_array().context("calendar rows")?;
        let sums: Vec<u64> = ["total_upload", "total_download"]
            .iter()
            .chain(&["total_payload_upload", "total_payload_download"])
            .map(|k| rows.iter().map(|r| r[*k].as_u64().unwrap_or(0)).sum())
            .collect();
        let want: Vec<u64> = ["total_upload", "total_download"]
            .iter()
            .chain(&["total_payload_upload", "total_payload_download"])
            .map(|k| totals[*k].as_u64().unwrap_or(u64::MAX))
            .collect();
        if sums == want {
            break (days, totals);
        }
        ensure!(
            Instant::now() < deadline,
            "the daily buckets {sums:?} never added up to the totals {want:?}: {days}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let labels: Vec<&str> = days
        .as_array()
        .context("rows")?
        .iter()
        .filter_map(|r| r["label"].as_str())
        .collect();
    ensure!(
        labels == [day.label.as_str(), next.label.as_str()],
        "daily buckets {days}"
    );
    let (first, second) = (payload_bytes(&days[0]), payload_bytes(&days[1]));
    ensure!(
        first >= used_at_100 && first >= LIMIT && second >= LIMIT,
        "day D {first} bytes (the command saw {used_at_100}), day D+1 {second}: {days}"
    );
    // The overshoot: what moved between the ledger's save and the pause, a few polls.
    ensure!(
        first < LIMIT + 8 * RATE && second < LIMIT + 8 * RATE,
        "the quota's pause came late: day D {first}, day D+1 {second} bytes of {LIMIT}"
    );
    eprintln!(
        "day {} {first} B, day {} {second} B, totals {totals}; {:.1} s",
        day.label,
        next.label,
        began.elapsed().as_secs_f64()
    );

    // 4. Stopped for the night while the quota holds the torrent, started on day D+2: the
    // first evaluation, while the engine restores (checks) its torrents, ends the action.
    drop(c);
    let config = d.stop()?;
    let after = calendar::bucket(Period::Day, &tz, next.end);
    clock.set(after.start + 5)?;
    let d = leecher(config, leech_data.path(), &clock)?;
    let mut c = login(d.port(), &d.password).await?;
    let states = until_states(&mut c, &d, "resumed when started on day D+2", |s| {
        s(&id) == "Downloading"
    })
    .await?;
    ensure!(
        states[&kept_id]["state"] == "Paused",
        "the user's paused torrent on day D+2: {states}"
    );
    let st = until_quota(&mut c, &d, "the quota evaluated on day D+2", |s| {
        s["start"] == json!(after.start)
    })
    .await?;
    ensure!(st["reached"] == false && st["used"] == 0, "day D+2: {st}");
    let all = runs(&runs_dir)?;
    ensure!(
        all.len() == 4,
        "the command's runs after day D+2 began: {all:?}"
    );
    until_log(&d, &["the quota's action is undone", "resumed=1"]).await?;
    eprintln!("{:.1} s in all", began.elapsed().as_secs_f64());
    drop(c);
    d.stop()?;
    Ok(())
}
