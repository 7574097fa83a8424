//! `torrent-stats report` (the binary) against a daemon child process counting a sim
//! source: after some polls, with polling then paused, its table, `--json` and `--csv`
//! show what `stats.get_calendar` answers, and the buckets of every period add up to the
//! all-time totals, which (a fresh daemon) are the bytes counted since the daemon began.
//! `--start`/`--end` reach the daemon as dates and as Unix seconds; bad arguments fail
//! with the daemon's reason.

use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};
use torrent_stats::units::format_bytes;

use crate::support::daemon::{DaemonProc, SIM};
use crate::support::rpc::{call_blocking as rpc, counters_in as counters};
use crate::support::{unix_now, BIN};

/// The CSV header `report --csv` prints.
const CSV_HEADER: &str =
    "period,label,start,end,total_upload,total_download,total_payload_upload,total_payload_download";

/// Runs `torrent-stats ARGS --config-dir DIR --port PORT` against `d`.
fn cli(d: &DaemonProc, args: &[&str]) -> Result<Output> {
    Command::new(BIN)
        .args(args)
        .arg("--config-dir")
        .arg(d.dir.path())
        .arg("--port")
        .arg(d.port().to_string())
        .env("NO_COLOR", "1")
        .env_remove("TORRENT_STATS_CONFIG_DIR")
        .env_remove("TORRENT_STATS_PASSWORD")
        .stdin(Stdio::null())
        .output()
        .context("run torrent-stats")
}

/// Runs a command that must succeed; its stdout.
fn ok(d: &DaemonProc, args: &[&str]) -> Result<String> {
    let out = cli(d, args)?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "`torrent-stats {}` failed ({}):\n{}\n{stdout}\ndaemon log:\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    Ok(stdout)
}

/// Runs a command that must fail; its stderr.
fn fails(d: &DaemonProc, args: &[&str]) -> Result<String> {
    let out = cli(d, args)?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    ensure!(
        !out.status.success(),
        "`torrent-stats {}` should have failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(stderr)
}

/// Runs a command printing JSON; its parsed output.
fn json_of(d: &DaemonProc, args: &[&str]) -> Result<Value> {
    let text = ok(d, args)?;
    serde_json::from_str(&text).with_context(|| format!("not JSON:\n{text}"))
}

/// The sums of the four counters over the buckets of an answer, each bucket checked to be
/// of `period`, with bytes, and later than the one before.
fn sums(answer: &Value, period: &str) -> Result<[u64; 4]> {
    let rows = answer.as_array().context("not a list")?;
    let mut sum = [0u64; 4];
    let mut last_end = i64::MIN;
    for row in rows {
        ensure!(
            row["period"] == json!(period),
            "not a {period} bucket: {row}"
        );
        let (start, end) = (row["start"].as_i64(), row["end"].as_i64());
        let (Some(start), Some(end)) = (start, end) else {
            bail!("start/end are not Unix seconds: {row}");
        };
        ensure!(
            last_end <= start && start < end,
            "buckets not oldest first: {answer}"
        );
        last_end = end;
        let c = counters(row)?;
        ensure!(c.iter().any(|&n| n > 0), "an empty bucket: {row}");
        for (s, n) in sum.iter_mut().zip(c) {
            *s += n;
        }
    }
    Ok(sum)
}

/// The all-time totals and the day buckets, once the calendar holds every byte counted:
/// the totals read before and after the calendar are its sums (the ledger may be written
/// a little after the totals).
fn settled(d: &DaemonProc) -> Result<([u64; 4], Value)> {
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        let before = counters(&rpc(d, "stats.get_totals", json!([]))?)?;
        let calendar = rpc(d, "stats.get_calendar", json!(["day"]))?;
        let after = counters(&rpc(d, "stats.get_totals", json!([]))?)?;
        if before == after && sums(&calendar, "day")? == after {
            return Ok((after, calendar));
        }
        ensure!(
            Instant::now() < deadline,
            "the day buckets {calendar} never summed to the totals {after:?}"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// Uploaded over downloaded as the table shows it.
fn ratio(up: u64, down: u64) -> String {
    if down == 0 {
        "-".to_string()
    } else {
        format!("{:.2}", up as f64 / down as f64)
    }
}

/// The table's columns after the label: downloaded, uploaded, total, ratio.
fn columns(down: u64, up: u64) -> Vec<String> {
    vec![
        format_bytes(down),
        format_bytes(up),
        format_bytes(down + up),
        ratio(up, down),
    ]
}

/// Checks a table of `calendar` (wire, or payload): a line per bucket and the total line.
fn check_table(table: &str, calendar: &Value, totals: [u64; 4], payload: bool) -> Result<()> {
    let (down_key, up_key) = if payload {
        ("total_payload_download", "total_payload_upload")
    } else {
        ("total_download", "total_upload")
    };
    let cells = |line: &str| -> Vec<String> {
        line.split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect()
    };
    let lines: Vec<&str> = table.lines().collect();
    let rows = calendar.as_array().context("not a list")?;
    // Title, heading, rule, the buckets, rule, total.
    ensure!(lines.len() == rows.len() + 5, "table:\n{table}");
    ensure!(
        cells(lines[1]) == ["day", "downloaded", "uploaded", "total", "ratio"],
        "table:\n{table}"
    );
    for (row, line) in rows.iter().zip(&lines[3..]) {
        let (down, up) = (row[down_key].as_u64(), row[up_key].as_u64());
        let (Some(down), Some(up)) = (down, up) else {
            bail!("not counts: {row}");
        };
        let mut want = vec![row["label"].as_str().context("label")?.to_string()];
        want.extend(columns(down, up));
        ensure!(
            cells(line) == want,
            "line {line:?}, want {want:?}:\n{table}"
        );
    }
    let (down, up) = if payload {
        (totals[3], totals[2])
    } else {
        (totals[1], totals[0])
    };
    let mut want = vec!["total".to_string()];
    want.extend(columns(down, up));
    let last = lines.last().context("empty table")?;
    ensure!(cells(last) == want, "total line {last:?}, want {want:?}");
    Ok(())
}

#[test]
fn report_shows_the_calendar_and_sums_to_the_totals() -> Result<()> {
    let d = DaemonProc::start_with("sim:up=1MiB/s,down=2MiB/s")?;
    // Some polls, then none for the rest of the test (the next one is at least 30 s
    // after the change of interval).
    let deadline = Instant::now() + Duration::from_secs(20);
    while counters(&rpc(&d, "stats.get_totals", json!([]))?)?[0] == 0 {
        ensure!(Instant::now() < deadline, "nothing counted in 20 s");
        thread::sleep(Duration::from_millis(200));
    }
    ok(&d, &["config", "set", "update_interval=60"])?;
    let (totals, calendar) = settled(&d)?;
    ensure!(totals[0] > 0 && totals[1] > totals[0], "totals {totals:?}");

    // --json, default --days: the answer itself.
    ensure!(json_of(&d, &["report", "--json"])? == calendar);
    ensure!(json_of(&d, &["report", "--days", "--json"])? == calendar);
    // Every period's buckets add up to the same bytes; one source alone is all of them.
    for (flag, period) in [
        ("--5min", "5min"),
        ("--hours", "hour"),
        ("--days", "day"),
        ("--months", "month"),
        ("--years", "year"),
    ] {
        let answer = json_of(&d, &["report", flag, "--json"])?;
        ensure!(
            sums(&answer, period)? == totals,
            "{flag}: {answer} does not sum to {totals:?}"
        );
        ensure!(answer == rpc(&d, "stats.get_calendar", json!([period]))?);
    }
    let source = json_of(&d, &["report", "--source", SIM, "--json"])?;
    ensure!(sums(&source, "day")? == totals, "--source {SIM}: {source}");

    // --csv: the header, then each bucket's raw numbers.
    let csv = ok(&d, &["report", "--csv"])?;
    let mut lines = csv.lines();
    ensure!(lines.next() == Some(CSV_HEADER), "csv:\n{csv}");
    let rows = calendar.as_array().context("not a list")?;
    let csv_rows: Vec<&str> = lines.collect();
    ensure!(csv_rows.len() == rows.len(), "csv:\n{csv}");
    for (row, line) in rows.iter().zip(csv_rows) {
        let c = counters(row)?;
        let want = format!(
            "{},{},{},{},{},{},{},{}",
            row["period"].as_str().context("period")?,
            row["label"].as_str().context("label")?,
            row["start"],
            row["end"],
            c[0],
            c[1],
            c[2],
            c[3]
        );
        ensure!(line == want, "csv line {line:?}, want {want:?}");
    }

    // The tables, wire and payload.
    let table = ok(&d, &["report", "--days"])?;
    ensure!(table.starts_with("all sources / daily\n"), "{table}");
    check_table(&table, &calendar, totals, false)?;
    let payload = ok(&d, &["report", "--payload"])?;
    ensure!(
        payload.starts_with("all sources / daily, payload\n"),
        "{payload}"
    );
    check_table(&payload, &calendar, totals, true)?;

    // --start/--end as dates and as Unix seconds.
    let two_days_ago = (unix_now() as i64 - 2 * 86_400).to_string();
    ensure!(json_of(&d, &["report", "--start", &two_days_ago, "--json"])? == calendar);
    ensure!(json_of(&d, &["report", "--start", "2000-01-01", "--json"])? == calendar);
    ensure!(json_of(&d, &["report", "--end", "946684800", "--json"])? == json!([]));
    ensure!(json_of(&d, &["report", "--end", "2000-01-01", "--json"])? == json!([]));
    let empty = ok(&d, &["report", "--end", "2000-01-01"])?;
    ensure!(
        empty == "all sources / daily\nnothing counted in this range\n",
        "{empty}"
    );

    // The daemon's refusals, with its reason.
    let e = fails(&d, &["report", "--source", "nosuch"])?;
    ensure!(
        e.contains("stats.get_calendar failed") && e.contains("nosuch"),
        "{e}"
    );
    let e = fails(&d, &["report", "--start", "not-a-date"])?;
    ensure!(e.contains("stats.get_calendar failed"), "{e}");

    // No poll came in between: the comparisons above were of one state.
    let (after, _) = settled(&d)?;
    ensure!(
        after == totals,
        "the totals moved during the test: {after:?}"
    );
    Ok(())
}
