//! Deluge's GTK desktop client (Debian `deluge-gtk` 2.0.3) in thin-client mode on a
//! private Xvfb display with a private D-Bus session bus: it connects to a daemon of ours
//! on start, takes `.torrent` files the way a desktop hands them over (a second
//! `deluge-gtk FILE`), has its widgets found by role and name through the accessibility
//! tree (AT-SPI, as a screen reader or dogtail finds them; no screen coordinates), and its
//! screen is saved as PNG (GdkPixbuf, which deluge-gtk brings along). Every tool is
//! required: a missing one fails the test, with the package to install.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

/// Fails unless `deluge-gtk`, `Xvfb`, `dbus-daemon` and AT-SPI's GObject bindings for
/// Debian's python3 are installed.
pub fn require_tools() -> Result<()> {
    for (tool, package) in [
        ("deluge-gtk", "deluge-gtk"),
        ("Xvfb", "xvfb"),
        ("dbus-daemon", "dbus"),
    ] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ensure!(
            found,
            "{tool} is missing: apt-get install {package} (scripts/test.sh does)"
        );
    }
    let atspi = Command::new("/usr/bin/python3")
        .args(["-c", "import gi; gi.require_version('Atspi', '2.0')"])
        .output();
    ensure!(
        atspi.is_ok_and(|o| o.status.success()),
        "AT-SPI's GObject bindings are missing: apt-get install gir1.2-atspi-2.0 \
         (scripts/test.sh does)"
    );
    Ok(())
}

/// An Xvfb server on a free display number (it picks one and tells us), and a D-Bus
/// session bus of its own: the clients on the display reach the accessibility bus
/// through it (`at-spi-bus-launcher`, which the bus starts on the first request and which
/// ends with it).
pub struct Display {
    child: Child,
    bus: Option<Child>,
    /// `:N`.
    pub name: String,
    /// The session bus's address (`DBUS_SESSION_BUS_ADDRESS`).
    pub bus_address: String,
}

impl Display {
    /// Starts Xvfb at `width`×`height` and waits for its display number, then the session
    /// bus and waits for its address.
    pub fn start(width: u32, height: u32) -> Result<Self> {
        let mut child = Command::new("Xvfb")
            .args(["-displayfd", "1", "-nolisten", "tcp", "-screen", "0"])
            .arg(format!("{width}x{height}x24"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("spawn Xvfb")?;
        let stdout = child.stdout.take().context("Xvfb stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let number: u32 = match line.trim().parse() {
            Ok(n) => n,
            Err(_) => {
                let _ = child.kill();
                bail!("Xvfb gave no display number: {line:?}");
            }
        };
        let mut display = Display {
            child,
            bus: None,
            name: format!(":{number}"),
            bus_address: String::new(),
        };
        let mut bus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("spawn dbus-daemon")?;
        let stdout = bus.stdout.take().context("dbus-daemon stdout")?;
        display.bus = Some(bus);
        let mut address = String::new();
        BufReader::new(stdout).read_line(&mut address)?;
        ensure!(
            address.starts_with("unix:"),
            "dbus-daemon gave no address: {address:?}"
        );
        display.bus_address = address.trim().to_string();
        Ok(display)
    }

    /// Saves the whole screen as a PNG.
    pub fn screenshot(&self, path: &Path) -> Result<()> {
        const SAVE: &str = "import sys, gi\n\
            gi.require_version('Gdk', '3.0')\n\
            from gi.repository import Gdk\n\
            w = Gdk.get_default_root_window()\n\
            p = Gdk.pixbuf_get_from_window(w, 0, 0, w.get_width(), w.get_height())\n\
            p.savev(sys.argv[1], 'png', [], [])\n";
        // Debian's python3, where deluge-gtk's GObject bindings live.
        let out = Command::new("/usr/bin/python3")
            .args(["-c", SAVE])
            .arg(path)
            .env("DISPLAY", &self.name)
            .output()
            .context("python3 for the screenshot")?;
        ensure!(
            out.status.success(),
            "screenshot: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    /// Shows the notebook page whose tab is named `tab` in the windows of application
    /// `app` (its accessible name, e.g. `deluge`): finds the page tab by role and name in
    /// the accessibility tree (waiting up to 30 s for it to appear) and selects it
    /// through its tab list, as assistive technology does, then checks that it is the
    /// page shown.
    pub fn select_tab(&self, app: &str, tab: &str) -> Result<()> {
        let mut command = Command::new("/usr/bin/python3");
        command
            .args(["-c", SELECT_TAB, app, tab])
            .env("DISPLAY", &self.name)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus_address);
        let out =
            super::run_limited(command, Duration::from_secs(60)).context("python3 with AT-SPI")?;
        ensure!(
            out.status.success(),
            "selecting the {tab:?} tab of {app:?} through AT-SPI: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }
}

/// `python3 -c SELECT_TAB APP TAB`: see [`Display::select_tab`]. Debian's python3, where
/// the GObject bindings live (`gir1.2-atspi-2.0`).
const SELECT_TAB: &str = r#"
import sys, time, gi
gi.require_version('Atspi', '2.0')
from gi.repository import Atspi

app_name, tab_name = sys.argv[1], sys.argv[2]

def find(node, depth=0):
    if node.get_role() == Atspi.Role.PAGE_TAB and node.get_name() == tab_name:
        return node
    if depth < 40:
        for i in range(node.get_child_count()):
            child = node.get_child_at_index(i)
            found = child is not None and find(child, depth + 1)
            if found:
                return found
    return None

deadline = time.monotonic() + 30
while True:
    desktop = Atspi.get_desktop(0)
    apps = [desktop.get_child_at_index(i) for i in range(desktop.get_child_count())]
    apps = [a for a in apps if a is not None]
    tabs = [find(a) for a in apps if a.get_name() == app_name]
    tab = next((t for t in tabs if t), None)
    if tab:
        break
    if time.monotonic() > deadline:
        sys.exit(f"no page tab {tab_name!r} in {app_name!r} within 30 s; "
                 f"applications: {[a.get_name() for a in apps]}")
    time.sleep(0.5)
tab_list = tab.get_parent()
if not Atspi.Selection.select_child(tab_list, tab.get_index_in_parent()):
    sys.exit(f"the tab list refused to select {tab_name!r}")
shown = Atspi.Selection.get_selected_child(tab_list, 0).get_name()
if shown != tab_name:
    sys.exit(f"{shown!r} is shown, not {tab_name!r}")
print(f"{tab_name} shown")
"#;

impl Drop for Display {
    fn drop(&mut self) {
        if let Some(bus) = self.bus.as_mut() {
            let _ = bus.kill();
            let _ = bus.wait();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// deluge-gtk with its own config dir, connecting to one daemon on start.
pub struct Gtk {
    child: Child,
    config: tempfile::TempDir,
    display: String,
    bus_address: String,
}

impl Gtk {
    /// Starts deluge-gtk on `display`, set to connect to 127.0.0.1:`port` as `user` at
    /// start (no connection manager), with its Stats plugin page on, adding torrents it
    /// is handed without a dialog, its window at the top left at `width`×`height`.
    pub fn start(
        display: &Display,
        port: u16,
        user: &str,
        password: &str,
        (width, height): (u32, u32),
    ) -> Result<Self> {
        let config = tempfile::tempdir()?;
        // Deluge config files: a version header, then the JSON body.
        std::fs::write(
            config.path().join("hostlist.conf"),
            format!(
                "{{\"file\": 3, \"format\": 1}}{}",
                serde_json::json!({"hosts": [["test", "127.0.0.1", port, user, password]]})
            ),
        )?;
        let ui = serde_json::json!({
            "standalone": false,
            "autoconnect": true,
            "autoconnect_host_id": "test",
            "show_connection_manager_on_start": false,
            "interactive_add": false,
            "enabled_plugins": ["Stats"],
            "check_new_releases": false,
            "show_new_releases": false,
            "enable_system_tray": false,
            "window_x_pos": 0,
            "window_y_pos": 0,
            "window_width": width,
            "window_height": height,
        });
        std::fs::write(
            config.path().join("gtk3ui.conf"),
            format!("{{\"file\": 1, \"format\": 1}}{ui}"),
        )?;
        let child = Self::command(&display.name, &display.bus_address, config.path())
            .spawn()
            .context("spawn deluge-gtk")?;
        Ok(Gtk {
            child,
            config,
            display: display.name.clone(),
            bus_address: display.bus_address.clone(),
        })
    }

    fn command(display: &str, bus_address: &str, config: &Path) -> Command {
        let mut command = Command::new("deluge-gtk");
        command
            .arg("--config")
            .arg(config)
            .args(["--loglevel", "none"])
            .env("DISPLAY", display)
            .env("DBUS_SESSION_BUS_ADDRESS", bus_address)
            .env_remove("NO_AT_BRIDGE")
            .env("HOME", config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    }

    /// Hands `torrent` to the running client as a desktop does (`deluge-gtk FILE`, which
    /// passes it on and exits).
    pub fn open(&self, torrent: &Path) -> Result<()> {
        let mut child = Self::command(&self.display, &self.bus_address, self.config.path())
            .arg(torrent)
            .spawn()
            .context("spawn deluge-gtk FILE")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait()? {
                ensure!(
                    status.success(),
                    "deluge-gtk {}: {status}",
                    torrent.display()
                );
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!(
                    "deluge-gtk {} did not hand over within 30 s",
                    torrent.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the client is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Gtk {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
