//! deluge-console (Debian's, the real one) against our daemon: connect, `plugin`
//! list/show/enable/disable, `status`. deluge-console exits 0 even on failure, so its
//! output is what is checked; it hangs on a reply it cannot handle, so each run has a
//! time limit.

use std::time::{Duration, Instant};

use crate::support;
use crate::support::daemon::DaemonProc;

/// What the console needs to connect.
struct Target {
    port: u16,
    password: String,
}

fn console(d: &Target, command: &str) -> String {
    support::console::run(d.port, &d.password, command)
}

fn enabled(d: &Target) -> Vec<String> {
    let out = console(d, "plugin -s");
    assert!(out.contains("Enabled Plugins:"), "{out}");
    out.lines()
        .skip_while(|l| !l.contains("Enabled Plugins:"))
        .skip(1)
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

fn wait_for(d: &Target, want: &[&str]) {
    // plugin -e/-d do not wait for the reply: poll until the change shows.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = enabled(d);
        if now == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "enabled plugins {now:?}, want {want:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[ignore = "needs deluge-console"]
fn deluge_console_connects_lists_toggles_plugins_and_shows_status() {
    let daemon = DaemonProc::start_with("sim:up=1MiB/s,down=2MiB/s,peers=4").unwrap();
    let d = Target {
        port: daemon.port(),
        password: daemon.password.clone(),
    };

    let out = console(&d, "plugin -l");
    assert!(out.contains("Available Plugins:"), "{out}");
    assert!(out.lines().any(|l| l.trim() == "Stats"), "{out}");
    assert_eq!(enabled(&d), vec!["Stats"]);

    console(&d, "plugin -d Stats");
    wait_for(&d, &[]);
    console(&d, "plugin -e stats");
    wait_for(&d, &["Stats"]);

    let out = console(&d, "status");
    assert!(out.contains("Total upload:"), "{out}");
    assert!(out.contains("Total download:"), "{out}");
    assert!(out.contains("DHT Nodes: 300"), "{out}");
    assert!(out.contains("Total torrents: 0"), "{out}");
    // payload rates of the sim source: 95 % of 1 MiB/s and 2 MiB/s
    assert!(out.contains("972.8 KiB/s"), "{out}");

    let bad = Target {
        port: d.port,
        password: "wrong".into(),
    };
    let out = console(&bad, "plugin -l");
    // One message for a wrong password and an unknown user (issue 9).
    assert!(out.contains("Username or password does not match"), "{out}");
    assert!(!out.contains("Available Plugins:"), "{out}");
}
