//! Where the embedded engine puts a multi-file torrent and how it shows it, as Deluge
//! 2.0.3 does: its files in `<location>/<name>/` (added by file or magnet, with a
//! `download_location` or without), `save_path` and `download_location` the location,
//! the files' paths `<name>/<path>`; `core.move_storage(ids, dest)` moves them into
//! `dest/<name>/`. Side by side with a running deluged holding the same torrent.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use librqbit::{create_torrent, spawn_utils::BlockingSpawner, CreateTorrentOptions};
use serde_json::{json, Value};
use torrent_stats::rpc::client::Client;

use crate::engine::{base64, call, engine_command, login, payload};
use crate::engine_flood::until;
use crate::support;

const PIECE: usize = 256 << 10;

/// The torrent's files inside its folder, as Deluge lists their paths (sorted).
const PATHS: [&str; 2] = ["album/a.bin", "album/sub/b.bin"];

/// How long a check or a loopback download of the album may take (cold 2-core CI).
const PATIENCE: Duration = Duration::from_secs(120);

/// The keys that say where a torrent is.
fn keys() -> Value {
    json!([
        "name",
        "state",
        "save_path",
        "download_location",
        "files",
        "orig_files",
        "num_files"
    ])
}

/// A multi-file torrent `album` (`a.bin`, `sub/b.bin`; not whole pieces, which
/// libtorrent would refuse from librqbit's `create_torrent`).
struct Album {
    id: String,
    torrent: Vec<u8>,
    files: Vec<(&'static str, Vec<u8>)>,
}

impl Album {
    /// Makes the files under `dir/album` and the torrent, announcing to `trackers`.
    async fn make(dir: &Path, trackers: Vec<String>) -> Result<Album> {
        let files = vec![
            ("album/a.bin", payload(3 * PIECE + 1000)),
            (
                "album/sub/b.bin",
                payload(2 * PIECE + 5).into_iter().rev().collect(),
            ),
        ];
        let album = Album {
            id: String::new(),
            torrent: Vec::new(),
            files,
        };
        album.write(dir)?;
        let opts = CreateTorrentOptions {
            name: None,
            trackers,
            piece_length: Some(PIECE as u32),
        };
        let created = create_torrent(&dir.join("album"), opts, &BlockingSpawner::new(2)).await?;
        Ok(Album {
            id: created.info_hash().as_string(),
            torrent: created.as_bytes()?.to_vec(),
            ..album
        })
    }

    /// Writes the files under `location` as Deluge lays them out.
    fn write(&self, location: &Path) -> Result<()> {
        for (path, data) in &self.files {
            let file = location.join(path);
            std::fs::create_dir_all(file.parent().context("parent")?)?;
            std::fs::write(file, data)?;
        }
        Ok(())
    }

    /// Whether every file is under `location` as Deluge lays them out, whole.
    fn lies_in(&self, location: &Path) -> bool {
        self.files
            .iter()
            .all(|(path, data)| std::fs::read(location.join(path)).is_ok_and(|got| got == *data))
    }
}

/// A status as Deluge shows a torrent named `album` at `location`?
fn shown_at(st: &Value, location: &Path) -> Result<()> {
    let loc = json!(location.display().to_string());
    let paths = |key: &str| -> Vec<String> {
        let mut paths: Vec<String> = st[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f["path"].as_str().map(String::from))
            .collect();
        paths.sort();
        paths
    };
    ensure!(
        st["save_path"] == loc && st["download_location"] == loc && st["name"] == "album",
        "not shown at {loc}: {st}"
    );
    ensure!(
        paths("files") == PATHS && paths("orig_files") == PATHS,
        "paths not under the torrent's name: {st}"
    );
    Ok(())
}

/// `torrent-stats daemon` on the engine, trackers on (no DHT), downloading to `download`.
fn tracking_daemon(config: &Path, download: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(support::BIN);
    command
        .arg("daemon")
        .arg("--config-dir")
        .arg(config)
        .arg("--download-dir")
        .arg(download)
        .args(["--port", "0", "--web-port", "0", "--source", "rqbit"])
        .args(["--listen-port", "0", "--no-dht"]);
    command
}

/// Waits until the torrent seeds where `location` says, and returns its status.
async fn seeding_at(c: &mut Client, id: &str, location: &Path, what: &str) -> Result<Value> {
    let loc = json!(location.display().to_string());
    until(c, id, keys(), PATIENCE, what, |s| {
        s["state"] == "Seeding" && s["download_location"] == loc
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_file_torrents_lie_in_a_folder_named_after_them_as_in_deluge() -> Result<()> {
    let tracker = support::tracker::Tracker::start_for(Ipv4Addr::LOCALHOST);
    let seed_data = tempfile::tempdir()?;
    let album = Album::make(seed_data.path(), vec![tracker.announce_url()]).await?;
    let dump = base64(&album.torrent);
    let id = album.id.as_str();

    // The seeder finds the files in <download dir>/album/ (no location given).
    let cfg = tempfile::tempdir()?;
    let seeder =
        support::daemon::DaemonProc::launch(tracking_daemon(cfg.path(), seed_data.path()), cfg)?;
    let mut s = login(seeder.port(), &seeder.password).await?;
    call(
        &mut s,
        "core.add_torrent_file",
        json!(["album.torrent", dump, {}]),
    )
    .await?;
    let st = seeding_at(&mut s, id, seed_data.path(), "the seeder's check").await?;
    shown_at(&st, seed_data.path())?;

    // A magnet with a location: downloaded into <location>/album/.
    let (leech_data, place) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let cfg = tempfile::tempdir()?;
    let leecher =
        support::daemon::DaemonProc::launch(tracking_daemon(cfg.path(), leech_data.path()), cfg)?;
    let mut c = login(leecher.port(), &leecher.password).await?;
    let tr = tracker
        .announce_url()
        .replace(':', "%3A")
        .replace('/', "%2F");
    let magnet = format!("magnet:?xt=urn:btih:{id}&dn=album&tr={tr}");
    let loc = place.path().join("chosen");
    let options = json!({"download_location": loc.display().to_string()});
    call(&mut c, "core.add_torrent_magnet", json!([magnet, options])).await?;
    // Its location from the start, while its metadata is fetched too.
    let st = call(
        &mut c,
        "core.get_torrent_status",
        json!([id, ["download_location"]]),
    )
    .await?;
    ensure!(
        st["download_location"] == json!(loc.display().to_string()),
        "{st}"
    );
    let st = seeding_at(&mut c, id, &loc, "the magnet's download").await?;
    shown_at(&st, &loc)?;
    ensure!(album.lies_in(&loc), "not downloaded into {loc:?}/album");

    // Moved: into <dest>/album/; the emptied folder goes, the location stays.
    let dest = place.path().join("moved");
    let args = json!([[id], dest.display().to_string()]);
    call(&mut c, "core.move_storage", args).await?;
    let st = seeding_at(&mut c, id, &dest, "after the move").await?;
    shown_at(&st, &dest)?;
    ensure!(album.lies_in(&dest), "not moved into {dest:?}/album");
    ensure!(
        !loc.join("album").exists() && loc.exists(),
        "{loc:?}/album left behind, or {loc:?} removed"
    );

    // A file without a location: into <download dir>/album/.
    call(&mut c, "core.remove_torrent", json!([id, false])).await?;
    call(
        &mut c,
        "core.add_torrent_file",
        json!(["album.torrent", dump, {}]),
    )
    .await?;
    let st = seeding_at(&mut c, id, leech_data.path(), "the file's download").await?;
    shown_at(&st, leech_data.path())?;
    ensure!(
        album.lies_in(leech_data.path()),
        "not downloaded into the download dir/album"
    );
    Ok(())
}

/// `st` with `location` written `<loc>`, to compare two daemons' answers.
fn relative(st: &Value, location: &Path) -> Value {
    let loc = location.display().to_string();
    let text = serde_json::to_string(st).unwrap_or_default();
    serde_json::from_str(&text.replace(&loc, "<loc>")).unwrap_or(Value::Null)
}

/// Our engine downloads the album from deluged 2.0.3 into a location, then both move it:
/// on disk and in `core.get_torrent_status`, ours is where deluged's is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs deluged (scripts/test.sh installs it)"]
async fn a_multi_file_torrent_is_where_and_as_deluged_has_it() -> Result<()> {
    let made = tempfile::tempdir()?;
    let album = Album::make(made.path(), vec![]).await?;
    let dump = base64(&album.torrent);
    let id = album.id.as_str();

    let deluged = support::deluged::Deluged::start().await;
    let mut theirs = login(deluged.port, &deluged.password()).await?;
    let their_place = tempfile::tempdir()?;
    let their_loc = their_place.path().join("loc");
    album.write(&their_loc)?;
    let options = json!({"download_location": their_loc.display().to_string()});
    call(
        &mut theirs,
        "core.add_torrent_file",
        json!(["album.torrent", dump, options]),
    )
    .await?;
    let their_st = seeding_at(&mut theirs, id, &their_loc, "deluged's check").await?;
    shown_at(&their_st, &their_loc).context("deluged")?;
    let their_port = call(&mut theirs, "core.get_listen_port", json!([])).await?;

    let (data, our_place, cfg) = (
        tempfile::tempdir()?,
        tempfile::tempdir()?,
        tempfile::tempdir()?,
    );
    let daemon = support::daemon::DaemonProc::launch(engine_command(cfg.path(), data.path()), cfg)?;
    let mut ours = login(daemon.port(), &daemon.password).await?;
    let our_loc = our_place.path().join("loc");
    let options = json!({"download_location": our_loc.display().to_string(), "add_paused": true});
    call(
        &mut ours,
        "core.add_torrent_file",
        json!(["album.torrent", dump, options]),
    )
    .await?;
    call(
        &mut ours,
        "core.connect_peer",
        json!([id, "127.0.0.1", their_port]),
    )
    .await?;
    call(&mut ours, "core.resume_torrent", json!([[id]])).await?;
    let our_st = seeding_at(&mut ours, id, &our_loc, "our download from deluged").await?;
    ensure!(
        album.lies_in(&our_loc),
        "not downloaded into {our_loc:?}/album"
    );
    ensure!(
        relative(&our_st, &our_loc) == relative(&their_st, &their_loc),
        "ours {our_st}\ndeluged's {their_st}"
    );

    // Both move it.
    let (our_dest, their_dest) = (
        our_place.path().join("moved"),
        their_place.path().join("moved"),
    );
    for (c, dest) in [(&mut ours, &our_dest), (&mut theirs, &their_dest)] {
        call(
            c,
            "core.move_storage",
            json!([[id], dest.display().to_string()]),
        )
        .await?;
    }
    let our_st = seeding_at(&mut ours, id, &our_dest, "our move").await?;
    let their_st = seeding_at(&mut theirs, id, &their_dest, "deluged's move").await?;
    // libtorrent moves in the background: its files may land after it says so.
    let deadline = std::time::Instant::now() + PATIENCE;
    while !album.lies_in(&their_dest) {
        ensure!(
            std::time::Instant::now() < deadline,
            "deluged did not move the files"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(
        album.lies_in(&our_dest),
        "ours not moved into {our_dest:?}/album"
    );
    ensure!(
        relative(&our_st, &our_dest) == relative(&their_st, &their_dest),
        "after the move: ours {our_st}\ndeluged's {their_st}"
    );
    for (loc, whose) in [(&our_loc, "ours"), (&their_loc, "deluged's")] {
        ensure!(
            !loc.join("album").exists() && loc.exists(),
            "{whose}: {loc:?}/album left behind, or {loc:?} removed"
        );
    }
    Ok(())
}
