//! The Stats plugin: persistent all-time upload/download totals, API-compatible with
//! Deluge 2's Stats plugin (plugin name `Stats`, RPC namespace `stats`).
//!
//! - [`totals`]: the accumulator (pure).
//! - [`history`]: rate and peer series at four resolutions.
//! - [`config`]: validated preferences, typed changes ([`ConfigChange`]) and their errors.
//! - [`poller`]: the task that polls, accumulates and owns the files.
//! - `handle.rs`: the typed [`StatsHandle`] and [`StatsError`].
//! - `methods.rs`: the exported `stats.*` methods, JSON decoded into the typed operations.
//! - [`remote`] (feature `rpc-client`): the same methods on a remote daemon, typed.
//!
//! Files in the config directory: `stats.conf` (preferences, hand-editable TOML),
//! `stats.totals` and `stats.history` (machine-owned TOML with a checksum line), each with
//! a `.bak` kept by fsync'd checkpoints.

pub mod config;
mod handle;
pub mod history;
mod methods;
pub mod offline;
pub mod poller;
#[cfg(feature = "rpc-client")]
#[cfg_attr(docsrs, doc(cfg(feature = "rpc-client")))]
pub mod remote;
pub mod totals;

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use tokio::sync::{mpsc, watch, Mutex};
use tokio::task::JoinHandle;

use crate::plugin::{CorePlugin, PluginContext, PluginError, Shutdown, ShutdownTrigger};
use crate::store::{Durability, Persist, Store, StoreError};

pub use config::{ConfigChange, ConfigError, ConfigFileError, ConfigKey, StatsConfig};
pub use handle::{StatsError, StatsHandle};
pub use history::History;
pub use poller::{ChangeError, Health, Import, Rates, Snapshot};
pub use totals::{Accumulator, Counters, ImportRefused};

use handle::Link;
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

/// Loads a store's value (the store logs any recovery from its backup).
fn load<T: Persist>(ctx: &PluginContext, store: &Store<T>) -> Result<T, PluginError> {
    store
        .load()
        .map(|(value, _)| value)
        .map_err(|e| ctx.store_error(e))
}

/// Opens `stats.conf` and reads it: a file people edit, refused with where and why,
/// never recovered or rewritten; a missing one is written with the defaults once, so
/// users can see and edit them.
async fn open_config(
    ctx: &PluginContext,
) -> Result<(Store<StatsConfig>, StatsConfig), PluginError> {
    let failed = |message: String| PluginError::Failed {
        plugin: "Stats".into(),
        message,
    };
    let conf = ctx.store::<StatsConfig>(CONF_FILE).await?;
    let path = conf.path().to_path_buf();
    let read = tokio::task::spawn_blocking(move || config::read_file(&path))
        .await
        .map_err(|e| failed(format!("reading the preferences: {e}")))?;
    match read {
        Ok(Some(config)) => Ok((conf, config)),
        Ok(None) => {
            // Off the async workers: the save fsyncs.
            let defaults = StatsConfig::default();
            let (conf, saved) = tokio::task::spawn_blocking(move || {
                let saved = conf.save(&defaults, Durability::Durable);
                (conf, saved)
            })
            .await
            .map_err(|e| failed(format!("writing the default preferences: {e}")))?;
            if let Err(e) = saved {
                tracing::warn!(error = %e, "could not write default preferences");
            }
            Ok((conf, StatsConfig::default()))
        }
        Err(e) => Err(failed(format!(
            "{e}; the file was left as it is: fix it and start again"
        ))),
    }
}

/// Loads the history for `config`: derived data, so an unusable file is kept aside and an
/// empty history started, as is one recorded at another poll interval.
fn load_history(
    ctx: &PluginContext,
    store: &Store<History>,
    config: &StatsConfig,
) -> Result<History, PluginError> {
    let mut history = match store.load() {
        Ok((h, _)) => h,
        Err(e @ StoreError::Unrecoverable { .. }) => {
            let kept = store.quarantine().map_err(|e| ctx.store_error(e))?;
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
    Ok(history)
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
        let (conf, config) = open_config(&ctx).await?;
        let totals = ctx.store::<totals::Accumulator>(TOTALS_FILE).await?;
        let acc = load(&ctx, &totals)?;
        let history_store = ctx.store::<History>(HISTORY_FILE).await?;
        let history = load_history(&ctx, &history_store, &config)?;
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
        let link = Link {
            view: view.clone(),
            commands: tx,
        };
        methods::export(ctx.exports(), &link).map_err(|source| PluginError::Export {
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
        *self.shared.link.write().unwrap_or_else(|e| e.into_inner()) = Some(link);
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
