//! Flood 4.16 (the web UI) against our engine daemon through Flood's own HTTP API, as a
//! person using it does: a user registered with a Deluge connection to the daemon adds a
//! torrent that a real deluged seeds, downloads it (and the daemon seeds it to a second
//! deluged), reads the transfer summary, pauses, resumes, reannounces, sets a speed limit
//! and removes the torrent with its data. Each failed step says what Flood answered. The
//! same steps against Debian's deluged itself show that what they expect is what Deluge
//! does.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use reqwest::Method;
use serde_json::{json, Value};
use torrent_stats::rpc::client::Client;

use crate::engine::{base64, call, engine_command, login, payload, torrent_of};
use crate::support;
use crate::support::deluged::Deluged;
use crate::support::flood::Flood;

/// Not a multiple of the piece length (libtorrent refuses librqbit 9.1's torrents of whole
/// pieces; see engine.rs).
const SIZE: usize = (8 << 20) + 4321;
const NAME: &str = "flood.bin";

/// The Deluge daemon Flood drives: its RPC port, an account, our own client of it, where
/// it downloads, and how its session totals are read.
struct Target {
    port: u16,
    user: String,
    password: String,
    rpc: Client,
    download: std::path::PathBuf,
    totals: SessionTotals,
    /// Whether it stores the `None` that Flood's settings change sends for every setting
    /// it leaves alone (deluged 2.0.3 does; its `listen_ports` becomes `None` and Flood's
    /// settings read fails from then on) rather than keeping what it had (ours).
    stores_none: bool,
}

/// Where the session's payload totals that Flood's transfer summary must show come from.
#[derive(Clone, Copy)]
enum SessionTotals {
    /// Our `stats.get_session_totals` (`total_payload_download`, `total_payload_upload`).
    Stats,
    /// deluged's `core.get_session_status` (`net.recv_payload_bytes`, `net.sent_payload_bytes`).
    Deluged,
}

/// A deluged seeding the torrent `dump` from `data`: started, the torrent added (its
/// file `NAME` checked if in `data`, else fetched from 127.0.0.1:`peer`), waited for
/// until Seeding (at most 60 s). It and its peer port.
async fn seeding_deluged(
    data: &Path,
    id: &str,
    dump: &str,
    peer: Option<&Value>,
) -> Result<(Deluged, Value)> {
    let seeder = Deluged::start().await;
    let mut c = login(seeder.port, &seeder.password()).await?;
    let options = json!({"download_location": data.display().to_string()});
    let added = call(
        &mut c,
        "core.add_torrent_file",
        json!([NAME, dump, options]),
    )
    .await?;
    ensure!(added == json!(id), "the seeder's id {added} vs {id}");
    if let Some(port) = peer {
        call(&mut c, "core.connect_peer", json!([id, "127.0.0.1", port])).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let st = call(&mut c, "core.get_torrent_status", json!([id, ["state"]])).await?;
        if st["state"] == "Seeding" {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the seeding deluged: {st} after 60 s\n{}",
            seeder.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let port = call(&mut c, "core.get_listen_port", json!([])).await?;
    Ok((seeder, port))
}

/// The file, its torrent (id, base64) and a deluged seeding it.
async fn swarm(seed_data: &Path) -> Result<(Vec<u8>, String, String, Deluged, Value)> {
    let data = payload(SIZE);
    let file = seed_data.join(NAME);
    std::fs::write(&file, &data)?;
    let (id, torrent) = torrent_of(&file).await?;
    let dump = base64(&torrent);
    let (seeder, port) = seeding_deluged(seed_data, &id, &dump, None).await?;
    Ok((data, id, dump, seeder, port))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Flood 4.16 and Node 22 (scripts/install/flood.sh) and deluged"]
async fn flood_drives_our_engine_daemon() -> Result<()> {
    let seed_data = tempfile::tempdir()?;
    let download = tempfile::tempdir()?;
    let (data, id, dump, _seeder, peer_port) = swarm(seed_data.path()).await?;
    let config = tempfile::tempdir()?;
    let mut command = engine_command(config.path(), download.path());
    command.env("RUST_LOG", "info,torrent_stats::rpc::server=debug");
    let daemon = support::daemon::DaemonProc::launch(command, config)?;
    let mut rpc = login(daemon.port(), &daemon.password).await?;
    call(
        &mut rpc,
        "stats.set_config",
        json!([{"update_interval": 1}]),
    )
    .await?;
    let mut target = Target {
        port: daemon.port(),
        user: "localclient".into(),
        password: daemon.password.clone(),
        rpc,
        download: download.path().to_path_buf(),
        totals: SessionTotals::Stats,
        stores_none: false,
    };
    let flood = Flood::start().await?;
    let run = flood_steps(flood, &mut target, &data, &id, &dump, &peer_port).await;
    run.map_err(|e| {
        let log = daemon.log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        e.context(format!(
            "RPC calls our daemon refused: {:#?}\nits log's end:\n{tail}",
            failed_calls(&log)
        ))
    })
}

/// The same steps against Debian's deluged 2.0.3 (downloading from a second deluged):
/// what the steps expect is what Deluge does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Flood 4.16 and Node 22 (scripts/install/flood.sh) and deluged"]
async fn flood_drives_debians_deluged_the_same_way() -> Result<()> {
    let seed_data = tempfile::tempdir()?;
    let download = tempfile::tempdir()?;
    let (data, id, dump, _seeder, peer_port) = swarm(seed_data.path()).await?;
    let deluged = Deluged::start().await;
    let rpc = login(deluged.port, &deluged.password()).await?;
    let mut target = Target {
        port: deluged.port,
        user: "localclient".into(),
        password: deluged.password(),
        rpc,
        download: download.path().to_path_buf(),
        totals: SessionTotals::Deluged,
        stores_none: true,
    };
    let flood = Flood::start().await?;
    let run = flood_steps(flood, &mut target, &data, &id, &dump, &peer_port).await;
    run.map_err(|e| e.context(format!("deluged's log:\n{}", deluged.log_tail())))
}

/// The RPC server's `call failed` debug lines.
fn failed_calls(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains("call failed")).collect()
}

/// Every step, in order: connecting and downloading first (the rest needs them), then
/// each of the others whatever the one before did; every failed step is reported, with
/// Flood's log.
async fn flood_steps(
    mut flood: Flood,
    t: &mut Target,
    data: &[u8],
    id: &str,
    dump: &str,
    peer_port: &Value,
) -> Result<()> {
    let steps = async {
        connect(&mut flood, t).await?;
        let hash = add_and_download(&flood, t, data, id, dump, peer_port).await?;
        // Then it uploads the file too, to a second deluged.
        let target_port = call(&mut t.rpc, "core.get_listen_port", json!([])).await?;
        let leech_data = tempfile::tempdir()?;
        let _leech = seeding_deluged(leech_data.path(), id, dump, Some(&target_port))
            .await
            .context("a second deluged downloading from the target")?;
        let failed: Vec<String> = [
            transfer_summary(&flood, t, data.len()).await,
            pause_resume_reannounce(&flood, t, &hash, id).await,
            speed_limit(&flood, t).await,
            remove_with_data(&flood, t, &hash).await,
        ]
        .into_iter()
        .filter_map(|r| r.err().map(|e| format!("{e:#}")))
        .collect();
        ensure!(
            failed.is_empty(),
            "{} of Flood's steps after the download failed:\n{}",
            failed.len(),
            failed.join("\n")
        );
        Ok(())
    };
    let result = steps.await;
    result.map_err(|e| e.context(format!("Flood's log:\n{}", flood.log())))
}

/// Registers Flood's user with a Deluge connection to `t`; Flood's connection test and
/// its settings page answer.
async fn connect(flood: &mut Flood, t: &Target) -> Result<()> {
    flood
        .register(json!({
            "client": "Deluge", "type": "rpc", "version": 1,
            "host": "127.0.0.1", "port": t.port,
            "username": t.user, "password": t.password,
        }))
        .await?;
    let test = flood
        .step(
            "connection test",
            Method::GET,
            "/client/connection-test",
            None,
        )
        .await?;
    ensure!(
        test == json!({"isConnected": true}),
        "connection test: {test}"
    );
    flood
        .step("read settings", Method::GET, "/client/settings", None)
        .await?;
    Ok(())
}

/// Adds the torrent through Flood (stopped), hands the target the seeder's address,
/// starts it through Flood and waits until Flood's list shows it complete; the file is
/// the seeded one byte for byte. Flood's hash for it.
async fn add_and_download(
    flood: &Flood,
    t: &mut Target,
    data: &[u8],
    id: &str,
    dump: &str,
    peer_port: &Value,
) -> Result<String> {
    let destination = t.download.display().to_string();
    let body = json!({"files": [dump], "destination": destination, "start": false});
    let hashes = flood
        .step("add-files", Method::POST, "/torrents/add-files", Some(body))
        .await?;
    let hash = id.to_uppercase();
    ensure!(
        hashes == json!([hash]),
        "add-files answered {hashes}, not [{hash}]"
    );
    let listed = torrent(flood, &hash).await?;
    ensure!(
        has_status(&listed, "stopped"),
        "added with start false, Flood lists {listed}"
    );
    let body = json!({"hashes": [hash]});
    flood
        .step("start", Method::POST, "/torrents/start", Some(body))
        .await?;
    call(
        &mut t.rpc,
        "core.connect_peer",
        json!([id, "127.0.0.1", peer_port]),
    )
    .await?;
    until_listed(flood, &hash, "download", Duration::from_secs(120), |tor| {
        tor["percentComplete"] == 100 && has_status(tor, "complete")
    })
    .await?;
    let got = std::fs::read(t.download.join(NAME)).context("the downloaded file")?;
    ensure!(
        got == data,
        "the downloaded file differs from the seeded one"
    );
    Ok(hash)
}

/// Flood's entry for `hash` in its torrent list (`GET /api/torrents`).
async fn torrent(flood: &Flood, hash: &str) -> Result<Value> {
    let list = flood
        .step("torrent list", Method::GET, "/torrents", None)
        .await?;
    let tor = list["torrents"][hash].clone();
    ensure!(tor.is_object(), "Flood's list lacks {hash}: {list}");
    Ok(tor)
}

/// Whether Flood's `status` list of a torrent holds `status`.
fn has_status(tor: &Value, status: &str) -> bool {
    tor["status"]
        .as_array()
        .is_some_and(|s| s.iter().any(|v| v == status))
}

/// Polls Flood's list until `done` accepts the torrent's entry.
async fn until_listed(
    flood: &Flood,
    hash: &str,
    what: &str,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let deadline = Instant::now() + limit;
    loop {
        let tor = torrent(flood, hash).await?;
        if done(&tor) {
            return Ok(tor);
        }
        ensure!(
            Instant::now() < deadline,
            "{what}: not seen in Flood's list within {limit:?}; it lists {tor}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The target's payload session totals (download, upload).
async fn session_totals(t: &mut Target) -> Result<(u64, u64)> {
    let (method, args, down, up) = match t.totals {
        SessionTotals::Stats => (
            "stats.get_session_totals",
            json!([]),
            "total_payload_download",
            "total_payload_upload",
        ),
        SessionTotals::Deluged => (
            "core.get_session_status",
            json!([["net.recv_payload_bytes", "net.sent_payload_bytes"]]),
            "net.recv_payload_bytes",
            "net.sent_payload_bytes",
        ),
    };
    let v = call(&mut t.rpc, method, args).await?;
    let get = |k: &str| {
        v[k].as_u64()
            .with_context(|| format!("{k} in {method}: {v}"))
    };
    Ok((get(down)?, get(up)?))
}

/// Flood's transfer summary (`TRANSFER_SUMMARY_FULL_UPDATE` on its activity stream) shows
/// the target's session totals, the whole file downloaded and uploaded (polled until both
/// stand still: Flood polls every second, our Stats too).
async fn transfer_summary(flood: &Flood, t: &mut Target, size: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let summary = flood.first_event("TRANSFER_SUMMARY_FULL_UPDATE").await?;
        let expected = session_totals(t).await?;
        let shown = (summary["downTotal"].as_u64(), summary["upTotal"].as_u64());
        let whole = expected.0 >= size as u64 && expected.1 >= size as u64;
        if shown == (Some(expected.0), Some(expected.1)) && whole {
            eprintln!("Flood's transfer summary {summary}: the session totals");
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "Flood's transfer summary {summary} vs the session totals (down, up) {expected:?} \
             for a {size}-byte download and upload, within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The target's `state` of torrent `id`, polled until it is `want`.
async fn until_state(t: &mut Target, id: &str, want: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = call(
            &mut t.rpc,
            "core.get_torrent_status",
            json!([id, ["state"]]),
        )
        .await?;
        if st["state"] == want {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "state not {want} within 30 s: {st}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Flood's stop, start and reannounce, seen by the target and in Flood's list.
async fn pause_resume_reannounce(
    flood: &Flood,
    t: &mut Target,
    hash: &str,
    id: &str,
) -> Result<()> {
    let hashes = json!({"hashes": [hash]});
    flood
        .step("stop", Method::POST, "/torrents/stop", Some(hashes.clone()))
        .await?;
    until_state(t, id, "Paused").await?;
    until_listed(flood, hash, "stopped", Duration::from_secs(30), |tor| {
        has_status(tor, "stopped")
    })
    .await?;
    flood
        .step(
            "start again",
            Method::POST,
            "/torrents/start",
            Some(hashes.clone()),
        )
        .await?;
    until_state(t, id, "Seeding").await?;
    until_listed(flood, hash, "seeding", Duration::from_secs(30), |tor| {
        has_status(tor, "seeding")
    })
    .await?;
    flood
        .step(
            "reannounce",
            Method::POST,
            "/torrents/reannounce",
            Some(hashes),
        )
        .await?;
    Ok(())
}

/// A global download limit set in Flood (its speed-limit menu sends that one setting)
/// reads back as set, in Flood and in the target's `max_download_speed` (KiB/s: Flood
/// passes the number through). deluged 2.0.3 stores the `None`s sent along, after which
/// Flood's settings read fails.
async fn speed_limit(flood: &Flood, t: &mut Target) -> Result<()> {
    const LIMIT: f64 = 300.0;
    let body = json!({"throttleGlobalDownSpeed": LIMIT});
    flood
        .step(
            "set speed limit",
            Method::PATCH,
            "/client/settings",
            Some(body),
        )
        .await?;
    if t.stores_none {
        let (status, text) = flood.request(Method::GET, "/client/settings", None).await?;
        ensure!(
            status == reqwest::StatusCode::INTERNAL_SERVER_ERROR
                && text.contains("Cannot read properties of null"),
            "deluged with listen_ports None: Flood's settings read answered {status}: {text}"
        );
    } else {
        let settings = flood
            .step("read settings back", Method::GET, "/client/settings", None)
            .await?;
        ensure!(
            settings["throttleGlobalDownSpeed"].as_f64() == Some(LIMIT),
            "Flood reads back {settings}"
        );
    }
    let conf = call(
        &mut t.rpc,
        "core.get_config_values",
        json!([["max_download_speed"]]),
    )
    .await?;
    ensure!(
        conf["max_download_speed"].as_f64() == Some(LIMIT),
        "the daemon's config after Flood's limit: {conf}"
    );
    Ok(())
}

/// Flood's delete with data: the target holds no torrent and the file is gone.
async fn remove_with_data(flood: &Flood, t: &mut Target, hash: &str) -> Result<()> {
    let body = json!({"hashes": [hash], "deleteData": true});
    flood
        .step(
            "delete with data",
            Method::POST,
            "/torrents/delete",
            Some(body),
        )
        .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let file = t.download.join(NAME);
    loop {
        let ids = call(&mut t.rpc, "core.get_session_state", json!([])).await?;
        if ids == json!([]) && !file.exists() {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "after Flood's delete: torrents {ids}, file still there: {}",
            file.exists()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let list = flood
        .step("torrent list after delete", Method::GET, "/torrents", None)
        .await?;
    ensure!(
        list["torrents"] == json!({}),
        "Flood still lists after delete: {list}"
    );
    Ok(())
}
