//! Persistence: recovery from bad files, refusing to reset, an unwritable directory, and
//! no writes while idle.

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use torrent_stats::unstable;
use torrent_stats::AuthLevel;
use torrent_stats::PluginHost;
use torrent_stats::SimSource;
use torrent_stats::{Accumulator, Stats};

use crate::support::{call, host_with_stats, settle, totals, write_conf, Scripted};

/// Leaves `dir` with a good `stats.totals` and `.bak` (totals 300/400 after two sessions
/// of the plugin) and returns the totals in the `.bak`.
async fn populated(dir: &Path, src: &Scripted) -> Accumulator {
    src.set("s", 100, 200);
    let host = host_with_stats(Arc::new(src.clone()), dir).await;
    settle().await;
    host.disable("Stats").await.unwrap();
    src.set("s", 300, 400);
    host.enable("Stats").await.unwrap();
    settle().await;
    host.shutdown().await;
    unstable::read::<Accumulator>(&dir.join("stats.totals.bak")).expect("good backup")
}

fn corrupt_files(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("stats.totals.corrupt-"))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn bad_totals_files_recover_from_the_backup_and_are_kept() {
    /// Turns the good file into the damaged one (`None`: delete it).
    type Damage = fn(Vec<u8>) -> Option<Vec<u8>>;
    let cases: Vec<(&str, Damage)> = vec![
        ("truncated", |good| Some(good[..good.len() / 2].to_vec())),
        ("truncated at the last line", |good| {
            Some(good[..good.len() - 10].to_vec())
        }),
        ("empty", |_| Some(Vec::new())),
        ("garbage", |_| Some(b"\x00\xffnot = [toml\n\x13".to_vec())),
        ("altered digit", |good| {
            let text = String::from_utf8(good).unwrap();
            Some(
                text.replacen("total_upload = 300", "total_upload = 900", 1)
                    .into_bytes(),
            )
        }),
        ("missing", |_| None),
    ];
    for (name, damage) in cases {
        let dir = tempfile::tempdir().unwrap();
        let src = Scripted::new("s");
        let bak = populated(dir.path(), &src).await;
        let path = dir.path().join("stats.totals");
        let bad = damage(fs::read(&path).unwrap());
        match &bad {
            Some(bytes) => fs::write(&path, bytes).unwrap(),
            None => fs::remove_file(&path).unwrap(),
        }

        let host = host_with_stats(Arc::new(src.clone()), dir.path()).await;
        assert_eq!(
            totals(&host).await,
            (bak.totals.total_upload, bak.totals.total_download),
            "{name}: totals come from the backup"
        );
        let kept = corrupt_files(dir.path());
        match &bad {
            Some(bytes) => {
                assert_eq!(kept.len(), 1, "{name}: bad file kept");
                assert_eq!(
                    &fs::read(&kept[0]).unwrap(),
                    bytes,
                    "{name}: kept as it was"
                );
            }
            None => assert!(kept.is_empty()),
        }
        settle().await;
        host.shutdown().await;
        assert!(
            unstable::read::<Accumulator>(&path).is_ok(),
            "{name}: a good file is written again"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn refuses_to_start_rather_than_reset_when_file_and_backup_are_bad() {
    let dir = tempfile::tempdir().unwrap();
    let src = Scripted::new("s");
    populated(dir.path(), &src).await;
    let path = dir.path().join("stats.totals");
    fs::write(&path, b"total_upload = 1\n").unwrap();
    fs::write(dir.path().join("stats.totals.bak"), b"").unwrap();

    let host = PluginHost::open(Arc::new(src), dir.path()).unwrap();
    host.register(Arc::new(Stats::new())).await.unwrap();
    let err = host.enable("Stats").await.unwrap_err().to_string();
    assert!(err.contains("refusing to start"), "{err}");
    assert!(err.contains("stats.totals"), "{err}");
    assert!(host.enabled().await.is_empty());
    assert!(host.exports().method_list().is_empty());
    assert_eq!(
        fs::read(&path).unwrap(),
        b"total_upload = 1\n",
        "left untouched"
    );
}

#[tokio::test(start_paused = true)]
async fn nothing_is_written_while_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let src = Scripted::new("s");
    src.set("s", 10, 10);
    let host = host_with_stats(Arc::new(src.clone()), dir.path()).await;
    // The first poll starts a session: one cheap write, then one checkpoint at 30 s.
    tokio::time::sleep(Duration::from_secs(31)).await;
    let snapshot = |dir: &Path| -> Vec<(String, u64, i64, i64)> {
        let mut v: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let m = e.metadata().unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    m.ino(),
                    m.mtime(),
                    m.mtime_nsec(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let before = snapshot(dir.path());
    assert!(before.iter().any(|f| f.0 == "stats.history"), "{before:?}");
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert!(src.calls() > 150, "it kept polling");
    assert_eq!(snapshot(dir.path()), before, "idle daemon wrote files");

    // A change is written at the next poll and checkpointed with a backup.
    src.set("s", 20, 10);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let file = unstable::read::<Accumulator>(&dir.path().join("stats.totals")).unwrap();
    assert_eq!(file.totals.total_upload, 20);
    tokio::time::sleep(Duration::from_secs(30)).await;
    let bak = unstable::read::<Accumulator>(&dir.path().join("stats.totals.bak")).unwrap();
    assert_eq!(bak.totals.total_upload, 20);
    host.shutdown().await;
}

/// Makes `dir` unwritable even for root (immutable attribute; chmod for other users) and
/// undoes it on drop. Panics if the directory stays writable: the test must not pass
/// vacuously.
struct Unwritable(PathBuf);

impl Unwritable {
    fn new(dir: &Path) -> Self {
        let chattr = Command::new("chattr").arg("+i").arg(dir).status();
        if !matches!(chattr, Ok(s) if s.success()) {
            let mut perms = fs::metadata(dir).unwrap().permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o555);
            fs::set_permissions(dir, perms).unwrap();
        }
        let probe = dir.join("probe");
        assert!(
            fs::File::create(&probe).is_err(),
            "could not make {} unwritable (need chattr as root, or a non-root user)",
            dir.display()
        );
        Unwritable(dir.to_path_buf())
    }
}

impl Drop for Unwritable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
        if let Ok(m) = fs::metadata(&self.0) {
            let mut perms = m.permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
            let _ = fs::set_permissions(&self.0, perms);
        }
    }
}

#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
#[ignore = "needs chattr as root (or a non-root user)"]
async fn an_unwritable_directory_keeps_counting_in_memory_and_saves_once_writable() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg");
    write_conf(&cfg, 1);
    let src = Arc::new(SimSource::new(1_000_000, 2_000_000, 1));
    let host = host_with_stats(src, &cfg).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let path = cfg.join("stats.totals");

    let lock = Unwritable::new(&cfg);
    let on_disk = unstable::read::<Accumulator>(&path).unwrap().totals;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (up, _) = totals(&host).await;
    assert!(
        up >= on_disk.total_upload + 1_500_000,
        "keeps counting in memory: {up} vs {}",
        on_disk.total_upload
    );
    assert_eq!(
        unstable::read::<Accumulator>(&path).unwrap().totals,
        on_disk,
        "nothing could be written"
    );
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("could not save totals"),
        "the failure is logged: {text}"
    );
    assert_eq!(
        text.matches("could not save totals").count(),
        1,
        "logged once, not every poll"
    );

    drop(lock);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let saved = unstable::read::<Accumulator>(&path).unwrap().totals;
    assert!(
        saved.total_upload >= up,
        "saved once writable: {saved:?} vs {up}"
    );
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("saving works again"), "{text}");
    let got = call(&host, "stats.get_totals", vec![], AuthLevel::Normal)
        .await
        .unwrap();
    assert!(got["total_upload"].as_u64().unwrap() >= saved.total_upload);
    host.shutdown().await;
}
