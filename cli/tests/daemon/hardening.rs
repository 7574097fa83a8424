//! Files, hand-edited config, signals and exit codes, against the daemon binary with real
//! files and real signals (issue 9's table):
//!
//! - a symlink planted at a temp path (`.stats.totals.tmp`, `.stats.history.tmp` in the
//!   source's directory `sources/sim/`, `.stats.conf.tmp`) in a world-writable config dir:
//!   the target is untouched, the totals are saved;
//! - a full disk (a 256 KiB tmpfs mounted by the test, as root, filled up to its last three
//!   pages) during every history save: no temp file is left, the final save's failure gives a non-zero exit status, nothing
//!   saved before is lost;
//! - a group- or world-writable config dir is refused with the fix, or accepted with
//!   `--allow-insecure-config-dir`; an `auth` or `ssl/daemon.pkey` others can read is
//!   refused at start and on SIGHUP, with the fix;
//! - a hand-edited `stats.conf` (unknown key with a suggestion, wrong type, bad value)
//!   stops the start with file, line and key, and on SIGHUP leaves the running settings,
//!   the file byte for byte, and never rolls back to `stats.conf.bak`;
//! - SIGUSR1/SIGUSR2 do no harm; SIGHUP reloads a changed `auth`, TLS key pair and
//!   `stats.conf` (a key that does not match its certificate is refused); SIGQUIT
//!   saves before it stops; a final save that fails (an immutable directory) exits non-zero.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serde_json::Value;
use torrent_stats::unstable::History;
use torrent_stats::Accumulator;
use torrent_stats::StatusKey;
use torrent_stats::{unstable, Durability, Store};

use crate::support;
use crate::support::daemon::{DaemonProc, SIM, SOURCE};
use crate::support::{source_files, BIN};

/// `torrent-stats daemon` on `dir` (ports 0, the sim source) with `extra` arguments.
fn daemon_command(dir: &Path, extra: &[&str]) -> Command {
    let mut command = support::daemon::command(dir, SOURCE);
    command.args(extra);
    command
}

/// Starts the daemon on `dir` (which the returned process owns).
fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Result<DaemonProc> {
    let command = daemon_command(dir.path(), extra);
    DaemonProc::launch(command, dir)
}

/// Runs a daemon that must fail to start: its exit status and stderr (killed after 20 s).
fn start_fails(dir: &Path, extra: &[&str]) -> Result<(ExitStatus, String)> {
    fails(daemon_command(dir, extra))
}

/// Runs the daemon `command` that must fail to start (killed after 20 s, an error then).
fn fails(mut command: Command) -> Result<(ExitStatus, String)> {
    command
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .env_remove("TORRENT_STATS_CONFIG_DIR")
        .env_remove("TORRENT_STATS_SOURCE");
    let out = support::run_limited(command, Duration::from_secs(20))
        .context("the daemon did not stop by itself")?;
    Ok((
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Sends `signal` (a name for kill(1), e.g. `HUP`) to the daemon.
fn signal(d: &DaemonProc, signal: &str) -> Result<()> {
    support::signal(d.pid, signal)
}

/// Waits (at most `limit`) for a log line containing `needle`; the line.
fn wait_log(d: &DaemonProc, needle: &str, limit: Duration) -> Result<String> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(line) = d.log().lines().find(|l| l.contains(needle)) {
            return Ok(line.to_string());
        }
        ensure!(
            Instant::now() < deadline,
            "no log line with {needle:?} within {limit:?}; log:\n{}",
            d.log()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// The number of log lines containing `needle`.
fn count_log(d: &DaemonProc, needle: &str) -> usize {
    d.log().lines().filter(|l| l.contains(needle)).count()
}

/// `torrent-stats ARGS` against the daemon's RPC port: (success, stdout, stderr).
fn cli(d: &DaemonProc, args: &[&str]) -> Result<(bool, String, String)> {
    let out = Command::new(BIN)
        .args(args)
        .arg("--config-dir")
        .arg(d.config_dir())
        .args(["--port", &d.port().to_string()])
        .env("NO_COLOR", "1")
        .env_remove("TORRENT_STATS_CONFIG_DIR")
        .env_remove("TORRENT_STATS_PASSWORD")
        .stdin(Stdio::null())
        .output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// The running preferences (`stats.get_config` through `torrent-stats config get`).
fn running_config(d: &DaemonProc) -> Result<Value> {
    let (ok, out, err) = cli(d, &["config", "get", "--json"])?;
    ensure!(ok, "config get failed: {err}");
    Ok(serde_json::from_str(&out)?)
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))
}

/// Files in config dir `dir` and in its sim source's directory whose name contains
/// `part`.
fn files_with(dir: &Path, part: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = [dir.to_path_buf(), source_files(dir, SIM)]
        .iter()
        .filter_map(|d| fs::read_dir(d).ok())
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains(part))
        })
        .collect();
    found.sort();
    found
}

/// The sim source's totals in config dir `dir`.
fn totals_in(dir: &Path) -> Result<Accumulator> {
    unstable::read::<Accumulator>(&source_files(dir, SIM).join("stats.totals"))
        .map_err(|e| anyhow::anyhow!("stats.totals unusable: {e}"))
}

fn write_conf(dir: &Path, text: &str) -> Result<()> {
    fs::write(dir.join("stats.conf"), text)?;
    Ok(())
}

#[test]
fn a_symlink_planted_at_a_temp_path_is_not_followed() -> Result<()> {
    let outside = tempfile::tempdir()?;
    let victim = outside.path().join("victim");
    fs::write(&victim, "precious\n")?;
    let dangling = outside.path().join("never-created");
    let dir = tempfile::tempdir()?;
    set_mode(dir.path(), 0o777)?; // anyone can plant files: the attack's setting
    write_conf(dir.path(), "update_interval = 1\nsave_interval = 5\n")?;
    // The source's directory, made by whoever plants first (the attacker, here).
    let source_dir = source_files(dir.path(), SIM);
    fs::create_dir_all(&source_dir)?;
    set_mode(&source_dir, 0o777)?;
    let plant = |dir: &Path| -> Result<()> {
        let source_dir = source_files(dir, SIM);
        for (path, target) in [
            (source_dir.join(".stats.totals.tmp"), &victim),
            (source_dir.join(".stats.history.tmp"), &victim),
            (dir.join(".stats.conf.tmp"), &dangling),
        ] {
            let _ = fs::remove_file(&path);
            symlink(target, &path)?;
        }
        Ok(())
    };
    plant(dir.path())?;
    let mut d = start_in(dir, &["--allow-insecure-config-dir"])?;
    let cfg = d.config_dir().to_path_buf();
    wait_log(&d, "counting a new session", Duration::from_secs(20))?;
    // The first save replaced the symlinks; plant them again for the next saves (fast
    // ones every poll, a checkpoint with the history every 5 s, the conf on set_config).
    thread::sleep(Duration::from_millis(500));
    plant(&cfg)?;
    let (ok, _, err) = cli(&d, &["config", "set", "length=200"])?;
    ensure!(ok, "config set: {err}");
    thread::sleep(Duration::from_secs(6));
    let status = d.terminate()?;
    ensure!(status.success(), "exit {status}; log:\n{}", d.log());
    assert_eq!(
        fs::read_to_string(&victim)?,
        "precious\n",
        "the victim was written"
    );
    assert!(
        !dangling.exists(),
        "a dangling symlink's target was created"
    );
    let acc = totals_in(&cfg)?;
    assert!(acc.totals.total_upload > 0, "totals saved: {acc:?}");
    let conf = fs::read_to_string(cfg.join("stats.conf"))?;
    assert!(conf.contains("length = 200"), "{conf}");
    assert!(
        unstable::read::<History>(&source_files(&cfg, SIM).join("stats.history")).is_ok(),
        "history saved"
    );
    assert!(
        files_with(&cfg, ".tmp").is_empty(),
        "{:?}",
        files_with(&cfg, ".tmp")
    );
    Ok(())
}

/// A tmpfs mounted by the test, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Tmpfs> {
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .context("run mount")?;
        ensure!(
            status.success(),
            "could not mount a tmpfs on {} (the disk-full test needs root)",
            at.display()
        );
        Ok(Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system of `dir` with `name`, then frees `leave` bytes of it.
fn fill(dir: &Path, name: &str, leave: u64) -> Result<PathBuf> {
    let path = dir.join(name);
    let mut file = fs::File::create(&path)?;
    let chunk = vec![0xa5u8; 4096];
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => return Err(e.into()),
        }
    }
    let len = file.metadata()?.len();
    file.set_len(len.saturating_sub(leave))?;
    file.sync_all()?;
    Ok(path)
}

/// A history of 150 points of large numbers: about 20 KiB, several tmpfs pages.
fn big_history() -> History {
    let mut history = History::new(1, 150);
    let values = torrent_stats::unstable::history::SERIES
        .iter()
        .map(|k| (*k, 123_456_789_012_345u64))
        .collect::<std::collections::BTreeMap<StatusKey, u64>>();
    for i in 0..150 {
        history.push(&values, 1_700_000_000.0 + i as f64);
    }
    history
}

#[test]
#[ignore = "needs root (mounts a tmpfs)"]
fn a_full_disk_leaves_no_temp_file_and_the_failed_final_save_exits_non_zero() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cfg = dir.path().to_path_buf();
    write_conf(&cfg, "update_interval = 1\nsave_interval = 5\n")?;
    let source_dir = source_files(&cfg, SIM);
    fs::create_dir_all(&source_dir)?;
    // The source's files on a disk of their own: the calendar ledger (in the config
    // directory itself, its WAL growing with each save) would take the pages left below.
    let _tmpfs = Tmpfs::mount(&source_dir, "256k")?;
    {
        let history = Store::<History>::open(source_dir.join("stats.history"))?;
        history.save(&big_history(), Durability::Durable)?;
    }
    let history_size = fs::metadata(source_dir.join("stats.history"))?.len();
    ensure!(history_size > 5 * 4096, "history of {history_size} bytes");
    let mut d = start_in(dir, &[])?;
    wait_log(&d, "counting a new session", Duration::from_secs(20))?;
    // Three pages left: the totals (a page each for the file, its .bak and a save's temp
    // file) always fit, the history (more than five pages) never does, so its temp file is
    // written in part before the disk is full, at every checkpoint.
    let filler = fill(&source_dir, "filler", 3 * 4096)?;
    wait_log(&d, "could not save history", Duration::from_secs(15))?;
    let line = wait_log(&d, "could not save history", Duration::from_secs(1))?;
    assert!(line.contains("No space left on device"), "{line}");
    // The daemon goes on; the history's temp file must not stay (a sample may catch one
    // being written: a temp file that stays is seen every time).
    let mut seen = 0;
    for _ in 0..6 {
        if source_dir.join(".stats.history.tmp").exists() {
            seen += 1;
        }
        thread::sleep(Duration::from_millis(300));
    }
    assert!(
        seen <= 1,
        "a failed save left its temp file: {:?}",
        files_with(&cfg, ".tmp")
    );
    assert!(d.running(), "log:\n{}", d.log());
    let before_stop = totals_in(&cfg)?;
    let status = d.terminate()?;
    assert!(
        !status.success(),
        "the final save failed but the exit status is {status}; log:\n{}",
        d.log()
    );
    assert!(
        d.log().contains("final save failed"),
        "the exit says why; log:\n{}",
        d.log()
    );
    assert!(
        files_with(&cfg, ".tmp").is_empty(),
        "temp files left: {:?}",
        files_with(&cfg, ".tmp")
    );
    let after = totals_in(&cfg)?;
    assert!(after.totals.total_upload >= before_stop.totals.total_upload);
    assert!(
        unstable::read::<History>(&source_dir.join("stats.history")).is_ok(),
        "the history saved before the disk filled up is intact"
    );
    // Space again: a restart uses the files and saves.
    fs::remove_file(&filler)?;
    let dir = std::mem::replace(&mut d.dir, tempfile::tempdir()?);
    drop(d);
    let mut d = start_in(dir, &[])?;
    wait_log(&d, "counting a new session", Duration::from_secs(20))?;
    thread::sleep(Duration::from_millis(1500));
    let status = d.terminate()?;
    ensure!(status.success(), "exit {status}; log:\n{}", d.log());
    let last = totals_in(&cfg)?;
    assert!(last.totals.total_upload > after.totals.total_upload);
    assert!(
        files_with(&cfg, ".corrupt").is_empty(),
        "{:?}",
        files_with(&cfg, ".corrupt")
    );
    let dir = std::mem::replace(&mut d.dir, tempfile::tempdir()?);
    drop(d);
    drop(_tmpfs);
    drop(dir);
    Ok(())
}

#[test]
fn a_config_dir_others_can_write_is_refused_unless_allowed() -> Result<()> {
    for mode in [0o777, 0o770, 0o1777] {
        let dir = tempfile::tempdir()?;
        set_mode(dir.path(), mode)?;
        let (status, err) = start_fails(dir.path(), &[])?;
        assert!(!status.success(), "mode {mode:o} accepted");
        let fix = format!("chmod go-w {}", dir.path().display());
        assert!(err.contains(&fix), "mode {mode:o}: {err}");
        assert!(err.contains("--allow-insecure-config-dir"), "{err}");
        assert!(
            !dir.path().join("auth").exists(),
            "mode {mode:o}: files written before the refusal"
        );
    }
    let dir = tempfile::tempdir()?;
    set_mode(dir.path(), 0o777)?;
    let mut d = start_in(dir, &["--allow-insecure-config-dir"])?;
    let line = wait_log(&d, "writable by other users", Duration::from_secs(5))?;
    assert!(line.contains("WARN"), "{line}");
    let status = d.terminate()?;
    ensure!(status.success(), "exit {status}; log:\n{}", d.log());
    // A config dir the daemon creates is private.
    let parent = tempfile::tempdir()?;
    let fresh = parent.path().join("new").join("cfg");
    let (status, err) = {
        let mut child = daemon_command(&fresh, &[])
            .env_remove("TORRENT_STATS_CONFIG_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while !source_files(&fresh, SIM).join("stats.totals").exists() && Instant::now() < deadline
        {
            thread::sleep(Duration::from_millis(20));
        }
        let _ = support::signal(child.id(), "TERM");
        let status = child.wait()?;
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().context("stderr")?, &mut err)?;
        (status, err)
    };
    assert!(status.success(), "{status}: {err}");
    let mode = fs::metadata(&fresh)?.permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "created config dir mode {mode:o}");
    Ok(())
}

#[test]
fn auth_and_key_files_others_can_read_are_refused_with_the_fix() -> Result<()> {
    // A first run creates auth and ssl/ (both 0600).
    let d = DaemonProc::start()?;
    let dir = d.stop()?;
    let auth = dir.path().join("auth");
    let key = dir.path().join("ssl").join("daemon.pkey");
    for (file, mode) in [(&auth, 0o644), (&auth, 0o640), (&key, 0o644), (&key, 0o604)] {
        set_mode(file, mode)?;
        let (status, err) = start_fails(dir.path(), &[])?;
        assert!(
            !status.success(),
            "{} mode {mode:o} accepted",
            file.display()
        );
        let fix = format!("chmod 600 {}", file.display());
        assert!(
            err.contains(&fix),
            "{} mode {mode:o}: {err}",
            file.display()
        );
        set_mode(file, 0o600)?;
    }

    // On SIGHUP: refused with the fix; the accounts read last stay.
    let mut d = start_in(dir, &[])?;
    let auth = d.config_dir().join("auth");
    let key = d.config_dir().join("ssl").join("daemon.pkey");
    fs::OpenOptions::new()
        .append(true)
        .open(&auth)?
        .write_all(b"mallory:stolen:10\n")?;
    set_mode(&auth, 0o644)?;
    set_mode(&key, 0o644)?;
    signal(&d, "HUP")?;
    wait_log(&d, "SIGHUP received", Duration::from_secs(5))?;
    let line = wait_log(
        &d,
        &format!("chmod 600 {}", auth.display()),
        Duration::from_secs(5),
    )?;
    assert!(line.contains("ERROR"), "{line}");
    let line = wait_log(
        &d,
        &format!("chmod 600 {}", key.display()),
        Duration::from_secs(5),
    )?;
    assert!(line.contains("ERROR"), "{line}");
    let (ok, _, _) = cli(&d, &["totals", "--user", "mallory", "--password", "stolen"])?;
    assert!(!ok, "an account from a file others can read was used");
    let (ok, _, err) = cli(&d, &["totals"])?;
    assert!(ok, "localclient still logs in: {err}");
    assert!(d.running());
    set_mode(&auth, 0o600)?;
    set_mode(&key, 0o600)?;
    let status = d.terminate()?;
    ensure!(status.success(), "exit {status}; log:\n{}", d.log());
    Ok(())
}

/// Hand edits that must be refused: (file text, line, what the message must contain).
const BAD_EDITS: [(&str, usize, &[&str]); 4] = [
    (
        "length = 150\nupdate_intervall = 3\n",
        2,
        &[
            "unknown key `update_intervall`",
            "did you mean `update_interval`?",
            "`save_interval` (5..=3600",
        ],
    ),
    (
        "# mine\nupdate_interval = 2\nlength = \"long\"\n",
        3,
        &[
            "`length` must be a whole number from 10 to 10000",
            "not a string",
        ],
    ),
    (
        "save_interval = 1\n",
        1,
        &["`save_interval` = 1 is out of range: allowed 5..=3600"],
    ),
    (
        "update_interval = 2\nlength = = 3\n",
        2,
        &["not valid TOML"],
    ),
];

#[test]
fn a_bad_hand_edit_of_stats_conf_stops_the_start_and_is_left_as_written() -> Result<()> {
    for (text, line, needles) in BAD_EDITS {
        let dir = tempfile::tempdir()?;
        write_conf(dir.path(), text)?;
        // A backup that must not be rolled back to.
        fs::write(dir.path().join("stats.conf.bak"), "update_interval = 7\n")?;
        let (status, err) = start_fails(dir.path(), &[])?;
        assert!(!status.success(), "{text:?} accepted:\n{err}");
        let file = dir.path().join("stats.conf");
        let at = format!("{} line {line}: ", file.display());
        assert!(err.contains(&at), "{text:?}: no {at:?} in:\n{err}");
        for needle in needles {
            assert!(err.contains(needle), "{text:?}: no {needle:?} in:\n{err}");
        }
        assert_eq!(fs::read_to_string(&file)?, text, "the file was changed");
        assert_eq!(
            fs::read_to_string(dir.path().join("stats.conf.bak"))?,
            "update_interval = 7\n"
        );
        assert!(files_with(dir.path(), ".corrupt").is_empty());
        assert!(
            !source_files(dir.path(), SIM).join("stats.totals").exists(),
            "it counted"
        );
    }
    Ok(())
}

/// The other files a person may edit, `core.conf` (the plugins enabled at start) and
/// `engine.conf` (the engine's rate limits), are never rolled back to their `.bak` either:
/// a bad edit stops the start with the file, line and key, and both files stay as written.
#[test]
fn bad_hand_edits_of_core_conf_and_engine_conf_stop_the_start_and_are_left_as_written() -> Result<()>
{
    let cases: [(&str, &str, &[&str]); 4] = [
        (
            "core.conf",
            "enabled_plugin = [\"Stats\"]\n",
            &[
                "line 1",
                "unknown field `enabled_plugin`",
                "enabled_plugins",
            ],
        ),
        (
            "core.conf",
            "enabled_plugins = \"Stats\"\n",
            &["line 1", "invalid type"],
        ),
        (
            "engine.conf",
            "max_download_bps = 1000\nmax_upload_bsp = 10\n",
            &["line 2", "unknown field `max_upload_bsp`", "max_upload_bps"],
        ),
        (
            "engine.conf",
            "max_download_bps = \"fast\"\n",
            &["line 1", "invalid type"],
        ),
    ];
    for (name, text, needles) in cases {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join(name);
        fs::write(&file, text)?;
        let bak = dir.path().join(format!("{name}.bak"));
        fs::write(&bak, "# a good older version\n")?;
        let (status, err) = if name == "engine.conf" {
            // The embedded engine (the daemon's default source) reads engine.conf.
            let mut command = Command::new(BIN);
            command
                .arg("daemon")
                .arg("--config-dir")
                .arg(dir.path())
                .arg("--download-dir")
                .arg(dir.path().join("downloads"))
                .args(["--port", "0", "--web-port", "0", "--source", "rqbit"]);
            fails(command)?
        } else {
            start_fails(dir.path(), &[])?
        };
        assert!(!status.success(), "{name} {text:?} accepted:\n{err}");
        assert!(
            err.contains(&file.display().to_string()),
            "{name}: no path in:\n{err}"
        );
        for needle in needles {
            assert!(
                err.contains(needle),
                "{name} {text:?}: no {needle:?} in:\n{err}"
            );
        }
        assert!(err.contains("left as written"), "{err}");
        assert_eq!(fs::read_to_string(&file)?, text, "{name} was changed");
        assert_eq!(fs::read_to_string(&bak)?, "# a good older version\n");
        assert!(
            files_with(dir.path(), ".corrupt").is_empty(),
            "{name} was moved aside"
        );
    }
    Ok(())
}

#[test]
fn sighup_reloads_stats_conf_and_keeps_the_running_settings_on_a_bad_edit() -> Result<()> {
    let dir = tempfile::tempdir()?;
    write_conf(
        dir.path(),
        "update_interval = 2\nlength = 150\nsave_interval = 30\n",
    )?;
    fs::write(dir.path().join("stats.conf.bak"), "update_interval = 7\n")?;
    let mut d = start_in(dir, &[])?;
    let file = d.config_dir().join("stats.conf");
    let config = running_config(&d)?;
    assert_eq!(config["update_interval"], 2, "{config}");

    // A good edit applies on SIGHUP; the file is not rewritten.
    let good = "# edited by hand\nupdate_interval = 3\nlength = 300\n";
    fs::write(&file, good)?;
    signal(&d, "HUP")?;
    wait_log(&d, "stats.conf reloaded", Duration::from_secs(5))?;
    let config = running_config(&d)?;
    assert_eq!(
        (
            config["update_interval"].as_u64(),
            config["length"].as_u64(),
            config["save_interval"].as_u64()
        ),
        (Some(3), Some(300), Some(30)),
        "{config}"
    );
    assert_eq!(fs::read_to_string(&file)?, good);

    // Bad edits: refused, logged with file, line and key; settings, file and .bak stay.
    for (n, (text, line, needles)) in BAD_EDITS.iter().enumerate() {
        fs::write(&file, text)?;
        signal(&d, "HUP")?;
        let expect = n + 1;
        let deadline = Instant::now() + Duration::from_secs(5);
        while count_log(&d, "stats.conf not reloaded") < expect {
            ensure!(
                Instant::now() < deadline,
                "no refusal for {text:?}; log:\n{}",
                d.log()
            );
            thread::sleep(Duration::from_millis(20));
        }
        let refusal = d
            .log()
            .lines()
            .filter(|l| l.contains("stats.conf not reloaded"))
            .nth(n)
            .unwrap_or_default()
            .to_string();
        assert!(refusal.contains("ERROR"), "{refusal}");
        assert!(
            refusal.contains(&format!("{} line {line}: ", file.display())),
            "{text:?}: {refusal}"
        );
        for needle in needles.iter() {
            assert!(
                refusal.contains(needle),
                "{text:?}: no {needle:?} in {refusal}"
            );
        }
        let config = running_config(&d)?;
        assert_eq!(
            (
                config["update_interval"].as_u64(),
                config["length"].as_u64()
            ),
            (Some(3), Some(300)),
            "{text:?}: the running settings changed: {config}"
        );
        assert_eq!(&fs::read_to_string(&file)?, text, "the file was changed");
        assert_eq!(
            fs::read_to_string(d.config_dir().join("stats.conf.bak"))?,
            "update_interval = 7\n"
        );
        assert!(files_with(d.config_dir(), ".corrupt").is_empty());
    }
    assert!(
        d.running(),
        "a bad edit stopped the daemon; log:\n{}",
        d.log()
    );
    // Fixed again: applies.
    fs::write(&file, "update_interval = 1\nlength = 300\n")?;
    signal(&d, "HUP")?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while count_log(&d, "stats.conf reloaded") < 2 {
        ensure!(Instant::now() < deadline, "not reloaded; log:\n{}", d.log());
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(running_config(&d)?["update_interval"], 1);
    let status = d.terminate()?;
    ensure!(status.success(), "exit {status}; log:\n{}", d.log());
    Ok(())
}

#[test]
fn sighup_reloads_the_auth_file() -> Result<()> {
    let mut d = DaemonProc::start()?;
    let auth = d.config_dir().join("auth");
    let (ok, _, _) = cli(&d, &["totals", "--user", "newbie", "--password", "pw"])?;
    assert!(!ok, "an unknown account logged in");
    fs::OpenOptions::new()
        .append(true)
        .open(&auth)?
        .write_all(b"newbie:pw:NORMAL\n")?;
    reloaded(&d)?;
    let (ok, _, err) = cli(&d, &["totals", "--user", "newbie", "--password", "pw"])?;
    assert!(ok, "the new account does not log in: {err}\n{}", d.log());
    let status = d.terminate()?;
    ensure!(status.success(), "exit {status}; log:\n{}", d.log());
    Ok(())
}

/// Sends SIGHUP and waits for the line saying everything was reloaded.
fn reloaded(d: &DaemonProc) -> Result<()> {
    signal(d, "HUP")?;
    wait_log(
        d,
        "reloaded auth, the TLS key pair and stats.conf",
        Duration::from_secs(5),
    )?;
    Ok(())
}

/// A new key pair for `ssl/`: (certificate PEM, key PEM).
fn new_key_pair() -> Result<(String, String)> {
    let key = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])?.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Puts `pem` at `path` by rename (mode 0600), as a certificate renewal would.
fn put(path: &Path, pem: &str) -> Result<()> {
    let tmp = path.with_extension("new");
    fs::write(&tmp, pem)?;
    set_mode(&tmp, 0o600)?;
    fs::rename(&tmp, path)?;
    Ok(())
}

/// SIGHUP reloads the TLS key pair: a client pinning the new certificate connects, one
/// pinning the old one is refused, a connection made before keeps working; a pair whose
/// key does not match its certificate is refused with the reason and the pair in use stays.
#[test]
fn sighup_reloads_the_tls_key_pair() -> Result<()> {
    let mut d = DaemonProc::start()?;
    let ssl = d.config_dir().join("ssl");
    let pinned = |d: &DaemonProc, pem: &str, name: &str| -> Result<(bool, String)> {
        let file = d.config_dir().join(name);
        fs::write(&file, pem)?;
        let (ok, _, err) = cli(d, &["totals", "--cert", &file.to_string_lossy()])?;
        Ok((ok, err))
    };
    let old = fs::read_to_string(ssl.join("daemon.cert"))?;
    let (ok, err) = pinned(&d, &old, "old.pem")?;
    assert!(ok, "the daemon's own certificate is refused: {err}");
    // A connection made before the reload.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut held =
        runtime.block_on(support::rpc::Raw::login(d.addr, "localclient", &d.password))?;

    let (cert, key) = new_key_pair()?;
    put(&ssl.join("daemon.pkey"), &key)?;
    put(&ssl.join("daemon.cert"), &cert)?;
    reloaded(&d)?;
    let (ok, err) = pinned(&d, &cert, "new.pem")?;
    assert!(ok, "the new certificate is not served: {err}\n{}", d.log());
    let (ok, _) = pinned(&d, &old, "old.pem")?;
    assert!(!ok, "the old certificate is still served");
    runtime.block_on(held.totals())?;

    // A key that does not belong to the certificate: refused, the new pair stays.
    let (_, other_key) = new_key_pair()?;
    put(&ssl.join("daemon.pkey"), &other_key)?;
    signal(&d, "HUP")?;
    wait_log(&d, "TLS key pair not reloaded", Duration::from_secs(5))?;
    let (ok, err) = pinned(&d, &cert, "new.pem")?;
    assert!(ok, "the pair in use was dropped: {err}\n{}", d.log());
    assert!(
        d.log().contains("daemon.pkey"),
        "the refusal names no file:\n{}",
        d.log()
    );
    runtime.block_on(held.totals())?;
    let status = d.terminate()?;
    ensure!(status.success(), "exit {status}; log:\n{}", d.log());
    Ok(())
}

#[test]
fn sigusr1_and_sigusr2_do_no_harm() -> Result<()> {
    let mut d = DaemonProc::start()?;
    wait_log(&d, "counting a new session", Duration::from_secs(20))?;
    // One at a time: signals of one kind sent together may be delivered as one.
    for (sig, n) in [("USR1", 1), ("USR2", 1), ("USR1", 2)] {
        signal(&d, sig)?;
        let needle = format!("SIG{sig} received: ignored");
        let deadline = Instant::now() + Duration::from_secs(5);
        while count_log(&d, &needle) < n {
            ensure!(
                Instant::now() < deadline,
                "no {needle:?}; log:\n{}",
                d.log()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
    thread::sleep(Duration::from_millis(300));
    assert!(d.running(), "log:\n{}", d.log());
    let (ok, _, err) = cli(&d, &["totals"])?;
    assert!(ok, "{err}");
    let status = d.terminate()?;
    ensure!(status.success(), "exit {status}; log:\n{}", d.log());
    Ok(())
}

#[test]
fn sigquit_and_sigint_save_before_stopping() -> Result<()> {
    for sig in ["QUIT", "INT"] {
        let mut d = DaemonProc::start()?;
        wait_log(&d, "counting a new session", Duration::from_secs(20))?;
        thread::sleep(Duration::from_millis(300));
        signal(&d, sig)?;
        let status = d.wait_exit(Duration::from_secs(20))?;
        assert!(status.success(), "SIG{sig}: {status}; log:\n{}", d.log());
        assert!(
            d.log().contains("stats saved"),
            "SIG{sig}: log:\n{}",
            d.log()
        );
        let acc = totals_in(d.config_dir())?;
        let session = acc
            .session
            .as_ref()
            .map(|s| s.0.clone())
            .unwrap_or_default();
        assert!(
            session.starts_with(&format!("sim-{}-", d.pid)),
            "SIG{sig}: the stopped session is saved: {acc:?}"
        );
    }
    Ok(())
}

/// Makes `dir` immutable (`chattr +i`, even root cannot write) until dropped.
struct Immutable(PathBuf);

impl Immutable {
    fn new(dir: &Path) -> Result<Immutable> {
        let status = Command::new("chattr").arg("+i").arg(dir).status()?;
        ensure!(status.success(), "chattr +i {} (needs root)", dir.display());
        ensure!(
            fs::File::create(dir.join("probe")).is_err(),
            "still writable"
        );
        Ok(Immutable(dir.to_path_buf()))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[test]
#[ignore = "needs chattr as root"]
fn a_failed_final_save_exits_non_zero() -> Result<()> {
    let mut d = DaemonProc::start()?;
    wait_log(&d, "counting a new session", Duration::from_secs(20))?;
    thread::sleep(Duration::from_millis(500));
    // The final save writes the source's files, in its own directory.
    let locked = Immutable::new(&source_files(d.config_dir(), SIM))?;
    let status = d.terminate()?;
    drop(locked);
    assert!(
        !status.success(),
        "the final save failed but the exit status is {status}; log:\n{}",
        d.log()
    );
    let log = d.log();
    assert!(log.contains("stats could not be saved"), "{log}");
    assert!(log.contains("error: stopping the daemon"), "{log}");
    assert!(log.contains("final save failed"), "{log}");
    Ok(())
}
