//! A real `deluged` (Debian package `deluged`, Deluge 2) for the interop tests: its own
//! temporary config directory, a free loopback port, no traffic off the machine; killed on
//! drop. A missing `deluged` fails the test that wanted it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Map;
use torrent_stats::rpc::client::Client;
use torrent_stats::rpc::tls::CertPolicy;
use torrent_stats::SessionId;

/// Keeps DHT, UPnP, NAT-PMP, LSD and the release check off: no traffic off the machine.
const CORE_CONF: &str = r#"{
    "file": 1,
    "format": 1
}{
    "dht": false,
    "upnp": false,
    "natpmp": false,
    "lsd": false,
    "utpex": false,
    "new_release_check": false
}"#;

/// A `deluged` child process; killed (and reaped) on drop, also when a test panics.
pub struct Deluged {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

impl Deluged {
    /// Starts a daemon in a fresh config directory and waits until it answers.
    pub async fn start() -> Deluged {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("core.conf"), CORE_CONF).unwrap();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut d = Deluged {
            dir,
            port,
            child: None,
        };
        d.restart().await;
        d
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("deluged.out")
    }

    /// (Re)starts the daemon on the same directory and port.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "deluged already running");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new("deluged")
            .arg("-c")
            .arg(self.dir.path())
            .args(["-p", &self.port.to_string()])
            .args(["-u", "127.0.0.1", "-i", "127.0.0.1", "-d", "-L", "error"])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run deluged ({e}): install the Debian package `deluged` \
                     (scripts/test.sh does)"
                )
            });
        self.child = Some(child);
        self.wait_ready().await;
    }

    /// Until the auth file exists and `daemon.info` answers over TLS.
    pub async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("deluged exited with {status}:\n{}", self.log_tail());
            }
            if self.try_password().is_some() {
                if let Ok(Ok(mut c)) = tokio::time::timeout(
                    Duration::from_secs(2),
                    Client::connect("127.0.0.1", self.port, CertPolicy::AnyCertificate),
                )
                .await
                {
                    c.set_timeout(Duration::from_secs(2));
                    if c.call("daemon.info", vec![], Map::new()).await.is_ok() {
                        return;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "deluged did not answer within 30 s:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log_tail(&self) -> String {
        super::files_tail(&[&self.log_path()], 30)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends a signal (`STOP`, `CONT`) to the daemon.
    pub fn signal(&self, name: &str) {
        let sig: nix::sys::signal::Signal = format!("SIG{name}").parse().unwrap();
        let pid = nix::unistd::Pid::from_raw(self.pid() as i32);
        nix::sys::signal::kill(pid, sig).unwrap_or_else(|e| panic!("kill -{name}: {e}"));
    }

    /// Kills (SIGKILL) and reaps the daemon.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn try_password(&self) -> Option<String> {
        read_password(self.dir.path())
    }

    /// The `localclient` password from the daemon's auth file.
    pub fn password(&self) -> String {
        self.try_password().expect("auth file with localclient")
    }

    pub fn spec(&self) -> String {
        format!(
            "deluge://localclient:{}@127.0.0.1:{}",
            self.password(),
            self.port
        )
    }

    pub fn expected_session(&self) -> SessionId {
        SessionId::new(format!(
            "deluge://127.0.0.1:{}#pid={}",
            self.port,
            self.pid()
        ))
    }
}

impl Drop for Deluged {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn read_password(dir: &Path) -> Option<String> {
    let auth = std::fs::read_to_string(dir.join("auth")).ok()?;
    auth.lines().find_map(|line| {
        let mut parts = line.split(':');
        (parts.next()? == "localclient").then(|| parts.next().map(str::to_string))?
    })
}
