//! `torrent-stats backup` while the daemon runs: the copy holds every file but locks and
//! the ledger's WAL, the ledger as one consistent SQLite file; a daemon started on the
//! copy reconciles it and its calendar sums to its totals; a non-empty destination is
//! refused. And `quotas.toml` re-read on SIGHUP.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};

use crate::support::daemon::{command, DaemonProc};
use crate::support::rpc::{call_blocking as rpc, counters_in as total};
use crate::support::BIN;

/// The sum of a calendar answer's buckets.
fn calendar_sum(v: &Value) -> Result<[u64; 4]> {
    let mut sum = [0u64; 4];
    for row in v.as_array().context("a list")? {
        for (s, n) in sum.iter_mut().zip(total(row)?) {
            *s += n;
        }
    }
    Ok(sum)
}

fn backup(config: &std::path::Path, dest: &std::path::Path) -> Result<std::process::Output> {
    Command::new(BIN)
        .arg("backup")
        .arg(dest)
        .arg("--config-dir")
        .arg(config)
        .env_remove("TORRENT_STATS_CONFIG_DIR")
        .output()
        .context("run torrent-stats backup")
}

#[test]
fn a_backup_of_a_running_daemon_restores_with_its_calendar() -> Result<()> {
    let source = "sim=sim:up=3MB,down=7MB";
    let d = DaemonProc::start_with(source)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while total(&rpc(&d, "stats.get_totals", json!([]))?)?[0] == 0 {
        ensure!(Instant::now() < deadline, "no bytes counted:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let copy = tempfile::tempdir()?;
    let out = backup(d.dir.path(), copy.path())?;
    ensure!(
        out.status.success(),
        "backup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    ensure!(said.contains("Backed up"), "{said}");
    let at_backup = total(&rpc(&d, "stats.get_totals", json!([]))?)?;
    let p = copy.path();
    for file in [
        "ledger.sqlite3",
        "sources/sim/stats.totals",
        "auth",
        "stats.conf",
    ] {
        ensure!(p.join(file).is_file(), "{file} missing from the copy");
    }
    for file in [
        "ledger.sqlite3-wal",
        "ledger.sqlite3-shm",
        ".stats.conf.lock",
    ] {
        ensure!(!p.join(file).exists(), "{file} copied");
    }
    // A second backup into the same directory is refused.
    let again = backup(d.dir.path(), copy.path())?;
    ensure!(
        !again.status.success(),
        "a non-empty destination was accepted"
    );
    ensure!(
        String::from_utf8_lossy(&again.stderr).contains("exists and is not empty"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    drop(d);
    // Restore: a daemon on the copy counts on from it, and its calendar holds every byte
    // of its totals (a fresh config dir: nothing before the ledger).
    let restored = DaemonProc::launch(command(copy.path(), source), copy)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let before = total(&rpc(&restored, "stats.get_totals", json!([]))?)?;
        let days = calendar_sum(&rpc(&restored, "stats.get_calendar", json!(["day"]))?)?;
        let months = calendar_sum(&rpc(&restored, "stats.get_calendar", json!(["month"]))?)?;
        let after = total(&rpc(&restored, "stats.get_totals", json!([]))?)?;
        if before == after && days == after && months == after {
            ensure!(
                after
                    .iter()
                    .zip(at_backup)
                    .all(|(a, b)| *a + 7_000_000 >= b),
                "the restored totals {after:?} lost more than a poll of {at_backup:?}"
            );
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the restored calendar {days:?} never summed to its totals {after:?}:\n{}",
            restored.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// `quotas.toml` re-read on SIGHUP: a new quota is in force at once; a bad edit is
/// refused with where and why, and the quotas read last stay.
#[test]
fn sighup_rereads_the_quotas_file() -> Result<()> {
    let d = DaemonProc::start_with("sim=sim:up=1MB,down=2MB")?;
    let names = |d: &DaemonProc| -> Result<Vec<String>> {
        let q = rpc(d, "stats.get_quotas", json!([]))?;
        Ok(q.as_array()
            .context("a list")?
            .iter()
            .filter_map(|q| q["name"].as_str().map(String::from))
            .collect())
    };
    ensure!(names(&d)?.is_empty(), "quotas at the start");
    let file = d.dir.path().join("quotas.toml");
    std::fs::write(
        &file,
        "[[quota]]\nname = \"month\"\nperiod = \"month\"\nreset_day = 15\nlimit = \"1 TiB\"\n",
    )?;
    crate::support::signal(d.pid, "HUP")?;
    let deadline = Instant::now() + Duration::from_secs(15);
    // Reloaded, then evaluated (its status is null for that moment in between).
    loop {
        let q = rpc(&d, "stats.get_quotas", json!([]))?;
        if names(&d)? == ["month"] && q[0]["status"]["used"].as_u64().is_some() {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "not reloaded and evaluated: {q}\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::write(
        &file,
        "[[quota]]\nname = \"month\"\nperiod = \"fortnight\"\nlimit = 1\n",
    )?;
    crate::support::signal(d.pid, "HUP")?;
    let deadline = Instant::now() + Duration::from_secs(15);
    while !d.log().contains("quotas file: refused") {
        ensure!(Instant::now() < deadline, "no refusal logged:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = d.log();
    // The message (TOML's, over several lines) names the file, the value and what stays.
    let from = log.find("quotas file: refused").context("the line")?;
    let message = &log[from..];
    ensure!(
        message.contains("quotas.toml") && message.contains("fortnight"),
        "{message}"
    );
    ensure!(message.contains("stay in force"), "{message}");
    ensure!(names(&d)? == ["month"], "the quotas read last stay");
    Ok(())
}
