//! The durable store: typed files on confy (TOML) made crash-safe.
//!
//! confy writes a file by truncating it in place (confy #47), so a crash mid-write leaves
//! an empty or half file, and it follows a symlink planted at the path. [`Store::save`]
//! instead serializes with confy's TOML crate to a fresh temporary file in the same
//! directory (created new, never through a symlink, removed again if the save fails) and
//! renames it over the target, so the target is always either the old or the new version. A [`Durability::Durable`] save also fsyncs the temporary
//! file and the directory, and first keeps the previous file as `<name>.bak`.
//!
//! Machine-owned files ([`Persist::SEALED`]) end with a checksum line (a TOML comment), so
//! a truncated or altered file is detected even when what is left still parses.
//! A file a person may edit (not sealed) is never rolled back: when it does not parse,
//! or holds an unknown key or a bad value, [`Store::load`] refuses with
//! [`StoreError::Invalid`] (the line, the key) and leaves it as written; a missing one
//! loads the defaults, an empty one is an empty TOML document (the defaults, for a type
//! with `#[serde(default)]`). For a sealed file,
//! [`Store::load`] falls back to the `.bak` when the file is empty, truncated or garbage,
//! keeps the bad file as `<name>.corrupt-<unix time>`, and refuses with
//! [`StoreError::Unrecoverable`] when neither is usable, rather than resetting to defaults.
//!
//! Each store holds an exclusive lock on `.<name>.lock` for as long as it lives, so a file
//! never has two writers, in this process or another.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::Write;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::clock::unix_now;

use tokio::sync::Notify;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::checksum::fnv1a64;

/// The durable store could not load or save a file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// An I/O operation on a store file failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`"write"`, `"rename"`, ...).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// confy could not serialize or write the file.
    #[error("confy could not store {path}: {message}")]
    Confy {
        /// The file being written.
        path: PathBuf,
        /// confy's message.
        message: String,
    },
    /// The value could not be serialized to TOML.
    #[error("could not serialize {path}: {message}")]
    Serialize {
        /// The file being written.
        path: PathBuf,
        /// The serializer's message.
        message: String,
    },
    /// The file and its `.bak` are both unusable: refusing to start rather than resetting.
    #[error(
        "{path} is unusable ({reason}) and so is its backup ({backup}); refusing to start \
         rather than silently resetting to defaults: repair or remove the file"
    )]
    Unrecoverable {
        /// The primary file.
        path: PathBuf,
        /// Why the primary file was rejected.
        reason: String,
        /// Why the backup was rejected (or that it is missing).
        backup: String,
    },
    /// A file a person may edit (not sealed) does not parse or holds an unknown key or a
    /// bad value; it is left as written.
    #[error(
        "{path}: {reason}; the file is left as written: fix it, or remove it to start from \
         the defaults"
    )]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line where known.
        reason: String,
    },
    /// A blocking save task failed (panicked or was cancelled).
    #[error("a save task failed: {0}")]
    Task(String),
    /// Another writer holds the file's lock.
    #[error("{path} is locked by {holder}")]
    Locked {
        /// The file that is locked.
        path: PathBuf,
        /// Who holds it.
        holder: LockHolder,
    },
}

/// Who holds a store file's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockHolder {
    /// Another store in this process that did not let go in time (a plugin host that is
    /// still shutting down, or a second host on the same directory).
    ThisProcess,
    /// Another process (is another daemon using this config directory?).
    OtherProcess,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LockHolder::ThisProcess => {
                "another store in this process (a second plugin host on the same directory, \
                 or one that is still shutting down)"
            }
            LockHolder::OtherProcess => {
                "another process (is another daemon using this config directory?)"
            }
        })
    }
}

/// A type that can live in a [`Store`].
pub trait Persist: Serialize + DeserializeOwned + Default + Send + Sync + 'static {
    /// Whether the file carries a checksum line. True for machine-owned files (totals,
    /// history); false for preferences a user may edit by hand.
    const SEALED: bool;

    /// Whether the file is readable by its owner only (mode 0600): it holds secrets.
    const PRIVATE: bool = false;

    /// Checks a loaded value; an error makes the file count as corrupt.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

/// How hard a save works to survive a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// Temp file + rename, no fsync: survives the process being killed, not power loss.
    Fast,
    /// Also fsyncs the file and the directory, and keeps the previous file as `.bak`.
    Durable,
}

/// How [`Store::load`] came by its value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadOutcome {
    /// Neither the file nor a backup exists: defaults.
    Missing,
    /// The file was good.
    Loaded,
    /// The file was unusable and the `.bak` was used.
    Recovered {
        /// Why the file was rejected.
        reason: String,
        /// Where the rejected file was kept, if it existed.
        kept_as: Option<PathBuf>,
    },
}

/// Why a file could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejected {
    /// The file does not exist.
    Missing,
    /// The file exists and is unusable, for this reason.
    Bad(String),
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejected::Missing => f.write_str("missing"),
            Rejected::Bad(reason) => f.write_str(reason),
        }
    }
}

const TRAILER: &str = "# torrent-stats checksum fnv1a64:";

/// Lock files held by the stores of this process, and a wake-up for stores waiting on one.
struct Held {
    paths: Mutex<HashSet<PathBuf>>,
    released: Notify,
}

fn held() -> &'static Held {
    static HELD: OnceLock<Held> = OnceLock::new();
    HELD.get_or_init(|| Held {
        paths: Mutex::new(HashSet::new()),
        released: Notify::new(),
    })
}

/// A store's writer lock: an flock on `.<name>.lock`, released (and announced to waiting
/// stores of this process) on drop.
#[derive(Debug)]
struct WriterLock {
    file: Option<File>,
    path: PathBuf,
}

impl WriterLock {
    fn take(lock_path: PathBuf, path: &Path) -> Result<WriterLock, StoreError> {
        let file = open_lock_file(&lock_path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mine = held()
                    .paths
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains(&lock_path);
                return Err(StoreError::Locked {
                    path: path.to_path_buf(),
                    holder: if mine {
                        LockHolder::ThisProcess
                    } else {
                        LockHolder::OtherProcess
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(io("lock", &lock_path)(e)),
        }
        held()
            .paths
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(lock_path.clone());
        Ok(WriterLock {
            file: Some(file),
            path: lock_path,
        })
    }
}

/// Opens a lock file without following a symlink planted at its path: created new if
/// missing (`O_EXCL` never follows a symlink); an existing one must be a regular file, and
/// the file opened must be that same file (no swap between the check and the open). It
/// is opened without `O_CREAT`, so a dangling symlink creates nothing.
fn open_lock_file(lock_path: &Path) -> Result<File, StoreError> {
    use std::os::unix::fs::MetadataExt;
    match no_follow(OpenOptions::new().write(true).create_new(true)).open(lock_path) {
        Ok(file) => return Ok(file),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io("create lock", lock_path)(e)),
    }
    let not_a_file = || {
        io("open lock", lock_path)(std::io::Error::other(
            "not a regular file (a symlink or something else was put there); remove it",
        ))
    };
    let before = fs::symlink_metadata(lock_path).map_err(io("stat lock", lock_path))?;
    if !before.file_type().is_file() {
        return Err(not_a_file());
    }
    let file = no_follow(OpenOptions::new().write(true))
        .open(lock_path)
        .map_err(io("open lock", lock_path))?;
    let opened = file.metadata().map_err(io("stat lock", lock_path))?;
    if (opened.dev(), opened.ino()) != (before.dev(), before.ino()) {
        return Err(not_a_file());
    }
    Ok(file)
}

/// Adds `O_NOFOLLOW` (a symlink at the last component fails the open with `ELOOP`) when
/// the build has libc: the `rpc` and `rqbit` features bring nix, which names the flag's
/// architecture-specific value. The core library alone has no libc dependency and relies
/// on the callers' `O_EXCL` (never follows a symlink) and their file-type checks; std
/// does not name the flag.
pub(crate) fn no_follow(options: &mut OpenOptions) -> &mut OpenOptions {
    #[cfg(any(feature = "rpc", feature = "rqbit"))]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(nix::libc::O_NOFOLLOW);
    }
    options
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        drop(self.file.take()); // closing the file releases the flock
        held()
            .paths
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.path);
        held().released.notify_waiters();
    }
}

/// How long [`Store::open_waiting`] waits for a store of this process to let go.
pub const RELEASE_WAIT: Duration = Duration::from_secs(5);

/// A typed file with crash-safe saves, a `.bak` and recovery. One writer per file.
#[derive(Debug)]
pub struct Store<T> {
    path: PathBuf,
    bak: PathBuf,
    tmp: PathBuf,
    _lock: WriterLock,
    _marker: PhantomData<fn() -> T>,
}

impl<T: Persist> Store<T> {
    /// Opens the store like [`Store::open`], but if another store of this process holds the
    /// file (a plugin host dropped a moment ago whose plugin is still saving), waits up to
    /// `wait` for it to let go. A lock held by another process is refused at once.
    pub async fn open_waiting(
        path: impl Into<PathBuf>,
        wait: Duration,
    ) -> Result<Self, StoreError> {
        let path = path.into();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let released = held().released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            match Self::open(path.clone()) {
                Err(StoreError::Locked {
                    holder: LockHolder::ThisProcess,
                    ..
                }) if tokio::time::Instant::now() < deadline => {
                    let _ = tokio::time::timeout_at(deadline, released).await;
                }
                other => return other,
            }
        }
    }

    /// Opens the store for `path`, creating its directory and taking its writer lock.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let path = path.into();
        let dir = parent(&path);
        fs::create_dir_all(&dir).map_err(io("create directory", &dir))?;
        let name = file_name(&path);
        let lock = WriterLock::take(dir.join(format!(".{name}.lock")), &path)?;
        Ok(Store {
            bak: sibling(&path, ".bak"),
            tmp: dir.join(format!(".{name}.tmp")),
            path,
            _lock: lock,
            _marker: PhantomData,
        })
    }

    /// The file this store writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The backup kept by durable saves.
    pub fn backup_path(&self) -> &Path {
        &self.bak
    }

    /// Loads the file; a sealed one is recovered from its `.bak` if needed, one a person
    /// may edit is refused when bad (see the module docs).
    pub fn load(&self) -> Result<(T, LoadOutcome), StoreError> {
        let reason = match read::<T>(&self.path) {
            Ok(value) => return Ok((value, LoadOutcome::Loaded)),
            Err(reason) => reason,
        };
        if !T::SEALED {
            // A file a person may edit: never silently rolled back to its `.bak`, never
            // moved aside; a missing one means defaults (the user removed it).
            return match reason {
                Rejected::Missing => Ok((T::default(), LoadOutcome::Missing)),
                Rejected::Bad(reason) => Err(StoreError::Invalid {
                    path: self.path.clone(),
                    reason,
                }),
            };
        }
        let backup = match read::<T>(&self.bak) {
            Ok(value) => value,
            Err(Rejected::Missing) if reason == Rejected::Missing => {
                return Ok((T::default(), LoadOutcome::Missing))
            }
            Err(bak_reason) => {
                return Err(StoreError::Unrecoverable {
                    path: self.path.clone(),
                    reason: reason.to_string(),
                    backup: bak_reason.to_string(),
                })
            }
        };
        let kept_as = self.quarantine()?;
        tracing::warn!(
            file = %self.path.display(),
            %reason,
            kept_as = ?kept_as,
            "store file unusable, recovered from backup"
        );
        Ok((
            backup,
            LoadOutcome::Recovered {
                reason: reason.to_string(),
                kept_as,
            },
        ))
    }

    /// Moves an unusable file aside as `<name>.corrupt-<unix time>` (for a caller that
    /// starts afresh instead of refusing); returns where it went, if it existed.
    pub fn quarantine(&self) -> Result<Option<PathBuf>, StoreError> {
        if !self.path.exists() {
            return Ok(None);
        }
        let kept = sibling(&self.path, &format!(".corrupt-{}", unix_now() as u64));
        fs::rename(&self.path, &kept).map_err(io("rename", &self.path))?;
        Ok(Some(kept))
    }

    /// Keeps the current file under `<name>.<suffix>` (a hard link, so later saves leave
    /// it alone) and makes that durable; returns its path, or `None` if there is no file.
    pub fn keep_copy(&self, suffix: &str) -> Result<Option<PathBuf>, StoreError> {
        if !self.path.exists() {
            return Ok(None);
        }
        let copy = sibling(&self.path, &format!(".{suffix}"));
        let _ = fs::remove_file(&copy);
        fs::hard_link(&self.path, &copy).map_err(io("link", &copy))?;
        let dir = parent(&self.path);
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io("fsync directory", &dir))?;
        Ok(Some(copy))
    }

    /// Saves `value` atomically: serialized to TOML, written to a fresh temp file, then
    /// renamed over the file. A failed save removes its temp file (a disk that filled up
    /// keeps no partial file taking the last free space).
    pub fn save(&self, value: &T, durability: Durability) -> Result<(), StoreError> {
        let text = to_text(value).map_err(|message| StoreError::Serialize {
            path: self.path.clone(),
            message,
        })?;
        let tmp = TempFile::create(&self.tmp, T::PRIVATE)?;
        let result = self.write_and_rename(tmp, text.as_bytes(), durability);
        if result.is_err() {
            let _ = fs::remove_file(sibling(&self.tmp, ".bak"));
        }
        result
    }

    fn write_and_rename(
        &self,
        mut tmp: TempFile,
        bytes: &[u8],
        durability: Durability,
    ) -> Result<(), StoreError> {
        tmp.file.write_all(bytes).map_err(io("write", &self.tmp))?;
        if durability == Durability::Durable {
            tmp.file.sync_all().map_err(io("fsync", &self.tmp))?;
            if self.path.exists() {
                let bak_tmp = sibling(&self.tmp, ".bak");
                // link(2) neither follows a symlink at the new name (it fails) nor at the
                // old one (it links the symlink itself).
                let _ = fs::remove_file(&bak_tmp);
                fs::hard_link(&self.path, &bak_tmp).map_err(io("link", &bak_tmp))?;
                fs::rename(&bak_tmp, &self.bak).map_err(io("rename", &self.bak))?;
                // rename(2) does nothing when both names are already links to one file
                // (the `.bak` of a save that failed at its rename): drop the temp name.
                let _ = fs::remove_file(&bak_tmp);
            }
        }
        // rename(2) replaces whatever is at the target, a symlink included, never what a
        // symlink points to.
        fs::rename(&self.tmp, &self.path).map_err(io("rename", &self.path))?;
        tmp.renamed();
        if durability == Durability::Durable {
            let dir = parent(&self.path);
            File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(io("fsync directory", &dir))?;
        }
        Ok(())
    }
}

/// A store's temp file, created new for each save and removed again unless it was renamed
/// into place.
///
/// How it refuses symlinks: any leftover at the temp path (a crashed save's file, or a
/// symlink or file someone planted) is first removed with `remove_file`, which unlinks a
/// symlink itself and never its target; then the file is opened with `create_new`
/// (`O_CREAT | O_EXCL`), which fails on anything that appeared there in between, a
/// dangling or valid symlink included: POSIX requires `O_EXCL` to never follow a symlink
/// at the last component. [`no_follow`] adds `O_NOFOLLOW` where the build has libc.
struct TempFile {
    file: File,
    path: Option<PathBuf>,
}

impl TempFile {
    /// A fresh temp file at `path`; owner-only (0600) if `private`.
    fn create(path: &Path, private: bool) -> Result<TempFile, StoreError> {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("remove stale temp file", path)(e)),
        }
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        if private {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = no_follow(&mut options)
            .open(path)
            .map_err(io("create temp file", path))?;
        Ok(TempFile {
            file,
            path: Some(path.to_path_buf()),
        })
    }

    /// The file is in place: nothing to remove.
    fn renamed(&mut self) {
        self.path = None;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            if let Err(e) = fs::remove_file(&path) {
                tracing::warn!(file = %path.display(), error = %e, "could not remove a failed save's temp file");
            }
        }
    }
}

/// Reads and checks one file without locking, recovering or changing anything: what an
/// offline reader (the `totals` command) uses.
pub fn read<T: Persist>(path: &Path) -> Result<T, Rejected> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Rejected::Missing),
        Err(e) => return Err(Rejected::Bad(format!("unreadable: {e}"))),
    };
    parse(&bytes)
}

/// Checks and parses the content of one file: for a sealed type its checksum line, then
/// the TOML, then [`Persist::validate`]. What [`read`] does once it has the bytes.
///
/// An empty sealed file is a truncated one. An empty file a person may edit is an empty
/// TOML document, its defaults: it is also what a save of the defaults writes when every
/// field is optional and unset (`engine.conf` once the rate limits are cleared).
pub fn parse<T: Persist>(bytes: &[u8]) -> Result<T, Rejected> {
    if T::SEALED {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(Rejected::Bad("empty file".into()));
        }
        check_trailer(bytes)?;
    }
    let text =
        std::str::from_utf8(bytes).map_err(|e| Rejected::Bad(format!("not UTF-8 text: {e}")))?;
    let value: T = toml::from_str(text).map_err(|e| Rejected::Bad(toml_error(text, &e)))?;
    value.validate().map_err(Rejected::Bad)?;
    Ok(value)
}

/// A TOML error on one line: `line L, column C: message`.
pub(crate) fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', "; ");
    match e.span() {
        Some(span) => {
            let (line, column) = line_col(text, span.start);
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The text [`Store::save`] writes for `value`: pretty TOML, then for a sealed type its
/// checksum line. [`parse`] reads it back.
pub fn to_text<T: Persist>(value: &T) -> Result<String, String> {
    let text = toml::to_string_pretty(value).map_err(|e| e.to_string())?;
    Ok(if T::SEALED { sealed(&text) } else { text })
}

/// A sealed file's text for a TOML `body`: the body, then its checksum line.
pub fn sealed(body: &str) -> String {
    format!("{body}{TRAILER}{:016x}\n", fnv1a64(body.as_bytes()))
}

fn check_trailer(bytes: &[u8]) -> Result<(), Rejected> {
    let body_end = bytes[..bytes.len() - 1]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let last = std::str::from_utf8(&bytes[body_end..]).unwrap_or("");
    let Some(hex) = last.trim_end().strip_prefix(TRAILER) else {
        return Err(Rejected::Bad(
            "checksum line missing (truncated or edited?)".into(),
        ));
    };
    let expected = format!("{:016x}", fnv1a64(&bytes[..body_end]));
    if hex != expected {
        return Err(Rejected::Bad(format!(
            "checksum mismatch (file says {hex}, content hashes to {expected})"
        )));
    }
    Ok(())
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "store".into())
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { op, path, source }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
    struct Doc {
        count: u64,
        name: String,
    }
    impl Persist for Doc {
        const SEALED: bool = true;
    }

    #[test]
    fn round_trip_and_trailer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::<Doc>::open(dir.path().join("doc")).unwrap();
        assert_eq!(store.load().unwrap().1, LoadOutcome::Missing);
        let doc = Doc {
            count: 7,
            name: "x".into(),
        };
        store.save(&doc, Durability::Durable).unwrap();
        let text = fs::read_to_string(store.path()).unwrap();
        assert!(text.lines().last().unwrap().starts_with(TRAILER), "{text}");
        assert_eq!(store.load().unwrap(), (doc, LoadOutcome::Loaded));
    }

    /// A file a person edits.
    #[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Prefs {
        limit: u64,
    }
    impl Persist for Prefs {
        const SEALED: bool = false;
    }

    #[test]
    fn a_bad_edit_of_an_unsealed_file_is_refused_never_rolled_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::<Prefs>::open(dir.path().join("prefs.conf")).unwrap();
        store
            .save(&Prefs { limit: 1 }, Durability::Durable)
            .unwrap();
        store
            .save(&Prefs { limit: 2 }, Durability::Durable)
            .unwrap(); // .bak: limit 1
        for bad in ["limit = \"x\"\n", "limt = 3\n", "limit = [\n"] {
            fs::write(store.path(), bad).unwrap();
            match store.load() {
                Err(StoreError::Invalid { path, reason }) => {
                    assert_eq!(path, store.path());
                    assert!(!reason.is_empty());
                }
                other => panic!("{bad:?}: {other:?}"),
            }
            assert_eq!(fs::read_to_string(store.path()).unwrap(), bad);
        }
        assert!(fs::read_to_string(store.backup_path())
            .unwrap()
            .contains("limit = 1"));
        // Removed by the user: the defaults, not the backup.
        fs::remove_file(store.path()).unwrap();
        assert_eq!(
            store.load().unwrap(),
            (Prefs::default(), LoadOutcome::Missing)
        );
    }

    /// A person's file with every field optional, as `engine.conf`.
    #[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Limits {
        #[serde(skip_serializing_if = "Option::is_none")]
        max: Option<u64>,
    }
    impl Persist for Limits {
        const SEALED: bool = false;
    }

    #[test]
    fn an_empty_file_is_the_defaults_when_a_person_edits_it_and_truncated_when_sealed() {
        let dir = tempfile::tempdir().unwrap();
        // Saving the defaults writes an empty file, which must load again.
        let limits = Store::<Limits>::open(dir.path().join("limits.conf")).unwrap();
        limits
            .save(&Limits { max: Some(5) }, Durability::Durable)
            .unwrap();
        limits
            .save(&Limits::default(), Durability::Durable)
            .unwrap();
        assert_eq!(fs::read_to_string(limits.path()).unwrap(), "");
        assert_eq!(
            limits.load().unwrap(),
            (Limits::default(), LoadOutcome::Loaded)
        );
        fs::write(limits.path(), "\n  \n").unwrap();
        assert_eq!(limits.load().unwrap().0, Limits::default());
        // A sealed file emptied is a truncated one: recovered from its .bak.
        let doc = Store::<Doc>::open(dir.path().join("doc")).unwrap();
        let saved = Doc {
            count: 3,
            name: "y".into(),
        };
        doc.save(&saved, Durability::Durable).unwrap();
        doc.save(&saved, Durability::Durable).unwrap();
        fs::write(doc.path(), "\n").unwrap();
        let (value, outcome) = doc.load().unwrap();
        assert_eq!(value, saved);
        assert!(
            matches!(&outcome, LoadOutcome::Recovered { reason, .. } if reason == "empty file"),
            "{outcome:?}"
        );
    }

    #[test]
    fn a_symlink_at_the_temp_path_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        let dangling = outside.path().join("never");
        let store = Store::<Doc>::open(dir.path().join("doc")).unwrap();
        let doc = Doc {
            count: 1,
            name: "a".into(),
        };
        for target in [&victim, &dangling] {
            std::os::unix::fs::symlink(target, dir.path().join(".doc.tmp")).unwrap();
            store.save(&doc, Durability::Durable).unwrap();
            assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
            assert!(!dangling.exists());
            assert_eq!(store.load().unwrap().0, doc);
        }
    }

    #[test]
    fn a_failed_save_removes_its_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::<Doc>::open(dir.path().join("doc")).unwrap();
        // A directory where the file goes: the rename fails after the write.
        fs::create_dir(dir.path().join("doc")).unwrap();
        fs::write(dir.path().join("doc").join("x"), "").unwrap();
        for durability in [Durability::Fast, Durability::Durable] {
            assert!(store.save(&Doc::default(), durability).is_err());
            let left: Vec<_> = fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(".tmp"))
                .collect();
            assert!(left.is_empty(), "{left:?}");
        }
    }

    #[test]
    fn a_symlink_at_the_lock_path_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("created?");
        std::os::unix::fs::symlink(&target, dir.path().join(".doc.lock")).unwrap();
        let err = Store::<Doc>::open(dir.path().join("doc")).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        assert!(!target.exists(), "the symlink's target was created");
    }

    #[test]
    fn second_writer_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::<Doc>::open(dir.path().join("doc")).unwrap();
        let second = Store::<Doc>::open(dir.path().join("doc"));
        assert!(matches!(
            second,
            Err(StoreError::Locked {
                holder: LockHolder::ThisProcess,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn a_waiting_open_gets_the_file_when_the_holder_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("doc");
        let first = Store::<Doc>::open(&path).unwrap();
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(first);
        });
        let second = Store::<Doc>::open_waiting(&path, Duration::from_secs(5)).await;
        assert!(second.is_ok(), "{second:?}");
        release.await.unwrap();
        let third = Store::<Doc>::open_waiting(&path, Duration::from_millis(20)).await;
        assert!(matches!(third, Err(StoreError::Locked { .. })));
    }

    #[test]
    fn every_truncation_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::<Doc>::open(dir.path().join("doc")).unwrap();
        store
            .save(
                &Doc {
                    count: 123456,
                    name: "abc".into(),
                },
                Durability::Fast,
            )
            .unwrap();
        let full = fs::read(store.path()).unwrap();
        let probe = dir.path().join("probe");
        for cut in 0..full.len() - 1 {
            fs::write(&probe, &full[..cut]).unwrap();
            assert!(read::<Doc>(&probe).is_err(), "cut at {cut} accepted");
        }
    }
}
