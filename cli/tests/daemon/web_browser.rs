//! The web page in a real browser: headless Chromium driven over WebDriver (Debian's
//! `chromium-driver`, through fantoccini) against the daemon on the sim source, with its
//! web server on a free port. The test logs in on the page (a wrong password first, then
//! Enter in the password field), then checks that the totals shown are the daemon's (read
//! over Deluge RPC before and after), that the rate graph gains points as polls happen
//! and reloads on a change of resolution, that a refused setting shows the server's
//! message and a good one is saved, that the reset needs two actions (and works) for the
//! ADMIN account, that every control has an accessible name, that the page fits 360 px
//! without horizontal scrolling, and that the browser logged no error. It saves
//! screenshots (`web-page.png`, `web-page-360.png` in Cargo's test tmp dir). Another
//! drives a daemon with several named sources: a row each, the combined totals their sum,
//! the graphs of one source or all, and adding, retiring and purging sources from the
//! page's settings.
//!
//! It fails (never skips) without `chromium` and `chromedriver`:
//! `apt-get install chromium chromium-driver`.
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client as Browser, ClientBuilder, Locator};
use serde_json::{json, Value};
use torrent_stats::remote::RemoteStats;
use torrent_stats::rpc::client::Client;
use torrent_stats::rpc::tls::CertPolicy;

use crate::support;
use crate::support::daemon::DaemonProc;
use crate::support::COUNTERS;

const INSTALL: &str = "apt-get install chromium chromium-driver";
const DESKTOP: (u32, u32) = (1280, 900);
const NARROW: u32 = 360;
/// Logged by the test in the page's console (level INFO).
const LOG_MARKER: &str = "web_browser test: console check";

/// The first of `names` found as a file in `PATH` (or as an absolute path).
fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    names.iter().find_map(|name| {
        if name.starts_with('/') {
            return Path::new(name).is_file().then(|| PathBuf::from(name));
        }
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// chromedriver as a child, killed on drop.
struct Driver {
    child: Child,
    port: u16,
    log: PathBuf,
}

/// How long chromedriver may take to say which port it listens on and then to answer
/// `/status` with `ready`: a cold first start (nothing in the page cache, a loaded CI
/// machine) takes seconds; a deadline, not a sleep, so a warm start goes on at once.
const DRIVER_READY: Duration = Duration::from_secs(60);

impl Driver {
    /// Starts chromedriver on a port it picks itself (`--port=0`: no window in which
    /// another process can take a port picked for it) and waits until it is ready for a
    /// session: its stdout names the port, then `GET /status` answers `"ready": true`.
    /// Fails at once, with chromedriver's log, if it exits meanwhile.
    async fn start(program: &Path, dir: &Path) -> Result<Self> {
        let log = dir.join("chromedriver.log");
        let mut child = Command::new(program)
            .arg("--port=0")
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("spawn {}; {INSTALL}", program.display()))?;
        // "ChromeDriver was started successfully on port N." once it listens; the thread
        // keeps draining stdout so that chromedriver never blocks on it.
        let stdout = child.stdout.take().context("chromedriver's stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    let _ = tx.send(rest.trim_end_matches('.').trim().parse::<u16>());
                }
            }
        });
        let mut driver = Driver {
            child,
            port: 0,
            log,
        };
        let deadline = Instant::now() + DRIVER_READY;
        driver.port = loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(port) => break port.context("chromedriver's port")?,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    bail!(
                        "chromedriver closed its stdout without naming its port\n{}",
                        driver.log_tail()
                    )
                }
            }
            driver.alive()?;
            ensure!(
                Instant::now() < deadline,
                "chromedriver did not say which port it listens on within {DRIVER_READY:?}\n{}",
                driver.log_tail()
            );
        };
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()?;
        let status = format!("{}/status", driver.url());
        loop {
            let answer = match http.get(&status).send().await {
                Ok(response) => response.bytes().await.map_err(anyhow::Error::from),
                Err(e) => Err(e.into()),
            };
            let ready = answer
                .as_ref()
                .ok()
                .and_then(|body| serde_json::from_slice::<Value>(body).ok())
                .is_some_and(|v| v["value"]["ready"] == true);
            if ready {
                return Ok(driver);
            }
            driver.alive()?;
            ensure!(
                Instant::now() < deadline,
                "chromedriver on port {} not ready within {DRIVER_READY:?} (last answer to /status: {answer:?})\n{}",
                driver.port,
                driver.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Fails, with the end of its log, if chromedriver has exited.
    fn alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("chromedriver exited ({status})\n{}", self.log_tail());
        }
        Ok(())
    }

    /// The last lines of chromedriver's log, for error messages (the log's directory is
    /// gone once the test fails).
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        format!(
            "chromedriver's log ({}), its end:\n{tail}",
            self.log.display()
        )
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The WebDriver session was closed first (that quits the browser); this ends
        // chromedriver itself, by its own pid only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A chromedriver endpoint of the current session that fantoccini has no method for:
/// `POST /session/{id}/{path}` with a JSON body.
#[derive(Debug)]
struct SessionPost {
    path: &'static str,
    body: Value,
}

impl WebDriverCompatibleCommand for SessionPost {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/{}",
            session_id.unwrap_or_default(),
            self.path
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.body.to_string()))
    }
}

/// The browser log entries logged since the last call (chromedriver's legacy log
/// endpoint, fed by the `goog:loggingPrefs` capability).
async fn browser_log(b: &Browser) -> Result<Vec<Value>> {
    let log = b
        .issue_cmd(SessionPost {
            path: "se/log",
            body: json!({"type": "browser"}),
        })
        .await
        .context("chromedriver's browser log (POST /session/{id}/se/log)")?;
    Ok(log.as_array().cloned().unwrap_or_default())
}

/// A DevTools command through chromedriver.
async fn cdp(b: &Browser, cmd: &str, params: Value) -> Result<Value> {
    b.issue_cmd(SessionPost {
        path: "goog/cdp/execute",
        body: json!({"cmd": cmd, "params": params}),
    })
    .await
    .with_context(|| format!("DevTools {cmd}"))
}

/// Runs `script` (a function body) in the page.
async fn js(b: &Browser, script: &str) -> Result<Value> {
    b.execute(script, vec![])
        .await
        .with_context(|| format!("execute {script:?}"))
}

/// Calls `method` through the page's own `/json` endpoint (the browser's session cookie):
/// the whole envelope, `{result, error, id}`.
async fn page_call(b: &Browser, method: &str, params: Value) -> Result<Value> {
    let script = r#"
        const [method, params, done] = arguments;
        fetch('json', {method: 'POST', credentials: 'same-origin',
                       headers: {'Content-Type': 'application/json'},
                       body: JSON.stringify({method, params, id: 4242})})
          .then((r) => r.json()).then(done, (e) => done({transport_error: String(e)}));
    "#;
    let answer = b
        .execute_async(script, vec![json!(method), params])
        .await
        .with_context(|| format!("{method} through /json"))?;
    ensure!(
        answer.get("transport_error").is_none(),
        "{method}: {answer}"
    );
    Ok(answer)
}

/// Retries `probe` every 100 ms until it answers `Some`, for at most `limit`.
async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe().await? {
            return Ok(v);
        }
        ensure!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn text(b: &Browser, id: &str) -> Result<String> {
    Ok(b.find(Locator::Id(id)).await?.text().await?)
}

async fn displayed(b: &Browser, id: &str) -> Result<bool> {
    Ok(b.find(Locator::Id(id)).await?.is_displayed().await?)
}

/// Waits for the element `id` to show a non-empty text.
async fn wait_text(b: &Browser, id: &str) -> Result<String> {
    eventually(
        Duration::from_secs(10),
        &format!("text in #{id}"),
        || async move {
            let t = text(b, id).await?;
            Ok((!t.trim().is_empty()).then_some(t))
        },
    )
    .await
}

/// The error that form element `id` shows, once shown, checked to be announced to
/// assistive technology (`role="alert"`).
async fn shown_alert(b: &Browser, id: &str) -> Result<String> {
    let text = wait_text(b, id).await?;
    let role = b.find(Locator::Id(id)).await?.attr("role").await?;
    ensure!(role.as_deref() == Some("alert"), "{id} role {role:?}");
    Ok(text)
}

/// Replaces the value of input `id` by `value`.
async fn fill(b: &Browser, id: &str, value: &str) -> Result<()> {
    let input = b.find(Locator::Id(id)).await?;
    input.clear().await?;
    input.send_keys(value).await?;
    Ok(())
}

/// Checks a human byte count: `"512 B"` or `"X.YY UNIT"` with the largest binary unit
/// not above the value, X.YY the value in that unit rounded to two decimals.
fn check_human(text: &str, bytes: u64) -> Result<()> {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let (number, unit) = text
        .split_once(' ')
        .with_context(|| format!("{text:?} is not `number unit`"))?;
    let k = UNITS
        .iter()
        .position(|u| *u == unit)
        .with_context(|| format!("unit of {text:?}"))?;
    let scale = 1024f64.powi(k as i32);
    let shown: f64 = number
        .parse()
        .with_context(|| format!("number in {text:?}"))?;
    let exact = bytes as f64 / scale;
    if k == 0 {
        ensure!(bytes < 1024 && shown == exact, "{text:?} for {bytes} bytes");
    } else {
        ensure!(
            (1.0..1024.0).contains(&exact) && (shown - exact).abs() <= 0.0051,
            "{text:?} for {bytes} bytes (= {exact:.4} {unit})"
        );
        ensure!(
            number.split_once('.').map(|(_, d)| d.len()) == Some(2),
            "{text:?}: two decimals"
        );
    }
    Ok(())
}

/// The totals the page shows: `{"total": {counter: {value, text}}, "session": ..., ratios}`.
async fn shown_totals(b: &Browser) -> Result<Value> {
    js(
        b,
        r#"
        const out = {total: {}, session: {}};
        for (const prefix of ['total', 'session']) {
          for (const key of ['total_upload', 'total_download', 'total_payload_upload',
                             'total_payload_download', 'ratio']) {
            const el = document.getElementById(`${prefix}-${key}`);
            out[prefix][key] = {value: el.value, text: el.textContent.trim()};
          }
        }
        return out;
        "#,
    )
    .await
}

fn counters_json(c: &torrent_stats::Counters) -> Result<Value> {
    Ok(serde_json::to_value(c)?)
}

/// The page's value (the `<data value>`, exact bytes) of every counter in `shown[part]`.
fn shown_values(shown: &Value, part: &str) -> Result<Value> {
    let mut out = serde_json::Map::new();
    for key in COUNTERS {
        let v = shown[part][key]["value"]
            .as_str()
            .with_context(|| format!("{part} {key} in {shown}"))?;
        let n: u64 = v.parse().with_context(|| format!("{part} {key} = {v:?}"))?;
        out.insert(key.into(), json!(n));
    }
    Ok(Value::Object(out))
}

async fn rpc_login(port: u16, password: &str) -> Result<Client> {
    let mut c = Client::connect("127.0.0.1", port, CertPolicy::AnyCertificate).await?;
    c.login("localclient", password).await?;
    Ok(c)
}

/// The daemon on `source` polling every second, RPC and web on free ports.
fn start_daemon(source: &str) -> Result<(DaemonProc, u16)> {
    start_daemon_with(&[source])
}

/// The daemon on `sources` (each a `--source`), polling every second, RPC and web on free
/// ports.
fn start_daemon_with(sources: &[&str]) -> Result<(DaemonProc, u16)> {
    let dir = tempfile::tempdir()?;
    support::write_conf(dir.path(), 1);
    let mut command = Command::new(support::BIN);
    command
        .arg("daemon")
        .arg("--config-dir")
        .arg(dir.path())
        .args(["--port", "0", "--web-port", "0"])
        .env_remove("TORRENT_STATS_SOURCE");
    for source in sources {
        command.args(["--source", source]);
    }
    let daemon = DaemonProc::launch(command, dir)?;
    let port = daemon.web_port()?;
    Ok((daemon, port))
}

/// chromedriver and a headless Chromium session on it (the driver's files in `work`).
async fn open_browser(work: &std::path::Path) -> Result<(Driver, Browser)> {
    let chromedriver = find_program(&["chromedriver", "/usr/bin/chromedriver"])
        .with_context(|| format!("chromedriver not found: {INSTALL}"))?;
    let chromium = find_program(&["chromium", "chromium-browser", "/usr/bin/chromium"])
        .with_context(|| format!("chromium not found: {INSTALL}"))?;
    let driver = Driver::start(&chromedriver, work).await?;
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
                "--lang=en-US",
            ],
        }),
    );
    // fantoccini's connector asks rustls for the process default; the graph enables both
    // ring and aws-lc-rs, so name one (ring, as the crate's own TLS does).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let browser = ClientBuilder::rustls()?
        .capabilities(caps)
        .connect(&driver.url())
        .await
        .with_context(|| {
            format!(
                "WebDriver session with {} ({INSTALL}); {}",
                chromium.display(),
                driver.log_tail()
            )
        })?;
    Ok((driver, browser))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver"]
async fn the_page_in_chromium() -> Result<()> {
    let (mut daemon, web_port) = start_daemon(support::daemon::SOURCE)?;
    let work = tempfile::tempdir()?;
    let (driver, browser) = open_browser(work.path()).await?;
    let outcome = drive(&browser, &mut daemon, web_port).await;
    let _ = browser.close().await;
    drop(driver);
    if outcome.is_err() {
        eprintln!("--- the daemon's log ---\n{}", daemon.log());
    }
    outcome
}

async fn drive(b: &Browser, daemon: &mut DaemonProc, web_port: u16) -> Result<()> {
    let mut rpc = rpc_login(daemon.port(), &daemon.password).await?;
    let base = format!("http://127.0.0.1:{web_port}/");
    b.goto(&base).await?;
    // A line of our own, to prove the browser log below is really read.
    js(b, &format!("console.info('{LOG_MARKER}'); return true")).await?;

    // Not logged in: the login form, the user filled in.
    eventually(Duration::from_secs(15), "the login form", || async move {
        Ok(displayed(b, "login-view").await?.then_some(()))
    })
    .await?;
    ensure!(
        !displayed(b, "app-view").await?,
        "the dashboard shows before login"
    );
    let user = b.find(Locator::Id("login-user")).await?;
    ensure!(
        user.prop("value").await?.as_deref() == Some("localclient"),
        "default user"
    );
    // A newcomer's hint: who logs in and which file holds the password (not the password).
    let hint = wait_text(b, "login-hint").await?;
    let auth_file = daemon.dir.path().join("auth");
    ensure!(
        hint.contains("user localclient")
            && hint.contains(&auth_file.display().to_string())
            && !hint.contains(&daemon.password),
        "login hint {hint:?}"
    );

    // A wrong password is refused on the page.
    fill(b, "login-password", "not-the-password").await?;
    b.find(Locator::Id("login-submit")).await?.click().await?;
    let refused = wait_text(b, "login-error").await?;
    ensure!(
        refused.contains("Wrong user or password"),
        "login error {refused:?}"
    );
    ensure!(
        !displayed(b, "app-view").await?,
        "logged in with a wrong password"
    );

    // The right one, submitted with Enter from the keyboard.
    fill(b, "login-password", &format!("{}\u{E007}", daemon.password)).await?;
    dashboard(b).await?;
    ensure!(
        displayed(b, "app-view").await?,
        "dashboard hidden after login"
    );
    ensure!(!displayed(b, "login-view").await?, "login form still shown");
    let who = text(b, "who-name").await?;
    ensure!(
        who.contains("localclient") && who.contains("admin"),
        "who {who:?}"
    );

    // Health: the sim source, up.
    let source = text(b, "source-name").await?;
    ensure!(source.starts_with("sim:"), "source {source:?}");
    let state = eventually(Duration::from_secs(10), "source up", || async move {
        let s = text(b, "source-state").await?;
        Ok((s == "up").then_some(s))
    })
    .await?;
    ensure!(state == "up");
    ensure!(
        !displayed(b, "source-down").await?,
        "source-down banner while up"
    );
    ensure!(!displayed(b, "save-failing").await?, "save-failing banner");

    // Totals: the page shows what stats.get_totals answers (read before and after the
    // page, equal: no poll in between), in binary units.
    let measured: Vec<String> = serde_json::from_value(
        rpc.call("stats.get_status", vec![], Default::default())
            .await?["measured"]
            .clone(),
    )?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let shown = loop {
        let before = counters_json(&rpc.stats().get_totals().await?)?;
        let session_before = counters_json(&rpc.stats().get_session_totals().await?)?;
        let shown = shown_totals(b).await?;
        let after = counters_json(&rpc.stats().get_totals().await?)?;
        let session_after = counters_json(&rpc.stats().get_session_totals().await?)?;
        let page = shown_values(&shown, "total")?;
        let page_session = shown_values(&shown, "session")?;
        if before == after
            && session_before == session_after
            && page == before
            && page_session == session_before
        {
            break shown;
        }
        ensure!(
            Instant::now() < deadline,
            "the page's totals never matched stats.get_totals for 20 s: page {page}, \
             get_totals {before} / {after}; session: page {page_session}, \
             get_session_totals {session_before} / {session_after}"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    };
    for part in ["total", "session"] {
        for key in COUNTERS {
            let bytes = shown[part][key]["value"].as_str().unwrap_or("").parse()?;
            check_human(shown[part][key]["text"].as_str().unwrap_or(""), bytes)
                .with_context(|| format!("{part} {key}"))?;
        }
        let n = |k: &str| {
            shown[part][k]["value"]
                .as_str()
                .unwrap_or("0")
                .parse::<f64>()
        };
        let wire = ["total_upload", "total_download"]
            .iter()
            .all(|k| measured.iter().any(|m| m == k));
        let (up, down) = if wire {
            (n("total_upload")?, n("total_download")?)
        } else {
            (n("total_payload_upload")?, n("total_payload_download")?)
        };
        ensure!(down > 0.0, "the sim source downloads: {shown}");
        let ratio: f64 = shown[part]["ratio"]["text"]
            .as_str()
            .unwrap_or("")
            .parse()
            .with_context(|| format!("{part} ratio in {shown}"))?;
        ensure!(
            (ratio - up / down).abs() < 0.0011,
            "{part} ratio {ratio} vs {}",
            up / down
        );
    }
    println!(
        "totals on the page match stats.get_totals: {}",
        shown["total"]
    );

    // The rate graph: the resolutions of stats.get_intervals, points added by polls.
    let intervals = rpc.stats().get_intervals().await?;
    let options = js(
        b,
        "return [...document.querySelectorAll('#resolution option')].map((o) => Number(o.value))",
    )
    .await?;
    ensure!(
        options == json!(intervals),
        "resolution options {options} vs {intervals:?}"
    );
    ensure!(
        js(b, "return window.__torrentStats.resolution()").await? == json!(intervals[0]),
        "the finest resolution first"
    );
    let points = || async move {
        let v = js(
            b,
            "const t = window.__torrentStats; return [t.points(), t.chartPoints(), t.peerPoints()]",
        )
        .await?;
        let n = |i: usize| v[i].as_u64().unwrap_or(0);
        ensure!(
            n(0) == n(1) && n(0) == n(2),
            "points: data, uPlot, peers {v}"
        );
        Ok::<u64, anyhow::Error>(n(0))
    };
    let start = points().await?;
    let grown = eventually(
        Duration::from_secs(15),
        "the rate graph gains 3 points",
        || async move {
            let n = points().await?;
            Ok((n >= start + 3).then_some(n))
        },
    )
    .await?;
    println!("rate graph: {start} points, then {grown} after 3 polls");

    // Another resolution reloads that level's history.
    let coarse = intervals[1];
    b.find(Locator::Id("resolution"))
        .await?
        .select_by_value(&coarse.to_string())
        .await?;
    eventually(
        Duration::from_secs(10),
        "the coarser resolution",
        || async move {
            let r = js(b, "return window.__torrentStats.resolution()").await?;
            Ok((r == json!(coarse)).then_some(()))
        },
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let level = loop {
        let history = rpc.stats().get_stats(&["upload_rate"], coarse).await?;
        let len = history["upload_rate"].as_array().map_or(0, Vec::len) as u64;
        let n = points().await?;
        if n == len {
            break n;
        }
        ensure!(
            Instant::now() < deadline,
            "resolution {coarse} s: {n} points on the page, {len} in stats.get_stats"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!("resolution {coarse} s: {level} points, as stats.get_stats");
    b.find(Locator::Id("resolution"))
        .await?
        .select_by_value(&intervals[0].to_string())
        .await?;
    let finest = intervals[0];
    eventually(
        Duration::from_secs(10),
        "back to the finest resolution",
        || async move {
            let r = js(b, "return window.__torrentStats.resolution()").await?;
            Ok((r == json!(finest) && points().await? >= grown).then_some(()))
        },
    )
    .await?;

    // Settings: a refused value shows the server's message next to the form.
    let refused = page_call(b, "stats.set_config", json!([{"update_interval": 0}])).await?;
    let message = refused["error"]["message"]
        .as_str()
        .with_context(|| format!("update_interval 0 was not refused: {refused}"))?
        .to_string();
    ensure!(refused["error"]["code"] == json!(3), "{refused}");
    ensure!(
        refused["error"]["class"] == json!("ValueError"),
        "{refused}"
    );
    fill(b, "set-update_interval", "0").await?;
    b.find(Locator::Id("settings-save")).await?.click().await?;
    let shown_error = shown_alert(b, "settings-error").await?;
    ensure!(
        shown_error.contains(&message),
        "the page says {shown_error:?}, the server {message:?}"
    );
    ensure!(
        rpc.stats().get_config().await?.update_interval == 1,
        "0 was applied"
    );
    println!("refused setting shown: {shown_error:?}");
    // A good value is saved and said so.
    fill(b, "set-update_interval", "1").await?;
    fill(b, "set-save_interval", "45").await?;
    b.find(Locator::Id("settings-save")).await?.click().await?;
    let saved = wait_text(b, "settings-ok").await?;
    ensure!(saved.contains("Saved"), "settings ok {saved:?}");
    ensure!(
        text(b, "settings-error").await?.is_empty(),
        "error left after a save"
    );
    let config = rpc.stats().get_config().await?;
    ensure!(
        config.save_interval == 45 && config.update_interval == 1,
        "{config:?}"
    );

    // Accessible names: every field has a label, every button a name.
    let unnamed = js(
        b,
        r#"
        const bad = [];
        for (const el of document.querySelectorAll('input, select, textarea'))
          if (!el.labels || !el.labels.length) bad.push(el.id || el.outerHTML);
        for (const el of document.querySelectorAll('button'))
          if (!el.textContent.trim() && !el.getAttribute('aria-label')) bad.push(el.id || el.outerHTML);
        return bad;
        "#,
    )
    .await?;
    ensure!(
        unnamed == json!([]),
        "controls without an accessible name: {unnamed}"
    );

    // Desktop screenshot: the whole page.
    let desktop = screenshot_full(
        b,
        DESKTOP.0,
        concat!(env!("CARGO_TARGET_TMPDIR"), "/web-page.png"),
    )
    .await?;
    println!("screenshot: {desktop}");

    // 360 px wide: the totals stay visible, no horizontal scrolling.
    narrow(b).await?;
    let fit = js(
        b,
        r#"
        const vw = window.innerWidth;
        const ids = ['totals', 'total-total_upload', 'total-total_download',
                     'session-total_upload', 'session-total_download', 'total-ratio'];
        const outside = ids.filter((id) => {
          const r = document.getElementById(id).getBoundingClientRect();
          return r.width === 0 || r.left < 0 || r.right > vw + 1;
        });
        return {vw, scroll: document.documentElement.scrollWidth, outside};
        "#,
    )
    .await?;
    ensure!(fit["vw"] == json!(NARROW), "viewport {fit}");
    ensure!(
        fit["scroll"].as_u64().unwrap_or(u64::MAX) <= u64::from(NARROW) + 2,
        "horizontal scrolling at {NARROW} px: {fit}"
    );
    ensure!(
        fit["outside"] == json!([]),
        "totals cut off at {NARROW} px: {fit}"
    );
    for id in ["total-total_upload", "total-total_download", "total-ratio"] {
        ensure!(displayed(b, id).await?, "#{id} hidden at {NARROW} px");
    }
    let narrow_png = screenshot_full(
        b,
        NARROW,
        concat!(env!("CARGO_TARGET_TMPDIR"), "/web-page-360.png"),
    )
    .await?;
    println!("screenshot: {narrow_png}");
    cdp(b, "Emulation.clearDeviceMetricsOverride", json!({})).await?;
    b.set_window_size(DESKTOP.0, DESKTOP.1).await?;

    // Reset: shown to the ADMIN account, two deliberate actions; cancel keeps the totals.
    ensure!(
        displayed(b, "admin").await?,
        "reset section hidden for an ADMIN session"
    );
    let open = b.find(Locator::Id("reset-open")).await?;
    open.click().await?;
    ensure!(
        dialog_open(b).await?,
        "the confirmation dialog did not open"
    );
    b.find(Locator::Id("reset-cancel")).await?.click().await?;
    ensure!(!dialog_open(b).await?, "cancel left the dialog open");
    let before = rpc.stats().get_totals().await?;
    ensure!(before.total_download > 0, "nothing counted: {before:?}");
    ensure!(
        text(b, "reset-result").await?.is_empty(),
        "cancel reset the totals"
    );
    open.click().await?;
    ensure!(
        dialog_open(b).await?,
        "the confirmation dialog did not reopen"
    );
    b.find(Locator::Id("reset-confirm")).await?.click().await?;
    let result = wait_text(b, "reset-result").await?;
    ensure!(
        result.starts_with("Totals reset."),
        "reset result {result:?}"
    );
    let after = rpc.stats().get_totals().await?;
    ensure!(
        after.total_download < before.total_download,
        "totals not reset: {before:?} then {after:?}"
    );
    println!("reset through the dialog: {result:?}");

    // Log out: the login form again, the session gone.
    b.find(Locator::Id("logout")).await?.click().await?;
    eventually(
        Duration::from_secs(10),
        "the login form after logout",
        || async move { Ok(displayed(b, "login-view").await?.then_some(())) },
    )
    .await?;
    let session = page_call(b, "auth.check_session", json!([])).await?;
    ensure!(
        session["result"] == json!(false),
        "still logged in: {session}"
    );

    // No errors in the browser's console, none caught by the page.
    let caught = js(b, "return window.__torrentStats.errors()").await?;
    ensure!(caught == json!([]), "errors caught by the page: {caught}");
    let log = browser_log(b).await?;
    ensure!(
        log.iter().any(|e| e["message"]
            .as_str()
            .is_some_and(|m| m.contains(LOG_MARKER))),
        "the browser log misses the test's own console.info line: {log:#?}"
    );
    let severe: Vec<&Value> = log.iter().filter(|e| e["level"] == "SEVERE").collect();
    ensure!(severe.is_empty(), "browser console errors: {severe:#?}");
    println!("browser log: {} entries, no SEVERE", log.len());
    ensure!(daemon.running(), "the daemon died");
    Ok(())
}

async fn dialog_open(b: &Browser) -> Result<bool> {
    Ok(js(b, "return document.getElementById('reset-dialog').open").await? == json!(true))
}

/// Makes the viewport `NARROW` px wide: the window if the browser allows it, else (new
/// headless Chrome keeps windows at least 500 px wide) DevTools' device metrics.
async fn narrow(b: &Browser) -> Result<()> {
    b.set_window_size(NARROW, 800).await?;
    let width = js(b, "return window.innerWidth").await?;
    if width != json!(NARROW) {
        cdp(
            b,
            "Emulation.setDeviceMetricsOverride",
            json!({"width": NARROW, "height": 800, "deviceScaleFactor": 1, "mobile": true}),
        )
        .await?;
    }
    // Let the layout and the charts' resize observer settle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(())
}

/// A PNG of the whole page at `width` px (DevTools' device metrics sized to the page),
/// written to `path`.
async fn screenshot_full(b: &Browser, width: u32, path: &str) -> Result<String> {
    let height = js(b, "return document.documentElement.scrollHeight").await?;
    let height = height.as_u64().context("page height")?.clamp(400, 6000);
    cdp(
        b,
        "Emulation.setDeviceMetricsOverride",
        json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 500}),
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let png = b.screenshot().await?;
    if png.len() < 8 || &png[1..4] != b"PNG" {
        bail!("the screenshot is not a PNG ({} bytes)", png.len());
    }
    std::fs::write(path, &png).with_context(|| format!("write {path}"))?;
    Ok(path.to_string())
}

/// A source that is down is shown on the page, not hidden: the banner with its error, the
/// source marked down; no console errors. Screenshot: `target/tmp/web-page-down.png`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver"]
async fn a_down_source_on_the_page() -> Result<()> {
    let (daemon, web_port) = start_daemon("deluge://alice:pw@127.0.0.1:1")?;
    let work = tempfile::tempdir()?;
    let (driver, b) = open_browser(work.path()).await?;
    let outcome = async {
        b.goto(&format!("http://127.0.0.1:{web_port}/")).await?;
        eventually(Duration::from_secs(15), "the login form", || async {
            Ok(displayed(&b, "login-view").await?.then_some(()))
        })
        .await?;
        fill(
            &b,
            "login-password",
            &format!("{}\u{E007}", daemon.password),
        )
        .await?;
        eventually(Duration::from_secs(15), "the down banner", || async {
            Ok(displayed(&b, "source-down").await?.then_some(()))
        })
        .await?;
        let error = wait_text(&b, "source-down-error").await?;
        ensure!(!error.is_empty(), "the banner shows no error");
        let banner = text(&b, "source-down").await?;
        ensure!(banner.contains("The source is down"), "banner: {banner:?}");
        let path = concat!(env!("CARGO_TARGET_TMPDIR"), "/web-page-down.png");
        std::fs::write(path, b.screenshot().await?)?;
        eprintln!("screenshot: {path}");
        let severe: Vec<Value> = browser_log(&b)
            .await?
            .into_iter()
            .filter(|e| e["level"] == "SEVERE")
            .collect();
        ensure!(severe.is_empty(), "console errors: {severe:?}");
        Ok(())
    }
    .await;
    let _ = b.close().await;
    drop(driver);
    if outcome.is_err() {
        eprintln!("--- the daemon's log ---\n{}", daemon.log());
    }
    outcome
}

/// Source `a` of the several-sources test: 1 MiB/s up, 2 MiB/s down.
const SIM_A: &str = "a=sim:up=1MiB/s,down=2MiB/s,peers=2";
/// Source `b`: 3 MiB/s up, 1 MiB/s down.
const SIM_B: &str = "b=sim:up=3MiB/s,down=1MiB/s,peers=1";
/// Source `c`, added through the page's form.
const SIM_C: &str = "sim:up=512KiB/s,down=256KiB/s";
/// Source `d`, added through the form: a Deluge daemon that is not there, with a password
/// the page must never show.
const DOWN_PASSWORD: &str = "n0t-for-the-page";
const MIB: u64 = 1024 * 1024;

/// Several sources: the daemon counts `a` and `b`; the page shows a row each, and the
/// combined totals are the sum of the rows (the `<data>` values, bytes) and what
/// `stats.get_sources` answers; the graphs show one source's rates or all of them added
/// up (history and live points); the ADMIN settings add a source (a bad specification
/// refused with the daemon's message), show which source is down without its password,
/// retire one after a confirmation (shown as retired, the combined all-time totals do not
/// drop) and purge it (its row, graph option and files gone, its totals out of the
/// combined ones). Screenshots: `web-page-sources.png`, `web-page-sources-360.png`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver"]
async fn several_sources_on_the_page() -> Result<()> {
    let (mut daemon, web_port) = start_daemon_with(&[SIM_A, SIM_B])?;
    let work = tempfile::tempdir()?;
    let (driver, browser) = open_browser(work.path()).await?;
    let outcome = drive_sources(&browser, &mut daemon, web_port).await;
    let _ = browser.close().await;
    drop(driver);
    if outcome.is_err() {
        eprintln!("--- the daemon's log ---\n{}", daemon.log());
    }
    outcome
}

/// Every source row of the page and the combined totals, read in one go (one render):
/// `{rows: {name: {state, measures, kind, description, total: {counter: bytes},
/// session: {…}}}, combined: {total: {…}, session: {…}}, title}`.
async fn shown_sources(b: &Browser) -> Result<Value> {
    js(
        b,
        r#"
        const num = (el) => (el && el.value !== '' ? Number(el.value) : null);
        const rows = {};
        for (const tr of document.querySelectorAll('#sources-body tr[data-source]')) {
          const name = tr.dataset.source;
          const text = (what) => {
            const el = tr.querySelector(`[data-testid="source-${name}-${what}"]`);
            return el ? el.textContent.trim() : null;
          };
          const row = {state: text('state'), measures: text('measures'), kind: text('kind'),
                       description: text('description'), detail: text('detail'),
                       total: {}, session: {}};
          for (const el of tr.querySelectorAll('data[data-part]'))
            row[el.dataset.part][el.dataset.counter] = num(el);
          rows[name] = row;
        }
        const combined = {total: {}, session: {}};
        for (const part of ['total', 'session'])
          for (const key of ['total_upload', 'total_download', 'total_payload_upload',
                             'total_payload_download'])
            combined[part][key] = num(document.getElementById(`${part}-${key}`));
        return {rows, combined, title: document.getElementById('totals-title').textContent};
        "#,
    )
    .await
}

/// `stats.get_sources` over Deluge RPC.
async fn rpc_sources(rpc: &mut Client) -> Result<Value> {
    Ok(rpc
        .call("stats.get_sources", vec![], Default::default())
        .await?)
}

/// Checks that the page's combined figures are the sum of its rows (every row's all-time
/// totals, retired ones included; the session of the active ones) for the wire counters.
fn check_sum(shown: &Value) -> Result<()> {
    let rows = shown["rows"].as_object().context("rows")?;
    for key in ["total_upload", "total_download"] {
        for part in ["total", "session"] {
            let mut sum = 0;
            for (name, row) in rows {
                let v = &row[part][key];
                if part == "session" && row["state"] == "retired" {
                    ensure!(v.is_null(), "retired {name} shows a session: {shown}");
                    continue;
                }
                sum += v
                    .as_u64()
                    .with_context(|| format!("{name} {part} {key} in {shown}"))?;
            }
            let combined = shown["combined"][part][key].as_u64();
            ensure!(
                combined == Some(sum),
                "combined {part} {key} {combined:?} is not the sum of the rows {sum}: {shown}"
            );
        }
    }
    Ok(())
}

/// Waits until the page shows what `stats.get_sources` answers (read before and after the
/// page, equal: no poll in between) for every source, and returns the page's figures.
async fn sources_settled(b: &Browser, rpc: &mut Client, names: &[&str]) -> Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let before = rpc_sources(rpc).await?;
        let shown = shown_sources(b).await?;
        let after = rpc_sources(rpc).await?;
        let listed: Vec<&str> = before
            .as_array()
            .context("get_sources is a list")?
            .iter()
            .filter_map(|s| s["name"].as_str())
            .collect();
        let mut same = before == after && listed == names;
        let rows = shown["rows"].as_object().context("rows")?;
        same &= rows.len() == names.len();
        for s in before.as_array().into_iter().flatten() {
            let name = s["name"].as_str().unwrap_or_default();
            let row = &rows.get(name).cloned().unwrap_or_default();
            for key in ["total_upload", "total_download"] {
                same &= row["total"][key] == s["totals"][key];
            }
        }
        if same {
            return Ok(shown);
        }
        ensure!(
            Instant::now() < deadline,
            "the page's sources never matched stats.get_sources ({names:?}) for 20 s: \
             page {shown}, get_sources {before} / {after}"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// Shows `source`'s graphs (`""`: all sources) and answers the upload-rate points of the
/// history it loads (`stats.get_stats`) and the next `grow` points the page adds from
/// the events (live updates).
async fn graph_points(b: &Browser, source: &str, grow: usize) -> Result<(Vec<Value>, Vec<Value>)> {
    b.find(Locator::Id("graph-source"))
        .await?
        .select_by_value(source)
        .await?;
    eventually(
        Duration::from_secs(10),
        &format!("graph source {source:?}"),
        || async move {
            let s = js(b, "return window.__torrentStats.graphSource()").await?;
            Ok((s == json!(source)).then_some(()))
        },
    )
    .await?;
    let series = || async move {
        let v = js(
            b,
            "const t = window.__torrentStats; return t.loading() ? null : t.series(1)",
        )
        .await?;
        Ok(v.as_array().cloned())
    };
    let history = eventually(
        Duration::from_secs(10),
        &format!("the history of {source:?}"),
        series,
    )
    .await?;
    let start = history.len();
    let live = eventually(
        Duration::from_secs(20),
        &format!("{grow} live points of {source:?}"),
        || async move {
            let now = series().await?.unwrap_or_default();
            Ok((now.len() >= start + grow).then(|| now[start..].to_vec()))
        },
    )
    .await?;
    let history = history.into_iter().filter(|v| !v.is_null()).collect();
    Ok((history, live))
}

/// Waits for the dashboard after a login: logged in, a snapshot received.
async fn dashboard(b: &Browser) -> Result<()> {
    eventually(Duration::from_secs(15), "the dashboard", || async move {
        let ready = js(
            b,
            "return window.__torrentStats.loggedIn() && window.__torrentStats.snapshots() > 0",
        )
        .await?;
        Ok((ready == json!(true)).then_some(()))
    })
    .await
}

/// Opens the page on `web_port` and logs in with `password` (Enter in the form).
async fn log_in(b: &Browser, web_port: u16, password: &str) -> Result<()> {
    b.goto(&format!("http://127.0.0.1:{web_port}/")).await?;
    eventually(Duration::from_secs(15), "the login form", || async move {
        Ok(displayed(b, "login-view").await?.then_some(()))
    })
    .await?;
    fill(b, "login-password", &format!("{password}\u{E007}")).await?;
    dashboard(b).await
}

async fn drive_sources(b: &Browser, daemon: &mut DaemonProc, web_port: u16) -> Result<()> {
    let mut rpc = rpc_login(daemon.port(), &daemon.password).await?;
    log_in(b, web_port, &daemon.password).await?;

    // Both rows, up, wire bytes, their descriptions; the totals card says it is combined.
    eventually(
        Duration::from_secs(15),
        "sources a and b up",
        || async move {
            let shown = shown_sources(b).await?;
            let up = ["a", "b"].iter().all(|n| shown["rows"][n]["state"] == "up");
            Ok(up.then_some(()))
        },
    )
    .await?;
    let listed = rpc_sources(&mut rpc).await?;
    let shown = sources_settled(b, &mut rpc, &["a", "b"]).await?;
    for s in listed.as_array().into_iter().flatten() {
        let name = s["name"].as_str().context("name")?;
        let row = &shown["rows"][name];
        ensure!(row["kind"] == "sim", "{name}: {row}");
        ensure!(row["measures"] == "wire bytes", "{name}: {row}");
        ensure!(
            row["description"] == s["description"],
            "{name}: {row} vs {s}"
        );
    }
    ensure!(
        shown["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("Combined totals")),
        "totals title {shown}"
    );
    ensure!(
        displayed(b, "combined-note").await?,
        "no note on the combined figures"
    );
    check_sum(&shown)?;
    // The sum is also the daemon's own combined figure.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let totals = counters_json(&rpc.stats().get_totals().await?)?;
        let shown = shown_sources(b).await?;
        let again = counters_json(&rpc.stats().get_totals().await?)?;
        if totals == again && shown["combined"]["total"] == totals {
            check_sum(&shown)?;
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "combined totals on the page {} never matched stats.get_totals {totals}",
            shown["combined"]["total"]
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    println!("rows a and b; combined = a + b: {}", shown["combined"]);

    // The graphs: one source's rate, or the sum, in the history and in the live points.
    let options = js(
        b,
        "return [...document.querySelectorAll('#graph-source option')].map((o) => o.value)",
    )
    .await?;
    ensure!(options == json!(["", "a", "b"]), "graph sources {options}");
    // A history of a few polls first.
    eventually(
        Duration::from_secs(20),
        "4 points of history",
        || async move {
            let n = js(
                b,
                "return window.__torrentStats.series(1).filter((v) => v !== null).length",
            )
            .await?;
            Ok((n.as_u64() >= Some(4)).then_some(()))
        },
    )
    .await?;
    for (source, rate) in [("a", MIB), ("b", 3 * MIB), ("", 4 * MIB)] {
        let (history, live) = graph_points(b, source, 2).await?;
        // The newest points of the history (the oldest combined one may miss a source
        // that polled later), then the live ones.
        ensure!(history.len() >= 3, "history of {source:?}: {history:?}");
        let newest = &history[history.len() - 3..];
        ensure!(
            newest.iter().chain(&live).all(|v| *v == json!(rate)),
            "upload rate of {source:?}: history {newest:?}, live {live:?}, expected {rate}"
        );
        println!("graph of {source:?}: upload rates {newest:?} then live {live:?}");
    }

    // ADMIN: the sources settings. A refused specification shows the daemon's message.
    ensure!(
        displayed(b, "sources-admin").await?,
        "sources settings hidden for an ADMIN session"
    );
    let spec_type = b
        .find(Locator::Id("source-add-spec"))
        .await?
        .attr("type")
        .await?;
    ensure!(
        spec_type.as_deref() == Some("password"),
        "the specification is typed in the clear: {spec_type:?}"
    );
    let refused = page_call(b, "stats.add_source", json!(["c", "nonsense://x"])).await?;
    let message = refused["error"]["message"]
        .as_str()
        .with_context(|| format!("nonsense://x was not refused: {refused}"))?
        .to_string();
    fill(b, "source-add-name", "c").await?;
    fill(b, "source-add-spec", "nonsense://x").await?;
    b.find(Locator::Id("source-add")).await?.click().await?;
    let shown_error = shown_alert(b, "source-add-error").await?;
    ensure!(
        shown_error.contains(&message),
        "the page says {shown_error:?}, the daemon {message:?}"
    );

    // Add c (sim) through the form: a third row, the table refreshed.
    fill(b, "source-add-spec", SIM_C).await?;
    b.find(Locator::Id("source-add")).await?.click().await?;
    let added = wait_text(b, "source-add-ok").await?;
    // The daemon answers after the first poll: the page says whether it answers.
    ensure!(
        added.contains("Source c added; it answers"),
        "add result {added:?}"
    );
    ensure!(
        text(b, "source-add-error").await?.is_empty(),
        "error left after an add"
    );
    eventually(Duration::from_secs(15), "source c up", || async move {
        let shown = shown_sources(b).await?;
        Ok((shown["rows"]["c"]["state"] == "up").then_some(()))
    })
    .await?;
    let shown = sources_settled(b, &mut rpc, &["a", "b", "c"]).await?;
    check_sum(&shown)?;
    println!("source c added through the form");

    // Add d, a Deluge daemon that is not there: the banner names it, no password shown.
    fill(b, "source-add-name", "d").await?;
    fill(
        b,
        "source-add-spec",
        &format!("deluge://alice:{DOWN_PASSWORD}@127.0.0.1:1"),
    )
    .await?;
    b.find(Locator::Id("source-add")).await?.click().await?;
    let added = wait_text(b, "source-add-ok").await?;
    ensure!(
        added.contains("Source d added, but its first poll failed"),
        "add result {added:?}"
    );
    let banner = eventually(Duration::from_secs(20), "d down", || async move {
        let shown = shown_sources(b).await?;
        if shown["rows"]["d"]["state"] != "down" || !displayed(b, "source-down").await? {
            return Ok(None);
        }
        Ok(Some(text(b, "source-down").await?))
    })
    .await?;
    ensure!(banner.contains("Source d is down"), "banner {banner:?}");
    ensure!(banner.contains("d: "), "banner names d's error: {banner:?}");
    let page = js(
        b,
        "return document.documentElement.outerHTML + [...document.querySelectorAll('input')].map((i) => i.value).join(' ')",
    )
    .await?;
    ensure!(
        !page.as_str().unwrap_or_default().contains(DOWN_PASSWORD),
        "the page shows d's password"
    );
    println!("source d down, named in the banner: {banner:?}");

    // Retire d (cancel first, then confirm): the banner goes.
    let retire = |name: &'static str| async move {
        b.find(Locator::Css(&format!(
            "[data-testid='source-retire-{name}']"
        )))
        .await?
        .click()
        .await?;
        ensure!(source_dialog_open(b).await?, "no confirmation for {name}");
        Ok::<(), anyhow::Error>(())
    };
    retire("d").await?;
    b.find(Locator::Id("source-cancel")).await?.click().await?;
    ensure!(!source_dialog_open(b).await?, "cancel left the dialog open");
    ensure!(
        shown_sources(b).await?["rows"]["d"]["state"] != "retired",
        "cancel retired d"
    );
    retire("d").await?;
    b.find(Locator::Id("source-confirm")).await?.click().await?;
    eventually(Duration::from_secs(15), "d retired", || async move {
        let shown = shown_sources(b).await?;
        Ok(
            (shown["rows"]["d"]["state"] == "retired" && !displayed(b, "source-down").await?)
                .then_some(()),
        )
    })
    .await?;

    // Retire b: shown as retired, its totals frozen and still in the combined figures.
    let before = sources_settled(b, &mut rpc, &["a", "b", "c", "d"]).await?;
    retire("b").await?;
    let dialog = text(b, "source-dialog-text").await?;
    ensure!(
        dialog.contains("stay in the combined figures"),
        "retire dialog {dialog:?}"
    );
    b.find(Locator::Id("source-confirm")).await?.click().await?;
    let retired = wait_text(b, "source-change-ok").await?;
    ensure!(retired.contains("Source b retired"), "{retired:?}");
    eventually(Duration::from_secs(15), "b retired", || async move {
        let shown = shown_sources(b).await?;
        Ok((shown["rows"]["b"]["state"] == "retired").then_some(()))
    })
    .await?;
    let frozen = &sources_settled(b, &mut rpc, &["a", "b", "c", "d"]).await?;
    // Let a and c poll again: b stays, the combined all-time totals grow.
    let later = eventually(Duration::from_secs(15), "more polls", || async move {
        let shown = shown_sources(b).await?;
        let grew = shown["rows"]["a"]["total"]["total_upload"].as_u64()
            > frozen["rows"]["a"]["total"]["total_upload"].as_u64();
        Ok(grew.then_some(shown))
    })
    .await?;
    let later_b = &later["rows"]["b"]["total"];
    ensure!(
        *later_b == frozen["rows"]["b"]["total"],
        "retired b still counts: {} then {later_b}",
        frozen["rows"]["b"]["total"]
    );
    for key in ["total_upload", "total_download"] {
        let was = before["combined"]["total"][key].as_u64().unwrap_or(0);
        let now = later["combined"]["total"][key].as_u64().unwrap_or(0);
        ensure!(
            now >= was,
            "combined {key} dropped when b was retired: {was} then {now}"
        );
        let b_total = later_b[key].as_u64().unwrap_or(0);
        ensure!(b_total > 0 && now > b_total, "b's {key} {b_total} in {now}");
    }
    check_sum(&later)?;
    println!("b retired: {later_b} still counted");

    // Purge b: the dialog says its totals leave the combined figures; then its row, its
    // graph option and its files are gone.
    b.find(Locator::Css("[data-testid='source-purge-b']"))
        .await?
        .click()
        .await?;
    ensure!(
        source_dialog_open(b).await?,
        "no confirmation for the purge"
    );
    let dialog = text(b, "source-dialog-text").await?;
    ensure!(
        dialog.contains("leave the combined figures"),
        "purge dialog {dialog:?}"
    );
    b.find(Locator::Id("source-confirm")).await?.click().await?;
    let purged = wait_text(b, "source-change-ok").await?;
    ensure!(purged.contains("Source b purged"), "{purged:?}");
    let after = sources_settled(b, &mut rpc, &["a", "c", "d"]).await?;
    check_sum(&after)?;
    ensure!(after["rows"].get("b").is_none(), "b still shown: {after}");
    let options = js(
        b,
        "return [...document.querySelectorAll('#graph-source option')].map((o) => o.value)",
    )
    .await?;
    ensure!(
        options == json!(["", "a", "c", "d"]),
        "graph sources {options}"
    );
    let files = daemon.config_dir().join("sources").join("b");
    ensure!(!files.exists(), "{} left after the purge", files.display());
    println!("b purged: combined {}", after["combined"]["total"]);

    // Every control named; 360 px without horizontal scrolling; no console errors.
    let unnamed = js(
        b,
        r#"
        const bad = [];
        for (const el of document.querySelectorAll('input, select, textarea'))
          if (!el.labels || !el.labels.length) bad.push(el.id || el.outerHTML);
        for (const el of document.querySelectorAll('button'))
          if (!el.textContent.trim() && !el.getAttribute('aria-label')) bad.push(el.id || el.outerHTML);
        return bad;
        "#,
    )
    .await?;
    ensure!(unnamed == json!([]), "controls without a name: {unnamed}");
    let desktop = screenshot_full(
        b,
        DESKTOP.0,
        concat!(env!("CARGO_TARGET_TMPDIR"), "/web-page-sources.png"),
    )
    .await?;
    println!("screenshot: {desktop}");
    narrow(b).await?;
    let scroll = js(b, "return document.documentElement.scrollWidth").await?;
    ensure!(
        scroll.as_u64().unwrap_or(u64::MAX) <= u64::from(NARROW) + 2,
        "horizontal scrolling at {NARROW} px: {scroll}"
    );
    let narrow_png = screenshot_full(
        b,
        NARROW,
        concat!(env!("CARGO_TARGET_TMPDIR"), "/web-page-sources-360.png"),
    )
    .await?;
    println!("screenshot: {narrow_png}");
    let caught = js(b, "return window.__torrentStats.errors()").await?;
    ensure!(caught == json!([]), "errors caught by the page: {caught}");
    let severe: Vec<Value> = browser_log(b)
        .await?
        .into_iter()
        .filter(|e| e["level"] == "SEVERE")
        .collect();
    ensure!(severe.is_empty(), "browser console errors: {severe:#?}");
    ensure!(daemon.running(), "the daemon died");
    Ok(())
}

async fn source_dialog_open(b: &Browser) -> Result<bool> {
    Ok(js(b, "return document.getElementById('source-dialog').open").await? == json!(true))
}

/// The calendar and quotas cards (feature `ledger`), with this file's helpers.
#[path = "web_browser_ledger.rs"]
mod ledger;
