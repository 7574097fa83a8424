//! Several named sources in one daemon: the upgrade of a single-source config dir, run-time
//! changes through the real CLI and SIGHUP, combined and per-source figures over RPC and
//! `/metrics`, clear errors that never name a password.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};
use torrent_stats::unstable::{self, History};
use torrent_stats::Accumulator;

use crate::support::daemon::{command, DaemonProc};
use crate::support::rpc::Raw;
use crate::support::{signal, BIN};

/// `<cfg>/sources/<name>/<file>`.
fn source_file(cfg: &Path, name: &str, file: &str) -> PathBuf {
    cfg.join("sources").join(name).join(file)
}

/// A daemon on `sources` (each `--source` argument), RPC and web on free ports.
fn start(dir: tempfile::TempDir, sources: &[&str]) -> Result<DaemonProc> {
    let mut cmd = command(dir.path(), sources[0]);
    for s in &sources[1..] {
        cmd.args(["--source", s]);
    }
    DaemonProc::launch(cmd, dir)
}

/// `torrent-stats ARGS --port P --config-dir D` (stdin from `input`): its output, or an
/// error with its stderr.
fn cli(d: &DaemonProc, args: &[&str], input: Option<&str>) -> Result<std::process::Output> {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(args)
        .args(["--port", &d.port().to_string(), "--config-dir"])
        .arg(d.dir.path())
        .env_remove("TORRENT_STATS_CONFIG_DIR")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    if let Some(text) = input {
        child
            .stdin
            .take()
            .context("stdin")?
            .write_all(text.as_bytes())?;
    }
    drop(child.stdin.take());
    Ok(child.wait_with_output()?)
}

fn sum(v: &Value, key: &str) -> u64 {
    v.as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| r["totals"][key].as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}

async fn sources(rpc: &mut Raw) -> Result<Value> {
    rpc.call_ok("stats.get_sources", json!([]), json!({})).await
}

/// Waits until `probe` holds (checked every 100 ms), at most `limit`.
async fn until(
    limit: Duration,
    what: &str,
    mut probe: impl AsyncFnMut() -> Result<bool>,
) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if probe().await? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{what} did not happen within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A config dir written by the release before named sources becomes source `sim`'s with
/// its totals and history intact, once; a second start does not move anything again.
#[tokio::test]
async fn a_release_config_dir_becomes_the_first_source() -> Result<()> {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/daemon/fixtures/release-config");
    let dir = tempfile::tempdir()?;
    for f in [
        "stats.totals",
        "stats.totals.bak",
        "stats.history",
        "stats.conf",
        "core.conf",
    ] {
        std::fs::copy(fixture.join(f), dir.path().join(f))?;
    }
    let before = unstable::read::<Accumulator>(&fixture.join("stats.totals"))
        .map_err(|e| anyhow::anyhow!("fixture: {e}"))?;
    let history = unstable::read::<History>(&fixture.join("stats.history"))
        .map_err(|e| anyhow::anyhow!("fixture: {e}"))?;
    // No traffic: the totals after the upgrade are exactly the release's.
    let d = start(dir, &["sim:up=0,down=0"])?;
    let mut rpc = Raw::login(d.addr, "localclient", &d.password).await?;
    let totals = rpc.totals().await?;
    ensure!(
        totals == serde_json::to_value(before.totals)?,
        "{totals} != {:?}",
        before.totals
    );
    let cfg = d.dir.path().to_path_buf();
    ensure!(!cfg.join("stats.totals").exists() && !cfg.join("stats.history").exists());
    ensure!(source_file(&cfg, "sim", "stats.totals.bak").exists());
    let moved = unstable::read::<History>(&source_file(&cfg, "sim", "stats.history"))
        .map_err(|e| anyhow::anyhow!("moved history: {e}"))?;
    let (old, new) = (&history.levels[0], &moved.levels[0]);
    for (key, series) in &old.series {
        let now = &new.series[key];
        // Newest first: the release's points follow the new ones.
        ensure!(
            now.iter().rev().take(series.len()).eq(series.iter().rev()),
            "{key}: {series:?} not kept in {now:?}"
        );
    }
    let listed = std::fs::read_to_string(cfg.join("sources.toml"))?;
    ensure!(listed.contains("name = \"sim\""), "{listed}");
    drop(rpc);
    let dir = d.stop()?;
    // Idempotent: started again, nothing moves and nothing is counted twice.
    let d = start(dir, &["sim:up=0,down=0"])?;
    let mut rpc = Raw::login(d.addr, "localclient", &d.password).await?;
    ensure!(rpc.totals().await? == serde_json::to_value(before.totals)?);
    let listed = sources(&mut rpc).await?;
    ensure!(listed.as_array().map(Vec::len) == Some(1), "{listed}");
    Ok(())
}

/// Sources added, retired, resumed and purged at run time through the CLI and SIGHUP:
/// the combined all-time totals never drop until a purge, each source keeps counting,
/// passwords appear nowhere.
#[tokio::test]
async fn sources_change_at_run_time_without_losing_a_byte() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let d = start(
        dir,
        &[
            "a=sim:up=1MiB/s,down=2MiB/s",
            "b=sim:up=10KiB/s,down=20KiB/s",
        ],
    )?;
    let cfg = d.dir.path().to_path_buf();
    let mut rpc = Raw::login(d.addr, "localclient", &d.password).await?;
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(cfg.join("sources.toml"))?.permissions(),
    );
    ensure!(mode & 0o777 == 0o600, "sources.toml mode {mode:o}");
    // Combined = the sum of the sources.
    rpc.call_ok(
        "stats.set_config",
        json!([{"update_interval": 1}]),
        json!({}),
    )
    .await?;
    let listed = sources(&mut rpc).await?;
    let combined = rpc.totals().await?;
    ensure!(combined["total_upload"].as_u64() >= Some(sum(&listed, "total_upload")));
    // Add one through the CLI, the spec (with a password) on stdin.
    let out = cli(
        &d,
        &["source", "add", "c"],
        Some("sim:up=5KiB/s,down=5KiB/s\n"),
    )?;
    ensure!(
        out.status.success(),
        "source add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A source with a password: added, described without it.
    let out = cli(
        &d,
        &["source", "add", "qb"],
        Some("qbittorrent://admin:s3cret-pw@127.0.0.1:9\n"),
    )?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "source add qb: {err}");
    // Nothing listens there: the add says so at once, naming the source, never the password.
    ensure!(
        err.contains("its first poll failed") && err.contains("qbittorrent://admin@127.0.0.1:9"),
        "{err}"
    );
    ensure!(!err.contains("s3cret-pw"), "{err}");
    let listed = sources(&mut rpc).await?;
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    ensure!(names == ["a", "b", "c", "qb"], "{names:?}");
    ensure!(!listed.to_string().contains("s3cret-pw"), "{listed}");
    ensure!(std::fs::read_to_string(cfg.join("sources.toml"))?.contains("s3cret-pw"));
    until(Duration::from_secs(10), "source c counting", async || {
        let l = sources(&mut rpc).await?;
        Ok(l[2]["totals"]["total_upload"].as_u64() > Some(0))
    })
    .await?;
    // Clear errors: duplicate, bad name, bad spec, the engine at run time.
    for (args, input, want) in [
        (
            vec!["source", "add", "a"],
            "sim:up=1,down=1\n",
            "a source named a is counting already",
        ),
        (
            vec!["source", "add", "Big"],
            "sim:up=1,down=1\n",
            "bad source name",
        ),
        (
            vec!["source", "add", "x"],
            "ftp://u:zz-pw@h\n",
            "unknown source kind",
        ),
        (
            vec!["source", "add", "e"],
            "engine\n",
            "the embedded engine starts with the daemon",
        ),
    ] {
        let out = cli(&d, &args, Some(input))?;
        let err = String::from_utf8_lossy(&out.stderr);
        ensure!(
            !out.status.success() && err.contains(want),
            "{args:?}: {err}"
        );
        ensure!(!err.contains("zz-pw"), "{err}");
    }
    // Retire b: its totals stay in the combined figures, frozen; it is listed as retired.
    let before = rpc.totals().await?["total_upload"].as_u64().unwrap_or(0);
    let out = cli(&d, &["source", "remove", "b"], None)?;
    ensure!(
        out.status.success(),
        "remove: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = sources(&mut rpc).await?;
    let b = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "b")
        .context("b listed")?
        .clone();
    ensure!(b["retired"] == json!(true), "{b}");
    let frozen = b["totals"]["total_upload"].as_u64();
    ensure!(
        rpc.totals().await?["total_upload"].as_u64() >= Some(before),
        "the combined total dropped"
    );
    let web = d.web_addr()?;
    let metrics = reqwest::get(format!("http://{web}/metrics"))
        .await?
        .text()
        .await?;
    let line = format!(
        "torrent_stats_upload_bytes_total{{source=\"b\"}} {}",
        frozen.unwrap_or(0)
    );
    ensure!(
        metrics.contains(&line),
        "no frozen series {line:?} in\n{metrics}"
    );
    ensure!(!metrics.contains("s3cret-pw"));
    ensure!(
        !metrics.contains("torrent_stats_source_up{source=\"b\"}"),
        "a retired source is not polled"
    );
    // SIGHUP applies the file: b resumes with its totals (retired = true removed by hand).
    let text = std::fs::read_to_string(cfg.join("sources.toml"))?;
    let edited = text.replacen(
        "spec = \"sim:up=10KiB/s,down=20KiB/s\"\nretired = true",
        "spec = \"sim:up=10KiB/s,down=20KiB/s\"",
        1,
    );
    ensure!(edited != text, "b's entry in\n{text}");
    std::fs::write(cfg.join("sources.toml"), edited)?;
    signal(d.pid, "HUP")?;
    until(Duration::from_secs(10), "b resumed", async || {
        let l = sources(&mut rpc).await?;
        let b = l
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "b")
            .cloned()
            .unwrap_or_default();
        Ok(b["retired"] == json!(false) && b["totals"]["total_upload"].as_u64() > frozen)
    })
    .await?;
    // Purge needs --yes and a retired source; then its totals leave the combined figures.
    let out = cli(&d, &["source", "purge", "c", "--yes"], None)?;
    ensure!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("remove it first")
    );
    ensure!(cli(&d, &["source", "remove", "c"], None)?.status.success());
    ensure!(
        !cli(&d, &["source", "purge", "c"], None)?.status.success(),
        "purge without --yes"
    );
    ensure!(source_file(&cfg, "c", "stats.totals").exists());
    let out = cli(&d, &["source", "purge", "c", "--yes"], None)?;
    ensure!(
        out.status.success(),
        "purge: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(!cfg.join("sources/c").exists(), "purged files remain");
    let listed = sources(&mut rpc).await?;
    ensure!(
        listed.as_array().unwrap().iter().all(|r| r["name"] != "c"),
        "{listed}"
    );
    ensure!(!std::fs::read_to_string(cfg.join("sources.toml"))?.contains("name = \"c\""));
    // The daemon's own log never holds the password.
    ensure!(!d.log().contains("s3cret-pw"), "password in the log");
    // `source list` and `totals` show each source.
    let out = cli(&d, &["source", "list"], None)?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        text.contains("qbittorrent") && text.contains("down"),
        "{text}"
    );
    let out = cli(&d, &["totals"], None)?;
    let text = String::from_utf8_lossy(&out.stdout);
    for name in ["a", "b", "qb"] {
        ensure!(
            text.lines().any(|l| l.starts_with(&format!("{name} "))),
            "{name} not in\n{text}"
        );
    }
    Ok(())
}

/// Start-up errors name the source and say what to do.
#[test]
fn bad_sources_at_start_say_what_to_do() -> Result<()> {
    for (sources, want) in [
        (
            vec!["sim:up=1,down=1", "sim:up=2,down=2"],
            "two sim sources without a name",
        ),
        (
            vec!["x=sim:up=1,down=1", "x=sim:up=2,down=2"],
            "two sources are named x",
        ),
        (vec!["NAS=sim:up=1,down=1"], "bad source name \"NAS\""),
        (
            vec!["t=transmission://me:hush-pw@h:0"],
            "source t: bad source",
        ),
    ] {
        let dir = tempfile::tempdir()?;
        let mut cmd = command(dir.path(), sources[0]);
        for s in &sources[1..] {
            cmd.args(["--source", s]);
        }
        let out = cmd.output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        ensure!(
            !out.status.success() && err.contains(want),
            "{sources:?}: {err}"
        );
        ensure!(!err.contains("hush-pw"), "{err}");
    }
    Ok(())
}

/// Stock deluge-console shows the combined session of a daemon without an engine: two
/// sources at 1 MiB/s up each are 2 MiB/s (1.9 MiB/s of payload) in its `status`, and
/// `core.get_session_status` sums the sources' sessions.
#[test]
#[ignore = "needs deluge-console"]
fn deluge_console_shows_the_combined_session() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let d = start(
        dir,
        &[
            "a=sim:up=1MiB/s,down=2MiB/s,peers=2",
            "b=sim:up=1MiB/s,down=2MiB/s,peers=3",
        ],
    )?;
    let out = crate::support::console::run(d.port(), &d.password, "status");
    ensure!(
        out.contains("Total upload: 1.9 MiB/s") && out.contains("Total download: 3.8 MiB/s"),
        "{out}"
    );
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let mut rpc = Raw::login(d.addr, "localclient", &d.password).await?;
            let keys = json!([["num_peers", "payload_upload_rate"]]);
            let s = rpc
                .call_ok("core.get_session_status", keys, json!({}))
                .await?;
            ensure!(s["num_peers"] == json!(5), "{s}");
            ensure!(s["payload_upload_rate"].as_f64() > Some(1_900_000.0), "{s}");
            Ok(())
        })
}

/// The names of `method`'s calls the daemon answered, from its debug log.
fn answered(log: &str, method: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("call answered") && l.contains(method))
        .count()
}

/// The stock Deluge GTK client on a daemon of two sources and no engine: its status bar
/// polls `core.get_session_status`, which answers the sources' combined session (as the
/// console's `status` shows above), and its Stats tab polls `stats.get_stats` (the
/// combined history); no call fails. Screenshots of both are kept in the target's tmp
/// directory (`deluge-gtk-sources-*.png`).
#[test]
#[ignore = "needs deluge-gtk, Xvfb, dbus and gir1.2-atspi-2.0"]
fn the_deluge_gtk_client_works_on_several_sources() -> Result<()> {
    crate::support::gtk::require_tools()?;
    let dir = tempfile::tempdir()?;
    let mut cmd = command(dir.path(), "a=sim:up=1MiB/s,down=2MiB/s,peers=2");
    cmd.args(["--source", "b=sim:up=1MiB/s,down=2MiB/s,peers=3"])
        .env("RUST_LOG", "info,torrent_stats::rpc::server=debug");
    let d = DaemonProc::launch(cmd, dir)?;
    let display = crate::support::gtk::Display::start(1280, 800)?;
    let mut gtk = crate::support::gtk::Gtk::start(
        &display,
        d.port(),
        "localclient",
        &d.password,
        (1280, 800),
    )?;
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let wait = |what: &str, done: &dyn Fn(&str) -> bool| -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done(&d.log()) {
            ensure!(
                Instant::now() < deadline,
                "deluge-gtk: {what} within 60 s; the daemon's log:\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    };
    wait("no status bar polls", &|log| {
        answered(log, "core.get_session_status") >= 3
    })?;
    ensure!(gtk.running(), "deluge-gtk exited");
    display.screenshot(&shots.join("deluge-gtk-sources-main.png"))?;
    let before = answered(&d.log(), "stats.get_stats");
    display.select_tab("deluge", "Stats")?;
    wait("the Stats tab did not poll stats.get_stats", &|log| {
        answered(log, "stats.get_stats") >= before + 3
    })?;
    display.screenshot(&shots.join("deluge-gtk-sources-stats.png"))?;
    ensure!(gtk.running(), "deluge-gtk exited");
    ensure!(
        !d.log().contains("call failed"),
        "a call of deluge-gtk failed:\n{}",
        d.log()
    );
    Ok(())
}
