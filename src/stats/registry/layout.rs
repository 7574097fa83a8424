//! Where named sources keep their files: the move of a single-source config directory
//! into the first source's `sources/<name>/`, and directories with totals but no entry in
//! the sources file (kept as retired sources).

use std::path::{Path, PathBuf};

use crate::source::{SourceName, SOURCES_DIR};
use crate::stats::{HISTORY_FILE, TOTALS_FILE};

/// Moves a single-source config directory's files (`stats.totals`, `stats.history` and
/// their backups) into `sources/<name>/`: the first start of a daemon with named sources
/// on a directory written before them. The totals file moves last, so a crash half-way
/// is finished by the next start.
pub(super) fn migrate(root: &Path, name: &SourceName) -> Result<(), String> {
    let old = root.join(TOTALS_FILE);
    let new_dir = root.join(SOURCES_DIR).join(name.as_str());
    let bak = |p: &Path| {
        let mut s = p.as_os_str().to_owned();
        s.push(".bak");
        PathBuf::from(s)
    };
    if !old.exists() && !bak(&old).exists() {
        return Ok(());
    }
    if new_dir.join(TOTALS_FILE).exists() {
        return Err(format!(
            "both {} and {} exist: the totals of before named sources, and source {name}'s; \
             move one of them away (or import it with `torrent-stats import`) and start again",
            old.display(),
            new_dir.join(TOTALS_FILE).display()
        ));
    }
    std::fs::create_dir_all(&new_dir).map_err(|e| format!("{}: {e}", new_dir.display()))?;
    for file in [HISTORY_FILE, TOTALS_FILE] {
        let from = root.join(file);
        for (from, to) in [
            (bak(&from), bak(&new_dir.join(file))),
            (from.clone(), new_dir.join(file)),
        ] {
            if from.exists() {
                std::fs::rename(&from, &to)
                    .map_err(|e| format!("moving {} to {}: {e}", from.display(), to.display()))?;
            }
        }
    }
    for dir in [&new_dir, &root.to_path_buf()] {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| format!("fsync {}: {e}", dir.display()))?;
    }
    tracing::info!(source = %name, dir = %new_dir.display(), "the totals of before named sources are now source {name}'s");
    Ok(())
}

/// Retired sources found as directories under `sources/` without an entry in the set
/// (an entry deleted from the file by hand): their totals still count.
pub(super) fn orphans(root: &Path, known: &[SourceName]) -> Vec<SourceName> {
    let Ok(dir) = std::fs::read_dir(root.join(SOURCES_DIR)) else {
        return Vec::new();
    };
    let mut out: Vec<SourceName> = dir
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join(TOTALS_FILE).exists())
        .filter_map(|e| SourceName::new(&e.file_name().to_string_lossy()).ok())
        .filter(|n| !known.contains(n))
        .collect();
    out.sort();
    out
}
