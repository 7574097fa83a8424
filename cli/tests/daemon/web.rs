//! The web server over real HTTP against the daemon binary on a `sim` source: every
//! endpoint, logins and cookie flags, levels, bad requests (the server keeps serving),
//! no cross-site requests; `promtool check metrics` (Debian `prometheus`) on /metrics; a
//! real Prometheus server scraping across a daemon restart, and one with the quota alerting
//! rules firing for a used-up quota.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use reqwest::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support;
use crate::support::daemon::{DaemonProc, SIM, SOURCE};
use crate::support::{free_port, unix_now};

/// A `/json` client of one daemon, with the session cookie once logged in.
struct Web {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
}

impl Web {
    fn of(d: &DaemonProc) -> Result<Self> {
        Ok(Web {
            http: reqwest::Client::new(),
            base: format!("http://{}", d.web_addr()?),
            cookie: None,
        })
    }

    /// POSTs `body` to /json as JSON: the status, the `Set-Cookie` and the answer.
    async fn post(&self, body: &str) -> Result<(StatusCode, Option<String>, Value)> {
        let mut req = self
            .http
            .post(format!("{}/json", self.base))
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string());
        if let Some(c) = &self.cookie {
            req = req.header(COOKIE, c);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let cookie = resp
            .headers()
            .get(SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let text = resp.text().await?;
        let value = serde_json::from_str(&text).with_context(|| format!("not JSON: {text}"))?;
        Ok((status, cookie, value))
    }

    /// Calls `method`: its result, or its error object.
    async fn call(&self, method: &str, params: Value) -> Result<std::result::Result<Value, Value>> {
        let body = json!({"method": method, "params": params, "id": 7}).to_string();
        let (status, _, answer) = self.post(&body).await?;
        ensure!(
            status == StatusCode::OK,
            "{method}: HTTP {status}: {answer}"
        );
        ensure!(answer["id"] == 7, "{method}: id not echoed: {answer}");
        Ok(match answer["error"].clone() {
            Value::Null => Ok(answer["result"].clone()),
            e => Err(e),
        })
    }

    /// Logs in; keeps the cookie; returns the `Set-Cookie` header.
    async fn login(&mut self, user: &str, password: &str) -> Result<String> {
        let body = json!({"method": "auth.login", "params": [user, password], "id": 1});
        let (status, cookie, answer) = self.post(&body.to_string()).await?;
        ensure!(
            status == StatusCode::OK && answer["result"] == true,
            "login: {answer}"
        );
        let set = cookie.context("no Set-Cookie after a good login")?;
        self.cookie = Some(set.split(';').next().unwrap_or_default().to_string());
        Ok(set)
    }

    async fn get(&self, path: &str) -> Result<reqwest::Response> {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header(COOKIE, c);
        }
        Ok(req.send().await?)
    }
}

fn code(e: &Value) -> u64 {
    e["code"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_api_sessions_levels_and_bad_requests() -> Result<()> {
    let d = DaemonProc::start()?;
    let mut web = Web::of(&d)?;

    // Without a session: only auth.* answers.
    let e = web.call("stats.get_totals", json!([])).await?.unwrap_err();
    ensure!(code(&e) == 1 && e["class"] == "NotAuthorizedError", "{e}");
    ensure!(web.call("auth.check_session", json!([])).await? == Ok(json!(false)));
    ensure!(web.call("auth.get_session", json!([])).await? == Ok(Value::Null));
    let (_, cookie, bad) = web
        .post(
            &json!({"method": "auth.login", "params": ["localclient", "wrong"], "id": 1})
                .to_string(),
        )
        .await?;
    ensure!(
        bad["result"] == false && cookie.is_none(),
        "bad password: {bad} {cookie:?}"
    );
    let (_, cookie, bad) = web
        .post(&json!({"method": "auth.login", "params": ["nobody", "x"], "id": 1}).to_string())
        .await?;
    ensure!(
        bad["result"] == false && cookie.is_none(),
        "unknown user: {bad}"
    );

    // A good login: the cookie's flags, then calls at the account's level.
    let set = web.login("localclient", &d.password).await?;
    for flag in ["HttpOnly", "SameSite=Strict", "Max-Age=3600", "Path=/"] {
        ensure!(set.contains(flag), "Set-Cookie lacks {flag}: {set}");
    }
    ensure!(web.call("auth.check_session", json!([])).await? == Ok(json!(true)));
    let who = web.call("auth.get_session", json!([])).await?.unwrap();
    ensure!(who == json!({"user": "localclient", "level": 10}), "{who}");
    let totals = web.call("stats.get_totals", json!([])).await?.unwrap();
    ensure!(totals["total_download"].as_u64().is_some(), "{totals}");

    // Bad calls get JSON errors with Deluge-Web's codes and classes.
    let e = web.call("stats.no_such", json!([])).await?.unwrap_err();
    ensure!(code(&e) == 2, "unknown method: {e}");
    let e = web
        .call("stats.set_config", json!([{"update_interval": 0}]))
        .await?
        .unwrap_err();
    ensure!(
        code(&e) == 3
            && e["class"] == "ValueError"
            && e["message"].as_str().unwrap_or("").contains("1..=60"),
        "refused setting: {e}"
    );
    let e = web
        .call("stats.get_stats", json!(["not a list", "x"]))
        .await?
        .unwrap_err();
    ensure!(code(&e) == 3, "bad params: {e}");

    // Bodies that are not requests: HTTP 400 with a JSON error; cross-origin and non-JSON
    // content types refused; the server keeps serving.
    for body in [
        "{\"method\":",
        "[1,2]",
        "{\"method\": 5}",
        "{\"method\": \"x\", \"params\": 5}",
        "",
    ] {
        let (status, _, answer) = web.post(body).await?;
        ensure!(
            status == StatusCode::BAD_REQUEST && code(&answer["error"]) == 3,
            "{body:?}: {status} {answer}"
        );
    }
    let cookie = web.cookie.clone().unwrap_or_default();
    let url = format!("{}/json", web.base);
    let body = json!({"method": "stats.reset_totals", "params": [], "id": 1}).to_string();
    let cross = web
        .http
        .post(&url)
        .header(CONTENT_TYPE, "application/json")
        .header(COOKIE, &cookie)
        .header("Origin", "http://evil.example")
        .body(body.clone())
        .send()
        .await?;
    ensure!(
        cross.status() == StatusCode::FORBIDDEN,
        "cross-origin: {}",
        cross.status()
    );
    let fetch_site = web
        .http
        .post(&url)
        .header(CONTENT_TYPE, "application/json")
        .header(COOKIE, &cookie)
        .header("Sec-Fetch-Site", "cross-site")
        .body(body.clone())
        .send()
        .await?;
    ensure!(
        fetch_site.status() == StatusCode::FORBIDDEN,
        "Sec-Fetch-Site: {}",
        fetch_site.status()
    );
    let form = web
        .http
        .post(&url)
        .header(CONTENT_TYPE, "text/plain")
        .header(COOKIE, &cookie)
        .body(body)
        .send()
        .await?;
    ensure!(
        form.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "text/plain: {}",
        form.status()
    );
    let after = web.call("stats.get_totals", json!([])).await?.unwrap();
    ensure!(
        after["total_download"].as_u64() >= totals["total_download"].as_u64(),
        "nothing was reset by the refused requests: {totals} then {after}"
    );

    // Levels as over RPC: a NORMAL account reads and sets preferences but cannot reset
    // (ADMIN); a READONLY one gets only READONLY methods (Deluge's Stats methods are NORMAL).
    std::fs::write(
        d.dir.path().join("auth"),
        format!(
            "localclient:{}:10\nuser:pw:NORMAL\nviewer:seen:READONLY\n",
            d.password
        ),
    )?;
    let mut user = Web::of(&d)?;
    user.login("user", "pw").await?;
    ensure!(user.call("stats.get_totals", json!([])).await?.is_ok());
    ensure!(user
        .call("stats.set_config", json!([{"length": 150}]))
        .await?
        .is_ok());
    let e = user
        .call("stats.reset_totals", json!([]))
        .await?
        .unwrap_err();
    ensure!(
        code(&e) == 1 && e["class"] == "NotAuthorizedError",
        "reset as NORMAL: {e}"
    );
    let mut viewer = Web::of(&d)?;
    viewer.login("viewer", "seen").await?;
    let status = viewer
        .call("core.get_session_status", json!([["num_peers"]]))
        .await?;
    ensure!(status.is_ok(), "READONLY method as READONLY: {status:?}");
    let e = viewer
        .call("stats.get_totals", json!([]))
        .await?
        .unwrap_err();
    ensure!(code(&e) == 1, "stats as READONLY: {e}");

    // Logout ends the session server-side: the old cookie no longer works.
    let old = web.cookie.clone();
    ensure!(web.call("auth.logout", json!([])).await? == Ok(json!(true)));
    web.cookie = old;
    let e = web.call("stats.get_totals", json!([])).await?.unwrap_err();
    ensure!(code(&e) == 1, "after logout: {e}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs promtool (Prometheus)"]
async fn page_assets_events_and_metrics() -> Result<()> {
    let d = DaemonProc::start()?;
    let mut web = Web::of(&d)?;

    let page = web.get("/").await?;
    ensure!(page.status() == StatusCode::OK);
    let csp = page
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    ensure!(
        csp.contains("default-src 'self'") && csp.contains("script-src 'self'"),
        "CSP: {csp}"
    );
    ensure!(page
        .headers()
        .get("x-frame-options")
        .is_some_and(|v| v == "DENY"));
    let html = page.text().await?;
    ensure!(
        html.contains("<html") && html.contains("assets/"),
        "page: {html}"
    );
    // Every file the page names is served from the binary; nothing comes from elsewhere.
    for name in include_str!("../../../src/web/assets/MANIFEST")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#') && *l != "index.html")
    {
        let r = web.get(&format!("/assets/{name}")).await?;
        ensure!(
            r.status() == StatusCode::OK,
            "/assets/{name}: {}",
            r.status()
        );
        ensure!(!r.bytes().await?.is_empty(), "/assets/{name} is empty");
    }
    ensure!(
        !html.contains("http://") && !html.contains("https://"),
        "the page names another origin"
    );
    ensure!(web.get("/assets/../Cargo.toml").await?.status() != StatusCode::OK);
    ensure!(web.get("/assets/nothing.js").await?.status() == StatusCode::NOT_FOUND);

    // Events need a session; then a snapshot at once and another after the next poll.
    ensure!(web.get("/events").await?.status() == StatusCode::UNAUTHORIZED);
    web.login("localclient", &d.password).await?;
    let before = web.call("stats.get_totals", json!([])).await?.unwrap();
    let mut events = web.get("/events").await?;
    ensure!(
        events
            .headers()
            .get(CONTENT_TYPE)
            .is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/event-stream")),
        "events content type"
    );
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while text.matches("event: snapshot").count() < 2 {
        ensure!(
            Instant::now() < deadline,
            "fewer than two snapshots in 10 s: {text}"
        );
        let chunk = tokio::time::timeout(Duration::from_secs(10), events.chunk()).await??;
        text.push_str(&String::from_utf8_lossy(&chunk.context("events ended")?));
    }
    drop(events);
    let after = web.call("stats.get_totals", json!([])).await?.unwrap();
    let snaps: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let down = |v: &Value| v["total_download"].as_u64().unwrap_or(0);
    let (first, last) = (&snaps[0]["totals"], &snaps[snaps.len() - 1]["totals"]);
    ensure!(
        down(first) < down(last),
        "the snapshots did not grow: {first} then {last}"
    );
    ensure!(
        down(&before) <= down(last) && down(last) <= down(&after),
        "snapshot {last} outside the totals read around it: {before} .. {after}"
    );
    ensure!(
        snaps[0]["health"]["source_up"] == true && snaps[0]["rates"]["num_peers"] == 3,
        "{}",
        snaps[0]
    );

    // Metrics: Prometheus text for tools, OpenMetrics for scrapers that ask for it.
    let text = web.get("/metrics").await?.text().await?;
    let totals = web.call("stats.get_totals", json!([])).await?.unwrap();
    for name in [
        "torrent_stats_upload_bytes_total",
        "torrent_stats_download_bytes_total",
        "torrent_stats_payload_upload_bytes_total",
        "torrent_stats_payload_download_bytes_total",
        "torrent_stats_session_download_bytes",
        "torrent_stats_download_rate_bytes_per_second",
        "torrent_stats_peers",
        "torrent_stats_source_up",
        "torrent_stats_poll_errors_total",
        "torrent_stats_save_errors_total",
        "torrent_stats_last_save_timestamp_seconds",
    ] {
        ensure!(
            text.contains(&format!("\n{name}{{source=\"{SIM}\"}}")),
            "{name} missing:\n{text}"
        );
    }
    // The source's name labels its series; what it is, in its info.
    ensure!(
        text.contains(&format!(
            "\ntorrent_stats_source_info{{source=\"{SIM}\",kind=\"sim\",description=\"sim:"
        )),
        "torrent_stats_source_info missing:\n{text}"
    );
    let metric = |name: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(&format!("{name}{{")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    };
    ensure!(
        metric("torrent_stats_source_up") == Some(1.0)
            && metric("torrent_stats_peers") == Some(3.0)
    );
    let counted = metric("torrent_stats_download_bytes_total").context("download counter")?;
    ensure!(
        counted <= totals["total_download"].as_f64().unwrap_or(0.0),
        "the metric is ahead of stats.get_totals: {counted} vs {totals}"
    );
    promtool_check(&text)?;
    let om = web
        .http
        .get(format!("{}/metrics", web.base))
        .header(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
        )
        .send()
        .await?;
    ensure!(om.headers().get(CONTENT_TYPE).is_some_and(|v| v
        .to_str()
        .unwrap_or("")
        .starts_with("application/openmetrics-text")));
    ensure!(om.text().await?.ends_with("# EOF\n"));
    Ok(())
}

/// `promtool check metrics` (Debian `prometheus`, installed by scripts/test.sh) accepts `text`.
fn promtool_check(text: &str) -> Result<()> {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("promtool is missing: apt-get install prometheus (scripts/test.sh does)")?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(text.as_bytes())?;
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Prometheus on `port` scraping 127.0.0.1:`target` every second, its data in `dir`;
/// with `rules`, that rule file evaluated every second.
struct Prometheus(Child);

impl Prometheus {
    fn start(dir: &Path, port: u16, target: u16, rules: Option<&Path>) -> Result<Self> {
        let config = dir.join("prometheus.yml");
        let rule_files = match rules {
            Some(path) => format!("rule_files:\n  - '{}'\n", path.display()),
            None => String::new(),
        };
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n{rule_files}scrape_configs:\n  - job_name: torrent-stats\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
            ),
        )?;
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("prometheus is missing: apt-get install prometheus (scripts/test.sh does)")?;
        Ok(Prometheus(child))
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An instant query's result (a list).
async fn query(http: &reqwest::Client, port: u16, expr: &str, at: f64) -> Result<Value> {
    let url = url::Url::parse_with_params(
        &format!("http://127.0.0.1:{port}/api/v1/query"),
        &[("query", expr.to_string()), ("time", format!("{at:.3}"))],
    )?;
    let body = http.get(url).send().await?.text().await?;
    let v: Value = serde_json::from_str(&body)?;
    ensure!(v["status"] == "success", "{expr}: {body}");
    Ok(v["data"]["result"].clone())
}

/// The first sample value of an instant query.
async fn scalar(http: &reqwest::Client, port: u16, expr: &str, at: f64) -> Result<f64> {
    let r = query(http, port, expr, at).await?;
    r[0]["value"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("{expr}: no value in {r}"))
}

/// Waits until Prometheus answers its readiness check.
async fn prometheus_ready(http: &reqwest::Client, port: u16) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = http
            .get(format!("http://127.0.0.1:{port}/-/ready"))
            .send()
            .await;
        if ready.is_ok_and(|r| r.status() == StatusCode::OK) {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "Prometheus not ready within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The daemon on the config dir `dir` (kept across runs) with the web server on `web_port`.
fn daemon_on(dir: tempfile::TempDir, web_port: u16, source: &str) -> Result<DaemonProc> {
    let mut command = Command::new(support::BIN);
    command
        .arg("daemon")
        .arg("--config-dir")
        .arg(dir.path())
        .args([
            "--port",
            "0",
            "--web-port",
            &web_port.to_string(),
            "--source",
            source,
        ]);
    DaemonProc::launch(command, dir)
}

/// A real Prometheus scrapes the daemon, which is stopped and started again on the same
/// config dir: the all-time counter never resets, and `increase()` from the first scrape
/// to the last equals the traffic the sim source produced in that time, both runs
/// together, within one poll plus one scrape interval (the traffic after the last scrape,
/// which the daemon counts at its final poll on the stop but no scrape can see).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs prometheus"]
async fn prometheus_scrapes_across_a_restart() -> Result<()> {
    const DOWN: u64 = 1 << 20; // the sim's download rate; update_interval 1: one poll = 1 MiB
    let work = tempfile::tempdir()?;
    let dir = tempfile::tempdir()?;
    support::write_conf(dir.path(), 1);
    let (web_port, prom_port) = (free_port()?, free_port()?);
    let _prometheus = Prometheus::start(work.path(), prom_port, web_port, None)?;
    let http = reqwest::Client::new();
    prometheus_ready(&http, prom_port).await?;
    // Prometheus applies new targets after up to 5 s: wait until it scrapes (and finds
    // nothing) before the daemon starts, so the first scrape sees the first poll.
    let deadline = Instant::now() + Duration::from_secs(30);
    while query(&http, prom_port, "up", unix_now())
        .await?
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        ensure!(
            Instant::now() < deadline,
            "Prometheus never scraped its target"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let source = format!("sim:up=256KiB/s,down={DOWN}B/s,peers=2");
    let started = unix_now();

    let first = daemon_on(dir, web_port, &source)?;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let dir = first.stop()?;
    let after_first = support::daemon::offline_totals(dir.path())?;
    tokio::time::sleep(Duration::from_secs(3)).await; // scrapes find it down
    let second = daemon_on(dir, web_port, &source)?;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let dir = second.stop()?;
    let total = support::daemon::offline_totals(dir.path())?.total_download;
    tokio::time::sleep(Duration::from_secs(2)).await; // the scrape of the stop lands
    let end = unix_now();

    // The raw samples: the first and last scrape that reached the daemon.
    let name = "torrent_stats_download_bytes_total";
    let whole = format!("{}s", (end - started).ceil() as u64 + 5);
    let samples = query(&http, prom_port, &format!("{name}[{whole}]"), end).await?;
    let points: Vec<(f64, f64)> = samples[0]["values"]
        .as_array()
        .context("no samples")?
        .iter()
        .filter_map(|p| Some((p[0].as_f64()?, p[1].as_str()?.parse().ok()?)))
        .collect();
    let (&(t0, v0), &(t1, v1)) = (
        points.first().context("no samples")?,
        points.last().context("no samples")?,
    );
    let resets = scalar(&http, prom_port, &format!("resets({name}[{whole}])"), end).await?;
    ensure!(
        resets == 0.0,
        "Prometheus saw the counter reset: {points:?}"
    );
    let up = format!("count_over_time(up[{whole}]) - sum_over_time(up[{whole}])");
    ensure!(
        scalar(&http, prom_port, &up, end).await? >= 1.0,
        "no scrape saw the daemon down"
    );
    // increase() over exactly the scraped span (from just before the first sample).
    let span = format!("{}ms", ((t1 - t0) * 1000.0).round() as u64 + 1);
    let increase = scalar(&http, prom_port, &format!("increase({name}[{span}])"), t1).await?;
    let produced = (total as f64) - v0;
    eprintln!(
        "{} scrapes; first run {} B; all-time {total} B; first scrape {v0} B, last {v1} B; \
         increase() {increase:.0} B; produced since the first scrape {produced} B",
        points.len(),
        after_first.total_download
    );
    let first_run = after_first.total_download as f64;
    ensure!(
        first_run > 0.0 && total as f64 > first_run,
        "both runs counted: {after_first:?} then {total}"
    );
    ensure!(
        v0 <= first_run && v1 > first_run,
        "the scrapes did not span both runs: {v0} .. {v1}, first run {first_run}"
    );
    ensure!(
        (increase - produced).abs() <= 2.0 * DOWN as f64,
        "increase() {increase:.0} vs {produced} produced: more than one poll and one scrape \
         interval ({} B) apart",
        2 * DOWN
    );
    Ok(())
}

/// A source that is down is shown, not hidden: `/metrics` says `source_up 0` with the
/// failed polls counted, the snapshot carries the error; the source's password appears
/// nowhere (labels, snapshot, log).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs promtool (Prometheus)"]
async fn a_down_source_shows_in_metrics_and_events() -> Result<()> {
    let d = DaemonProc::start_with("deluge://alice:s3cretpw@127.0.0.1:1")?;
    let mut web = Web::of(&d)?;
    web.login("localclient", &d.password).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = web.get("/metrics").await?.text().await?;
        if text.contains("torrent_stats_poll_errors_total{source=\"deluge\"} 2") {
            break text;
        }
        ensure!(
            Instant::now() < deadline,
            "two failed polls not counted in 20 s:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    ensure!(
        text.contains("torrent_stats_source_up{source=\"deluge\"} 0"),
        "source_up:\n{text}"
    );
    ensure!(
        text.contains(
            "torrent_stats_source_info{source=\"deluge\",kind=\"deluge\",\
             description=\"deluge://alice@127.0.0.1:1\",retired=\"false\"} 1"
        ),
        "source_info:\n{text}"
    );
    promtool_check(&text)?;
    let mut events = web.get("/events").await?;
    let chunk = tokio::time::timeout(Duration::from_secs(10), events.chunk())
        .await??
        .context("events ended")?;
    let first = String::from_utf8_lossy(&chunk).to_string();
    let data = first
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .context("no data line")?;
    let snap: Value = serde_json::from_str(data)?;
    let health = &snap["health"];
    ensure!(
        health["source_up"] == false
            && health["last_error"].as_str().is_some_and(|e| !e.is_empty())
            && health["failing_since"].is_number(),
        "snapshot health: {health}"
    );
    for (what, text) in [("metrics", &text), ("snapshot", &first), ("log", &d.log())] {
        ensure!(
            !text.contains("s3cretpw"),
            "the password shows in the {what}"
        );
    }
    Ok(())
}

/// Totals counted before are in `/metrics` from the start: a daemon restarted in the same
/// directory with its source (`box`, a sim) now a source that is down from the beginning
/// (no poll ever succeeds) exports the saved all-time totals, equal to the file's, with
/// `source_up 0`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs promtool (Prometheus)"]
async fn saved_totals_show_in_metrics_while_the_source_is_down_from_the_start() -> Result<()> {
    let first = DaemonProc::start_with(&format!("box={SOURCE}"))?;
    tokio::time::sleep(Duration::from_secs(3)).await; // the sim counts
    let dir = first.stop()?;
    let saved = support::daemon::offline_totals(dir.path())?;
    ensure!(saved.total_upload > 0, "nothing counted: {saved:?}");
    let mut command = std::process::Command::new(support::BIN);
    command
        .arg("daemon")
        .arg("--config-dir")
        .arg(dir.path())
        .args(["--port", "0", "--web-port", "0", "--source"])
        .arg("box=deluge://alice:pw@127.0.0.1:1");
    let d = DaemonProc::launch(command, dir)?;
    let mut web = Web::of(&d)?;
    web.login("localclient", &d.password).await?;
    let label = "{source=\"box\"}";
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = web.get("/metrics").await?.text().await?;
        if text.contains(&format!("torrent_stats_poll_errors_total{label} 1")) {
            break text;
        }
        ensure!(Instant::now() < deadline, "no failed poll counted:\n{text}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    ensure!(
        text.contains(&format!("torrent_stats_source_up{label} 0")),
        "source_up:\n{text}"
    );
    ensure!(
        text.contains("torrent_stats_source_info{source=\"box\",kind=\"deluge\","),
        "box is the deluge source now:\n{text}"
    );
    for (name, value) in [
        ("upload", saved.total_upload),
        ("download", saved.total_download),
        ("payload_upload", saved.total_payload_upload),
        ("payload_download", saved.total_payload_download),
    ] {
        let line = format!("torrent_stats_{name}_bytes_total{label} {value}");
        ensure!(text.contains(&line), "no {line:?} in:\n{text}");
    }
    promtool_check(&text)?;
    Ok(())
}

/// The quotas of [`quotas_in_metrics_and_the_used_up_alert`]: one the sim source (4 MiB/s
/// down) uses up within its first counted second, two it never reaches.
const QUOTAS: &str = r#"
[[quota]]
name = "used-up"
source = "sim"
direction = "download"
period = "day"
limit = "1 MiB"

[[quota]]
name = "roomy"
measure = "payload"
period = "month"
reset_day = 1
limit = "1000 TiB"

[[quota]]
name = "week-up"
direction = "upload"
period = "rolling"
days = 7
limit = "1 TiB"
"#;

/// The value of the series `name{quota="<quota>"}` in Prometheus text.
fn quota_sample(text: &str, name: &str, quota: &str) -> Option<i64> {
    let prefix = format!("{name}{{quota=\"{quota}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
}

/// The quotas of `quotas.toml` in `/metrics`: per quota its used, limit and projected
/// bytes and its period's end, equal to the `status` `stats.get_quotas` gives just before
/// and after the scrape; an info series with its source (empty for all sources together),
/// direction, measure and period kind; `promtool check metrics` accepts it all. A real
/// Prometheus scraping the daemon with `contrib/prometheus/torrent-stats-quotas.rules.yml`
/// fires `TorrentStatsQuotaUsedUp` for the quota the sim has used up, with the info's
/// labels and its annotations filled in from the scraped series, and for no other quota.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs prometheus"]
async fn quotas_in_metrics_and_the_used_up_alert() -> Result<()> {
    let dir = tempfile::tempdir()?;
    support::write_conf(dir.path(), 1);
    std::fs::write(dir.path().join("quotas.toml"), QUOTAS)?;
    let command = support::daemon::command(dir.path(), SOURCE);
    let d = DaemonProc::launch(command, dir)?;
    let mut web = Web::of(&d)?;
    web.login("localclient", &d.password).await?;
    let get_quotas = || async {
        web.call("stats.get_quotas", json!([]))
            .await?
            .map_err(|e| anyhow::anyhow!("stats.get_quotas: {e}"))
    };

    // Once the sim has used up "used-up": the scrape between two equal answers.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (quotas, text) = loop {
        let before = get_quotas().await?;
        let text = web.get("/metrics").await?.text().await?;
        let after = get_quotas().await?;
        let reached = after[0]["status"]["reached"] == true;
        if reached && before == after {
            break (after, text);
        }
        ensure!(
            Instant::now() < deadline,
            "\"used-up\" not reached in 20 s: {after}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let list = quotas.as_array().context("a list")?;
    ensure!(list.len() == 3, "{quotas}");
    for q in list {
        let name = q["name"].as_str().context("name")?;
        let status = &q["status"];
        for (metric, field) in [
            ("torrent_stats_quota_used_bytes", "used"),
            ("torrent_stats_quota_limit_bytes", "limit"),
            ("torrent_stats_quota_projected_bytes", "projected"),
            ("torrent_stats_quota_period_end_seconds", "end"),
        ] {
            let shown = quota_sample(&text, metric, name);
            ensure!(
                shown.is_some() && shown == status[field].as_i64(),
                "{metric} of {name}: {shown:?}, status {field} {}:\n{text}",
                status[field]
            );
        }
    }
    for info in [
        r#"torrent_stats_quota_info{quota="used-up",source="sim",direction="download",measure="wire",period="day"} 1"#,
        r#"torrent_stats_quota_info{quota="roomy",source="",direction="both",measure="payload",period="month"} 1"#,
        r#"torrent_stats_quota_info{quota="week-up",source="",direction="upload",measure="wire",period="rolling"} 1"#,
    ] {
        ensure!(text.lines().any(|l| l == info), "no {info} in:\n{text}");
    }
    ensure!(
        text.matches("\ntorrent_stats_quota_used_bytes{").count() == 3,
        "one used series per quota:\n{text}"
    );
    promtool_check(&text)?;

    // Prometheus with the rules, scraping the daemon.
    let work = tempfile::tempdir()?;
    let rules = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../contrib/prometheus/torrent-stats-quotas.rules.yml");
    let prom_port = free_port()?;
    let _prometheus = Prometheus::start(work.path(), prom_port, d.web_port()?, Some(&rules))?;
    let http = reqwest::Client::new();
    prometheus_ready(&http, prom_port).await?;
    let expr = r#"ALERTS{alertname="TorrentStatsQuotaUsedUp",alertstate="firing"}"#;
    let deadline = Instant::now() + Duration::from_secs(30);
    let firing = loop {
        let r = query(&http, prom_port, expr, unix_now()).await?;
        if r.as_array().is_some_and(|a| !a.is_empty()) {
            break r;
        }
        ensure!(
            Instant::now() < deadline,
            "TorrentStatsQuotaUsedUp did not fire within 30 s of Prometheus being ready"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let alerts = firing.as_array().context("a list")?;
    ensure!(alerts.len() == 1, "only \"used-up\" is used up: {firing}");
    let labels = &alerts[0]["metric"];
    for (label, value) in [
        ("quota", "used-up"),
        ("source", "sim"),
        ("direction", "download"),
        ("measure", "wire"),
        ("period", "day"),
        ("severity", "critical"),
        ("job", "torrent-stats"),
    ] {
        ensure!(labels[label] == value, "{label} is not {value:?}: {labels}");
    }
    // The annotations, with the limit the template queries.
    let body = http
        .get(format!("http://127.0.0.1:{prom_port}/api/v1/alerts"))
        .send()
        .await?
        .text()
        .await?;
    let v: Value = serde_json::from_str(&body)?;
    let alert = v["data"]["alerts"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|a| a["labels"]["alertname"] == "TorrentStatsQuotaUsedUp")
        })
        .with_context(|| format!("no TorrentStatsQuotaUsedUp in /api/v1/alerts: {body}"))?;
    let summary = alert["annotations"]["summary"].as_str().unwrap_or("");
    let description = alert["annotations"]["description"].as_str().unwrap_or("");
    ensure!(
        summary.starts_with("Quota used-up is used up ("),
        "summary: {summary}"
    );
    ensure!(
        description.contains("(download wire per day) of source sim")
            && description.contains("at or over its 1MiB limit"),
        "description: {description}"
    );
    Ok(())
}
