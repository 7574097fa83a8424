//! `contrib/torrent-stats.service`: `systemd-analyze verify` accepts it (the tool must be
//! installed: `scripts/test.sh` installs Debian's `systemd`; the test fails without it),
//! it has the sandboxing the README promises, its `ExecStart` arguments are the daemon's,
//! and the daemon speaks `Type=notify`: `READY=1` once it serves, `STOPPING=1` on SIGTERM,
//! to a datagram socket standing in for systemd's `$NOTIFY_SOCKET`. (Starting it under a
//! real systemd needs systemd as PID 1, which the test containers do not have.)

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};

const BIN: &str = env!("CARGO_BIN_EXE_torrent-stats");
const UNIT: &str = include_str!("../contrib/torrent-stats.service");
const INSTALLED: &str = "/usr/local/bin/torrent-stats";

/// `Key=value` lines of the unit (every occurrence).
fn values<'a>(key: &str) -> Vec<&'a str> {
    let prefix = format!("{key}=");
    UNIT.lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .map(str::trim)
        .collect()
}

fn value<'a>(key: &str) -> &'a str {
    let all = values(key);
    assert_eq!(all.len(), 1, "{key}= should be set once: {all:?}");
    all[0]
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() -> Result<()> {
    let tool = Command::new("systemd-analyze").arg("--version").output();
    ensure!(
        matches!(&tool, Ok(o) if o.status.success()),
        "systemd-analyze is missing: install Debian's systemd (scripts/test.sh does)"
    );
    // verify checks that ExecStart's program exists: point it at the built binary.
    let dir = tempfile::tempdir()?;
    let unit = dir.path().join("torrent-stats.service");
    std::fs::write(&unit, UNIT.replace(INSTALLED, BIN))?;
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .env("SYSTEMD_LOG_LEVEL", "notice")
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    let about_unit: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("torrent-stats"))
        .collect();
    ensure!(about_unit.is_empty(), "warnings about the unit:\n{stderr}");
    Ok(())
}

#[test]
fn the_unit_sandboxes_the_daemon_and_keeps_its_directories_writable() {
    assert_eq!(value("Type"), "notify");
    assert_eq!(value("Restart"), "on-failure");
    assert_eq!(value("User"), "torrent-stats");
    assert_eq!(value("NoNewPrivileges"), "yes");
    assert_eq!(value("ProtectSystem"), "strict");
    assert_eq!(value("ProtectHome"), "yes");
    assert_eq!(value("PrivateTmp"), "yes");
    assert_eq!(value("KillSignal"), "SIGTERM");
    assert!(value("ExecReload").contains("-HUP $MAINPID"));
    let exec = value("ExecStart");
    let writable: Vec<&str> = values("ReadWritePaths")
        .iter()
        .flat_map(|v| v.split_whitespace())
        .collect();
    for flag in ["--config-dir", "--download-dir"] {
        let dir = exec
            .split_whitespace()
            .skip_while(|a| *a != flag)
            .nth(1)
            .unwrap_or_else(|| panic!("ExecStart has no {flag}: {exec}"));
        assert!(
            writable
                .iter()
                .any(|w| Path::new(dir).starts_with(w.trim_start_matches('-'))),
            "{flag} {dir} is not under ReadWritePaths {writable:?}"
        );
    }
}

#[test]
fn the_daemon_tells_systemd_when_it_is_ready_and_when_it_stops() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let socket_path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&socket_path)?;
    socket.set_read_timeout(Some(Duration::from_secs(20)))?;
    let config = dir.path().join("cfg");
    // ExecStart's arguments, in a temporary directory, on free ports and the sim source.
    let exec = value("ExecStart");
    let args: Vec<String> = exec
        .split_whitespace()
        .skip(1)
        .map(|a| a.replace("/var/lib/torrent-stats", &config.to_string_lossy()))
        .collect();
    let mut child = Command::new(BIN)
        .args(&args)
        .args([
            "--port",
            "0",
            "--web-port",
            "0",
            "--source",
            "sim:up=1k,down=1k",
        ])
        .env("NOTIFY_SOCKET", &socket_path)
        .env("NO_COLOR", "1")
        .env_remove("TORRENT_STATS_CONFIG_DIR")
        .env_remove("TORRENT_STATS_SOURCE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).context("no READY=1 within 20 s")?;
    let ready = String::from_utf8_lossy(&buf[..n]).into_owned();
    let result = (|| -> Result<()> {
        ensure!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
        ensure!(
            ready.contains(&format!("MAINPID={}", child.id())),
            "{ready:?}"
        );
        ensure!(
            config.join("stats.conf").exists(),
            "not ready when it says so"
        );
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()?;
        ensure!(sent.success());
        let n = socket.recv(&mut buf).context("no STOPPING=1")?;
        let stopping = String::from_utf8_lossy(&buf[..n]).into_owned();
        ensure!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            ensure!(Instant::now() < deadline, "still running after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        };
        ensure!(status.success(), "exit {status}");
        Ok(())
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}
