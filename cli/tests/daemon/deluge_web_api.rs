//! deluge-web's JSON API on our web port, driven by the clients made for deluge-web:
//! @ctrl/deluge (npm, `cli/tests/js/ctrl_deluge.mjs`) and deluge-web-client (PyPI,
//! `cli/tests/python/webapi_client.py`), both installed by `scripts/install/webapi-clients.sh`
//! under `${TORRENT_STATS_INTEROP:-~/.cache/torrent-stats-interop}/webapi-clients`. Each logs
//! in with the password alone, connects, lists, adds a torrent (@ctrl/deluge through
//! `POST /upload` and `web.add_torrents`), reads its status and files, resumes, pauses and
//! removes it; the results are checked against our Deluge RPC. The same scripts pass
//! against deluge-web 2.0.3 with deluged (docs/web.md). Without external tools: the start
//! message and the login hint, and `/upload`'s guards.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use reqwest::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::engine::{call, engine_command, login, payload, torrent_of};
use crate::support;
use crate::support::daemon::DaemonProc;

/// Where scripts/install/webapi-clients.sh put the clients.
fn clients_dir() -> PathBuf {
    let base = std::env::var_os("TORRENT_STATS_INTEROP").map_or_else(
        || {
            let home = std::env::var_os("HOME").unwrap_or_default();
            Path::new(&home).join(".cache/torrent-stats-interop")
        },
        PathBuf::from,
    );
    base.join("webapi-clients")
}

/// An engine daemon whose download directory holds a 1 MiB file, and that file's torrent
/// (written beside, outside the download directory): the daemon, the torrent's path and id.
struct Setup {
    daemon: DaemonProc,
    torrent: PathBuf,
    id: String,
    _dirs: [tempfile::TempDir; 2],
}

async fn setup() -> Result<Setup> {
    let data = tempfile::tempdir()?;
    let work = tempfile::tempdir()?;
    let file = data.path().join("webapi.bin");
    std::fs::write(&file, payload(1 << 20))?;
    let (id, bytes) = torrent_of(&file).await?;
    let torrent = work.path().join("webapi.bin.torrent");
    std::fs::write(&torrent, bytes)?;
    let config = tempfile::tempdir()?;
    let mut command = engine_command(config.path(), data.path());
    // Uploads go under TMPDIR: here, so that a killed daemon leaves none in /tmp.
    command.env("TMPDIR", work.path());
    let daemon = DaemonProc::launch(command, config)?;
    Ok(Setup {
        daemon,
        torrent,
        id,
        _dirs: [data, work],
    })
}

/// Runs a client script; its one JSON line.
fn run_client(mut command: Command, what: &str, daemon: &DaemonProc) -> Result<Value> {
    command.env("PYTHONDONTWRITEBYTECODE", "1");
    let out = support::run_limited(command, Duration::from_secs(120))
        .with_context(|| format!("{what} (scripts/install/webapi-clients.sh installs it)"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "{what}: {}\n{stdout}\n{}\nour log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        daemon.log()
    );
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("{what} printed {stdout:?}"))
}

/// What both clients saw after adding: checked against our RPC.
async fn check_added(s: &Setup, seen: &Value) -> Result<()> {
    let port = s.daemon.port();
    ensure!(
        seen["hosts"][0][2] == json!(port),
        "host list {}",
        seen["hosts"]
    );
    ensure!(seen["id"] == json!(s.id), "added id {}", seen["id"]);
    for step in ["paused", "paused_again"] {
        ensure!(seen[step] == "Paused", "{step}: {seen}");
    }
    for step in ["resumed", "resumed_again"] {
        ensure!(seen[step] == "Seeding", "{step}: {seen}");
    }
    let mut rpc = login(port, &s.daemon.password).await?;
    let keys = json!(["name", "total_size", "num_files", "state", "files"]);
    let ours = call(&mut rpc, "core.get_torrent_status", json!([s.id, keys])).await?;
    ensure!(ours["state"] == "Seeding", "RPC: {ours}");
    for key in ["name", "total_size", "num_files"] {
        ensure!(
            seen["status"][key] == ours[key],
            "{key}: web {} RPC {}",
            seen["status"],
            ours
        );
    }
    let path = ours["files"][0]["path"].as_str().context("RPC files")?;
    let file = &seen["files"]["contents"][path];
    ensure!(
        file["type"] == "file" && file["size"] == json!(1 << 20) && file["index"] == 0,
        "file tree {}",
        seen["files"]
    );
    Ok(())
}

/// After the remove phase: gone from the web list and from our RPC's.
async fn check_removed(s: &Setup, seen: &Value) -> Result<()> {
    ensure!(seen["removed"] == true, "{seen}");
    ensure!(seen["listed"] == json!([]), "still listed: {seen}");
    let mut rpc = login(s.daemon.port(), &s.daemon.password).await?;
    let left = call(&mut rpc, "core.get_session_state", json!([])).await?;
    ensure!(left == json!([]), "RPC still has {left}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node and @ctrl/deluge (scripts/install/webapi-clients.sh)"]
async fn ctrl_deluge_adds_pauses_resumes_and_removes_through_our_web_port() -> Result<()> {
    let s = setup().await?;
    let base = format!("http://{}/", s.daemon.web_addr()?);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js/ctrl_deluge.mjs");
    let modules = clients_dir().join("node_modules");
    let node = |phase: &str, arg: &str| {
        let mut c = Command::new("node");
        c.arg(&script)
            .arg(&modules)
            .args([&base, &s.daemon.password, phase, arg]);
        c
    };
    let torrent = s.torrent.display().to_string();
    let seen = run_client(node("add", &torrent), "node ctrl_deluge.mjs add", &s.daemon)?;
    let uploaded = seen["upload"]["files"][0].as_str().unwrap_or_default();
    ensure!(
        uploaded.contains("/delugeweb-"),
        "upload {}",
        seen["upload"]
    );
    let tmp = s.torrent.parent().context("work dir")?;
    ensure!(
        Path::new(uploaded).starts_with(tmp),
        "{uploaded} not under TMPDIR"
    );
    ensure!(
        seen["added"] == json!([[true, s.id]]),
        "web.add_torrents {}",
        seen["added"]
    );
    ensure!(
        seen["listed"] == json!([{"id": s.id, "name": "webapi.bin", "state": "seeding"}]),
        "listed {}",
        seen["listed"]
    );
    for key in [
        "upload_rate",
        "download_rate",
        "num_connections",
        "free_space",
        "dht_nodes",
    ] {
        ensure!(
            !seen["stats"][key].is_null(),
            "update_ui stats lack {key}: {}",
            seen["stats"]
        );
    }
    check_added(&s, &seen).await?;
    let seen = run_client(
        node("remove", &s.id),
        "node ctrl_deluge.mjs remove",
        &s.daemon,
    )?;
    check_removed(&s, &seen).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs deluge-web-client in the interop venv (scripts/install/webapi-clients.sh)"]
async fn deluge_web_client_adds_pauses_resumes_and_removes_through_our_web_port() -> Result<()> {
    let s = setup().await?;
    let base = format!("http://{}/", s.daemon.web_addr()?);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/webapi_client.py");
    let python = clients_dir().join("venv/bin/python");
    let run = |phase: &str, arg: &str| {
        let mut c = Command::new(&python);
        c.arg(&script).args([&base, &s.daemon.password, phase, arg]);
        c
    };
    let torrent = s.torrent.display().to_string();
    let seen = run_client(run("add", &torrent), "webapi_client.py add", &s.daemon)?;
    ensure!(
        seen["host_status"][1] == "Connected" && seen["plugins"]["enabled_plugins"].is_array(),
        "{seen}"
    );
    let ui_keys = json!(["connected", "filters", "stats", "torrents"]);
    ensure!(
        seen["ui_keys"] == ui_keys,
        "update_ui keys {}",
        seen["ui_keys"]
    );
    let stats_keys = json!([
        "dht_nodes",
        "download_protocol_rate",
        "download_rate",
        "external_ip",
        "free_space",
        "has_incoming_connections",
        "max_download",
        "max_num_connections",
        "max_upload",
        "num_connections",
        "upload_protocol_rate",
        "upload_rate"
    ]);
    ensure!(
        seen["stats_keys"] == stats_keys,
        "update_ui stats {}",
        seen["stats_keys"]
    );
    ensure!(
        seen["again"] == json!([s.id, "Torrent already exists"]),
        "adding again: {}",
        seen["again"]
    );
    ensure!(
        seen["listed"] == json!({&s.id: "Seeding"}),
        "{}",
        seen["listed"]
    );
    ensure!(
        seen["disconnect"] == "Connection was closed cleanly.",
        "{seen}"
    );
    check_added(&s, &seen).await?;
    let seen = run_client(run("remove", &s.id), "webapi_client.py remove", &s.daemon)?;
    check_removed(&s, &seen).await
}

/// POSTs a JSON-RPC call to /json; the answer and the `Set-Cookie`.
async fn json_call(
    http: &reqwest::Client,
    base: &str,
    cookie: Option<&str>,
    method: &str,
    params: Value,
) -> Result<(Value, Option<String>)> {
    let mut req = http
        .post(format!("{base}/json"))
        .header(CONTENT_TYPE, "application/json")
        .body(json!({"method": method, "params": params, "id": 1}).to_string());
    if let Some(c) = cookie {
        req = req.header(COOKIE, c);
    }
    let resp = req.send().await?;
    let set = resp
        .headers()
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    Ok((resp.json().await?, set))
}

/// A multipart/form-data body with one `file` field.
fn multipart(
    bytes: &[u8],
    origin: Option<&str>,
    http: &reqwest::Client,
    url: &str,
) -> reqwest::RequestBuilder {
    let boundary = "torrentstatsboundary7d1f";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.torrent\"\r\n\
         Content-Type: application/x-bittorrent\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut req = http
        .post(url)
        .header(
            CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body);
    if let Some(o) = origin {
        req = req.header("Origin", o);
    }
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_is_told_how_to_log_in_and_deluge_webs_password_login_works() -> Result<()> {
    let d = DaemonProc::start()?;
    let auth = d.dir.path().join("auth");
    let addr = d.web_addr()?;
    // The start message: where the page is, who logs in, which file has the password.
    let expected = format!(
        "Web page http://{addr}/ — log in as localclient, password in {}",
        auth.display()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !d.log().contains(&expected) {
        ensure!(
            std::time::Instant::now() < deadline,
            "no {expected:?} in\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ensure!(!d.log().contains(&d.password), "the password is in the log");
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");
    // The login page's hint, without a session.
    let (hint, _) = json_call(&http, &base, None, "auth.login_hint", json!([])).await?;
    ensure!(
        hint["result"] == json!({"user": "localclient", "auth_file": auth.display().to_string()}),
        "{hint}"
    );
    // deluge-web's one-argument login: localclient's password.
    let (bad, set) = json_call(&http, &base, None, "auth.login", json!(["wrong"])).await?;
    ensure!(bad["result"] == false && set.is_none(), "{bad}");
    let (good, set) = json_call(&http, &base, None, "auth.login", json!([d.password])).await?;
    let set = set.context("no cookie")?;
    ensure!(
        good["result"] == true && set.starts_with("_session_id="),
        "{good} {set}"
    );
    let cookie = set.split(';').next().unwrap_or_default().to_string();
    let (who, _) = json_call(&http, &base, Some(&cookie), "auth.get_session", json!([])).await?;
    ensure!(
        who["result"] == json!({"user": "localclient", "level": 10}),
        "{who}"
    );
    // deluge-web's error shapes: unknown method, and no session after delete_session.
    let (e, _) = json_call(&http, &base, Some(&cookie), "web.no_such", json!([])).await?;
    ensure!(
        e["error"]["code"] == 2 && e["error"]["message"] == "Unknown method",
        "{e}"
    );
    let (ok, _) = json_call(
        &http,
        &base,
        Some(&cookie),
        "auth.delete_session",
        json!([]),
    )
    .await?;
    ensure!(ok["result"] == true, "{ok}");
    let (e, _) = json_call(&http, &base, Some(&cookie), "web.connected", json!([])).await?;
    ensure!(
        e["error"]
            == json!({"message": "Not authenticated", "code": 1, "class": "NotAuthorizedError"}),
        "{e}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_same_origin_and_only_issued_paths_are_added() -> Result<()> {
    let config = tempfile::tempdir()?;
    let tmp = tempfile::tempdir()?;
    let mut command = support::daemon::command(config.path(), support::daemon::SOURCE);
    // Uploads go under TMPDIR: here, so that the killed daemon leaves none in /tmp.
    command.env("TMPDIR", tmp.path());
    let d = DaemonProc::launch(command, config)?;
    let http = reqwest::Client::new();
    let base = format!("http://{}", d.web_addr()?);
    let url = format!("{base}/upload");
    let cross = multipart(b"d4:infode", Some("http://evil.example"), &http, &url)
        .send()
        .await?;
    ensure!(
        cross.status() == StatusCode::FORBIDDEN,
        "cross-origin upload: {}",
        cross.status()
    );
    let resp = multipart(b"d4:infode", None, &http, &url).send().await?;
    ensure!(resp.status() == StatusCode::OK, "{}", resp.status());
    let up: Value = resp.json().await?;
    let path = up["files"][0].as_str().context("no path")?.to_string();
    ensure!(
        up["success"] == true && path.contains("/delugeweb-"),
        "{up}"
    );
    ensure!(std::fs::read(&path)? == b"d4:infode", "kept bytes differ");
    // One byte over the library's MAX_TORRENT_FILE (16 MiB).
    let big = vec![b'x'; (16 << 20) + 1];
    let too_big = multipart(&big, None, &http, &url).send().await?;
    ensure!(
        too_big.status() == StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        too_big.status()
    );

    let (_, set) = json_call(&http, &base, None, "auth.login", json!([d.password])).await?;
    let cookie = set
        .context("no cookie")?
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    let add = |p: &str| json!([[{"path": p, "options": {}}]]);
    for other in [
        "/etc/passwd",
        &format!("{path}/../../etc/passwd"),
        "relative.torrent",
    ] {
        let (e, _) = json_call(&http, &base, Some(&cookie), "web.add_torrents", add(other)).await?;
        let message = e["error"]["message"].as_str().unwrap_or_default();
        ensure!(
            e["error"]["code"] == 3 && message.contains("not a file uploaded"),
            "{other}: {e}"
        );
    }
    // An issued path is taken: this daemon has no engine, so the add itself fails, per entry.
    let (answer, _) =
        json_call(&http, &base, Some(&cookie), "web.add_torrents", add(&path)).await?;
    ensure!(answer["result"][0][0] == false, "{answer}");
    Ok(())
}
