//! Moving a torrent's files to another directory (librqbit 9.1 cannot): renamed where the
//! file system allows, else copied and then removed; put back as they were on a failure.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::torrent::TorrentError;

fn bad(path: &Path, e: impl std::fmt::Display) -> TorrentError {
    TorrentError::BadPath(format!("{}: {e}", path.display()))
}

/// Moves one file, across file systems by copy and remove.
fn move_file(from: &Path, to: &Path) -> std::io::Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::rename(from, to) {
        Err(e) if e.kind() == ErrorKind::CrossesDevices => {
            std::fs::copy(from, to)?;
            std::fs::remove_file(from)
        }
        other => other,
    }
}

/// Moves the files `files` (paths relative to `from`) that exist to the same relative
/// paths under `to` (created if missing). A file already at a destination refuses the
/// move before anything moves; a failure half-way puts the moved files back. Empty
/// directories the files leave are removed, `from` itself too if `remove_from`.
pub(super) fn move_files(
    from: &Path,
    to: &Path,
    files: &[PathBuf],
    remove_from: bool,
) -> Result<(), TorrentError> {
    std::fs::create_dir_all(to).map_err(|e| bad(to, e))?;
    let present: Vec<&PathBuf> = files.iter().filter(|f| from.join(f).exists()).collect();
    if let Some(taken) = present.iter().find(|f| to.join(f).exists()) {
        return Err(TorrentError::BadPath(format!(
            "{} exists already; nothing was moved",
            to.join(taken).display()
        )));
    }
    let mut moved: Vec<&PathBuf> = Vec::new();
    for f in &present {
        if let Err(e) = move_file(&from.join(f), &to.join(f)) {
            for back in moved.iter().rev() {
                if let Err(e) = move_file(&to.join(back), &from.join(back)) {
                    tracing::error!(file = %to.join(back).display(), error = %e, "could not move a file back");
                }
            }
            return Err(bad(
                &from.join(f),
                format!("not moved ({e}); nothing was moved"),
            ));
        }
        moved.push(f);
    }
    for f in &present {
        let mut dir = f.parent();
        while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
            if std::fs::remove_dir(from.join(d)).is_err() {
                break; // not empty (or gone): its parents are not empty either
            }
            dir = d.parent();
        }
    }
    if remove_from {
        let _ = std::fs::remove_dir(from); // only if empty
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> Vec<PathBuf> {
        vec![
            PathBuf::from("a.bin"),
            PathBuf::from("sub/b.bin"),
            PathBuf::from("missing"),
        ]
    }

    #[test]
    fn moves_the_files_there_and_leaves_no_empty_directory() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("old"), dir.path().join("new/deeper"));
        std::fs::create_dir_all(from.join("sub")).unwrap();
        std::fs::write(from.join("a.bin"), b"a").unwrap();
        std::fs::write(from.join("sub/b.bin"), b"b").unwrap();
        move_files(&from, &to, &files(), true).unwrap();
        assert_eq!(std::fs::read(to.join("a.bin")).unwrap(), b"a");
        assert_eq!(std::fs::read(to.join("sub/b.bin")).unwrap(), b"b");
        assert!(!to.join("missing").exists());
        assert!(!from.exists(), "the emptied directory stays");
    }

    #[test]
    fn a_file_at_the_destination_refuses_the_move_with_nothing_moved() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("old"), dir.path().join("new"));
        std::fs::create_dir_all(from.join("sub")).unwrap();
        std::fs::create_dir_all(to.join("sub")).unwrap();
        std::fs::write(from.join("a.bin"), b"a").unwrap();
        std::fs::write(from.join("sub/b.bin"), b"b").unwrap();
        std::fs::write(to.join("sub/b.bin"), b"theirs").unwrap();
        let err = move_files(&from, &to, &files(), true).unwrap_err();
        assert!(
            matches!(&err, TorrentError::BadPath(m) if m.contains("exists already")),
            "{err}"
        );
        assert_eq!(std::fs::read(from.join("a.bin")).unwrap(), b"a");
        assert_eq!(std::fs::read(to.join("sub/b.bin")).unwrap(), b"theirs");
        assert!(!to.join("a.bin").exists());
    }

    #[test]
    fn a_failure_half_way_puts_the_moved_files_back() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("old"), dir.path().join("new"));
        std::fs::create_dir_all(from.join("sub")).unwrap();
        std::fs::write(from.join("a.bin"), b"a").unwrap();
        std::fs::write(from.join("sub/b.bin"), b"b").unwrap();
        // A file where the second file's directory must go.
        std::fs::create_dir_all(&to).unwrap();
        std::fs::write(to.join("sub"), b"in the way").unwrap();
        let err = move_files(&from, &to, &files(), true).unwrap_err();
        assert!(matches!(err, TorrentError::BadPath(_)), "{err}");
        assert_eq!(std::fs::read(from.join("a.bin")).unwrap(), b"a");
        assert_eq!(std::fs::read(from.join("sub/b.bin")).unwrap(), b"b");
        assert!(!to.join("a.bin").exists());
    }
}
