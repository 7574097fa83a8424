//! `torrent-stats backup`: a consistent copy of a config directory, the daemon running or
//! not. Every file is copied as it is (each is replaced whole by a rename when written, so
//! a copy is never torn); the ledger through SQLite's backup API, so that the copy is one
//! transaction's state even while the daemon writes. Lock files and temp files are left
//! out. The copy is synced before the call returns.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::db::FILE;

/// Why a backup failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// The destination exists and is not an empty directory.
    #[error("{0} exists and is not empty: give a new directory")]
    NotEmpty(PathBuf),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// SQLite's backup failed.
    #[error("{path}: {source}")]
    Sqlite {
        /// The ledger.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
}

/// What a backup wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupReport {
    /// Files copied (the ledger included).
    pub files: usize,
    /// Bytes written.
    pub bytes: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Whether a file of the config directory is left out: locks, temp files, the ledger's
/// WAL and shared memory (the backup API copies their content), the ledger itself (copied
/// apart).
fn skipped(name: &str) -> bool {
    name.ends_with(".lock")
        || name.ends_with(".tmp")
        || name.starts_with(".tmp")
        || name == FILE
        || name == format!("{FILE}-wal")
        || name == format!("{FILE}-shm")
}

/// Copies the config directory `src` into `dest` (created, mode 0700; or an existing
/// empty directory).
pub fn backup(src: &Path, dest: &Path) -> Result<BackupReport, BackupError> {
    if dest.exists() {
        let mut entries = std::fs::read_dir(dest).map_err(io(dest))?;
        if entries.next().is_some() {
            return Err(BackupError::NotEmpty(dest.to_path_buf()));
        }
    }
    create_private_dir(dest)?;
    let mut report = BackupReport::default();
    copy_tree(src, dest, &mut report)?;
    let ledger = src.join(FILE);
    if ledger.exists() {
        let out = dest.join(FILE);
        backup_ledger(&ledger, &out)?;
        report.files += 1;
        report.bytes += std::fs::metadata(&out).map_err(io(&out))?.len();
    }
    sync_dir(dest)?;
    Ok(report)
}

fn create_private_dir(dir: &Path) -> Result<(), BackupError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(io(dir))
}

fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

fn copy_tree(src: &Path, dest: &Path, report: &mut BackupReport) -> Result<(), BackupError> {
    for entry in std::fs::read_dir(src).map_err(io(src))? {
        let entry = entry.map_err(io(src))?;
        let name = entry.file_name();
        let Some(text) = name.to_str() else {
            continue;
        };
        let from = entry.path();
        let to = dest.join(&name);
        let kind = entry.file_type().map_err(io(&from))?;
        if kind.is_dir() {
            create_private_dir(&to)?;
            copy_tree(&from, &to, report)?;
            sync_dir(&to)?;
        } else if kind.is_file() && !skipped(text) {
            report.bytes += std::fs::copy(&from, &to).map_err(io(&from))?;
            std::fs::File::open(&to)
                .and_then(|f| f.sync_all())
                .map_err(io(&to))?;
            report.files += 1;
        }
    }
    Ok(())
}

/// Copies the ledger at `src` to `dest` with SQLite's backup API (a consistent state
/// while another process writes it), as a single file (journal mode DELETE).
pub fn backup_ledger(src: &Path, dest: &Path) -> Result<(), BackupError> {
    let sqlite = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BackupError::Sqlite { path, source }
    };
    let from =
        Connection::open_with_flags(src, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite(src))?;
    from.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(sqlite(src))?;
    let mut to = Connection::open(dest).map_err(sqlite(dest))?;
    {
        let backup = rusqlite::backup::Backup::new(&from, &mut to).map_err(sqlite(dest))?;
        backup
            .run_to_completion(256, std::time::Duration::from_millis(5), None)
            .map_err(sqlite(dest))?;
    }
    to.pragma_update(None, "journal_mode", "DELETE")
        .map_err(sqlite(dest))?;
    drop(to);
    std::fs::File::open(dest)
        .and_then(|f| f.sync_all())
        .map_err(io(dest))
}
