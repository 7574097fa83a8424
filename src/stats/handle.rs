//! Typed, in-process access to the Stats plugin: [`StatsHandle`] and its errors.
//!
//! Every operation is a typed value from here down to the poll task; the exported
//! `stats.*` methods (`methods.rs`) decode their JSON arguments and call the same
//! operations on a [`Link`].

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

use crate::session::SourceError;
use crate::stats::config::{ConfigChange, ConfigFileError, StatsConfig};
use crate::stats::poller::{ChangeError, Command, Health, Import, SharedView, Snapshot, View};
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
}

/// What handles and exports reach while the plugin is enabled: the poll task's state
/// (read) and its command queue (changes).
#[derive(Clone)]
pub(crate) struct Link {
    pub(crate) view: SharedView,
    pub(crate) commands: mpsc::Sender<Command>,
}

impl Link {
    /// Sends a command made around a reply channel and waits for the answer.
    async fn ask<T, E: Into<StatsError>>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, E>>) -> Command,
    ) -> Result<T, StatsError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| StatsError::NotRunning)?;
        answer
            .await
            .map_err(|_| StatsError::NotRunning)?
            .map_err(Into::into)
    }

    /// Reads the current state.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&View) -> R) -> R {
        f(&self.view.read())
    }

    /// Validates and applies `change`, all or nothing, saved before it applies.
    pub(crate) async fn set_config(&self, change: ConfigChange) -> Result<(), StatsError> {
        self.ask(|reply| Command::SetConfig(change, reply)).await
    }

    /// Zeroes the all-time totals; returns the totals before.
    pub(crate) async fn reset_totals(&self) -> Result<Counters, StatsError> {
        self.ask(Command::Reset).await
    }

    /// Adds another program's totals once; returns the new totals.
    pub(crate) async fn import_totals(&self, import: Import) -> Result<Counters, StatsError> {
        self.ask(|reply| Command::Import(import, reply)).await
    }

    /// Polls now, counts and saves; returns the totals.
    pub(crate) async fn poll_now(&self) -> Result<Counters, StatsError> {
        self.ask(Command::PollNow).await
    }

    /// Reads `stats.conf` again and applies it if it is valid.
    pub(crate) async fn reload_config(&self) -> Result<(), StatsError> {
        self.ask(Command::Reload).await
    }
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
    fn link(&self) -> Result<Link, StatsError> {
        self.shared
            .link
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(StatsError::NotRunning)
    }

    fn read<R>(&self, f: impl FnOnce(&View) -> R) -> Result<R, StatsError> {
        Ok(self.link()?.read(f))
    }

    /// Whether the plugin is enabled.
    pub fn is_running(&self) -> bool {
        self.link().is_ok()
    }

    /// All-time totals.
    pub fn totals(&self) -> Result<Counters, StatsError> {
        self.read(|v| v.acc.totals)
    }

    /// The current session's counters.
    pub fn session_totals(&self) -> Result<Counters, StatsError> {
        self.read(|v| v.acc.last)
    }

    /// Current preferences.
    pub fn config(&self) -> Result<StatsConfig, StatsError> {
        self.read(|v| v.config.clone())
    }

    /// Source and file health (what `stats.get_status` returns).
    pub fn status(&self) -> Result<Health, StatsError> {
        self.read(|v| v.health.clone())
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
        self.link()?.set_config(change).await?;
        self.config()
    }

    /// Reads `stats.conf` again (what SIGHUP does) and applies it if it is valid; the file
    /// is not rewritten. If it is not valid, the running preferences stay and the error
    /// says where and why. Returns the preferences now in force.
    pub async fn reload_config(&self) -> Result<StatsConfig, StatsError> {
        self.link()?.reload_config().await?;
        self.config()
    }

    /// Polls the source now (after any poll in flight), counts what it reports and saves
    /// the totals; returns them. Call it before restarting your engine: bytes moved since
    /// the last poll are then counted, not lost.
    pub async fn poll_now(&self) -> Result<Counters, StatsError> {
        self.link()?.poll_now().await
    }

    /// Zeroes the all-time totals (the file before is kept); returns the totals before.
    pub async fn reset_totals(&self) -> Result<Counters, StatsError> {
        self.link()?.reset_totals().await
    }

    /// Adds another program's all-time totals once (what `stats.import_totals` does);
    /// returns the new totals.
    pub async fn import_totals(&self, import: Import) -> Result<Counters, StatsError> {
        self.link()?.import_totals(import).await
    }
}
