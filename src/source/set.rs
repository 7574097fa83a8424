//! Named sources: [`SourceName`], the sources file (`sources.toml` in the config
//! directory, the one persisted truth of what a daemon counts) and the [`SourceSet`] built
//! from it.
//!
//! ```toml
//! [[source]]
//! name = "engine"
//! spec = "engine"
//!
//! [[source]]
//! name = "nas"
//! spec = "transmission://me:secret@nas.local:9091"
//!
//! [[source]]
//! name = "old-box"
//! spec = "deluge://localclient:pw@10.0.0.5:58846"
//! retired = true
//! ```
//! The file is written with mode 0600 (it holds the sidecars' passwords) and replaced
//! atomically. A retired source is not polled; its totals stay in the combined figures.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::spec::{BuildError, BuiltSource, SourceContext, SourceSpec, SourceSpecError, ENGINE};
use crate::session::SessionSource;
use crate::store::{Durability, Persist, Rejected, Store, StoreError};
use crate::torrent::TorrentEngine;

/// The sources file in the config directory.
pub const SOURCES_FILE: &str = "sources.toml";

/// The directory under the config directory that holds one directory of files per
/// named source (`sources/<name>/stats.totals`, …).
pub const SOURCES_DIR: &str = "sources";

/// A source's short, stable name: `[a-z0-9][a-z0-9_-]{0,31}`. It is the metrics label,
/// the key in every API and the directory of the source's files.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SourceName(String);

/// A name that is not `[a-z0-9][a-z0-9_-]{0,31}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad source name {name:?}: a name is 1 to 32 characters of a-z, 0-9, '_' and '-', \
     starting with a letter or a digit"
)]
pub struct SourceNameError {
    /// The name as given (at most 64 characters of it).
    pub name: String,
}

impl SourceName {
    /// Checks and wraps `name`.
    pub fn new(name: &str) -> Result<SourceName, SourceNameError> {
        let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        let valid = (1..=32).contains(&name.len())
            && name.starts_with(ok)
            && name.chars().all(|c| ok(c) || c == '_' || c == '-');
        if valid {
            Ok(SourceName(name.to_string()))
        } else {
            Err(SourceNameError {
                name: name.chars().take(64).collect(),
            })
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SourceName {
    type Error = SourceNameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        SourceName::new(&s)
    }
}

impl From<SourceName> for String {
    fn from(n: SourceName) -> String {
        n.0
    }
}

impl fmt::Display for SourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One source of the sources file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceEntry {
    /// Its name.
    pub name: SourceName,
    /// Its specification (`engine`, `sim:…`, `deluge://…`, `transmission://…`, …),
    /// password included.
    pub spec: String,
    /// Removed: no longer polled; its totals stay in the combined figures.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retired: bool,
}

/// The content of the sources file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourcesFile {
    /// The sources, in the order they were added.
    #[serde(default, rename = "source")]
    pub sources: Vec<SourceEntry>,
}

impl Persist for SourcesFile {
    const SEALED: bool = false;
    const PRIVATE: bool = true;

    fn validate(&self) -> Result<(), String> {
        check(&self.sources).map_err(|e| e.to_string())
    }
}

impl SourcesFile {
    /// The entry named `name`.
    pub fn get(&self, name: &SourceName) -> Option<&SourceEntry> {
        self.sources.iter().find(|e| &e.name == name)
    }
}

/// What is wrong with a set of sources.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceSetError {
    /// A bad name in `NAME=SPEC` or in the file.
    #[error(transparent)]
    Name(#[from] SourceNameError),
    /// A specification that cannot be understood.
    #[error("source {name}: {error}")]
    Spec {
        /// The source.
        name: String,
        /// Why.
        error: SourceSpecError,
    },
    /// Two sources of one kind without names.
    #[error(
        "two {kind} sources without a name: name each, e.g. --source home={kind}... \
         --source nas={kind}... (a name is the metrics label and the key in every API)"
    )]
    Unnamed {
        /// The kind.
        kind: &'static str,
    },
    /// The same name twice.
    #[error("two sources are named {name}: names must be unique")]
    Duplicate {
        /// The name.
        name: SourceName,
    },
    /// More than one embedded engine.
    #[error(
        "sources {first} and {second} are both the embedded engine: a daemon runs at most one"
    )]
    TwoEngines {
        /// The first.
        first: SourceName,
        /// The second.
        second: SourceName,
    },
    /// The sources file cannot be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// The sources file cannot be used as it is.
    #[error("{path}: {reason}")]
    Unusable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A source did not start.
    #[error("source {name}: {error}")]
    Build {
        /// The source.
        name: SourceName,
        /// Why.
        error: BuildError,
    },
}

/// Checks names are unique and at most one active source is the engine; every active
/// spec must parse.
fn check(entries: &[SourceEntry]) -> Result<(), SourceSetError> {
    let mut engine: Option<&SourceName> = None;
    for (i, e) in entries.iter().enumerate() {
        if entries[..i].iter().any(|o| o.name == e.name) {
            return Err(SourceSetError::Duplicate {
                name: e.name.clone(),
            });
        }
        if e.retired {
            continue;
        }
        let kind = kind_of(&e.name, &e.spec)?;
        if kind == ENGINE {
            if let Some(first) = engine {
                return Err(SourceSetError::TwoEngines {
                    first: first.clone(),
                    second: e.name.clone(),
                });
            }
            engine = Some(&e.name);
        }
    }
    Ok(())
}

fn kind_of(name: &SourceName, spec: &str) -> Result<&'static str, SourceSetError> {
    SourceSpec::parse(spec)
        .map(|s| s.kind())
        .map_err(|error| SourceSetError::Spec {
            name: name.to_string(),
            error,
        })
}

/// Splits a `--source` argument: `NAME=SPEC`, or a bare `SPEC` (named after its kind).
/// A `=` that comes after a `:` belongs to the spec (`sim:up=1MiB/s`).
pub fn split_named(arg: &str) -> Result<(Option<SourceName>, &str), SourceNameError> {
    match arg.split_once('=') {
        Some((name, spec)) if !name.contains(':') && !name.contains('/') => {
            Ok((Some(SourceName::new(name)?), spec))
        }
        _ => Ok((None, arg)),
    }
}

/// Names the sources given on a command line: each `NAME=SPEC` keeps its name, a bare
/// spec is named after its kind; two unnamed of one kind, or a name twice, are errors.
pub fn name_sources(args: &[String]) -> Result<Vec<SourceEntry>, SourceSetError> {
    let mut out: Vec<SourceEntry> = Vec::new();
    let mut unnamed_kinds: Vec<&'static str> = Vec::new();
    for arg in args {
        let (name, spec) = split_named(arg)?;
        let name = match name {
            Some(n) => n,
            None => {
                let kind = SourceSpec::parse(spec).map(|s| s.kind()).map_err(|error| {
                    SourceSetError::Spec {
                        name: "(unnamed)".into(),
                        error,
                    }
                })?;
                if unnamed_kinds.contains(&kind) {
                    return Err(SourceSetError::Unnamed { kind });
                }
                unnamed_kinds.push(kind);
                SourceName::new(kind).expect("kind names are valid source names")
            }
        };
        if out.iter().any(|e| e.name == name) {
            return Err(SourceSetError::Duplicate { name });
        }
        out.push(SourceEntry {
            name,
            spec: spec.to_string(),
            retired: false,
        });
    }
    check(&out)?;
    Ok(out)
}

/// One source of a [`SourceSet`].
#[derive(Clone)]
pub struct Member {
    /// Its entry in the sources file.
    pub entry: SourceEntry,
    /// Its kind (`engine`, `sim`, `deluge`, `transmission`, `qbittorrent`, `rqbit`).
    pub kind: &'static str,
    /// The running source (`None` for a retired one).
    pub built: Option<BuiltSource>,
}

impl fmt::Debug for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Member")
            .field("name", &self.entry.name)
            .field("kind", &self.kind)
            .field("retired", &self.entry.retired)
            .finish()
    }
}

/// The sources a daemon counts: the sources file, what it named, each active one built;
/// and the context to build more at run time.
pub struct SourceSet {
    dir: PathBuf,
    file: Store<SourcesFile>,
    members: Vec<Member>,
    context: SourceContext,
}

impl fmt::Debug for SourceSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceSet")
            .field("dir", &self.dir)
            .field("members", &self.members)
            .finish()
    }
}

impl SourceSet {
    /// Opens the sources file of `context.config_dir`, adds or updates the sources
    /// `given` (the command line's, named with [`name_sources`]), uses `default` when the
    /// result has no active source, saves the file if that changed it, and builds every
    /// active source (the embedded engine at most once).
    pub async fn open(
        given: Vec<SourceEntry>,
        default: &str,
        context: SourceContext,
    ) -> Result<SourceSet, SourceSetError> {
        let dir = context.config_dir.clone();
        let path = dir.join(SOURCES_FILE);
        let file_error = |source| SourceSetError::File {
            path: path.clone(),
            source,
        };
        let file = Store::<SourcesFile>::open(&path).map_err(file_error)?;
        // A file people edit: refused with why, never recovered or rewritten from a backup.
        let (mut content, mut changed) = match crate::store::read::<SourcesFile>(&path) {
            Ok(content) => (content, false),
            Err(Rejected::Missing) => (SourcesFile::default(), true),
            Err(Rejected::Bad(reason)) => {
                return Err(SourceSetError::Unusable {
                    path,
                    reason: format!("{reason}; the file was left as it is: fix it and start again"),
                })
            }
        };
        for entry in given {
            match content.sources.iter_mut().find(|e| e.name == entry.name) {
                Some(e) if e.spec == entry.spec && !e.retired => {}
                Some(e) => {
                    tracing::info!(source = %e.name, resumed = e.retired, "the command line changes a source of the sources file");
                    *e = entry;
                    changed = true;
                }
                None => {
                    content.sources.push(entry);
                    changed = true;
                }
            }
        }
        if !content.sources.iter().any(|e| !e.retired) {
            let mut named = name_sources(&[default.to_string()])?;
            let entry = named.remove(0);
            match content.sources.iter_mut().find(|e| e.name == entry.name) {
                Some(e) => *e = entry,
                None => content.sources.push(entry),
            }
            changed = true;
        }
        check(&content.sources)?;
        if changed {
            file.save(&content, Durability::Durable)
                .map_err(file_error)?;
        }
        let mut set = SourceSet {
            dir,
            file,
            members: Vec::new(),
            context,
        };
        for entry in content.sources {
            let member = set.build(entry).await?;
            set.members.push(member);
        }
        Ok(set)
    }

    /// Builds `entry` (nothing for a retired one).
    pub(crate) async fn build(&self, entry: SourceEntry) -> Result<Member, SourceSetError> {
        let spec = SourceSpec::parse(&entry.spec).map_err(|error| SourceSetError::Spec {
            name: entry.name.to_string(),
            error,
        })?;
        let kind = spec.kind();
        if entry.retired {
            return Ok(Member {
                entry,
                kind,
                built: None,
            });
        }
        let built = spec
            .build(&self.context)
            .await
            .map_err(|error| SourceSetError::Build {
                name: entry.name.clone(),
                error,
            })?;
        Ok(Member {
            entry,
            kind,
            built: Some(built),
        })
    }

    /// The config directory.
    pub fn config_dir(&self) -> &Path {
        &self.dir
    }

    /// Every source, in the file's order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The member named `name`.
    pub(crate) fn member(&self, name: &SourceName) -> Option<&Member> {
        self.members.iter().find(|m| &m.entry.name == name)
    }

    /// The embedded engine, if a source is one.
    pub fn engine(&self) -> Option<Arc<dyn TorrentEngine>> {
        self.members
            .iter()
            .find_map(|m| m.built.as_ref().and_then(|b| b.engine.clone()))
    }

    /// The source `core.get_session_status` answers from: the engine, else the first
    /// active source.
    pub fn primary(&self) -> Option<Arc<dyn SessionSource>> {
        let active = || self.members.iter().filter_map(|m| m.built.as_ref());
        active()
            .find(|b| b.engine.is_some())
            .or_else(|| active().next())
            .map(|b| b.source.clone())
    }

    /// Replaces or adds `member` and saves the file (before anything else changes: if the
    /// save fails, nothing changed).
    pub(crate) fn put(&mut self, member: Member) -> Result<(), SourceSetError> {
        let mut members = self.members.clone();
        match members
            .iter_mut()
            .find(|m| m.entry.name == member.entry.name)
        {
            Some(m) => *m = member,
            None => members.push(member),
        }
        self.commit(members)
    }

    /// Drops `name` from the file.
    pub(crate) fn forget(&mut self, name: &SourceName) -> Result<(), SourceSetError> {
        let members = self
            .members
            .iter()
            .filter(|m| &m.entry.name != name)
            .cloned()
            .collect();
        self.commit(members)
    }

    fn commit(&mut self, members: Vec<Member>) -> Result<(), SourceSetError> {
        let content = SourcesFile {
            sources: members.iter().map(|m| m.entry.clone()).collect(),
        };
        check(&content.sources)?;
        self.file
            .save(&content, Durability::Durable)
            .map_err(|source| SourceSetError::File {
                path: self.file.path().to_path_buf(),
                source,
            })?;
        self.members = members;
        Ok(())
    }

    /// Reads the sources file as a person left it (for SIGHUP), refused with why.
    pub(crate) fn read_file(&self) -> Result<SourcesFile, String> {
        crate::store::read::<SourcesFile>(self.file.path())
            .map_err(|e| format!("{}: {e}", self.file.path().display()))
    }

    /// The directory of `name`'s files.
    pub fn files_dir(&self, name: &SourceName) -> PathBuf {
        self.dir.join(SOURCES_DIR).join(name.as_str())
    }

    /// Stops the engine, if a source is one (after the daemon stopped: the final poll
    /// still reads it).
    pub async fn stop(&self) {
        for m in &self.members {
            if let Some(b) = &m.built {
                b.stop().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_lowercase_and_stable() {
        for good in ["engine", "nas", "seedbox-2", "a", "0_x", &"a".repeat(32)] {
            assert!(SourceName::new(good).is_ok(), "{good}");
        }
        for bad in ["", "NAS", "-x", "_x", "a b", "a.b", &"a".repeat(33), "ü"] {
            assert!(SourceName::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn arguments_are_named_after_their_kind_unless_named() {
        let args = |a: &[&str]| name_sources(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let named = args(&["sim:up=1,down=2", "b=sim:up=3,down=4"]).unwrap();
        assert_eq!(named[0].name.as_str(), "sim");
        assert_eq!(
            (named[1].name.as_str(), named[1].spec.as_str()),
            ("b", "sim:up=3,down=4")
        );
        let e = args(&["sim:up=1,down=2", "sim:up=3,down=4"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("two sim sources without a name"), "{e}");
        let e = args(&["a=sim:up=1,down=2", "a=sim:up=3,down=4"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("two sources are named a"), "{e}");
        let e = args(&["Big=sim:up=1,down=2"]).unwrap_err().to_string();
        assert!(e.contains("bad source name \"Big\""), "{e}");
        let e = args(&["x=ftp://h"]).unwrap_err().to_string();
        assert!(e.starts_with("source x: bad source"), "{e}");
    }
}
