//! A restart of the engine daemon holding many torrents: SIGTERM, start again on the same
//! config directory; every torrent comes back seeding from librqbit's fast-resume data
//! (its piece bitfields) instead of a full check of its data, and the all-time totals are
//! the ones saved. No timing is asserted (the times are in docs/engine-floor.md).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use librqbit::{create_torrent, spawn_utils::BlockingSpawner, CreateTorrentOptions};
use serde_json::json;
use torrent_stats::rpc::client::Client;

use crate::engine::{base64, call, engine_command, fetch_from, login, payload};
use crate::support::counter_values;
use crate::support::daemon::{offline_totals, DaemonProc};
use crate::support::rpc::counters_in;

/// Torrents the daemon holds.
const TORRENTS: usize = 300;
/// Pieces per torrent (one file each).
const PIECES: usize = 16;
/// The smallest piece length librqbit takes (one block).
const PIECE: usize = 16 << 10;

/// `TORRENTS` distinct files of `PIECES` pieces in `data` and their torrents (base64).
async fn make_torrents(data: &Path) -> Result<Vec<String>> {
    let body = payload(PIECES * PIECE);
    let mut dumps = Vec::with_capacity(TORRENTS);
    for i in 0..TORRENTS {
        let file = data.join(format!("f{i:03}"));
        let mut bytes = body.clone();
        bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
        std::fs::write(&file, &bytes)?;
        let opts = CreateTorrentOptions {
            name: None,
            trackers: vec![],
            piece_length: Some(PIECE as u32),
        };
        let created = create_torrent(&file, opts, &BlockingSpawner::new(2)).await?;
        dumps.push(base64(&created.as_bytes()?));
    }
    Ok(dumps)
}

/// Polls `core.get_torrents_status` until all `TORRENTS` torrents are Seeding (at most
/// `limit`).
async fn until_all_seeding(c: &mut Client, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let st = call(c, "core.get_torrents_status", json!([{}, ["state"]])).await?;
        let map = st.as_object().context("a dict of torrents")?;
        let seeding = map.values().filter(|t| t["state"] == "Seeding").count();
        if map.len() == TORRENTS && seeding == TORRENTS {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{seeding} of {} torrents seeding ({TORRENTS} added) after {limit:?}",
            map.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The bytes a process has read through read(2) and the like (`rchar` of
/// `/proc/PID/io`), whether from the disk or the page cache.
fn rchar(pid: u32) -> Result<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io"))?;
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .context("no rchar in /proc/PID/io")?
        .trim()
        .parse()
        .context("rchar")
}

/// Polls our Stats' all-time totals (update_interval 1) until `total_payload_upload`
/// reaches `at_least` (at most 60 s).
async fn totals_once_uploaded(c: &mut Client, at_least: u64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let totals = call(c, "stats.get_totals", json!([])).await?;
        if totals["total_payload_upload"].as_u64().unwrap_or(0) >= at_least {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "totals stay at {totals}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// 300 torrents seeding, one of them uploaded to a second daemon (the totals are not
/// zero); SIGTERM, start again: all 300 seeding again, the restarted daemon read less
/// than half of their data (librqbit's fast-resume checks a sample of pieces, a full
/// check reads it all), the totals as saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_300_torrents_resumes_them_without_a_full_check() -> Result<()> {
    let data = tempfile::tempdir()?;
    let dumps = make_torrents(data.path()).await?;
    let data_bytes = (TORRENTS * PIECES * PIECE) as u64;
    let config = tempfile::tempdir()?;
    let daemon = DaemonProc::launch(engine_command(config.path(), data.path()), config)?;
    let mut c = login(daemon.port(), &daemon.password).await?;
    call(&mut c, "stats.set_config", json!([{"update_interval": 1}])).await?;
    let mut first = String::new();
    for (i, dump) in dumps.iter().enumerate() {
        let id = call(
            &mut c,
            "core.add_torrent_file",
            json!([format!("f{i:03}.torrent"), dump, {}]),
        )
        .await?;
        if i == 0 {
            first = id.as_str().context("torrent id")?.to_string();
        }
    }
    until_all_seeding(&mut c, Duration::from_secs(180)).await?;

    // A second daemon fetches the first torrent: the all-time upload is not zero.
    let leech_data = tempfile::tempdir()?;
    let leech_config = tempfile::tempdir()?;
    let leecher = DaemonProc::launch(
        engine_command(leech_config.path(), leech_data.path()),
        leech_config,
    )?;
    let mut l = login(leecher.port(), &leecher.password).await?;
    let port = call(&mut c, "core.get_listen_port", json!([])).await?;
    fetch_from(&mut l, &dumps[0], &first, &port).await?;
    totals_once_uploaded(&mut c, (PIECES * PIECE) as u64).await?;
    drop(l);
    leecher.stop()?;
    drop(c);

    let config = daemon.stop()?;
    // What the stopped daemon saved is what the restarted one must start from.
    let saved = counter_values(&offline_totals(config.path())?);
    ensure!(
        saved[2] >= (PIECES * PIECE) as u64,
        "saved totals {saved:?}"
    );
    let daemon = DaemonProc::launch(engine_command(config.path(), data.path()), config)?;
    let mut c = login(daemon.port(), &daemon.password).await?;
    until_all_seeding(&mut c, Duration::from_secs(180)).await?;
    let read = rchar(daemon.pid)?;
    ensure!(
        read < data_bytes / 2,
        "the restart read {read} bytes of {data_bytes} bytes of data: a full check?\n{}",
        daemon.log()
    );
    let after = counters_in(&call(&mut c, "stats.get_totals", json!([])).await?)?;
    ensure!(
        after == saved,
        "totals {saved:?} saved at the stop, {after:?} after the restart"
    );
    Ok(())
}

/// With too few file descriptors left, an add fails as the engine's failure that it is,
/// naming the open-file limit, not as "not a torrent file" (InvalidTorrentError, which
/// librqbit's "Too many open files" once became); the daemon keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_add_past_the_open_file_limit_names_the_limit() -> Result<()> {
    use std::os::unix::process::CommandExt;
    let data = tempfile::tempdir()?;
    let dumps = make_torrents(data.path()).await?;
    let config = tempfile::tempdir()?;
    let mut command = engine_command(config.path(), data.path());
    // SAFETY: setrlimit only, between fork and exec: async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, 256, 256)
                .map_err(std::io::Error::from)
        });
    }
    let daemon = DaemonProc::launch(command, config)?;
    let mut c = login(daemon.port(), &daemon.password).await?;
    let mut refused = Vec::new();
    for (i, dump) in dumps.iter().enumerate() {
        let added = call(
            &mut c,
            "core.add_torrent_file",
            json!([format!("f{i:03}.torrent"), dump, {}]),
        )
        .await;
        if let Err(e) = added {
            refused.push(format!("{e:#}"));
        }
    }
    ensure!(
        !refused.is_empty(),
        "{TORRENTS} torrents added within 256 open files"
    );
    for e in &refused {
        ensure!(
            !e.contains("InvalidTorrentError") && e.contains("open-file limit"),
            "an add refused for lack of descriptors says: {e}"
        );
    }
    // Still answering.
    call(&mut c, "daemon.info", json!([])).await?;
    Ok(())
}
