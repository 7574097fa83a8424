//! Runs a real `deluge-console` against a daemon: one non-interactive run of
//! `connect …; COMMAND`, its stdout, with a time limit. Debian's (Deluge 2.0.3) by
//! default; [`run_program`] takes another, such as Deluge 2.2.0's from PyPI
//! ([`deluge_22_console`]).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's `deluge-console -q "connect 127.0.0.1:PORT localclient PASSWORD; COMMAND"`'s
/// stdout.
pub fn run(port: u16, password: &str, command: &str) -> String {
    run_program("deluge-console".as_ref(), port, password, command)
}

/// Deluge 2.2.0's console, in the venv `scripts/install/deluge22.sh` makes (under
/// `$TORRENT_STATS_INTEROP`, default `~/.cache/torrent-stats-interop`).
pub fn deluge_22_console() -> PathBuf {
    let root = std::env::var_os("TORRENT_STATS_INTEROP").map_or_else(
        || {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/torrent-stats-interop")
        },
        PathBuf::from,
    );
    root.join("deluge22/venv/bin/deluge-console")
}

/// `program -q "connect 127.0.0.1:PORT localclient PASSWORD; COMMAND"`'s stdout.
pub fn run_program(program: &std::path::Path, port: u16, password: &str, command: &str) -> String {
    let script = format!("connect 127.0.0.1:{port} localclient {password}; {command}");
    let mut child = Command::new(program)
        .arg("-q")
        .arg(&script)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{} must be installed (scripts/test.sh installs it): {e}",
                program.display()
            )
        });
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("deluge-console hung on {command:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}
