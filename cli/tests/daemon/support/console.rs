//! Runs the real `deluge-console` (Debian's) against a daemon: one non-interactive run of
//! `connect …; COMMAND`, its stdout, with a time limit.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `deluge-console -q "connect 127.0.0.1:PORT localclient PASSWORD; COMMAND"`'s stdout.
pub fn run(port: u16, password: &str, command: &str) -> String {
    let script = format!("connect 127.0.0.1:{port} localclient {password}; {command}");
    let mut child = Command::new("deluge-console")
        .arg("-q")
        .arg(&script)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("deluge-console must be installed (scripts/test.sh installs it)");
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
