//! Typed, in-process access to the Stats plugin: [`StatsHandle`] and its errors.
//!
//! Every operation is a typed value from here down to the poll task; the exported
//! `stats.*` methods (`methods.rs`) decode their JSON arguments and call the same
//! operations on a [`Link`].

use std::sync::Arc;

use tokio::sync::watch;

use crate::session::SourceError;
use crate::stats::config::{ConfigChange, ConfigFileError, StatsConfig};
use crate::stats::poller::{ChangeError, Health, Import, Snapshot, SourceSnapshot};
use crate::stats::registry::{Registry, SourceChangeError};
use crate::stats::totals::Counters;

use super::Shared;

/// What a [`StatsHandle`] call can fail with.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum StatsError {
    /// The plugin is not enabled.
    #[error("the Stats plugin is not running")]
    NotRunning,
    /// The source did not answer a poll (or left out a required counter).
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The change was refused (a value out of range, totals imported already, or a save
    /// that failed); nothing changed.
    #[error(transparent)]
    Refused(#[from] ChangeError),
    /// The hand-edited `stats.conf` cannot be used; the running preferences stay.
    #[error("{0}; the running preferences stay")]
    ConfigFile(#[from] ConfigFileError),
    /// A change of the sources was refused; nothing changed.
    #[error(transparent)]
    Sources(#[from] SourceChangeError),
    /// A hand-edited file (`quotas.toml`) cannot be used; what was read last stays.
    #[error("{0}")]
    Reload(String),
}

/// Typed, in-process access to a [`Stats`](super::Stats) plugin: the same operations as
/// the exported `stats.*` methods without JSON, a [`watch`](StatsHandle::watch)
/// subscription to a snapshot that changes on every poll, and
/// [`poll_now`](StatsHandle::poll_now).
///
/// ```
/// use std::sync::Arc;
/// use torrent_stats::{ConfigChange, PluginHost, SimSource, Stats};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// # let dir = std::env::temp_dir().join(format!("ts-doc-handle-{}", std::process::id()));
/// let source = Arc::new(SimSource::new(1000, 4000, 5));
/// let host = PluginHost::open(source, &dir).unwrap();
/// let stats = Arc::new(Stats::new());
/// let handle = stats.handle();
/// host.register(stats).await.unwrap();
/// host.enable("Stats").await.unwrap();
///
/// let totals = handle.poll_now().await.unwrap(); // counts what the source reports now
/// assert!(handle.totals().unwrap().total_upload >= totals.total_upload); // it keeps counting
/// let config = handle.set_config(ConfigChange::new().update_interval(1)).await.unwrap();
/// assert_eq!(config.update_interval, 1);
/// assert!(handle.set_config(ConfigChange::new().length(3)).await.is_err()); // 10..=10000
/// let mut snapshots = handle.watch();
/// snapshots.changed().await.unwrap(); // the next poll
/// assert!(snapshots.borrow().health.source_up);
/// host.shutdown().await;
/// # drop(host); std::fs::remove_dir_all(&dir).unwrap();
/// # });
/// ```
#[derive(Clone)]
pub struct StatsHandle {
    pub(super) shared: Arc<Shared>,
}

impl std::fmt::Debug for StatsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsHandle")
            .field("running", &self.is_running())
            .finish()
    }
}

impl StatsHandle {
    fn link(&self) -> Result<Arc<Registry>, StatsError> {
        self.shared
            .link
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(StatsError::NotRunning)
    }

    /// Whether the plugin is enabled.
    pub fn is_running(&self) -> bool {
        self.link().is_ok()
    }

    /// All-time totals: every source's, retired ones included.
    pub fn totals(&self) -> Result<Counters, StatsError> {
        Ok(self.link()?.totals())
    }

    /// The current session's counters: the sum of each active source's.
    pub fn session_totals(&self) -> Result<Counters, StatsError> {
        Ok(self.link()?.session_totals())
    }

    /// Current preferences.
    pub fn config(&self) -> Result<StatsConfig, StatsError> {
        Ok(self.link()?.config())
    }

    /// Source and file health, combined over the sources (what `stats.get_status`
    /// returns).
    pub fn status(&self) -> Result<Health, StatsError> {
        Ok(self.link()?.snapshot(true).health)
    }

    /// Each source: name, kind, description, totals, session, rates, health.
    pub fn sources(&self) -> Result<Vec<SourceSnapshot>, StatsError> {
        Ok(self.link()?.snapshot(true).sources)
    }

    /// The quotas in force (feature `ledger`): what `stats.get_quotas` lists.
    #[cfg(feature = "ledger")]
    #[cfg_attr(docsrs, doc(cfg(feature = "ledger")))]
    pub fn quotas(&self) -> Result<Vec<crate::stats::ledger::quota::Quota>, StatsError> {
        Ok(self.link()?.quotas().quotas())
    }

    /// Each quota's state at its last evaluation (feature `ledger`): the `status` of
    /// `stats.get_quotas`.
    #[cfg(feature = "ledger")]
    #[cfg_attr(docsrs, doc(cfg(feature = "ledger")))]
    pub fn quota_statuses(
        &self,
    ) -> Result<Vec<crate::stats::ledger::quota::QuotaStatus>, StatsError> {
        Ok(self.link()?.quotas().statuses())
    }

    /// Re-reads `quotas.toml` (feature `ledger`; SIGHUP): the quotas in force are
    /// replaced, or, for a file that cannot be used, stay, and the error says where and why.
    #[cfg(feature = "ledger")]
    #[cfg_attr(docsrs, doc(cfg(feature = "ledger")))]
    pub async fn reload_quotas(&self) -> Result<usize, StatsError> {
        self.link()?
            .quotas()
            .reload()
            .await
            .map_err(StatsError::Reload)
    }

    /// The latest snapshot and every new one: it changes after every poll (answered or
    /// not), preference change, reset and import. Works while disabled too (the snapshot
    /// then says `running: false`).
    pub fn watch(&self) -> watch::Receiver<Snapshot> {
        self.shared.snapshots.subscribe()
    }

    /// Validates and applies `change` (all or nothing, saved before it applies); returns
    /// the new preferences.
    pub async fn set_config(&self, change: ConfigChange) -> Result<StatsConfig, StatsError> {
        let link = self.link()?;
        link.set_config(change).await?;
        Ok(link.config())
    }

    /// Reads `stats.conf` again (what SIGHUP does) and applies it if it is valid; the file
    /// is not rewritten. If it is not valid, the running preferences stay and the error
    /// says where and why. Returns the preferences now in force.
    pub async fn reload_config(&self) -> Result<StatsConfig, StatsError> {
        let link = self.link()?;
        link.reload_config().await?;
        Ok(link.config())
    }

    /// Polls every source now (after any poll in flight), counts what they report and
    /// saves the totals; returns the combined totals. Call it before restarting your
    /// engine: bytes moved since the last poll are then counted, not lost.
    pub async fn poll_now(&self) -> Result<Counters, StatsError> {
        self.link()?.poll_now(None).await
    }

    /// Zeroes the all-time totals of every active source (each file before is kept);
    /// returns the totals before.
    pub async fn reset_totals(&self) -> Result<Counters, StatsError> {
        self.link()?.reset_totals(None).await
    }

    /// Adds another program's all-time totals once (what `stats.import_totals` does) to
    /// the first active source; returns the new combined totals.
    pub async fn import_totals(&self, import: Import) -> Result<Counters, StatsError> {
        self.link()?.import_totals(import, None).await
    }

    /// Adds a source named `name` counting `spec` (or resumes a retired one of that name
    /// with its totals); saved in the sources file first. No other source stops. Returns
    /// the source after its first poll (within 5 s): its health says whether it answers.
    pub async fn add_source(&self, name: &str, spec: &str) -> Result<SourceSnapshot, StatsError> {
        self.link()?.add_source(name, spec).await
    }

    /// Retires a source: polled once more and saved, then no longer polled; its totals
    /// stay in the combined figures. Returns its totals.
    pub async fn remove_source(&self, name: &str) -> Result<Counters, StatsError> {
        self.link()?.remove_source(name).await
    }

    /// Deletes a retired source's files: its totals leave the combined figures. Returns
    /// the totals deleted.
    pub async fn purge_source(&self, name: &str) -> Result<Counters, StatsError> {
        self.link()?.purge_source(name).await
    }

    /// Applies the sources file as it is now (what SIGHUP does): returns what changed,
    /// or each refusal (the sources concerned stay as they were).
    pub async fn reload_sources(&self) -> Result<Vec<String>, Vec<String>> {
        match self.link() {
            Ok(link) => link.reload_sources().await,
            Err(e) => Err(vec![e.to_string()]),
        }
    }
}
