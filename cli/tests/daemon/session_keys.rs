//! `core.get_session_status` and `core.get_config*` as Deluge's clients read them: every
//! session key of `tests/fixtures/deluge_session_keys.txt` answered with its JSON type, on
//! the engine daemon (started with `--no-dht`, which `dht` then reports) and on a daemon
//! without an engine; and the types compared key by key with a running deluged 2.0.3.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Map, Value};
use torrent_stats::rpc::client::Client;
use torrent_stats::rpc::tls::CertPolicy;

use crate::engine::{call, engine_command, login};
use crate::support;

/// The keys Deluge's clients read, with the type Deluge answers each with.
const FIXTURE: &str = include_str!("../../../tests/fixtures/deluge_session_keys.txt");

/// The keys Flood 4.16's settings page reads (`getClientSettings` in
/// server/services/Deluge/clientGatewayService.ts).
const FLOOD_CONFIG: [&str; 10] = [
    "dht",
    "download_location",
    "listen_interface",
    "listen_ports",
    "max_download_speed",
    "max_upload_speed",
    "max_upload_slots_per_torrent",
    "max_upload_slots_global",
    "random_port",
    "utpex",
];

/// (name, "int" or "float") of every fixture key.
fn fixture() -> Vec<(&'static str, &'static str)> {
    FIXTURE
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?, f.next()?))
        })
        .collect()
}

/// A JSON value's type as Deluge's Python value would have it.
fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "None",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// Every fixture key is in `status` with its type.
fn check_types(status: &Value) -> Result<()> {
    for (name, kind) in fixture() {
        let v = status
            .get(name)
            .with_context(|| format!("{name} missing: {status}"))?;
        ensure!(type_of(v) == kind, "{name} is {v}, Deluge answers a {kind}");
    }
    Ok(())
}

/// Every fixture key, asked at once.
fn all_keys() -> Value {
    json!([fixture().iter().map(|(n, _)| *n).collect::<Vec<_>>()])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_daemon_answers_every_session_key_and_says_dht_off() -> Result<()> {
    let data = tempfile::tempdir()?;
    let dir = tempfile::tempdir()?;
    let daemon = support::daemon::DaemonProc::launch(engine_command(dir.path(), data.path()), dir)?;
    let mut c = login(daemon.port(), &daemon.password).await?;
    let status = call(&mut c, "core.get_session_status", all_keys()).await?;
    check_types(&status)?;
    ensure!(status["dht.dht_nodes"] == 0, "no DHT, yet nodes: {status}");
    let config = call(&mut c, "core.get_config_values", json!([FLOOD_CONFIG])).await?;
    ensure!(config["dht"] == false, "--no-dht, yet {config}");
    ensure!(config["listen_interface"] == "", "{config}");
    ensure!(
        FLOOD_CONFIG.iter().all(|k| !config[k].is_null()),
        "a key Flood reads is None: {config}"
    );
    // Unknown names are left out, as deluged leaves them out.
    let unknown = call(&mut c, "core.get_session_status", json!([["no.such_key"]])).await?;
    ensure!(unknown == json!({}), "{unknown}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_without_an_engine_answers_every_session_key() -> Result<()> {
    let daemon = support::daemon::DaemonProc::start()?;
    let mut c = login(daemon.port(), &daemon.password).await?;
    // The sources' combined session, once Stats has polled them.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        match call(&mut c, "core.get_session_status", all_keys()).await {
            Ok(s) if s["num_peers"] == 3 => break s,
            other if Instant::now() > deadline => bail!("no combined session: {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    check_types(&status)?;
    ensure!(status["peer.num_peers_connected"] == 3, "{status}");
    let config = call(&mut c, "core.get_config_values", json!([FLOOD_CONFIG])).await?;
    ensure!(config["dht"] == false, "no engine, yet {config}");
    Ok(())
}

/// A logged-in client of a running deluged.
async fn deluged_client(d: &support::deluged::Deluged) -> Result<Client> {
    let mut c = Client::connect("127.0.0.1", d.port, CertPolicy::AnyCertificate).await?;
    c.login("localclient", &d.password()).await?;
    Ok(c)
}

/// deluged 2.0.3 answers every fixture key with the fixture's type (once its rates are
/// computed, every 2 s: integers before), and our `core.get_config` has every key of
/// deluged's with the same type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs deluged (scripts/test.sh installs it)"]
async fn types_match_a_running_deluged() -> Result<()> {
    let deluged = support::deluged::Deluged::start().await;
    let mut theirs = deluged_client(&deluged).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        let s = call(&mut theirs, "core.get_session_status", all_keys()).await?;
        if s["payload_download_rate"].is_f64() {
            break s;
        }
        ensure!(
            Instant::now() < deadline,
            "deluged's rates never computed: {s}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    check_types(&status).context("deluged")?;

    let data = tempfile::tempdir()?;
    let dir = tempfile::tempdir()?;
    let daemon = support::daemon::DaemonProc::launch(engine_command(dir.path(), data.path()), dir)?;
    let mut ours = login(daemon.port(), &daemon.password).await?;
    let want = call(&mut theirs, "core.get_config", json!([])).await?;
    let got = call(&mut ours, "core.get_config", json!([])).await?;
    let (want, got): (Map<String, Value>, Map<String, Value>) =
        (serde_json::from_value(want)?, serde_json::from_value(got)?);
    let mut differ = Vec::new();
    for (key, theirs) in &want {
        let ours = got.get(key).unwrap_or(&Value::Null);
        if type_of(ours) != type_of(theirs) {
            differ.push(format!("{key}: deluged {theirs}, ours {ours}"));
        }
    }
    ensure!(
        differ.is_empty(),
        "config types differ:\n{}",
        differ.join("\n")
    );
    // The RPC server's own port, and no remote access (the test daemon is loopback only).
    ensure!(
        got["daemon_port"] == daemon.port() && got["allow_remote"] == false,
        "daemon_port {} (listening on {}), allow_remote {}",
        got["daemon_port"],
        daemon.port(),
        got["allow_remote"]
    );
    Ok(())
}
