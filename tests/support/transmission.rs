//! A real `transmission-daemon` (Debian package `transmission-daemon`, Transmission 3.00)
//! for the interop tests: its own temporary config directory, its RPC on a free
//! 127.0.0.1 port with a login, a free peer port, no DHT, local peer discovery, port
//! mapping or uTP; killed on drop. Also torrents made with `transmission-create` (package
//! `transmission-cli`) and its RPC spoken directly (the old protocol, which every version
//! answers), to compare our source with the daemon's own figures. A missing program fails
//! the test that wanted it.
//!
//! Two daemons find each other through [`super::tracker::Tracker`]; see there why over the
//! machine's own address rather than 127.0.0.1.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The RPC login of every daemon started here.
pub const USER: &str = "tstats";
/// Its password (something a log line would show if one leaked it).
pub const PASSWORD: &str = "pw-Kq7-leak-check";

/// A free TCP port on 127.0.0.1 (bound then released).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Standard base64 (for the basic-auth header).
fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Writes `size` bytes of deterministic pseudo-random data (incompressible, so no layer
/// can shrink it) to `path`.
pub fn write_payload(path: &Path, size: usize) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ size as u64;
    let mut data = Vec::with_capacity(size + 8);
    while data.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(size);
    std::fs::write(path, data).unwrap();
}

/// Makes a torrent of `file` announcing to `tracker` with `transmission-create`
/// (`piece_kib` KiB pieces) and returns the `.torrent`'s path (beside `file`).
pub fn create_torrent(file: &Path, tracker: &str, piece_kib: u32) -> PathBuf {
    let out = file.with_extension("torrent");
    let status = Command::new("transmission-create")
        .arg("-o")
        .arg(&out)
        .args(["-t", tracker, "-s", &piece_kib.to_string()])
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run transmission-create ({e}): install the Debian package \
                 `transmission-cli` (scripts/test.sh does)"
            )
        });
    assert!(status.success(), "transmission-create failed: {status}");
    out
}

/// A `transmission-daemon` child process; killed (and reaped) on drop.
pub struct Transmission {
    /// Config directory (`-g`), download directory (`dl/`) and log (`daemon.log`).
    pub dir: tempfile::TempDir,
    /// The RPC port on 127.0.0.1.
    pub rpc_port: u16,
    /// The peer port (all addresses).
    pub peer_port: u16,
    child: Option<Child>,
    /// The CSRF token of the last 409.
    csrf: Mutex<Option<String>>,
}

impl Transmission {
    /// Starts a daemon in a fresh directory and waits until its RPC answers.
    pub fn start() -> Transmission {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("dl")).unwrap();
        let mut t = Transmission {
            dir,
            rpc_port: free_port(),
            peer_port: free_port(),
            child: None,
            csrf: Mutex::new(None),
        };
        t.restart();
        t
    }

    /// `transmission://USER:PASSWORD@127.0.0.1:PORT`.
    pub fn spec(&self) -> String {
        format!(
            "transmission://{USER}:{PASSWORD}@127.0.0.1:{}",
            self.rpc_port
        )
    }

    /// Where torrents are downloaded (`-w`).
    pub fn download_dir(&self) -> PathBuf {
        self.dir.path().join("dl")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("daemon.log")
    }

    pub fn log_tail(&self) -> String {
        super::files_tail(&[&self.log_path()], 30)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// (Re)starts the daemon on the same directory and ports and waits until it answers.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "transmission-daemon already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new("transmission-daemon")
            .arg("-g")
            .arg(self.dir.path().join("config"))
            .arg("-w")
            .arg(self.download_dir())
            .args(["-f", "--log-error", "-p", &self.rpc_port.to_string()])
            .args(["-r", "127.0.0.1", "-a", "127.0.0.1", "-t", "-u", USER])
            .args(["-v", PASSWORD, "-P", &self.peer_port.to_string()])
            .args(["-O", "-Y", "-M", "--no-utp", "--no-incomplete-dir"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run transmission-daemon ({e}): install the Debian package \
                     `transmission-daemon` (scripts/test.sh does)"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "transmission-daemon exited with {status}:\n{}",
                    self.log_tail()
                );
            }
            if self.try_rpc("session-stats", json!({})).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "transmission-daemon did not answer within 30 s:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the daemon cleanly (SIGTERM: it saves its state, `stats.json` included) and
    /// reaps it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
            let deadline = Instant::now() + Duration::from_secs(30);
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    panic!("transmission-daemon did not exit within 30 s of SIGTERM");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Kills (SIGKILL) and reaps the daemon: nothing saved since its last save survives.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// One HTTP POST; (status, session-id header, body).
    fn post(&self, body: &str) -> std::io::Result<(u16, Option<String>, Vec<u8>)> {
        let mut conn = TcpStream::connect(("127.0.0.1", self.rpc_port))?;
        conn.set_read_timeout(Some(Duration::from_secs(10)))?;
        let csrf = self.csrf.lock().unwrap().clone();
        let mut request = format!(
            "POST /transmission/rpc HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\
             Authorization: Basic {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n",
            self.rpc_port,
            base64(format!("{USER}:{PASSWORD}").as_bytes()),
            body.len()
        );
        if let Some(id) = csrf {
            request.push_str(&format!("X-Transmission-Session-Id: {id}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        conn.write_all(request.as_bytes())?;
        let mut answer = Vec::new();
        conn.read_to_end(&mut answer)?;
        let split = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| std::io::Error::other("no HTTP head"))?;
        let head = String::from_utf8_lossy(&answer[..split]).to_string();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line: {head}")))?;
        let id = head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("x-transmission-session-id")
                .then(|| v.trim().to_string())
        });
        Ok((status, id, answer[split + 4..].to_vec()))
    }

    /// Calls `method` (old protocol) and returns its `arguments`, or why not.
    pub fn try_rpc(&self, method: &str, arguments: Value) -> Result<Value, String> {
        let body = json!({ "method": method, "arguments": arguments }).to_string();
        for _ in 0..2 {
            let (status, id, answer) = self.post(&body).map_err(|e| e.to_string())?;
            match status {
                409 => *self.csrf.lock().unwrap() = id,
                200 => {
                    let v: Value = serde_json::from_slice(&answer).map_err(|e| e.to_string())?;
                    return match v["result"].as_str() {
                        Some("success") => Ok(v["arguments"].clone()),
                        _ => Err(format!("{method}: {v}")),
                    };
                }
                s => return Err(format!("{method}: HTTP {s}")),
            }
        }
        Err(format!("{method}: HTTP 409 twice"))
    }

    /// Calls `method` and returns its `arguments`; panics on an error.
    pub fn rpc(&self, method: &str, arguments: Value) -> Value {
        self.try_rpc(method, arguments)
            .unwrap_or_else(|e| panic!("transmission-daemon: {e}\n{}", self.log_tail()))
    }

    /// The daemon's own `session-stats` arguments (`current-stats`, `cumulative-stats`,
    /// `uploadSpeed`, ...).
    pub fn session_stats(&self) -> Value {
        self.rpc("session-stats", json!({}))
    }

    /// Adds a `.torrent` file, its data in (or to be downloaded to) `download_dir`;
    /// returns its info-hash.
    pub fn add_torrent(&self, torrent: &Path, download_dir: &Path) -> String {
        let metainfo = base64(&std::fs::read(torrent).unwrap());
        let added = self.rpc(
            "torrent-add",
            json!({ "metainfo": metainfo, "download-dir": download_dir }),
        );
        added["torrent-added"]["hashString"]
            .as_str()
            .unwrap_or_else(|| panic!("torrent-add: {added}"))
            .to_string()
    }

    /// The `fields` of torrent `hash`.
    pub fn torrent(&self, hash: &str, fields: &[&str]) -> Value {
        let got = self.rpc("torrent-get", json!({ "ids": [hash], "fields": fields }));
        got["torrents"][0].clone()
    }

    /// Polls torrent `hash` until `done` holds for its `fields`; panics after `timeout`.
    pub fn wait_torrent(
        &self,
        hash: &str,
        fields: &[&str],
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let t = self.torrent(hash, fields);
            if done(&t) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "torrent {hash} not done within {timeout:?}: {t}\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Limits the daemon's upload rate to `kib_per_s` of its speed units (`units.speed-bytes`
    /// of `session-get`: 1000 bytes in transmission-daemon 3.00, so kB/s).
    pub fn limit_upload(&self, kib_per_s: u64) {
        self.rpc(
            "session-set",
            json!({ "speed-limit-up": kib_per_s, "speed-limit-up-enabled": true }),
        );
    }
}

impl Drop for Transmission {
    fn drop(&mut self) {
        self.kill();
    }
}
