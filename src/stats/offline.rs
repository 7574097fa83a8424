//! The all-time totals read from the files, without the daemon: what
//! `torrent-stats totals --offline` shows. Works while the daemon is stopped; a running
//! daemon's file may lag it by one poll.

use std::path::{Path, PathBuf};

use crate::source::{SourceName, SOURCES_DIR};
use crate::stats::totals::Accumulator;
use crate::stats::TOTALS_FILE;
use crate::store::{self, Rejected};

/// Totals read from `stats.totals`, or from its `.bak` when the file is unusable.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct OfflineTotals {
    /// The totals, last session counters and identity, and when they were saved.
    pub accumulator: Accumulator,
    /// Why `stats.totals` was unusable, when these come from its backup.
    pub from_backup: Option<String>,
}

/// The totals could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OfflineError {
    /// No totals yet.
    #[error("no totals yet: {} does not exist", .0.display())]
    Missing(PathBuf),
    /// The file and its backup are both unusable.
    #[error("{} is unusable ({reason}) and so is its backup ({backup})", path.display())]
    Unusable {
        /// The totals file.
        path: PathBuf,
        /// Why it is unusable.
        reason: String,
        /// Why its backup is.
        backup: String,
    },
}

/// Reads the totals in `config_dir` (the file, or its backup if the file is unusable);
/// changes nothing on disk.
pub fn read_totals(config_dir: &Path) -> Result<OfflineTotals, OfflineError> {
    let path = config_dir.join(TOTALS_FILE);
    let reason = match store::read::<Accumulator>(&path) {
        Ok(accumulator) => {
            return Ok(OfflineTotals {
                accumulator,
                from_backup: None,
            })
        }
        Err(Rejected::Missing) => return Err(OfflineError::Missing(path)),
        Err(reason) => reason.to_string(),
    };
    let mut bak = path.clone().into_os_string();
    bak.push(".bak");
    match store::read::<Accumulator>(bak.as_ref()) {
        Ok(accumulator) => Ok(OfflineTotals {
            accumulator,
            from_backup: Some(reason),
        }),
        Err(backup) => Err(OfflineError::Unusable {
            path,
            reason,
            backup: backup.to_string(),
        }),
    }
}

/// The totals of every source of a daemon's config directory, by name: each
/// `sources/<name>/` (named sources), and the config directory's own `stats.totals` as
/// `""` when it has one (a directory of before named sources, or an embedder's single
/// source). Sorted by name; empty when there are no totals at all.
pub fn read_sources(config_dir: &Path) -> Vec<(String, Result<OfflineTotals, OfflineError>)> {
    let mut out = Vec::new();
    let own = config_dir.join(TOTALS_FILE);
    let mut own_bak = own.clone().into_os_string();
    own_bak.push(".bak");
    if own.exists() || Path::new(&own_bak).exists() {
        out.push((String::new(), read_totals(config_dir)));
    }
    if let Ok(dir) = std::fs::read_dir(config_dir.join(SOURCES_DIR)) {
        let mut named: Vec<(String, PathBuf)> = dir
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                SourceName::new(&name).ok().map(|_| (name, e.path()))
            })
            .filter(|(_, path)| path.join(TOTALS_FILE).exists())
            .collect();
        named.sort();
        for (name, path) in named {
            out.push((name, read_totals(&path)));
        }
    }
    out
}
