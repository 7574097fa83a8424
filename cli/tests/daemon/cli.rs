//! The command-line tools against a daemon child process (`daemon --port 0`, sim source).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::daemon::{DaemonProc, SIM};
use crate::support::{source_files, BIN, COUNTERS};

/// One daemon with its own config directory (see `support::daemon`).
struct Daemon(DaemonProc);

impl Daemon {
    fn start() -> Daemon {
        Daemon(DaemonProc::start_with("sim:up=1MiB/s,down=2MiB/s").expect("start the daemon"))
    }

    fn port(&self) -> u16 {
        self.0.port()
    }

    fn dir(&self) -> &Path {
        self.0.dir.path()
    }

    fn log(&self) -> String {
        self.0.log()
    }

    /// Runs `torrent-stats ARGS --config-dir DIR --port PORT`.
    fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .arg("--config-dir")
            .arg(self.dir())
            .arg("--port")
            .arg(self.port().to_string())
            .env("NO_COLOR", "1")
            .env_remove("TORRENT_STATS_CONFIG_DIR")
            .env_remove("TORRENT_STATS_PASSWORD")
            .stdin(Stdio::null())
            .output()
            .expect("run torrent-stats")
    }

    /// Runs a command that must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        let (stdout, stderr) = texts(&out);
        assert!(
            out.status.success(),
            "`torrent-stats {}` failed ({}):\n{stderr}\n{stdout}\ndaemon log:\n{}",
            args.join(" "),
            out.status,
            self.log()
        );
        stdout
    }

    /// Runs a command that must fail; its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        let (stdout, stderr) = texts(&out);
        assert!(
            !out.status.success(),
            "`torrent-stats {}` should have failed:\n{stdout}\n{stderr}",
            args.join(" ")
        );
        assert!(!stderr.trim().is_empty(), "a failure must say why");
        stderr
    }

    /// Runs a `--json` command that must succeed; its parsed output.
    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        let text = self.ok(&args);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
    }

    /// The all-time totals over RPC (the combined figures, without the session's and
    /// each source's).
    fn totals(&self) -> Value {
        let mut t = self.json(&["totals"]);
        let obj = t.as_object_mut().expect("an object");
        obj.remove("session");
        obj.remove("sources");
        t
    }

    /// Waits until some traffic was counted, then stops polling (update_interval=60) so
    /// the totals stay put while the test compares them.
    fn counted_then_frozen(&self) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.totals()["total_upload"].as_u64() == Some(0) {
            assert!(Instant::now() < deadline, "nothing counted in 20 s");
            thread::sleep(Duration::from_millis(200));
        }
        self.ok(&["config", "set", "update_interval=60"]);
        self.totals()
    }

    /// SIGTERM, and waits for the exit.
    fn stop(&mut self) {
        let status = self.0.terminate().expect("stop the daemon");
        assert!(
            status.success(),
            "daemon exited with {status}:\n{}",
            self.log()
        );
    }
}

fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn counter(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count in {v}"))
}

#[test]
fn totals_session_config_and_plugins() {
    let d = Daemon::start();
    let frozen = d.counted_then_frozen();
    for key in COUNTERS {
        counter(&frozen, key);
    }
    assert!(counter(&frozen, "total_download") > counter(&frozen, "total_upload"));

    let human = d.ok(&["totals"]);
    assert!(
        human.contains("Uploaded:") && human.contains("Downloaded:"),
        "{human}"
    );
    for key in ["total_upload", "total_download", "total_payload_upload"] {
        let shown = torrent_stats::units::format_bytes(counter(&frozen, key));
        assert!(human.contains(&shown), "{key} {shown}: {human}");
    }
    let cert = d.dir().join("ssl/daemon.cert");
    let pinned = d.ok(&["totals", "--cert", cert.to_str().unwrap()]);
    assert_eq!(pinned, human, "pinning the daemon's own certificate works");

    let session = d.ok(&["session"]);
    assert!(
        session.contains("Upload rate:") && session.contains("1.0 MiB/s"),
        "{session}"
    );
    assert!(
        session.contains("2.0 MiB/s") && session.contains("Peers:"),
        "{session}"
    );
    let s = d.json(&["session"]);
    assert_eq!(s["upload_rate"], json!(1 << 20), "{s}");
    assert_eq!(s["download_rate"], json!(2 << 20), "{s}");
    assert_eq!(s["num_peers"], json!(0), "{s}");
    for key in COUNTERS {
        counter(&s, key);
    }

    // config: counted_then_frozen set update_interval=60.
    let got = d.ok(&["config", "get"]);
    assert!(got.contains("update_interval = 60"), "{got}");
    let set = d.ok(&["config", "set", "length=20", "save_interval=40"]);
    assert!(
        set.contains("length = 20") && set.contains("save_interval = 40"),
        "{set}"
    );
    let want = json!({"update_interval": 60, "length": 20, "save_interval": 40});
    assert_eq!(d.json(&["config", "get"]), want);
    let err = d.fails(&["config", "set", "length=30", "update_interval=0"]);
    assert!(
        err.contains("ValueError") && err.contains("update_interval"),
        "{err}"
    );
    assert_eq!(d.json(&["config", "get"]), want, "all or nothing");
    let err = d.fails(&["config", "set", "length=ten"]);
    assert!(
        err.contains("length") && err.contains("not an integer"),
        "{err}"
    );
    let err = d.fails(&["config", "set", "colour=3"]);
    assert!(err.contains("colour"), "{err}");
    assert_eq!(d.json(&["config", "get"]), want);

    // plugins
    assert_eq!(d.ok(&["plugin", "list"]).trim(), "[x] Stats");
    assert_eq!(
        d.json(&["plugin", "list"]),
        json!([{"name": "Stats", "enabled": true}])
    );
    d.ok(&["plugin", "disable", "Stats"]);
    assert_eq!(d.ok(&["plugin", "list"]).trim(), "[ ] Stats");
    let err = d.fails(&["totals"]);
    assert!(err.contains("plugin enable Stats"), "{err}");
    d.ok(&["plugin", "enable", "Stats"]);
    assert_eq!(d.ok(&["plugin", "list"]).trim(), "[x] Stats");
    let err = d.fails(&["plugin", "enable", "Nope"]);
    assert!(err.contains("ValueError") && err.contains("Nope"), "{err}");
    counter(&d.totals(), "total_upload");
}

#[test]
fn reset_needs_yes() {
    let d = Daemon::start();
    let before = d.counted_then_frozen();
    let err = d.fails(&["reset"]);
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(d.totals(), before, "nothing reset without --yes");

    let out = d.ok(&["reset", "--yes"]);
    let up = torrent_stats::units::format_bytes(counter(&before, "total_upload"));
    assert!(out.contains(&up) && out.contains(".reset-"), "{out}");
    let zero: Value = COUNTERS.iter().map(|k| (k.to_string(), json!(0))).collect();
    assert_eq!(d.totals(), zero);
    let kept = std::fs::read_dir(source_files(d.dir(), SIM))
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("stats.totals.reset-")
        });
    assert!(kept, "the file before the reset is kept");
}

const DELUGE_TOTALS: &str = r#"{
    "file": 1,
    "format": 1
}{
    "stats": {},
    "total_download": 2000000,
    "total_payload_download": 1900000,
    "total_payload_upload": 950000,
    "total_upload": 1000000
}"#;

const TRANSMISSION_STATS: &str = r#"{
    "downloaded-bytes": 7000,
    "files-added": 12,
    "seconds-active": 3600,
    "session-count": 3,
    "uploaded-bytes": 5000
}"#;

#[test]
fn imports_deluge_once_and_transmission() {
    let d = Daemon::start();
    let before = d.counted_then_frozen();
    let deluge = d.dir().join("deluge-stats.totals");
    std::fs::write(&deluge, DELUGE_TOTALS).unwrap();
    let deluge = deluge.to_str().unwrap();

    let out = d.json(&["import", "deluge", deluge]);
    let added = [1_000_000, 2_000_000, 950_000, 1_900_000];
    for (key, add) in COUNTERS.iter().zip(added) {
        assert_eq!(counter(&out["imported"], key), add, "{out}");
        assert_eq!(
            counter(&out["totals"], key),
            counter(&before, key) + add,
            "{key}: {out}"
        );
    }
    let fingerprint = out["fingerprint"].as_str().unwrap();
    assert!(fingerprint.starts_with("deluge:") && fingerprint.len() == 7 + 16);
    let after_deluge = d.totals();
    assert_eq!(after_deluge, out["totals"]);

    let err = d.fails(&["import", "deluge", deluge]);
    assert!(
        err.contains("ValueError"),
        "a duplicate import is refused: {err}"
    );
    assert_eq!(d.totals(), after_deluge, "nothing imported twice");

    let transmission = d.dir().join("stats.json");
    std::fs::write(&transmission, TRANSMISSION_STATS).unwrap();
    let out = d.ok(&["import", "transmission", transmission.to_str().unwrap()]);
    assert!(out.contains("All-time totals now:"), "{out}");
    let after = d.totals();
    for (key, add) in COUNTERS.iter().zip([5000, 7000, 5000, 7000]) {
        assert_eq!(
            counter(&after, key),
            counter(&after_deluge, key) + add,
            "{key}"
        );
    }

    // Bad files: an error naming the key, nothing sent.
    let bad = d.dir().join("bad.totals");
    for (text, key) in [
        (
            DELUGE_TOTALS.replace("\"total_upload\": 1000000", "\"total_upload\": -5"),
            "total_upload",
        ),
        (
            DELUGE_TOTALS.replace("\"total_download\": 2000000,", ""),
            "total_download",
        ),
        (
            DELUGE_TOTALS.replace("950000", "950000.5"),
            "total_payload_upload",
        ),
    ] {
        std::fs::write(&bad, &text).unwrap();
        let err = d.fails(&["import", "deluge", bad.to_str().unwrap()]);
        assert!(
            err.contains(key) && err.contains("nothing was imported"),
            "{err}"
        );
    }
    std::fs::write(&bad, r#"{"uploaded-bytes": 1}"#).unwrap();
    let err = d.fails(&["import", "transmission", bad.to_str().unwrap()]);
    assert!(err.contains("downloaded-bytes"), "{err}");
    assert_eq!(d.totals(), after, "no bad file was imported");
}

#[test]
fn totals_without_the_daemon() {
    let mut d = Daemon::start();
    let deadline = Instant::now() + Duration::from_secs(20);
    let online = loop {
        let t = d.totals();
        if counter(&t, "total_upload") > 0 {
            break t;
        }
        assert!(Instant::now() < deadline, "nothing counted in 20 s");
        thread::sleep(Duration::from_millis(200));
    };
    d.stop();

    let err = d.fails(&["totals"]);
    assert!(
        err.contains("cannot reach") && err.contains("--offline"),
        "{err}"
    );
    let err = d.fails(&["session"]);
    assert!(err.contains("cannot reach"), "{err}");
    let human = d.ok(&["totals", "--offline"]);
    assert!(
        human.contains("Uploaded:") && human.contains("Updated:"),
        "{human}"
    );
    let offline = d.json(&["totals", "--offline"]);
    for key in COUNTERS {
        assert!(counter(&offline, key) >= counter(&online, key), "{key}");
    }

    // Without an auth file the credentials cannot be found: said before connecting.
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["totals", "--port", &d.port().to_string(), "--config-dir"])
        .arg(empty.path())
        .output()
        .unwrap();
    let (_, err) = texts(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("auth file") && err.contains("--password"),
        "{err}"
    );
    assert!(
        !empty.path().join("auth").exists(),
        "the CLI creates nothing"
    );
}

/// Starts `daemon --port 0` with stderr piped and `envs` set (NO_COLOR unset unless given),
/// returns the stderr lines before its `RPC listening on` line, and stops it.
fn daemon_log_until_listening(extra_args: &[&str], envs: &[(&str, &str)]) -> Vec<String> {
    use std::io::{BufRead, BufReader};
    use std::sync::mpsc;

    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("daemon")
        .arg("--config-dir")
        .arg(dir.path())
        .args(["--port", "0", "--web-port", "0", "--source", "sim:up=1k"])
        .args(extra_args)
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .env_remove("TORRENT_STATS_LOG_FORMAT")
        .env_remove("TORRENT_STATS_CONFIG_DIR")
        .env_remove("TORRENT_STATS_SOURCE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn the daemon");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let done = line.contains("RPC listening on ");
            if tx.send(line).is_err() || done {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("RPC listening on ") => break,
            Ok(line) => lines.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!("no `RPC listening on` line within 20 s; stderr:\n{lines:#?}");
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    lines
}

#[test]
fn logs_have_no_colour_codes_when_stderr_is_not_a_terminal() {
    let lines = daemon_log_until_listening(&[], &[]);
    assert!(
        lines.iter().any(|l| l.contains("daemon started")),
        "{lines:#?}"
    );
    for line in &lines {
        assert!(
            !line.contains("\x1b["),
            "ANSI escape in piped log: {line:?}"
        );
    }
}

#[test]
fn json_logs_are_one_object_per_line() {
    for (args, envs) in [
        (&["--log-format", "json"][..], &[][..]),
        (&[][..], &[("TORRENT_STATS_LOG_FORMAT", "json")][..]),
    ] {
        let lines = daemon_log_until_listening(args, envs);
        assert!(!lines.is_empty(), "no log lines");
        let events: Vec<Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
            .collect();
        for e in &events {
            assert!(e["level"].is_string() && e["timestamp"].is_string(), "{e}");
        }
        assert!(
            events
                .iter()
                .any(|e| e["level"] == "INFO" && e["fields"]["message"] == "daemon started"),
            "{events:#?}"
        );
    }
}

/// RPC and web servers listen on loopback only unless remote clients are allowed: a
/// non-loopback address without `--allow-remote` stops the daemon before it binds, saying
/// what to add.
#[test]
fn non_loopback_addresses_need_allow_remote() {
    for flag in ["--interface", "--web-interface"] {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(BIN)
            .args(["daemon", "--config-dir"])
            .arg(dir.path())
            .args(["--port", "0", "--web-port", "0", "--source", "sim:up=1k"])
            .args([flag, "0.0.0.0"])
            .env_remove("TORRENT_STATS_CONFIG_DIR")
            .env_remove("TORRENT_STATS_SOURCE")
            .output()
            .unwrap();
        let (_, err) = texts(&out);
        assert!(!out.status.success(), "{flag} 0.0.0.0 started: {err}");
        assert!(
            err.contains(flag) && err.contains("add --allow-remote"),
            "{flag}: {err}"
        );
    }
}

/// A config dir written before named sources (`stats.totals`, `stats.history` and their
/// `.bak`s at its top level) becomes its first source's at the first start: the files move
/// into `sources/<name>/`, the totals count on from them, `totals --offline` reads them
/// before and after. Where that source already has totals, the daemon refuses to start
/// and names both files.
#[test]
fn an_old_config_dir_migrates_to_its_first_source() {
    use torrent_stats::{HISTORY_FILE, TOTALS_FILE};
    let d = DaemonProc::start_with("sim:up=1MiB/s,down=2MiB/s").expect("start the daemon");
    let files = source_files(d.dir.path(), SIM);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !files.join(TOTALS_FILE).exists() {
        assert!(
            Instant::now() < deadline,
            "nothing saved in 20 s:\n{}",
            d.log()
        );
        thread::sleep(Duration::from_millis(100));
    }
    let dir = d.stop().expect("stop the daemon");
    let cfg = dir.path();
    // The layout of before: the source's files at the top, no sources file. The final
    // save wrote both files (and a `.bak` of each it had written before).
    let moved: Vec<String> = [TOTALS_FILE, HISTORY_FILE]
        .iter()
        .flat_map(|f| [f.to_string(), format!("{f}.bak")])
        .filter(|name| files.join(name).exists())
        .collect();
    assert!(
        moved.iter().any(|n| n == TOTALS_FILE) && moved.iter().any(|n| n == HISTORY_FILE),
        "{moved:?}"
    );
    for name in &moved {
        std::fs::rename(files.join(name), cfg.join(name)).unwrap();
    }
    std::fs::remove_dir_all(cfg.join(torrent_stats::SOURCES_DIR)).unwrap();
    std::fs::remove_file(cfg.join(torrent_stats::SOURCES_FILE)).unwrap();
    let old = crate::support::daemon::offline_totals(cfg).unwrap();
    assert!(old.total_upload > 0, "{old:?}");

    let mut d = Daemon(
        DaemonProc::launch(
            crate::support::daemon::command(cfg, "sim:up=1MiB/s,down=2MiB/s"),
            dir,
        )
        .expect("start the daemon on the old directory"),
    );
    let cfg = d.dir().to_path_buf();
    for name in &moved {
        assert!(!cfg.join(name).exists(), "{name} stayed at the top");
        assert!(files.join(name).exists(), "{name} not moved");
    }
    assert!(
        d.log().contains("are now source sim's"),
        "the move is logged:\n{}",
        d.log()
    );
    let online = d.totals();
    for (key, was) in COUNTERS.iter().zip(crate::support::counter_values(&old)) {
        assert!(
            counter(&online, key) >= was,
            "{key}: {online} after {old:?}"
        );
    }
    d.stop();
    let after = crate::support::daemon::offline_totals(&cfg).unwrap();
    assert!(
        after.total_upload > old.total_upload,
        "{after:?} after {old:?}"
    );

    // The old file back at the top while the source has its own: refused, both named.
    std::fs::copy(files.join(TOTALS_FILE), cfg.join(TOTALS_FILE)).unwrap();
    let out = crate::support::run_limited(
        crate::support::daemon::command(&cfg, "sim:up=1MiB/s,down=2MiB/s"),
        Duration::from_secs(20),
    )
    .unwrap();
    let (_, err) = texts(&out);
    assert!(!out.status.success(), "started with both files:\n{err}");
    let (top, own) = (cfg.join(TOTALS_FILE), files.join(TOTALS_FILE));
    assert!(
        err.contains(&format!(
            "both {} and {} exist",
            top.display(),
            own.display()
        )),
        "{err}"
    );
    assert!(top.exists() && own.exists(), "a file was moved or removed");
}
