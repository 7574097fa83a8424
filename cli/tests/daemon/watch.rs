//! `torrent-stats watch` in a real terminal: tmux runs it in a 120×40 pane against a
//! daemon child process on the sim source; the tests read the screen with `tmux
//! capture-pane`, compare it with `stats.get_totals`, kill and restart the daemon under
//! it, quit with `q` and check the exit status and the terminal modes it leaves behind.
//! tmux is required (`apt-get install tmux`): without it the tests fail. `watch --json`
//! is read from a pipe.

use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use torrent_stats::rpc::client::Client;
use torrent_stats::rpc::tls::CertPolicy;
use torrent_stats::units::parse_bytes;
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
