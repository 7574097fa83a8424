//! The torrent methods Flood calls, on the embedded engine (librqbit) through Deluge's
//! RPC: file priorities that really stop and start a file's download (bytes on disk),
//! `move_storage` moving the files, `set_torrent_trackers` and `force_reannounce` seen
//! by a tracker, refusals naming the limit; and every status key Flood and @ctrl/deluge
//! read, with the JSON type Deluge 2.0.3 answers it with (fixture
//! `fixtures/deluge-torrent-status-keys.json`).

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use librqbit::{create_torrent, spawn_utils::BlockingSpawner, CreateTorrentOptions};
use serde_json::{json, Value};
use torrent_stats::rpc::client::Client;

use crate::engine::{base64, call, engine_command, login, payload, seeding};
use crate::support;

const PIECE: usize = 256 << 10;

/// Polls `core.get_torrent_status(id, keys)` until `done` accepts it (at most `limit`).
pub(crate) async fn until(
    c: &mut Client,
    id: &str,
    keys: Value,
    limit: Duration,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let st = call(c, "core.get_torrent_status", json!([id, keys])).await?;
        if done(&st) {
            return Ok(st);
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "{what}: not within {limit:?}; last {st}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The Deluge exception class and message of a call that must fail.
async fn refused(c: &mut Client, method: &str, args: Value) -> Result<String> {
    match call(c, method, args.clone()).await {
        Ok(v) => bail!("{method}{args} answered {v}"),
        Err(e) => Ok(format!("{e:#}")),
    }
}

/// A directory `pair` of two files (`a.bin` whole pieces, `b.bin` not) under `dir`, and
/// its torrent: (info-hash, torrent file, a's bytes, b's bytes).
async fn pair(dir: &Path) -> Result<(String, Vec<u8>, Vec<u8>, Vec<u8>)> {
    let root = dir.join("pair");
    std::fs::create_dir_all(&root)?;
    let a = payload(4 * PIECE);
    let b: Vec<u8> = payload(4 * PIECE + 12_345).into_iter().rev().collect();
    std::fs::write(root.join("a.bin"), &a)?;
    std::fs::write(root.join("b.bin"), &b)?;
    let created = create_torrent(
        &root,
        CreateTorrentOptions {
            name: None,
            trackers: vec![],
            piece_length: Some(PIECE as u32),
        },
        &BlockingSpawner::new(2),
    )
    .await?;
    let bytes = created.as_bytes()?.to_vec();
    Ok((created.info_hash().as_string(), bytes, a, b))
}

/// Whether the file at `path` holds `data` (a missing file does not).
fn holds(path: &Path, data: &[u8]) -> bool {
    std::fs::read(path).is_ok_and(|got| got == data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_priorities_stop_and_start_a_files_download_and_move_storage_moves_it() -> Result<()> {
    let seed_data = tempfile::tempdir()?;
    let leech_data = tempfile::tempdir()?;
    let moved = tempfile::tempdir()?;
    let (id, torrent, a, b) = pair(seed_data.path()).await?;
    let dump = base64(&torrent);
    let (_seeder, _, port) = seeding(seed_data.path(), "pair.torrent", &dump).await?;

    let cfg = tempfile::tempdir()?;
    let leecher =
        support::daemon::DaemonProc::launch(engine_command(cfg.path(), leech_data.path()), cfg)?;
    let mut c = login(leecher.port(), &leecher.password).await?;
    call(
        &mut c,
        "core.add_torrent_file",
        json!(["pair.torrent", dump, {"add_paused": true}]),
    )
    .await?;
    call(&mut c, "core.connect_peer", json!([id, "127.0.0.1", port])).await?;
    let keys = json!([
        "is_finished",
        "total_wanted",
        "total_size",
        "file_priorities",
        "download_location",
        "files",
        "state"
    ]);
    until(
        &mut c,
        &id,
        keys.clone(),
        Duration::from_secs(60),
        "check",
        |s| s["state"] == "Paused",
    )
    .await?;
    // Flood's "do not download" for a.bin, as it sends it: the whole list, ids in a list.
    call(
        &mut c,
        "core.set_torrent_options",
        json!([[id], {"file_priorities": [0, 4]}]),
    )
    .await?;
    call(&mut c, "core.resume_torrents", json!([[id]])).await?;
    let st = until(
        &mut c,
        &id,
        keys.clone(),
        Duration::from_secs(120),
        "b.bin alone",
        |s| s["is_finished"] == true,
    )
    .await?;
    ensure!(
        st["file_priorities"] == json!([0, 4])
            && st["total_wanted"] == json!(b.len())
            && st["total_size"] == json!(a.len() + b.len()),
        "{st}"
    );
    // As Deluge lays out a multi-file torrent: in a folder named after it under the
    // download location, its files' paths under that name.
    ensure!(
        st["download_location"] == json!(leech_data.path().display().to_string())
            && st["files"][0]["path"] == "pair/a.bin"
            && st["files"][1]["path"] == "pair/b.bin",
        "{st}"
    );
    let folder = leech_data.path().join("pair");
    ensure!(
        holds(&folder.join("b.bin"), &b),
        "b.bin not downloaded into {folder:?}"
    );
    ensure!(
        !holds(&folder.join("a.bin"), &a),
        "a.bin downloaded while skipped"
    );

    // Wanted again: it downloads.
    call(
        &mut c,
        "core.set_torrent_options",
        json!([id, {"file_priorities": [4, 4]}]),
    )
    .await?;
    until(
        &mut c,
        &id,
        keys.clone(),
        Duration::from_secs(120),
        "a.bin too",
        |s| s["is_finished"] == true && s["total_wanted"] == s["total_size"],
    )
    .await?;
    ensure!(
        holds(&folder.join("a.bin"), &a),
        "a.bin not downloaded once wanted"
    );

    // What librqbit cannot do is refused by name, nothing changed.
    let e = refused(
        &mut c,
        "core.set_torrent_options",
        json!([[id], {"sequential_download": true, "file_priorities": [0, 4]}]),
    )
    .await?;
    ensure!(
        e.contains("DelugeError") && e.contains("sequential_download"),
        "{e}"
    );
    let e = refused(
        &mut c,
        "core.set_torrent_options",
        json!([[id], {"super_seeding": true}]),
    )
    .await?;
    ensure!(e.contains("super_seeding"), "{e}");
    let e = refused(&mut c, "core.force_reannounce", json!([["00".repeat(20)]])).await?;
    ensure!(e.contains("InvalidTorrentError"), "{e}");

    // Flood's move: the files go (into the torrent's folder there, as in Deluge), the
    // torrent goes on there, complete.
    let dest = moved.path().join("elsewhere");
    call(
        &mut c,
        "core.move_storage",
        json!([[id], dest.display().to_string()]),
    )
    .await?;
    let st = until(
        &mut c,
        &id,
        keys,
        Duration::from_secs(60),
        "after the move",
        |s| s["state"] == "Seeding",
    )
    .await?;
    ensure!(
        st["download_location"] == json!(dest.display().to_string()),
        "{st}"
    );
    ensure!(
        holds(&dest.join("pair/a.bin"), &a) && holds(&dest.join("pair/b.bin"), &b),
        "files not moved into {dest:?}/pair"
    );
    ensure!(
        !folder.exists() && leech_data.path().exists(),
        "the torrent's old folder left behind, or the download directory removed"
    );
    let e = refused(&mut c, "core.move_storage", json!([[id], "relative"])).await?;
    ensure!(e.contains("absolute"), "{e}");
    Ok(())
}

/// A torrent file of `data`'s torrent with a comment and no trackers, built around its
/// info dictionary.
fn with_comment(torrent: &[u8], comment: &str) -> Result<Vec<u8>> {
    let parsed = librqbit::torrent_from_bytes(torrent)?;
    let mut out = format!("d7:comment{}:{comment}4:info", comment.len()).into_bytes();
    out.extend_from_slice(parsed.info.raw_bytes.as_ref());
    out.push(b'e');
    Ok(out)
}

fn json_type(v: &Value) -> &'static str {
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

/// Announces with event `started` the tracker has seen.
fn starts(tracker: &support::tracker::Tracker) -> usize {
    let seen = tracker.announces.lock().unwrap();
    seen.iter()
        .filter(|(_, _, event)| event == "started")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trackers_set_and_reannounced_reach_the_tracker_and_status_keys_have_deluges_types(
) -> Result<()> {
    let data = tempfile::tempdir()?;
    let (id, torrent, _, _) = pair(data.path()).await?;
    let dump = base64(&with_comment(&torrent, "made for Flood")?);
    let tracker = support::tracker::Tracker::start_for(Ipv4Addr::LOCALHOST);
    // Trackers on (the other tests' daemons run without), no DHT.
    let cfg = tempfile::tempdir()?;
    let mut command = std::process::Command::new(support::BIN);
    command
        .arg("daemon")
        .arg("--config-dir")
        .arg(cfg.path())
        .arg("--download-dir")
        .arg(data.path())
        .args(["--port", "0", "--web-port", "0", "--source", "rqbit"])
        .args(["--listen-port", "0", "--no-dht"]);
    let daemon = support::daemon::DaemonProc::launch(command, cfg)?;
    let mut c = login(daemon.port(), &daemon.password).await?;
    call(
        &mut c,
        "core.add_torrent_file",
        json!(["pair.torrent", dump, {}]),
    )
    .await?;
    let url = tracker.announce_url();
    // As Flood sends it: a list of ids, tier 0 each.
    call(
        &mut c,
        "core.set_torrent_trackers",
        json!([[id], [{"url": url, "tier": 0}]]),
    )
    .await?;
    let keys = json!(["trackers", "tracker_host", "comment", "state"]);
    let st = until(&mut c, &id, keys, Duration::from_secs(60), "seeding", |s| {
        s["state"] == "Seeding"
    })
    .await?;
    ensure!(
        st["trackers"] == json!([{"url": url, "tier": 0}])
            && st["tracker_host"] == "127.0.0.1"
            && st["comment"] == "made for Flood",
        "{st}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while starts(&tracker) == 0 {
        ensure!(
            std::time::Instant::now() < deadline,
            "no announce to the new tracker"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = starts(&tracker);
    call(&mut c, "core.force_reannounce", json!([[id]])).await?;
    while starts(&tracker) == before {
        ensure!(
            std::time::Instant::now() < deadline,
            "force_reannounce: no new announce"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let fixture: Value =
        serde_json::from_str(include_str!("fixtures/deluge-torrent-status-keys.json"))?;
    let all = call(&mut c, "core.get_torrent_status", json!([id, []])).await?;
    let mut wrong = Vec::new();
    for entry in fixture["keys"].as_array().context("keys")? {
        let key = entry["key"].as_str().context("key")?;
        let want = entry["type"].as_str().context("type")?;
        let asked = call(
            &mut c,
            "core.get_torrents_status",
            json!([{"id": [id]}, [key]]),
        )
        .await?;
        for (how, got) in [("alone", &asked[&id][key]), ("with every key", &all[key])] {
            if json_type(got) != want {
                wrong.push(format!(
                    "{key} ({how}): {} {got}, Deluge's is {want}",
                    json_type(got)
                ));
            }
        }
    }
    ensure!(wrong.is_empty(), "status keys:\n{}", wrong.join("\n"));
    Ok(())
}
