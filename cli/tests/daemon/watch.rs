//! `torrent-stats watch` in a real terminal: tmux runs it in a 120×40 pane against a
//! daemon child process on the sim source; the tests read the screen with `tmux
//! capture-pane`, compare it with `stats.get_totals`, kill and restart the daemon under
//! it, check its calendar and quota lines against `stats.get_calendar` and
//! `stats.get_quotas` and its notice of a quota crossing a threshold, quit with `q` and
//! check the exit status and the terminal modes it leaves behind.
//! tmux is required (`apt-get install tmux`): without it the tests fail. `watch --json`
//! is read from a pipe.

use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};
use torrent_stats::rpc::client::Client;
use torrent_stats::rpc::tls::CertPolicy;
use torrent_stats::units::{format_bytes, parse_bytes};
use torrent_stats::Counters;

use crate::support::daemon::{DaemonProc, SOURCE};
use crate::support::BIN;

/// How long the screen may take to show what a test waits for.
const WAIT: Duration = Duration::from_secs(30);

/// A private tmux server (its socket in a temporary directory) running `torrent-stats
/// watch` in session `watch`, killed on drop so a failing test leaves no tmux server
/// behind. After watch exits, the pane's shell writes its exit status to `status` and
/// `stty -a` to `stty` in that directory, then sleeps so the pane stays open for
/// inspection.
struct Tmux {
    socket: PathBuf,
    files: tempfile::TempDir,
}

impl Tmux {
    /// Starts watch against the daemon on `port`.
    fn watch(port: u16, password: &str) -> Result<Tmux> {
        let version = Command::new("tmux").arg("-V").output();
        if !version.is_ok_and(|o| o.status.success()) {
            panic!("tmux is missing: apt-get install tmux (watch.rs needs a terminal)");
        }
        let files = tempfile::tempdir()?;
        let dir = files.path().display();
        let socket = files.path().join("tmux.sock");
        let script = format!(
            "'{BIN}' watch --port {port} --password {password}; code=$?; \
             stty -a > '{dir}/stty'; echo $code > '{dir}/status'; exec sleep 600"
        );
        let tmux = Tmux { socket, files };
        tmux.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "watch",
            "-x",
            "120",
            "-y",
            "40",
            &script,
        ])?;
        Ok(tmux)
    }

    /// Runs `tmux -S <socket> args` and returns its stdout.
    fn run(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .context("running tmux")?;
        ensure!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The pane's text.
    fn screen(&self) -> Result<String> {
        self.run(&["capture-pane", "-p", "-t", "watch"])
    }

    /// Captures the pane until `ready` accepts it, for at most [`WAIT`].
    fn wait_for(&self, what: &str, ready: impl Fn(&str) -> bool) -> Result<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = self.screen()?;
            if ready(&screen) {
                return Ok(screen);
            }
            if Instant::now() > deadline {
                bail!("the screen did not show {what} within {WAIT:?}:\n{screen}");
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// A file the pane's shell writes after watch exited.
    fn file(&self, name: &str) -> PathBuf {
        self.files.path().join(name)
    }

    /// Whether watch has exited.
    fn exited(&self) -> bool {
        self.file("status").exists()
    }

    /// Waits for watch to exit and returns its exit status.
    fn exit_status(&self) -> Result<i32> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.exited() {
            ensure!(
                Instant::now() < deadline,
                "watch still runs 10 s after q:\n{}",
                self.screen()?
            );
            thread::sleep(Duration::from_millis(100));
        }
        let status = std::fs::read_to_string(self.file("status"))?;
        status.trim().parse().context("exit status")
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .status();
    }
}

/// `stats.get_totals`, over our RPC client.
fn totals(port: u16, password: &str) -> Result<Counters> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut c = Client::connect("127.0.0.1", port, CertPolicy::AnyCertificate).await?;
        c.login("localclient", password).await?;
        let totals = c
            .call("stats.get_totals", vec![], serde_json::Map::new())
            .await?;
        Ok::<Counters, anyhow::Error>(serde_json::from_value(totals)?)
    })
}

/// `method(args…)` over our RPC client, as localclient (ADMIN).
fn call(port: u16, password: &str, method: &str, args: Value) -> Result<Value> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let args = match args {
        Value::Array(a) => a,
        other => bail!("arguments are a list, not {other}"),
    };
    runtime.block_on(async {
        let mut c = Client::connect("127.0.0.1", port, CertPolicy::AnyCertificate).await?;
        c.login("localclient", password).await?;
        Ok::<Value, anyhow::Error>(c.call(method, args, serde_json::Map::new()).await?)
    })
}

/// The words after `label` on the screen line (inside a block's border) that starts with
/// it, followed by at least two spaces (so `Download` is not `Downloaded`).
fn row<'a>(screen: &'a str, label: &str) -> Option<Vec<&'a str>> {
    screen.lines().find_map(|line| {
        let rest = line
            .trim_start_matches('│')
            .trim_start()
            .strip_prefix(label)?;
        rest.starts_with("  ")
            .then(|| rest.split_whitespace().collect())
    })
}

/// The byte count (or rate) in the first two words of `label`'s row, e.g. `32.1 MiB`, and
/// half a step of its last digit (the rounding of the screen's one decimal).
fn shown_bytes(screen: &str, label: &str) -> Option<(u64, u64)> {
    let words = row(screen, label)?;
    let (number, unit) = (words.first()?, words.get(1)?);
    let value = parse_bytes(&format!("{number} {unit}")).ok()?;
    let unit = unit.trim_end_matches("/s");
    let step = parse_bytes(&format!("1 {unit}")).ok()?;
    Some((value, step / 20 + 1))
}

/// Whether the screen shows totals and a non-zero download rate.
fn shows_traffic(screen: &str) -> bool {
    shown_bytes(screen, "Downloaded").is_some_and(|(v, _)| v > 0)
        && shown_bytes(screen, "Download").is_some_and(|(v, _)| v > 0)
}

/// The exit status is 0 and the pane's terminal is back to normal: canonical mode and
/// echo on (raw mode off), the alternate screen left, the cursor shown.
fn check_clean_exit(tmux: &Tmux) -> Result<()> {
    let status = tmux.exit_status()?;
    ensure!(status == 0, "watch exited with {status}");
    let stty = std::fs::read_to_string(tmux.file("stty"))?;
    let modes: Vec<&str> = stty.split([' ', ';', '\n']).collect();
    for mode in ["icanon", "echo"] {
        ensure!(
            modes.contains(&mode) && !modes.contains(&format!("-{mode}").as_str()),
            "{mode} is not restored:\n{stty}"
        );
    }
    let pane = tmux.run(&[
        "display",
        "-p",
        "-t",
        "watch",
        "#{alternate_on} #{cursor_flag}",
    ])?;
    ensure!(
        pane.trim() == "0 1",
        "alternate screen and cursor flags are {pane:?}, not `0 1`"
    );
    Ok(())
}

/// The view shows the daemon's totals, source and rates, and quits cleanly on `q`.
#[test]
#[ignore = "needs tmux"]
fn shows_totals_rates_and_health_and_quits_on_q() -> Result<()> {
    let daemon = DaemonProc::start()?;
    let (port, password) = (daemon.port(), daemon.password.as_str());
    let tmux = Tmux::watch(port, password)?;
    tmux.wait_for("totals and rates", shows_traffic)?;

    // The all-time download shown is between two readings around the capture: the
    // second reading after it, the first more than one watch poll (1 s) before it.
    let before = totals(port, password)?;
    thread::sleep(Duration::from_millis(2500));
    let screen = tmux.screen()?;
    let after = totals(port, password)?;
    let (shown, rounding) = shown_bytes(&screen, "Downloaded").context("no Downloaded row")?;
    ensure!(
        before.total_download.saturating_sub(rounding) <= shown
            && shown <= after.total_download + rounding,
        "shown download {shown} is not within [{}, {}] (±{rounding}):\n{screen}",
        before.total_download,
        after.total_download
    );

    let source = row(&screen, "Source").context("no Source row")?;
    ensure!(
        source.first().is_some_and(|s| s.starts_with("sim:")) && source.contains(&"up"),
        "source row {source:?}:\n{screen}"
    );
    ensure!(
        screen.contains("connected"),
        "not shown as connected:\n{screen}"
    );
    for label in ["Upload", "Download", "Payload up", "Payload down"] {
        let (rate, _) = shown_bytes(&screen, label).with_context(|| format!("no {label} row"))?;
        ensure!(rate > 0, "{label} rate is 0:\n{screen}");
    }
    let peers = row(&screen, "Peers").context("no Peers row")?;
    ensure!(peers.first() == Some(&"3"), "peers {peers:?}:\n{screen}");

    tmux.run(&["send-keys", "-t", "watch", "q"])?;
    check_clean_exit(&tmux)
}

/// A daemon killed under the view is shown as unreachable while watch keeps running and
/// retrying; a daemon started again on the same port is shown again; Esc still quits.
#[test]
#[ignore = "needs tmux"]
fn shows_a_dead_daemon_and_reconnects() -> Result<()> {
    let daemon = DaemonProc::start()?;
    let (port, password) = (daemon.port(), daemon.password.clone());
    let tmux = Tmux::watch(port, &password)?;
    tmux.wait_for("totals and rates", shows_traffic)?;

    let dir = daemon.kill9()?;
    let unreachable = |s: &str| s.contains("cannot reach the daemon");
    tmux.wait_for("that the daemon cannot be reached", unreachable)?;
    thread::sleep(Duration::from_secs(3));
    ensure!(!tmux.exited(), "watch exited when the daemon died");
    let screen = tmux.screen()?;
    ensure!(
        unreachable(&screen) && screen.contains("Connection refused"),
        "the dead daemon is not shown:\n{screen}"
    );
    ensure!(
        shown_bytes(&screen, "Downloaded").is_some(),
        "the last totals are no longer shown:\n{screen}"
    );

    let _daemon = restart(port, dir)?;
    tmux.wait_for("the daemon reconnected", |s| {
        !unreachable(s) && s.contains("connected") && shows_traffic(s)
    })?;

    tmux.run(&["send-keys", "-t", "watch", "Escape"])?;
    check_clean_exit(&tmux)
}

/// The daemon again on `port` in its old config directory (same password).
fn restart(port: u16, dir: tempfile::TempDir) -> Result<DaemonProc> {
    let mut command = Command::new(BIN);
    command
        .arg("daemon")
        .arg("--config-dir")
        .arg(dir.path())
        .args(["--port", &port.to_string(), "--source", SOURCE]);
    // As support::daemon does: no fixed web port that another daemon may hold.
    #[cfg(feature = "web")]
    command.args(["--web-port", "0"]);
    DaemonProc::launch(command, dir)
}

/// `watch --json` needs no terminal: a JSON line a second on a pipe, whose totals lie
/// between two `stats.get_totals` readings and grow; an error line while the daemon is
/// dead, then lines again after it is back; it ends (exit 0) when the reader closes the
/// pipe.
#[test]
fn json_lines_without_a_terminal() -> Result<()> {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let daemon = DaemonProc::start()?;
    let (port, password) = (daemon.port(), daemon.password.clone());
    let mut child = Command::new(BIN)
        .args(["watch", "--json", "--port", &port.to_string()])
        .args(["--password", &password])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let mut next = move || -> Result<serde_json::Value> {
        let line = lines.next().context("watch --json ended")??;
        serde_json::from_str(&line).with_context(|| format!("not JSON: {line}"))
    };
    let result = (|| -> Result<()> {
        // Lines a second; the daemon polls its source every 2 s: read until they grow.
        let before = totals(port, &password)?;
        let first = next()?;
        let mut seen = vec![first.clone()];
        let deadline = Instant::now() + WAIT;
        while seen.last().map(|l| l["totals"]["total_upload"].as_u64())
            <= Some(first["totals"]["total_upload"].as_u64())
        {
            ensure!(
                Instant::now() < deadline,
                "the totals did not grow: {seen:?}"
            );
            seen.push(next()?);
        }
        let after = totals(port, &password)?;
        for line in &seen {
            let got: Counters = serde_json::from_value(line["totals"].clone())
                .with_context(|| format!("no totals in {line}"))?;
            ensure!(
                got.total_upload >= before.total_upload && got.total_upload <= after.total_upload,
                "{got:?} not between {before:?} and {after:?}"
            );
            ensure!(line["status"]["source_up"] == true, "{line}");
            ensure!(line["upload_rate"].is_u64(), "{line}");
        }
        ensure!(
            seen.windows(2)
                .all(|w| w[1]["time"].as_f64() > w[0]["time"].as_f64()),
            "{seen:?}"
        );

        let dir = daemon.kill9()?;
        let deadline = Instant::now() + WAIT;
        loop {
            let line = next()?;
            if line["error"]
                .as_str()
                .is_some_and(|e| e.contains("Connection refused"))
            {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "no error line after the daemon died"
            );
        }
        let _daemon = restart(port, dir)?;
        loop {
            let line = next()?;
            if line["totals"].is_object() {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "no totals after the daemon came back"
            );
        }
        Ok(())
    })();
    drop(next);
    // The reader goes away: the next line fails to write and watch ends by itself.
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        thread::sleep(Duration::from_millis(50));
    };
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    result?;
    let status = status.context("watch --json still ran 5 s after its reader closed the pipe")?;
    ensure!(status.success(), "watch --json exited with {status}");
    Ok(())
}

/// The combined bucket of `period` ("day" or "month") holding now, as `stats.get_calendar`
/// has it: the words watch shows after its title (label, down, up).
fn calendar_words(port: u16, password: &str, period: &str) -> Result<Vec<String>> {
    let now = torrent_stats::clock::unix_now() as i64;
    let rows = call(
        port,
        password,
        "stats.get_calendar",
        json!([period, null, now - 63 * 86_400]),
    )?;
    let b = rows
        .as_array()
        .and_then(|r| r.last())
        .with_context(|| format!("no {period} bucket: {rows}"))?;
    ensure!(
        b["end"].as_i64() > Some(now),
        "{period}: the last bucket has ended: {b}"
    );
    let bytes = |k: &str| format_bytes(b[k].as_u64().unwrap_or(0));
    let text = format!(
        "{} down {} up {}",
        b["label"].as_str().unwrap_or(""),
        bytes("total_download"),
        bytes("total_upload")
    );
    Ok(text.split_whitespace().map(String::from).collect())
}

/// The words watch shows after a quota's name: its bar, percent, used / limit and
/// projection, from its entry in `stats.get_quotas`.
fn quota_words(q: &Value) -> Vec<String> {
    let s = &q["status"];
    let bytes = |k: &str| format_bytes(s[k].as_u64().unwrap_or(0));
    let percent = s["percent"].as_f64().unwrap_or(f64::NAN);
    let full = ((percent.clamp(0.0, 100.0) / 10.0).floor()) as usize;
    let text = format!(
        "[{}{}] {percent:.1} % {} / {} projected",
        "█".repeat(full),
        "░".repeat(10 - full),
        bytes("used"),
        bytes("limit"),
    );
    text.split_whitespace().map(String::from).collect()
}

/// Whether the screen row of `label` holds `words` then a projection within 5 % of
/// `projected` bytes: the projection moves with the clock (the rate's window grows, the
/// period's rest shrinks) at every evaluation, polling paused or not.
fn quota_row_is(screen: &str, label: &str, words: &[String], projected: u64) -> bool {
    let Some(r) = row(screen, label) else {
        return false;
    };
    let r = r.strip_suffix(&["│"]).unwrap_or(&r);
    if r.len() != words.len() + 2 || r[..words.len()] != *words {
        return false;
    }
    let shown = format!("{}{}", r[words.len()], r[words.len() + 1]);
    torrent_stats::units::parse_bytes(&shown)
        .is_ok_and(|b| b.abs_diff(projected) as f64 <= 0.05 * projected.max(1) as f64)
}

/// A quota list without the figures that move with the clock alone.
fn still(list: &Value) -> Value {
    let mut list = list.clone();
    for q in list.as_array_mut().into_iter().flatten() {
        if let Some(s) = q["status"].as_object_mut() {
            for moving in ["rate", "projected", "reached_at"] {
                s.remove(moving);
            }
        }
    }
    list
}

/// Whether the screen row of `label` holds exactly `words` (before the block's border).
fn row_is(screen: &str, label: &str, words: &[String]) -> bool {
    row(screen, label).is_some_and(|r| r.strip_suffix(&["│"]).unwrap_or(&r) == words)
}

/// The calendar block: today's and this month's bytes as `stats.get_calendar` has them
/// (the daemon's polling paused so they hold still), and "no quotas"; quotas set over RPC
/// while watch runs then show with their bar, percent, used / limit and projection as
/// `stats.get_quotas` gives them, and the thresholds the tiny one (half of today's download)
/// crossed at once (80 and 100 %) as notices.
#[test]
#[ignore = "needs tmux"]
fn shows_the_calendar_quotas_and_threshold_notices() -> Result<()> {
    let daemon = DaemonProc::start()?;
    let (port, password) = (daemon.port(), daemon.password.as_str());
    let tmux = Tmux::watch(port, password)?;
    tmux.wait_for("totals and rates", shows_traffic)?;
    call(
        port,
        password,
        "stats.set_config",
        json!([{"update_interval": 60}]),
    )?;

    // The figures read, then shown, then read again unchanged (a poll in between, at the
    // change of interval, makes another round).
    let mut rounds = 0;
    loop {
        let (day, month) = (
            calendar_words(port, password, "day")?,
            calendar_words(port, password, "month")?,
        );
        let screen = tmux.wait_for("today's and this month's bytes", |s| {
            row_is(s, "Today", &day) && row_is(s, "This month", &month)
        })?;
        let again = (
            calendar_words(port, password, "day")?,
            calendar_words(port, password, "month")?,
        );
        if again == (day.clone(), month.clone()) {
            ensure!(
                screen.contains(" no quotas"),
                "quotas before any is set:\n{screen}"
            );
            break;
        }
        rounds += 1;
        ensure!(rounds < 3, "the calendar kept changing with polling paused");
    }

    // "tiny": half of today's download, so used up at once (both thresholds crossed).
    let now = torrent_stats::clock::unix_now() as i64;
    let days = call(
        port,
        password,
        "stats.get_calendar",
        json!(["day", null, now - 86_400]),
    )?;
    let today = days.as_array().and_then(|d| d.last()).context("no day")?;
    let half = today["total_download"].as_u64().context("no download")? / 2;
    ensure!(half > 0, "nothing downloaded today: {today}");
    let quotas = json!([[
        {"name": "tiny", "period": "day", "direction": "download", "limit": half},
        {"name": "big", "period": "month", "reset_day": 1, "limit": "1000 TiB"},
    ]]);
    call(port, password, "stats.set_quotas", quotas)?;
    let notices = [
        "! quota tiny reached 100 % of its limit",
        "! quota tiny reached 80 % of its limit",
    ];
    tmux.wait_for("the threshold notices", |s| {
        notices.iter().all(|n| s.contains(n))
    })?;
    let mut rounds = 0;
    loop {
        let list = call(port, password, "stats.get_quotas", json!([]))?;
        let expected: Vec<(String, Vec<String>, u64)> = list
            .as_array()
            .context("a list")?
            .iter()
            .map(|q| {
                (
                    q["name"].as_str().unwrap_or("").to_string(),
                    quota_words(q),
                    q["status"]["projected"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        ensure!(expected.len() == 2, "{list}");
        let screen = tmux.wait_for("each quota's figures", |s| {
            expected
                .iter()
                .all(|(name, words, projected)| quota_row_is(s, name, words, *projected))
        })?;
        if still(&call(port, password, "stats.get_quotas", json!([]))?) == still(&list) {
            ensure!(
                list[0]["status"]["reached"] == true && list[1]["status"]["reached"] == false,
                "{list}"
            );
            ensure!(!screen.contains(" no quotas"), "{screen}");
            break;
        }
        rounds += 1;
        ensure!(rounds < 3, "the quotas kept changing with polling paused");
    }

    tmux.run(&["send-keys", "-t", "watch", "q"])?;
    check_clean_exit(&tmux)
}
