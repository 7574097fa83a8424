//! The embedded engine and a torrent list persisted by an earlier version: a multi-file
//! torrent added with a download location went straight into it (librqbit's output folder
//! = the location, no folder named after the torrent). Restored, it stays there (its data
//! does not move) and is shown as it lies: that folder as its save path, its files' paths
//! without the torrent's name; `move_storage` then puts it where Deluge would, in
//! `<dest>/<name>/`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use librqbit::spawn_utils::BlockingSpawner;
use librqbit::{create_torrent, AddTorrent, AddTorrentOptions, CreateTorrentOptions};
use torrent_stats::{EngineOptions, RqbitEngine, TorrentEngine, TorrentInfo, TorrentState};

/// How long a check may take (a cold 2-core CI machine).
const PATIENCE: Duration = Duration::from_secs(60);

/// Two files (not whole pieces) `a.bin` and `b.bin` of a torrent named `pair`.
fn files() -> [(&'static str, Vec<u8>); 2] {
    let bytes = |len: usize, k: u8| (0..len).map(|i| (i % 251) as u8 ^ k).collect();
    [("a.bin", bytes(300_000, 7)), ("b.bin", bytes(70_000, 99))]
}

/// Whether both files are in `dir`, whole.
fn lie_in(dir: &Path) -> bool {
    files()
        .iter()
        .all(|(name, data)| std::fs::read(dir.join(name)).is_ok_and(|got| got == *data))
}

/// An engine on 127.0.0.1 downloading to `download`, its torrent list kept in `state`.
async fn engine(download: &Path, state: &Path) -> Result<RqbitEngine> {
    let mut opts = EngineOptions::loopback(download);
    opts.state_dir = Some(state.to_path_buf());
    Ok(RqbitEngine::start(opts).await?)
}

/// The torrent `id` once it seeds.
async fn seeding(engine: &RqbitEngine, id: &str) -> Result<TorrentInfo> {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let t = engine.torrents().into_iter().find(|t| t.id == id);
        if let Some(t) = t.filter(|t| t.state == TorrentState::Seeding) {
            return Ok(t);
        }
        ensure!(std::time::Instant::now() < deadline, "{id} never seeds");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `t`'s save path and its files' paths.
fn place(t: &TorrentInfo) -> (PathBuf, Vec<String>) {
    let paths = t.meta.as_ref().map_or_else(Vec::new, |m| {
        let mut p: Vec<String> = m.files.iter().map(|f| f.path.clone()).collect();
        p.sort();
        p
    });
    (t.save_path.clone(), paths)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_earlier_versions_multi_file_torrent_stays_where_it_is_and_says_so() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (made, legacy) = (dir.path().join("made/pair"), dir.path().join("chosen"));
    for d in [&made, &legacy] {
        std::fs::create_dir_all(d)?;
        for (name, data) in files() {
            std::fs::write(d.join(name), data)?;
        }
    }
    let opts = CreateTorrentOptions {
        name: None,
        trackers: vec![],
        piece_length: Some(1 << 16),
    };
    let created = create_torrent(&made, opts, &BlockingSpawner::new(2)).await?;
    let (id, torrent) = (
        created.info_hash().as_string(),
        created.as_bytes()?.to_vec(),
    );
    let (download, state) = (dir.path().join("downloads"), dir.path().join("state"));

    // As an earlier version added it with download_location = chosen.
    let first = engine(&download, &state).await?;
    let old = AddTorrentOptions {
        overwrite: true,
        output_folder: Some(legacy.display().to_string()),
        ..Default::default()
    };
    first
        .session()
        .add_torrent(AddTorrent::from_bytes(torrent), Some(old))
        .await?;
    let as_it_lies = (legacy.clone(), vec!["a.bin".into(), "b.bin".into()]);
    let t = seeding(&first, &id).await?;
    ensure!(place(&t) == as_it_lies, "added as before: {:?}", place(&t));
    first.stop().await;
    drop(first);

    // Restored from the persisted list: still there, shown as it lies.
    let second = engine(&download, &state).await?;
    let t = seeding(&second, &id).await.context("restored")?;
    ensure!(place(&t) == as_it_lies, "restored: {:?}", place(&t));
    ensure!(lie_in(&legacy), "the data moved");

    // Moved: where Deluge puts it, shown as Deluge shows it.
    let dest = dir.path().join("moved");
    second.move_storage(&id, &dest).await?;
    let t = seeding(&second, &id).await.context("moved")?;
    let as_deluge = (dest.clone(), vec!["pair/a.bin".into(), "pair/b.bin".into()]);
    ensure!(place(&t) == as_deluge, "moved: {:?}", place(&t));
    ensure!(lie_in(&dest.join("pair")), "not moved into {dest:?}/pair");
    // The location the user chose stays, without the torrent's files (Deluge removes
    // only a folder named after the torrent).
    ensure!(
        legacy.is_dir() && !legacy.join("a.bin").exists() && !legacy.join("b.bin").exists(),
        "the chosen location is gone or still holds the files"
    );
    second.stop().await;
    Ok(())
}
