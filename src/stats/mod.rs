//! The Stats plugin: persistent all-time upload/download totals, API-compatible with
//! Deluge 2's Stats plugin (plugin name `Stats`, RPC namespace `stats`).
//!
//! - [`totals`]: the accumulator (pure).
//! - [`history`]: rate and peer series at four resolutions.
//! - [`config`]: validated preferences.
//! - [`poller`]: the task that polls, accumulates and owns the files.
//!
//! Files in the config directory: `stats.conf` (preferences, hand-editable TOML),
//! `stats.totals` and `stats.history` (machine-owned TOML with a checksum line), each with
//! a `.bak` kept by fsync'd checkpoints.

pub mod config;
pub mod history;
pub mod poller;
pub mod totals;

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, oneshot, watch, Mutex};
use tokio::task::JoinHandle;

use crate::error::{DispatchError, ExportError, PluginError, SourceError, StoreError};
use crate::export::{Args, AuthLevel, ExportScope};
use crate::plugin::{CorePlugin, PluginContext, Shutdown, ShutdownTrigger};
use crate::store::{Persist, Store};

pub use config::StatsConfig;
pub use history::History;
pub use poller::{Health, Rates, Snapshot};
pub use totals::{Accumulator, Counters};

use poller::{SharedView, View};

/// File names in the config directory.
pub const CONF_FILE: &str = "stats.conf";
/// The totals file.
pub const TOTALS_FILE: &str = "stats.totals";
/// The history file.
pub const HISTORY_FILE: &str = "stats.history";

struct Running {
    stop: ShutdownTrigger,
    /// Ends with the final save's error, if it failed.
    task: JoinHandle<Result<(), String>>,
}

/// What exports and handles reach while the plugin is enabled.
#[derive(Clone)]
struct Link {
    view: SharedView,
    commands: mpsc::Sender<poller::Command>,
}

struct Shared {
    running: Mutex<Option<Running>>,
    link: RwLock<Option<Link>>,
    snapshots: Arc<watch::Sender<Snapshot>>,
}

/// The Stats plugin. Register it with a [`PluginHost`](crate::host::PluginHost); keep a
/// [`StatsHandle`] (from [`Stats::handle`]) for typed in-process access.
pub struct Stats {
    shared: Arc<Shared>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new()
    }
}

impl Stats {
    /// A disabled Stats plugin.
    pub fn new() -> Self {
        let (snapshots, _) = watch::channel(Snapshot::default());
        Stats {
            shared: Arc::new(Shared {
                running: Mutex::new(None),
                link: RwLock::new(None),
                snapshots: Arc::new(snapshots),
            }),
        }
    }

    /// A typed handle on this plugin: valid for the plugin's whole life, answering
    /// [`StatsError::NotRunning`] while it is disabled.
    pub fn handle(&self) -> StatsHandle {
        StatsHandle {
            shared: self.shared.clone(),
        }
    }
}

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
    /// The change was refused (validation or a failed save); nothing changed.
    #[error(transparent)]
    Refused(#[from] DispatchError),
    /// The hand-edited `stats.conf` cannot be used; the running preferences stay.
    #[error("{0}; the running preferences stay")]
    ConfigFile(#[from] config::ConfigFileError),
}

/// A typed change of preferences: `None` leaves a value as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ConfigChange {
    /// New `update_interval` (1..=60 s).
    pub update_interval: Option<u64>,
    /// New `length` (10..=10000 points).
    pub length: Option<u64>,
    /// New `save_interval` (5..=3600 s).
    pub save_interval: Option<u64>,
}

impl ConfigChange {
    /// No change (set fields with the builder methods).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `update_interval`.
    pub fn update_interval(mut self, seconds: u64) -> Self {
        self.update_interval = Some(seconds);
        self
    }

    /// Sets `length`.
    pub fn length(mut self, points: u64) -> Self {
        self.length = Some(points);
        self
    }

    /// Sets `save_interval`.
    pub fn save_interval(mut self, seconds: u64) -> Self {
        self.save_interval = Some(seconds);
        self
    }

    fn to_map(self) -> Map<String, Value> {
        let mut map = Map::new();
        for (key, value) in [
            ("update_interval", self.update_interval),
            ("length", self.length),
            ("save_interval", self.save_interval),
        ] {
            if let Some(v) = value {
                map.insert(key.into(), json!(v));
            }
        }
        map
    }
}

/// Typed, in-process access to a [`Stats`] plugin: the same operations as the exported
/// `stats.*` methods without JSON, a [`watch`](StatsHandle::watch) subscription to a
/// snapshot that changes on every poll, and [`poll_now`](StatsHandle::poll_now).
///
/// ```
/// use std::sync::Arc;
/// use torrent_stats::{host::PluginHost, source::SimSource, stats::{ConfigChange, Stats}};
///
/// # torrent_stats::tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
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
    shared: Arc<Shared>,
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
        let link = self.link()?;
        let view = link.view.read();
        Ok(f(&view))
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
        let link = self.link()?;
        let map = change.to_map();
        let args = Args::new(
            "stats.set_config",
            vec![Value::Object(map.clone())],
            Map::new(),
        );
        let (reply, answer) = oneshot::channel();
        link.commands
            .send(poller::Command::SetConfig(map, args, reply))
            .await
            .map_err(|_| StatsError::NotRunning)?;
        answer.await.map_err(|_| StatsError::NotRunning)??;
        self.config()
    }

    /// Reads `stats.conf` again (what SIGHUP does) and applies it if it is valid; the file
    /// is not rewritten. If it is not valid, the running preferences stay and the error
    /// says where and why. Returns the preferences now in force.
    pub async fn reload_config(&self) -> Result<StatsConfig, StatsError> {
        let link = self.link()?;
        let (reply, answer) = oneshot::channel();
        link.commands
            .send(poller::Command::Reload(reply))
            .await
            .map_err(|_| StatsError::NotRunning)?;
        answer.await.map_err(|_| StatsError::NotRunning)??;
        self.config()
    }

    /// Polls the source now (after any poll in flight), counts what it reports and saves
    /// the totals; returns them. Call it before restarting your engine: bytes moved since
    /// the last poll are then counted, not lost.
    pub async fn poll_now(&self) -> Result<Counters, StatsError> {
        let link = self.link()?;
        let (reply, answer) = oneshot::channel();
        link.commands
            .send(poller::Command::PollNow(reply))
            .await
            .map_err(|_| StatsError::NotRunning)?;
        Ok(answer.await.map_err(|_| StatsError::NotRunning)??)
    }

    /// Zeroes the all-time totals (the file before is kept); returns the totals before.
    pub async fn reset_totals(&self) -> Result<Counters, StatsError> {
        let link = self.link()?;
        let (reply, answer) = oneshot::channel();
        let args = Args::new("stats.reset_totals", vec![], Map::new());
        link.commands
            .send(poller::Command::Reset(args, reply))
            .await
            .map_err(|_| StatsError::NotRunning)?;
        Ok(answer.await.map_err(|_| StatsError::NotRunning)??)
    }
}

/// Loads a store's value (the store logs any recovery from its backup).
fn load<T: Persist>(ctx: &PluginContext, store: &Store<T>) -> Result<T, PluginError> {
    store
        .load()
        .map(|(value, _)| value)
        .map_err(|e| ctx.store_error(e))
}

#[async_trait]
impl CorePlugin for Stats {
    fn name(&self) -> &str {
        "Stats"
    }

    /// No: Stats polls on its own `update_interval` (like Deluge's, whose `update` is
    /// empty too), so the host need not wake every second for it.
    fn wants_updates(&self) -> bool {
        false
    }

    async fn enable(&self, ctx: PluginContext) -> Result<(), PluginError> {
        let mut running = self.shared.running.lock().await;
        if let Some(run) = running.as_ref() {
            if !run.task.is_finished() {
                return Ok(());
            }
            // A host that was dropped without a shutdown stopped the task.
            *running = None;
        }
        let conf = ctx.store::<StatsConfig>(CONF_FILE).await?;
        // A file people edit: refused with where and why, never recovered or rewritten.
        let path = conf.path().to_path_buf();
        let read = tokio::task::spawn_blocking(move || config::read_file(&path))
            .await
            .map_err(|e| PluginError::Failed {
                plugin: "Stats".into(),
                message: format!("reading the preferences: {e}"),
            })?;
        let (config, exists) = match read {
            Ok(Some(config)) => (config, true),
            Ok(None) => (StatsConfig::default(), false),
            Err(e) => {
                return Err(PluginError::Failed {
                    plugin: "Stats".into(),
                    message: format!("{e}; the file was left as it is: fix it and start again"),
                })
            }
        };
        let conf = if exists {
            conf
        } else {
            // Write the defaults once so users can see and edit them (off the workers).
            let defaults = config.clone();
            let (conf, saved) = tokio::task::spawn_blocking(move || {
                let saved = conf.save(&defaults, crate::store::Durability::Durable);
                (conf, saved)
            })
            .await
            .map_err(|e| PluginError::Failed {
                plugin: "Stats".into(),
                message: format!("writing the default preferences: {e}"),
            })?;
            if let Err(e) = saved {
                tracing::warn!(error = %e, "could not write default preferences");
            }
            conf
        };
        let totals = ctx.store::<totals::Accumulator>(TOTALS_FILE).await?;
        let acc = load(&ctx, &totals)?;
        let history_store = ctx.store::<History>(HISTORY_FILE).await?;
        let mut history = match history_store.load() {
            Ok((h, _)) => h,
            Err(e @ StoreError::Unrecoverable { .. }) => {
                // History is derived data: start afresh, but keep the bad file.
                let kept = history_store.quarantine().map_err(|e| ctx.store_error(e))?;
                tracing::warn!(error = %e, kept_as = ?kept, "history unusable; starting an empty one");
                History::new(config.update_interval, config.length)
            }
            Err(e) => return Err(ctx.store_error(e)),
        };
        if history.base_interval != config.update_interval {
            history = History::new(config.update_interval, config.length);
        } else {
            history.set_length(config.length);
        }
        let source = ctx.source();
        tracing::info!(
            source = %source.describe(),
            upload = acc.totals.total_upload,
            download = acc.totals.total_download,
            payload_upload = acc.totals.total_payload_upload,
            payload_download = acc.totals.total_payload_download,
            "Stats enabled"
        );
        let view = SharedView::new(View {
            acc,
            history,
            config,
            health: Health {
                source: source.describe(),
                ..Health::default()
            },
            rates: Rates::default(),
        });
        let (tx, rx) = mpsc::channel(16);
        export_methods(ctx.exports(), &view, &tx).map_err(|source| PluginError::Export {
            plugin: "Stats".into(),
            source,
        })?;
        let files = poller::Files {
            conf,
            totals,
            history: history_store,
        };
        let (stop, stop_signal) = Shutdown::new();
        let poller =
            poller::Poller::new(source, view.clone(), files, self.shared.snapshots.clone());
        let task = tokio::spawn(poller.run(rx, ctx.shutdown(), stop_signal));
        *self.shared.link.write().unwrap_or_else(|e| e.into_inner()) =
            Some(Link { view, commands: tx });
        *running = Some(Running { stop, task });
        Ok(())
    }

    async fn disable(&self) -> Result<(), PluginError> {
        let Some(run) = self.shared.running.lock().await.take() else {
            return Ok(());
        };
        *self.shared.link.write().unwrap_or_else(|e| e.into_inner()) = None;
        run.stop.trigger();
        let saved = run.task.await.map_err(|e| PluginError::Failed {
            plugin: "Stats".into(),
            message: format!("poll task ended abnormally: {e}"),
        })?;
        saved.map_err(|e| PluginError::Failed {
            plugin: "Stats".into(),
            message: format!(
                "the final save failed ({e}); the files keep the last totals saved before it"
            ),
        })?;
        tracing::info!("Stats disabled");
        Ok(())
    }
}

fn counters_value(c: &Counters) -> Value {
    serde_json::to_value(c).unwrap_or(Value::Null)
}

fn not_running(args: &Args) -> DispatchError {
    DispatchError::Plugin {
        method: args.method().to_string(),
        message: "the Stats plugin is not running".into(),
    }
}

fn export_methods(
    scope: &ExportScope,
    view: &SharedView,
    tx: &mpsc::Sender<poller::Command>,
) -> Result<(), ExportError> {
    let v = view.clone();
    scope.export("get_status", move |args: Args| {
        let result = args
            .params(&[], 0)
            .map(|()| serde_json::to_value(&v.read().health).unwrap_or(Value::Null));
        async move { result }
    })?;
    let v = view.clone();
    scope.export("get_totals", move |args: Args| {
        let result = args
            .params(&[], 0)
            .map(|()| counters_value(&v.read().acc.totals));
        async move { result }
    })?;
    let v = view.clone();
    scope.export("get_session_totals", move |args: Args| {
        let result = args
            .params(&[], 0)
            .map(|()| counters_value(&v.read().acc.last));
        async move { result }
    })?;
    let v = view.clone();
    scope.export("get_config", move |args: Args| {
        let result = args.params(&[], 0).map(|()| v.read().config.to_value());
        async move { result }
    })?;
    let v = view.clone();
    scope.export("get_intervals", move |args: Args| {
        let result = args
            .params(&[], 0)
            .map(|()| json!(v.read().history.intervals()));
        async move { result }
    })?;
    let v = view.clone();
    scope.export("get_stats", move |args: Args| {
        let result = get_stats(&v, &args);
        async move { result }
    })?;
    let t = tx.clone();
    scope.export("set_config", move |args: Args| {
        let t = t.clone();
        async move {
            args.params(&["config"], 1)?;
            let changes = args.dict(0, "config")?.clone();
            let (reply, answer) = oneshot::channel();
            t.send(poller::Command::SetConfig(changes, args.clone(), reply))
                .await
                .map_err(|_| not_running(&args))?;
            answer.await.map_err(|_| not_running(&args))??;
            Ok(Value::Null)
        }
    })?;
    let t = tx.clone();
    scope.export_at("import_totals", AuthLevel::Admin, move |args: Args| {
        let t = t.clone();
        async move {
            let (source, fingerprint, added) = import_args(&args)?;
            let (reply, answer) = oneshot::channel();
            t.send(poller::Command::Import(
                args.clone(),
                source,
                fingerprint,
                added,
                reply,
            ))
            .await
            .map_err(|_| not_running(&args))?;
            let totals = answer.await.map_err(|_| not_running(&args))??;
            Ok(counters_value(&totals))
        }
    })?;
    let t = tx.clone();
    scope.export_at("reset_totals", AuthLevel::Admin, move |args: Args| {
        let t = t.clone();
        async move {
            args.params(&[], 0)?;
            let (reply, answer) = oneshot::channel();
            t.send(poller::Command::Reset(args.clone(), reply))
                .await
                .map_err(|_| not_running(&args))?;
            let before = answer.await.map_err(|_| not_running(&args))??;
            Ok(counters_value(&before))
        }
    })?;
    Ok(())
}

/// Decodes `stats.import_totals(source, fingerprint, totals)`'s arguments.
fn import_args(args: &Args) -> Result<(String, String, Counters), DispatchError> {
    args.params(&["source", "fingerprint", "totals"], 3)?;
    let text = |i, name: &str, max: usize| -> Result<String, DispatchError> {
        let s = args.str(i, name)?;
        if s.is_empty() || s.len() > max {
            return Err(args.value_error(name, format!("must be 1..={max} characters")));
        }
        Ok(s.to_string())
    };
    let source = text(0, "source", 64)?;
    let fingerprint = text(1, "fingerprint", 256)?;
    let dict = args.dict(2, "totals")?;
    let mut fields = [0u64; 4];
    const KEYS: [&str; 4] = [
        "total_upload",
        "total_download",
        "total_payload_upload",
        "total_payload_download",
    ];
    for (key, value) in dict {
        let arg = format!("totals[{key:?}]");
        let Some(i) = KEYS.iter().position(|k| k == key) else {
            return Err(
                args.value_error(&arg, format!("unknown key; expected {}", KEYS.join(", ")))
            );
        };
        fields[i] = match value.as_u64() {
            Some(n) if n <= totals::MAX_TOTAL => n,
            _ => {
                return Err(args.type_error(
                    &arg,
                    format!("expected a byte count 0..=2^63-1, got {value}"),
                ))
            }
        };
    }
    for key in &KEYS[..2] {
        if !dict.contains_key(*key) {
            return Err(args.value_error(&format!("totals[{key:?}]"), "missing".into()));
        }
    }
    let counters = Counters {
        total_upload: fields[0],
        total_download: fields[1],
        total_payload_upload: fields[2],
        total_payload_download: fields[3],
    };
    Ok((source, fingerprint, counters))
}

fn get_stats(view: &SharedView, args: &Args) -> Result<Value, DispatchError> {
    args.params(&["keys", "interval"], 2)?;
    let keys = args.str_list(0, "keys")?;
    let interval = args.u64(1, "interval")?;
    let v = view.read();
    let Some(level) = v.history.level_for(interval) else {
        return Err(args.value_error(
            "interval",
            format!("{interval} is not one of {:?}", v.history.intervals()),
        ));
    };
    let mut out = Map::new();
    for key in keys {
        if let Some(series) = v.history.series(level, key) {
            out.insert(key.to_string(), json!(series));
        } else if history::SERIES.iter().any(|k| k.as_str() == key) {
            // Deluge lists every stat it records at every interval, empty until filled.
            out.insert(key.to_string(), json!([]));
        }
    }
    out.insert(
        "_last_update".into(),
        json!(v.history.levels[level].last_update),
    );
    out.insert("_length".into(), json!(v.config.length));
    out.insert("_update_interval".into(), json!(interval));
    Ok(Value::Object(out))
}
