//! The running plugin's sources: one poll task per active source (its own accumulator,
//! session identity, health, history and files), retired sources' frozen figures, the
//! preferences they share, and the combined figures.
//!
//! A source's poll task never waits for another's: a slow or dead source only delays its
//! own polls. Changes of the set (add, remove, purge, SIGHUP) are serialized by one lock
//! and saved to the sources file before they apply.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, Weak};

use tokio::sync::{mpsc, oneshot, watch, Mutex};
use tokio::task::JoinHandle;
use tracing::Instrument;

mod changes;
mod layout;

use crate::clock::unix_now;
use crate::plugin::{PluginError, Shutdown, ShutdownTrigger};
use crate::session::{SessionSource, SourceError};
use crate::source::{Member, SourceName, SourceSet, SourceSetError};
use crate::stats::config::{self, ConfigChange, ConfigFileError, StatsConfig};
use crate::stats::history::History;
use crate::stats::poller::{
    self, blocking, ChangeError, Command, Health, Import, Rates, SharedView, Snapshot,
    SourceSnapshot, View,
};
use crate::stats::totals::{Accumulator, Counters};
use crate::stats::{StatsError, HISTORY_FILE, TOTALS_FILE};
use crate::store::{Durability, Store, StoreError, RELEASE_WAIT};

/// The window in which scheduled polls of several sources share one published snapshot.
const COALESCE: std::time::Duration = std::time::Duration::from_millis(100);

/// How long an add waits for the new source's first poll.
const FIRST_POLL_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// A running poll task.
struct Running {
    stop: ShutdownTrigger,
    /// Ends with the final save's error, if it failed.
    task: JoinHandle<Result<(), String>>,
    commands: mpsc::Sender<Command>,
}

/// One source of the running plugin.
pub(crate) struct Entry {
    pub(crate) name: SourceName,
    pub(crate) kind: String,
    pub(crate) view: SharedView,
    run: Option<Running>,
}

impl Entry {
    /// Whether it is retired (not polled).
    pub(crate) fn retired(&self) -> bool {
        self.run.is_none()
    }
}

/// What went wrong with a change of the set of sources; nothing of it applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceChangeError {
    /// This plugin counts one source given by its embedder, not a set.
    #[error(
        "this daemon counts one source given by its program; sources cannot be added or removed"
    )]
    Fixed,
    /// No source of that name.
    #[error("no source is named {0}; stats.get_sources lists them")]
    Unknown(String),
    /// A source of that name is active.
    #[error("a source named {0} is counting already; remove it first, or choose another name")]
    Exists(String),
    /// Only a retired source can be purged.
    #[error("source {0} is active: remove it first (stats.remove_source), then purge it")]
    Active(String),
    /// The embedded engine starts with the daemon.
    #[error(
        "the embedded engine starts with the daemon: add it to the sources file (or \
         --source engine) and restart; a daemon runs at most one"
    )]
    Engine,
    /// The set or its file refused it.
    #[error("{0}")]
    Refused(String),
}

impl From<SourceSetError> for SourceChangeError {
    fn from(e: SourceSetError) -> Self {
        SourceChangeError::Refused(e.to_string())
    }
}

/// Where the plugin's sources come from.
pub(crate) enum Origin {
    /// One source given by the embedder: its files are the config directory's.
    Single(Arc<dyn SessionSource>),
    /// A daemon's named set: each source's files in `sources/<name>/`.
    Set(Arc<Mutex<SourceSet>>),
}

/// The running plugin: what handles and exports reach.
pub(crate) struct Registry {
    conf: Store<StatsConfig>,
    config: RwLock<StatsConfig>,
    entries: RwLock<Vec<Entry>>,
    origin: Origin,
    /// Serializes preference and set changes.
    ops: Mutex<()>,
    snapshots: Arc<watch::Sender<Snapshot>>,
    /// When a snapshot was last published, and whether one is due (see
    /// [`Registry::request_publish`]).
    last_publish: std::sync::Mutex<Option<std::time::Instant>>,
    publish_pending: AtomicBool,
    /// The origin of every source's poll grid.
    epoch: tokio::time::Instant,
    host_shutdown: Shutdown,
    /// The calendar ledger every source counts into.
    #[cfg(feature = "ledger")]
    ledger: Arc<crate::stats::ledger::Ledger>,
    /// The quotas, evaluated by their own task.
    #[cfg(feature = "ledger")]
    quotas: Arc<crate::stats::quota_watch::QuotaWatch>,
    /// Stops the quotas' task.
    #[cfg(feature = "ledger")]
    quota_stop: ShutdownTrigger,
    this: Weak<Registry>,
}

/// What the plugin's context gives the registry beyond the files.
#[cfg_attr(not(feature = "ledger"), allow(dead_code))]
pub(crate) struct Extras {
    /// The event bus (quota thresholds).
    pub(crate) events: crate::event::EventBus,
    /// The daemon's embedded engine (quota actions).
    pub(crate) engine: Option<Arc<dyn crate::torrent::TorrentEngine>>,
}

/// Why opening a source's files failed.
fn store_failed(name: &SourceName, e: StoreError) -> PluginError {
    PluginError::Failed {
        plugin: "Stats".into(),
        message: format!("source {name}: {e}"),
    }
}

/// Loads the history for `config`: derived data, so an unusable file is kept aside and an
/// empty history started, as is one recorded at another poll interval.
fn load_history(store: &Store<History>, config: &StatsConfig) -> Result<History, StoreError> {
    let mut history = match store.load() {
        Ok((h, _)) => h,
        Err(e @ StoreError::Unrecoverable { .. }) => {
            let kept = store.quarantine()?;
            tracing::warn!(error = %e, kept_as = ?kept, "history unusable; starting an empty one");
            History::new(config.update_interval, config.length)
        }
        Err(e) => return Err(e),
    };
    if history.base_interval != config.update_interval {
        history = History::new(config.update_interval, config.length);
    } else {
        history.set_length(config.length);
    }
    Ok(history)
}

/// Opens the calendar ledger in `root` with the settings of its `ledger.toml`.
#[cfg(feature = "ledger")]
async fn open_ledger(root: &Path) -> Result<Arc<crate::stats::ledger::Ledger>, PluginError> {
    use crate::stats::ledger::{Ledger, LedgerSettings};
    let root = root.to_path_buf();
    let opened = tokio::task::spawn_blocking(move || {
        let settings = LedgerSettings::read(&root)?;
        let zone = settings.zone().map_err(|e| e.to_string())?;
        Ledger::open(&root, zone, settings.retention()).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r);
    opened.map(Arc::new).map_err(|message| PluginError::Failed {
        plugin: "Stats".into(),
        message: format!("the calendar ledger: {message}"),
    })
}

/// Reads the quotas of `root`'s `quotas.toml`.
#[cfg(feature = "ledger")]
fn open_quotas(
    root: &Path,
    ledger: &Arc<crate::stats::ledger::Ledger>,
    extras: Extras,
) -> Result<Arc<crate::stats::quota_watch::QuotaWatch>, PluginError> {
    crate::stats::quota_watch::QuotaWatch::open(root, ledger.clone(), extras.events, extras.engine)
        .map(Arc::new)
        .map_err(|message| PluginError::Failed {
            plugin: "Stats".into(),
            message: format!("the quotas: {message}; fix the file and start again"),
        })
}

impl Registry {
    /// Starts the quotas' task: an evaluation every poll interval, a snapshot when a
    /// quota's state changed.
    #[cfg(feature = "ledger")]
    fn watch_quotas(self: &Arc<Self>, stop: Shutdown) {
        for q in self.quotas.quotas() {
            let Some(source) = &q.source else { continue };
            if !self.entries().iter().any(|e| &e.name == source) {
                tracing::warn!(quota = q.name, %source, "the quota counts a source this daemon does not have: it stays at 0");
            }
        }
        let weak = Arc::downgrade(self);
        let every = std::time::Duration::from_secs(self.config().update_interval.max(1));
        tokio::spawn(crate::stats::quota_watch::run(
            self.quotas.clone(),
            every,
            stop,
            move || {
                if let Some(r) = weak.upgrade() {
                    r.request_publish(false);
                }
            },
        ));
    }

    /// The calendar ledger.
    #[cfg(feature = "ledger")]
    pub(crate) fn ledger(&self) -> &Arc<crate::stats::ledger::Ledger> {
        &self.ledger
    }

    /// The quotas.
    #[cfg(feature = "ledger")]
    pub(crate) fn quotas(&self) -> &Arc<crate::stats::quota_watch::QuotaWatch> {
        &self.quotas
    }

    /// Opens every source's files, starts a poll task per active source.
    pub(crate) async fn start(
        root: &Path,
        conf: Store<StatsConfig>,
        config: StatsConfig,
        origin: Origin,
        snapshots: Arc<watch::Sender<Snapshot>>,
        host_shutdown: Shutdown,
        extras: Extras,
    ) -> Result<Arc<Registry>, PluginError> {
        #[cfg(feature = "ledger")]
        let ledger = open_ledger(root).await?;
        #[cfg(feature = "ledger")]
        let quotas = open_quotas(root, &ledger, extras)?;
        #[cfg(not(feature = "ledger"))]
        let _ = extras;
        #[cfg(feature = "ledger")]
        let (quota_stop, quota_signal) = Shutdown::new();
        let registry = Arc::new_cyclic(|this| Registry {
            conf,
            config: RwLock::new(config),
            entries: RwLock::new(Vec::new()),
            origin,
            ops: Mutex::new(()),
            snapshots,
            last_publish: std::sync::Mutex::new(None),
            publish_pending: AtomicBool::new(false),
            epoch: tokio::time::Instant::now(),
            host_shutdown,
            #[cfg(feature = "ledger")]
            ledger,
            #[cfg(feature = "ledger")]
            quotas: quotas.clone(),
            #[cfg(feature = "ledger")]
            quota_stop,
            this: this.clone(),
        });
        let failed = |message: String| PluginError::Failed {
            plugin: "Stats".into(),
            message,
        };
        match &registry.origin {
            Origin::Single(source) => {
                let name = SourceName::new(source.kind())
                    .unwrap_or_else(|_| SourceName::new("source").expect("a valid name"));
                let entry = registry
                    .open_entry(&name, source.kind(), Some(source.clone()), root)
                    .await?;
                registry.entries_mut().push(entry);
            }
            Origin::Set(set) => {
                let set = set.lock().await;
                if let Some(first) = set.members().iter().find(|m| m.built.is_some()) {
                    let (root, name) = (root.to_path_buf(), first.entry.name.clone());
                    tokio::task::spawn_blocking(move || layout::migrate(&root, &name))
                        .await
                        .map_err(|e| failed(e.to_string()))?
                        .map_err(failed)?;
                }
                let known: Vec<SourceName> =
                    set.members().iter().map(|m| m.entry.name.clone()).collect();
                for member in set.members() {
                    let entry = registry.open_member(&set, member).await?;
                    registry.entries_mut().push(entry);
                }
                for name in layout::orphans(root, &known) {
                    tracing::warn!(source = %name, "sources/{name} has totals but no entry in the sources file: kept as a retired source");
                    let dir = set.files_dir(&name);
                    let entry = registry.open_entry(&name, "unknown", None, &dir).await?;
                    registry.entries_mut().push(entry);
                }
            }
        }
        #[cfg(feature = "ledger")]
        registry.watch_quotas(quota_signal);
        registry.publish();
        Ok(registry)
    }

    fn entries_mut(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Entry>> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether every poll task has ended (a host dropped without a shutdown stops them).
    pub(crate) fn finished(&self) -> bool {
        self.entries()
            .iter()
            .filter_map(|e| e.run.as_ref())
            .all(|r| r.task.is_finished())
    }

    /// Reads every entry.
    pub(crate) fn entries(&self) -> std::sync::RwLockReadGuard<'_, Vec<Entry>> {
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The preferences in force.
    pub(crate) fn config(&self) -> StatsConfig {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    async fn open_member(&self, set: &SourceSet, member: &Member) -> Result<Entry, PluginError> {
        let source = member.built.as_ref().map(|b| b.source.clone());
        let dir = set.files_dir(&member.entry.name);
        self.open_entry(&member.entry.name, member.kind, source, &dir)
            .await
    }

    /// Opens a source's files in `dir` and, for an active source, starts its poll task.
    async fn open_entry(
        &self,
        name: &SourceName,
        kind: &str,
        source: Option<Arc<dyn SessionSource>>,
        dir: &Path,
    ) -> Result<Entry, PluginError> {
        let totals = Store::<Accumulator>::open_waiting(dir.join(TOTALS_FILE), RELEASE_WAIT)
            .await
            .map_err(|e| store_failed(name, e))?;
        let history_store = Store::<History>::open_waiting(dir.join(HISTORY_FILE), RELEASE_WAIT)
            .await
            .map_err(|e| store_failed(name, e))?;
        let config = self.config();
        let (acc, history, totals, history_store) = tokio::task::spawn_blocking(move || {
            let acc = totals.load().map(|(a, _)| a)?;
            let history = load_history(&history_store, &config)?;
            Ok::<_, StoreError>((acc, history, totals, history_store))
        })
        .await
        .map_err(|e| store_failed(name, StoreError::Task(e.to_string())))?
        .map_err(|e| store_failed(name, e))?;
        #[cfg(feature = "ledger")]
        let book = {
            let (ledger, key, acc) = (self.ledger.clone(), name.to_string(), acc.clone());
            tokio::task::spawn_blocking(move || {
                crate::stats::ledger::SourceLedger::open(ledger, &key, &acc, unix_now() as i64)
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(|message| PluginError::Failed {
                plugin: "Stats".into(),
                message: format!("source {name}: the calendar ledger: {message}"),
            })?
        };
        let description = source
            .as_ref()
            .map(|s| s.describe())
            .unwrap_or_else(|| format!("retired {kind} source"));
        tracing::info!(
            source = %name,
            description = %description,
            active = source.is_some(),
            upload = acc.totals.total_upload,
            download = acc.totals.total_download,
            payload_upload = acc.totals.total_payload_upload,
            payload_download = acc.totals.total_payload_download,
            "source opened"
        );
        let view = SharedView::new(View {
            acc,
            history,
            config: self.config(),
            health: Health {
                source: description,
                ..Health::default()
            },
            rates: Rates::default(),
        });
        let run = source.map(|source| {
            let (tx, rx) = mpsc::channel(16);
            let files = poller::Files {
                totals,
                history: history_store,
            };
            let this = self.this.clone();
            let publish: poller::Publish = Arc::new(move |now| {
                if let Some(registry) = this.upgrade() {
                    registry.request_publish(now);
                }
            });
            let (stop, stop_signal) = Shutdown::new();
            let poller = poller::Poller::new(source, view.clone(), files, publish, self.epoch);
            #[cfg(feature = "ledger")]
            let poller = poller.with_ledger(book);
            // Every log line of the poll task names its source.
            let span = tracing::info_span!("source", name = %name);
            let task = tokio::spawn(
                poller
                    .run(rx, self.host_shutdown.clone(), stop_signal)
                    .instrument(span),
            );
            Running {
                stop,
                task,
                commands: tx,
            }
        });
        Ok(Entry {
            name: name.clone(),
            kind: kind.to_string(),
            view,
            run,
        })
    }

    /// The snapshot of every source and the combined figures.
    pub(crate) fn snapshot(&self, running: bool) -> Snapshot {
        let entries = self.entries();
        let sources: Vec<SourceSnapshot> = entries
            .iter()
            .map(|e| {
                e.view
                    .read()
                    .source_snapshot(e.name.as_str(), &e.kind, e.retired())
            })
            .collect();
        let mut s = Snapshot {
            running,
            config: self.config(),
            at: unix_now(),
            ..Snapshot::default()
        };
        for src in &sources {
            s.totals = s.totals.saturating_add(src.totals);
            s.session_totals = s.session_totals.saturating_add(src.session_totals);
            let r = &mut s.rates;
            r.upload_rate += src.rates.upload_rate;
            r.download_rate += src.rates.download_rate;
            r.payload_upload_rate += src.rates.payload_upload_rate;
            r.payload_download_rate += src.rates.payload_download_rate;
            r.num_peers += src.rates.num_peers;
            r.num_connections += src.rates.num_connections;
            r.dht_nodes += src.rates.dht_nodes;
        }
        s.health = combined_health(&sources);
        let mut active = sources.iter().filter(|s| !s.retired);
        if let (Some(only), None) = (active.next(), active.next()) {
            s.session = only.session.clone();
        }
        s.sources = sources;
        #[cfg(feature = "ledger")]
        {
            s.quotas = self.quotas.statuses();
        }
        s
    }

    /// Publishes the current snapshot.
    pub(crate) fn publish(&self) {
        self.snapshots.send_replace(self.snapshot(true));
    }

    /// Publishes now if `now` or if nothing was published in the last [`COALESCE`];
    /// otherwise once at the end of that window. Sources polled at the same moment
    /// (every source ticks on its own interval from the same start) then cost one
    /// snapshot, not one each: building a snapshot is linear in the sources.
    fn request_publish(&self, now: bool) {
        let wait = {
            let mut last = self.last_publish.lock().unwrap_or_else(|e| e.into_inner());
            let t = std::time::Instant::now();
            match *last {
                Some(l) if !now && t.duration_since(l) < COALESCE => {
                    Some(COALESCE - t.duration_since(l))
                }
                _ => {
                    *last = Some(t);
                    None
                }
            }
        };
        let Some(wait) = wait else {
            return self.publish();
        };
        if self.publish_pending.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.this.clone();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            if let Some(registry) = this.upgrade() {
                registry.publish_pending.store(false, Ordering::Release);
                *registry
                    .last_publish
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(std::time::Instant::now());
                registry.publish();
            }
        });
    }

    /// The all-time totals of every source, retired ones included.
    pub(crate) fn totals(&self) -> Counters {
        self.entries().iter().fold(Counters::default(), |t, e| {
            t.saturating_add(e.view.read().acc.totals)
        })
    }

    /// The sum of the active sources' current sessions.
    pub(crate) fn session_totals(&self) -> Counters {
        self.entries()
            .iter()
            .filter(|e| !e.retired())
            .fold(Counters::default(), |t, e| {
                t.saturating_add(e.view.read().acc.last)
            })
    }

    /// The active sources' command queues, or one source's (`None`: all).
    fn targets(
        &self,
        source: Option<&str>,
    ) -> Result<Vec<(SourceName, mpsc::Sender<Command>)>, StatsError> {
        let entries = self.entries();
        let mut out = Vec::new();
        for e in entries.iter() {
            if source.is_some_and(|s| s != e.name.as_str()) {
                continue;
            }
            match &e.run {
                Some(run) => out.push((e.name.clone(), run.commands.clone())),
                None if source.is_some() => {
                    return Err(StatsError::Sources(SourceChangeError::Refused(format!(
                        "source {} is retired: add it again to count it",
                        e.name
                    ))))
                }
                None => {}
            }
        }
        match source {
            Some(s) if out.is_empty() => Err(StatsError::Sources(SourceChangeError::Unknown(
                s.to_string(),
            ))),
            _ => Ok(out),
        }
    }

    /// Validates and applies a preference change to every source, saved first.
    pub(crate) async fn set_config(&self, change: ConfigChange) -> Result<(), StatsError> {
        let _op = self.ops.lock().await;
        let current = self.config();
        let next = current.with_change(change).map_err(ChangeError::from)?;
        if next == current {
            return Ok(());
        }
        let saved = next.clone();
        let this = self.this.upgrade().ok_or(StatsError::NotRunning)?;
        blocking(move || this.conf.save(&saved, Durability::Durable))
            .await
            .map_err(|e| ChangeError::Save {
                what: "preferences not changed",
                message: e.to_string(),
            })?;
        self.apply_config(next).await;
        Ok(())
    }

    fn conf_path(&self) -> PathBuf {
        self.conf.path().to_path_buf()
    }

    async fn apply_config(&self, next: StatsConfig) {
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = next.clone();
        for (_, commands) in self.targets(None).unwrap_or_default() {
            let (reply, done) = oneshot::channel();
            if commands
                .send(Command::Apply(next.clone(), reply))
                .await
                .is_ok()
            {
                let _ = done.await;
            }
        }
        for e in self.entries().iter().filter(|e| e.retired()) {
            e.view.write_config(next.clone());
        }
        tracing::info!(config = ?next, "preferences changed");
        self.publish();
    }

    /// Reads `stats.conf` again and applies it if it is valid.
    pub(crate) async fn reload_config(&self) -> Result<(), StatsError> {
        let _op = self.ops.lock().await;
        let path = self.conf_path();
        let read = tokio::task::spawn_blocking({
            let path = path.clone();
            move || config::read_file(&path)
        })
        .await
        .unwrap_or_else(|e| {
            Err(ConfigFileError {
                path: path.clone(),
                line: None,
                key: None,
                message: format!("the read task failed: {e}"),
            })
        });
        let next = match read {
            Ok(Some(next)) => next,
            Ok(None) => {
                tracing::warn!(file = %path.display(), "stats.conf is gone; the running preferences stay");
                return Ok(());
            }
            Err(e) => {
                tracing::error!(error = %e, "stats.conf not reloaded; the running preferences stay");
                return Err(e.into());
            }
        };
        if next == self.config() {
            tracing::info!(config = ?next, "stats.conf reloaded: unchanged");
            return Ok(());
        }
        tracing::info!(file = %path.display(), "stats.conf reloaded");
        self.apply_config(next).await;
        Ok(())
    }

    /// Asks each target and waits for every answer (concurrently: a slow source does not
    /// hold up the others' answers).
    async fn ask_all<T: Send + 'static, E: Into<StatsError> + Send + 'static>(
        &self,
        source: Option<&str>,
        command: impl Fn(oneshot::Sender<Result<T, E>>) -> Command,
    ) -> Result<Vec<(SourceName, Result<T, StatsError>)>, StatsError> {
        let mut waits = Vec::new();
        for (name, commands) in self.targets(source)? {
            let (reply, answer) = oneshot::channel();
            let sent = commands.send(command(reply)).await;
            waits.push(tokio::spawn(async move {
                if sent.is_err() {
                    return (name, Err(StatsError::NotRunning));
                }
                let result = match answer.await {
                    Ok(r) => r.map_err(Into::into),
                    Err(_) => Err(StatsError::NotRunning),
                };
                (name, result)
            }));
        }
        let mut out = Vec::new();
        for w in waits {
            out.push(w.await.map_err(|_| StatsError::NotRunning)?);
        }
        Ok(out)
    }

    /// Polls every active source (or one) now; answers with the combined totals, or the
    /// first source's error.
    pub(crate) async fn poll_now(&self, source: Option<&str>) -> Result<Counters, StatsError> {
        let answers = self.ask_all(source, Command::PollNow).await?;
        let many = answers.len() > 1;
        for (name, result) in answers {
            if let Err(e) = result {
                return Err(match e {
                    StatsError::Source(SourceError::Failed(m)) if many => {
                        StatsError::Source(SourceError::Failed(format!("source {name}: {m}")))
                    }
                    StatsError::Source(SourceError::Unavailable(m)) if many => {
                        StatsError::Source(SourceError::Unavailable(format!("source {name}: {m}")))
                    }
                    other => other,
                });
            }
        }
        Ok(match source {
            Some(_) => self.totals_of(source),
            None => self.totals(),
        })
    }

    fn totals_of(&self, source: Option<&str>) -> Counters {
        self.entries()
            .iter()
            .filter(|e| source.is_none_or(|s| s == e.name.as_str()))
            .fold(Counters::default(), |t, e| {
                t.saturating_add(e.view.read().acc.totals)
            })
    }

    /// Zeroes the all-time totals of every active source (or one); answers with the
    /// totals before.
    pub(crate) async fn reset_totals(&self, source: Option<&str>) -> Result<Counters, StatsError> {
        let _op = self.ops.lock().await;
        let mut before = Counters::default();
        for (_, result) in self.ask_all(source, Command::Reset).await? {
            before = before.saturating_add(result?);
        }
        self.publish();
        Ok(before)
    }

    /// Adds another program's totals once to `source` (default: the first active one).
    pub(crate) async fn import_totals(
        &self,
        import: Import,
        source: Option<&str>,
    ) -> Result<Counters, StatsError> {
        let _op = self.ops.lock().await;
        let target = match source {
            Some(s) => s.to_string(),
            None => {
                let entries = self.entries();
                let first = entries.iter().find(|e| !e.retired());
                first
                    .map(|e| e.name.to_string())
                    .ok_or(StatsError::NotRunning)?
            }
        };
        let mut answers = self
            .ask_all(Some(&target), |reply| {
                Command::Import(import.clone(), reply)
            })
            .await?;
        let (_, result) = answers.pop().ok_or(StatsError::NotRunning)?;
        result?;
        self.publish();
        Ok(self.totals())
    }

    /// Stops every poll task (each polls once more and saves); the errors of the final
    /// saves that failed.
    pub(crate) async fn stop(&self) -> Vec<String> {
        #[cfg(feature = "ledger")]
        self.quota_stop.trigger();
        let names: Vec<SourceName> = self.entries().iter().map(|e| e.name.clone()).collect();
        let mut failed = Vec::new();
        let mut stops = Vec::new();
        for name in names {
            let run = {
                let mut entries = self.entries_mut();
                entries
                    .iter_mut()
                    .find(|e| e.name == name)
                    .and_then(|e| e.run.take())
            };
            if let Some(run) = run {
                run.stop.trigger();
                stops.push((name, run.task));
            }
        }
        for (name, task) in stops {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failed.push(format!("source {name}: {e}")),
                Err(e) => failed.push(format!("source {name}: poll task ended abnormally: {e}")),
            }
        }
        self.snapshots.send_replace(self.snapshot(false));
        failed
    }
}

/// The health of several sources as one: up while every active source is up; the first
/// failure named; the oldest checkpoint (what a power cut could lose goes back to it).
fn combined_health(sources: &[SourceSnapshot]) -> Health {
    let active: Vec<&SourceSnapshot> = sources.iter().filter(|s| !s.retired).collect();
    if let [only] = active.as_slice() {
        return only.health.clone();
    }
    let mut h = Health {
        source: format!(
            "{} sources: {}",
            active.len(),
            active
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        source_up: !active.is_empty(),
        ..Health::default()
    };
    for s in &active {
        let sh = &s.health;
        h.source_up &= sh.source_up;
        if h.last_error.is_none() {
            h.last_error = sh.last_error.as_ref().map(|e| format!("{}: {e}", s.name));
        }
        h.failing_since = pick(h.failing_since, sh.failing_since, f64::min);
        h.last_poll = pick(h.last_poll, sh.last_poll, f64::max);
        h.last_save = pick(h.last_save, sh.last_save, f64::max);
        h.last_checkpoint = pick(h.last_checkpoint, sh.last_checkpoint, f64::min);
        h.save_failing |= sh.save_failing;
        if h.save_error.is_none() {
            h.save_error = sh.save_error.as_ref().map(|e| format!("{}: {e}", s.name));
        }
        for m in &sh.measured {
            if !h.measured.contains(m) {
                h.measured.push(m.clone());
            }
        }
        h.polls += sh.polls;
        h.poll_errors += sh.poll_errors;
        h.save_errors += sh.save_errors;
    }
    h
}

/// `f` of both times, or the one there is.
fn pick(a: Option<f64>, b: Option<f64>, f: fn(f64, f64) -> f64) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(f(a, b)),
        (a, b) => a.or(b),
    }
}
