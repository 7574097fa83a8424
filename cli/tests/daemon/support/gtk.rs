//! Deluge's GTK desktop client (Debian `deluge-gtk` 2.0.3) in thin-client mode on a
//! private Xvfb display: it connects to a daemon of ours on start, takes `.torrent` files
//! the way a desktop hands them over (a second `deluge-gtk FILE`), is clicked with
//! `xdotool`, and its screen is saved as PNG (GdkPixbuf, which deluge-gtk brings along).
//! Every tool is required: a missing one fails the test, with the package to install.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

/// Fails unless `deluge-gtk`, `Xvfb` and `xdotool` are installed.
pub fn require_tools() -> Result<()> {
    for (tool, package) in [
        ("deluge-gtk", "deluge-gtk"),
        ("Xvfb", "xvfb"),
        ("xdotool", "xdotool"),
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
    Ok(())
}

/// An Xvfb server on a free display number (it picks one and tells us).
pub struct Display {
    child: Child,
    /// `:N`.
    pub name: String,
}

impl Display {
    /// Starts Xvfb at `width`×`height` and waits for its display number.
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
        Ok(Display {
            child,
            name: format!(":{number}"),
        })
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

    /// Left-clicks at screen position (`x`, `y`).
    pub fn click(&self, x: u32, y: u32) -> Result<()> {
        let status = Command::new("xdotool")
            .args(["mousemove", &x.to_string(), &y.to_string(), "click", "1"])
            .env("DISPLAY", &self.name)
            .status()
            .context("xdotool")?;
        ensure!(status.success(), "xdotool click at {x},{y}: {status}");
        Ok(())
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// deluge-gtk with its own config dir, connecting to one daemon on start.
pub struct Gtk {
    child: Child,
    config: tempfile::TempDir,
    display: String,
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
        let child = Self::command(&display.name, config.path())
            .spawn()
            .context("spawn deluge-gtk")?;
        Ok(Gtk {
            child,
            config,
            display: display.name.clone(),
        })
    }

    fn command(display: &str, config: &Path) -> Command {
        let mut command = Command::new("deluge-gtk");
        command
            .arg("--config")
            .arg(config)
            .args(["--loglevel", "none"])
            .env("DISPLAY", display)
            .env("NO_AT_BRIDGE", "1")
            .env("HOME", config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    }

    /// Hands `torrent` to the running client as a desktop does (`deluge-gtk FILE`, which
    /// passes it on and exits).
    pub fn open(&self, torrent: &Path) -> Result<()> {
        let mut child = Self::command(&self.display, self.config.path())
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
