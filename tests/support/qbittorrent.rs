//! A real `qbittorrent-nox` (Debian package `qbittorrent-nox`, 4.5.2, WebUI API 2.8) for
//! the interop tests: its own temporary profile, free loopback ports, a known WebUI login,
//! DHT, LSD, PeX and UPnP off (torrents made here have no tracker: peers are added by
//! address), killed on drop. Also what a test needs to move a torrent: data and a
//! `.torrent` made with `mktorrent`, adding it, adding a peer, waiting for completion. A
//! missing `qbittorrent-nox`, `mktorrent` or `python3` (which hashes the WebUI password
//! into the config) fails the test that wanted it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The WebUI user of every instance.
pub const USER: &str = "tester";

/// A `qbittorrent-nox` child process; killed (and reaped) on drop, also when a test panics.
pub struct Qbittorrent {
    /// Profile (`qBittorrent/config/…`), downloads (`downloads/`) and output (`out.log`).
    pub dir: tempfile::TempDir,
    /// The WebUI's port (HTTP, 127.0.0.1).
    pub webui_port: u16,
    /// The BitTorrent listening port (TCP and uTP).
    pub peer_port: u16,
    /// The WebUI password of [`USER`].
    pub password: String,
    child: Option<Child>,
    http: reqwest::Client,
    cookie: Mutex<Option<String>>,
}

/// A port free for both TCP and UDP on every address, as far as one can tell.
pub fn free_port() -> u16 {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if std::net::UdpSocket::bind(("0.0.0.0", port)).is_ok()
            && std::net::TcpListener::bind(("0.0.0.0", port)).is_ok()
        {
            return port;
        }
    }
}

/// `Password_PBKDF2` as qBittorrent stores it: base64(16-byte salt):base64(PBKDF2-HMAC-SHA512,
/// 100 000 iterations, 64 bytes).
fn pbkdf2_line(password: &str) -> String {
    let script = "import base64, hashlib, os, sys\n\
                  salt = os.urandom(16)\n\
                  key = hashlib.pbkdf2_hmac('sha512', sys.stdin.buffer.read(), salt, 100000, 64)\n\
                  print(base64.b64encode(salt).decode() + ':' + base64.b64encode(key).decode())";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}): it hashes the WebUI password"));
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(password.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python3 pbkdf2 failed");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Pseudo-random bytes (xorshift), the same for the same seed.
pub fn data(size: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(size);
    out
}

/// Writes `size` bytes to `dir/name` and returns the `.torrent` `mktorrent` makes of it
/// (no tracker, 256 KiB pieces).
pub fn make_torrent(dir: &Path, name: &str, size: usize, seed: u64) -> Vec<u8> {
    let file = dir.join(name);
    std::fs::write(&file, data(size, seed)).unwrap();
    let torrent = dir.join(format!("{name}.torrent"));
    let out = Command::new("mktorrent")
        .args(["-l", "18", "-o"])
        .arg(&torrent)
        .arg(&file)
        .stdout(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run mktorrent ({e}): install the Debian package `mktorrent` (scripts/test.sh does)")
        });
    assert!(
        out.status.success(),
        "mktorrent: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&torrent).unwrap();
    std::fs::remove_file(&torrent).unwrap();
    bytes
}

impl Qbittorrent {
    /// Starts an instance with a fresh profile, WebUI login [`USER`] / `password`, and waits
    /// until its WebUI answers.
    pub async fn start(password: &str) -> Qbittorrent {
        let dir = tempfile::tempdir().unwrap();
        let (webui_port, peer_port) = loop {
            let (a, b) = (free_port(), free_port());
            if a != b {
                break (a, b);
            }
        };
        let downloads = dir.path().join("downloads");
        std::fs::create_dir_all(&downloads).unwrap();
        let config = dir.path().join("qBittorrent/config");
        std::fs::create_dir_all(&config).unwrap();
        let conf = format!(
            "[LegalNotice]\nAccepted=true\n\n\
             [BitTorrent]\n\
             Session\\DHTEnabled=false\nSession\\LSDEnabled=false\nSession\\PeXEnabled=false\n\
             Session\\Port={peer_port}\nSession\\QueueingSystemEnabled=false\n\
             Session\\DefaultSavePath={}\n\n\
             [Network]\nPortForwardingEnabled=false\n\n\
             [Preferences]\nConnection\\UPnP=false\nGeneral\\Locale=en\n\
             WebUI\\Address=127.0.0.1\nWebUI\\Port={webui_port}\nWebUI\\UseUPnP=false\n\
             WebUI\\Username={USER}\nWebUI\\Password_PBKDF2=\"@ByteArray({})\"\n",
            downloads.display(),
            pbkdf2_line(password)
        );
        std::fs::write(config.join("qBittorrent.conf"), conf).unwrap();
        let mut q = Qbittorrent {
            dir,
            webui_port,
            peer_port,
            password: password.to_string(),
            child: None,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            cookie: Mutex::new(None),
        };
        q.restart().await;
        q
    }

    /// Where torrents are saved.
    pub fn downloads(&self) -> PathBuf {
        self.dir.path().join("downloads")
    }

    fn out_path(&self) -> PathBuf {
        self.dir.path().join("out.log")
    }

    /// The source specification with the right password.
    pub fn spec(&self) -> String {
        self.spec_with(&self.password)
    }

    /// The source specification with `password` (percent-encoded here).
    pub fn spec_with(&self, password: &str) -> String {
        format!(
            "qbittorrent://{USER}:{}@127.0.0.1:{}",
            urlencode(password),
            self.webui_port
        )
    }

    /// (Re)starts qbittorrent-nox on the same profile and ports, and waits until its WebUI
    /// answers.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "qbittorrent-nox already running");
        *self.cookie.lock().unwrap() = None;
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.out_path())
            .unwrap();
        let child = Command::new("qbittorrent-nox")
            .arg(format!("--profile={}", self.dir.path().display()))
            .arg(format!("--webui-port={}", self.webui_port))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run qbittorrent-nox ({e}): install the Debian package \
                     `qbittorrent-nox` (scripts/test.sh does)"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("qbittorrent-nox exited with {status}:\n{}", self.log_tail());
            }
            if let Ok(r) = self
                .request(reqwest::Method::GET, "app/webapiVersion", None)
                .send()
                .await
            {
                if matches!(r.status().as_u16(), 200 | 403) {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "qbittorrent-nox's WebUI did not answer within 60 s:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last lines of qbittorrent-nox's output and of its own log file.
    pub fn log_tail(&self) -> String {
        let own = self
            .dir
            .path()
            .join("qBittorrent/data/logs/qbittorrent.log");
        super::files_tail(&[&self.out_path(), &own], 30)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Stops qbittorrent-nox as a service manager would (SIGTERM; it saves its state) and
    /// waits for it to exit.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(60);
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("qbittorrent-nox did not exit within 60 s of SIGTERM");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// Kills (SIGKILL) and reaps qbittorrent-nox.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn request(
        &self,
        method: reqwest::Method,
        endpoint: &str,
        cookie: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let origin = format!("http://127.0.0.1:{}", self.webui_port);
        let mut r = self
            .http
            .request(method, format!("{origin}/api/v2/{endpoint}"))
            .header("Referer", format!("{origin}/"));
        if let Some(cookie) = cookie {
            r = r.header("Cookie", cookie);
        }
        r
    }

    /// Logs the harness in (a correct login: it does not count towards a ban).
    async fn login(&self) -> String {
        let form = format!("username={USER}&password={}", urlencode(&self.password));
        let r = self
            .request(reqwest::Method::POST, "auth/login", None)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .unwrap();
        let cookie = r
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(str::to_string);
        let body = r.text().await.unwrap();
        let cookie = cookie.unwrap_or_else(|| panic!("harness login refused: {body:?}"));
        *self.cookie.lock().unwrap() = Some(cookie.clone());
        cookie
    }

    /// Sends a request with the harness's session (logging in when needed); the status
    /// and body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        endpoint: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, Vec<u8>) {
        for _ in 0..2 {
            let known = self.cookie.lock().unwrap().clone();
            let cookie = match known {
                Some(c) => c,
                None => self.login().await,
            };
            let mut r = self.request(method.clone(), endpoint, Some(&cookie));
            if let Some(ct) = content_type {
                r = r.header("Content-Type", ct);
            }
            let r = r.body(body.clone()).send().await.unwrap();
            let status = r.status().as_u16();
            let bytes = r.bytes().await.unwrap().to_vec();
            if status == 403 {
                *self.cookie.lock().unwrap() = None;
                continue;
            }
            return (status, bytes);
        }
        panic!("{endpoint}: 403 twice");
    }

    /// GET `endpoint` as JSON.
    pub async fn json(&self, endpoint: &str) -> Value {
        let (status, body) = self
            .call(reqwest::Method::GET, endpoint, None, Vec::new())
            .await;
        assert_eq!(
            status,
            200,
            "{endpoint}: {}",
            String::from_utf8_lossy(&body)
        );
        serde_json::from_slice(&body).unwrap()
    }

    /// qBittorrent's own `transfer/info`.
    pub async fn transfer_info(&self) -> Value {
        self.json("transfer/info").await
    }

    /// `server_state` of `sync/maindata` (with `alltime_dl`, `alltime_ul`).
    pub async fn server_state(&self) -> Value {
        self.json("sync/maindata").await["server_state"].clone()
    }

    /// The messages of qBittorrent's in-memory log.
    pub async fn log_messages(&self) -> Vec<String> {
        self.json("log/main")
            .await
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Adds a `.torrent` saved to `save_path`, started; returns its info-hash (hex).
    pub async fn add_torrent(&self, torrent: &[u8], save_path: &Path) -> String {
        let before: Vec<String> = self.hashes().await;
        let boundary = "torrentstatsboundary7MA4YWxk";
        let mut body = Vec::new();
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"torrents\"; \
                 filename=\"t.torrent\"\r\nContent-Type: application/x-bittorrent\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(torrent);
        body.extend_from_slice(
            format!(
                "\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"savepath\"\r\n\r\n{}\
                 \r\n--{boundary}--\r\n",
                save_path.display()
            )
            .as_bytes(),
        );
        let (status, answer) = self
            .call(
                reqwest::Method::POST,
                "torrents/add",
                Some(&format!("multipart/form-data; boundary={boundary}")),
                body,
            )
            .await;
        assert_eq!(
            (status, answer.as_slice()),
            (200, &b"Ok."[..]),
            "torrents/add"
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(h) = self
                .hashes()
                .await
                .into_iter()
                .find(|h| !before.contains(h))
            {
                return h;
            }
            assert!(Instant::now() < deadline, "the torrent did not show up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn hashes(&self) -> Vec<String> {
        self.json("torrents/info")
            .await
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["hash"].as_str().unwrap().to_string())
            .collect()
    }

    /// One torrent's `torrents/info` entry.
    pub async fn torrent(&self, hash: &str) -> Value {
        self.json(&format!("torrents/info?hashes={hash}")).await[0].clone()
    }

    /// Tells the torrent about a peer (WebUI API 2.3: `torrents/addPeers`).
    pub async fn add_peer(&self, hash: &str, addr: std::net::SocketAddr) {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "torrents/addPeers",
                Some("application/x-www-form-urlencoded"),
                format!("hashes={hash}&peers={}", urlencode(&addr.to_string())).into_bytes(),
            )
            .await;
        assert_eq!(status, 200, "addPeers: {}", String::from_utf8_lossy(&body));
    }

    /// Waits until the torrent has all its data (progress 1), at most `timeout`.
    pub async fn wait_complete(&self, hash: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let t = self.torrent(hash).await;
            if t["progress"].as_f64() == Some(1.0) && t["amount_left"].as_u64() == Some(0) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "torrent {hash} not complete within {timeout:?}: {t}\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `transfer/info` once its counters stop moving (two answers 2 s apart, qBittorrent's
    /// statistics period being 1.5 s, the same).
    pub async fn settled_transfer_info(&self) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = self.transfer_info().await;
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let now = self.transfer_info().await;
            if now["dl_info_data"] == last["dl_info_data"]
                && now["up_info_data"] == last["up_info_data"]
            {
                return now;
            }
            assert!(Instant::now() < deadline, "counters still moving: {now}");
            last = now;
        }
    }

    /// This instance's BitTorrent address on loopback.
    pub fn peer_addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.peer_port).into()
    }
}

impl Drop for Qbittorrent {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Percent-encodes everything but letters and digits.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
