//! The Stats plugin: persistent all-time upload/download totals, API-compatible with
//! Deluge 2's Stats plugin (plugin name `Stats`, RPC namespace `stats`).
//!
//! - [`totals`]: the accumulator (pure).
//! - [`history`]: rate and peer series at four resolutions.
//! - [`config`]: validated preferences, typed changes ([`ConfigChange`]) and their errors.
//! - [`poller`]: the task that polls, accumulates and owns the files.
//! - `handle.rs`: the typed [`StatsHandle`] and [`StatsError`].
//! - `registry/`: the sources of the running plugin (a poll task each), retired
//!   sources, the shared preferences, the combined figures.
//! - `methods.rs`: the exported `stats.*` methods, JSON decoded into the typed operations.
//! - [`remote`] (feature `rpc-client`): the same methods on a remote daemon, typed.
//!
//! Files in the config directory: `stats.conf` (preferences, hand-editable TOML); per
//! source `stats.totals` and `stats.history` (machine-owned TOML with a checksum line),
//! each with a `.bak` kept by fsync'd checkpoints, in `sources/<name>/` for a daemon's
//! named sources or in the config directory itself for the one source of an embedder.

#[cfg(feature = "ledger")]
mod calendar_methods;
mod combined;
pub mod config;
mod handle;
pub mod history;
#[cfg(feature = "ledger")]
#[cfg_attr(docsrs, doc(cfg(feature = "ledger")))]
pub mod ledger;
mod methods;
pub mod offline;
pub mod poller;
#[cfg(feature = "ledger")]
mod quota_watch;
mod registry;
#[cfg(feature = "rpc-client")]
#[cfg_attr(docsrs, doc(cfg(feature = "rpc-client")))]
pub mod remote;
pub mod totals;

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use tokio::sync::{watch, Mutex};

use crate::plugin::{CorePlugin, PluginContext, PluginError};
use crate::source::SourceSet;
use crate::store::{Durability, Store};

pub use combined::CombinedSession;
pub use config::{ConfigChange, ConfigError, ConfigFileError, ConfigKey, StatsConfig};
pub use handle::{StatsError, StatsHandle};
pub use poller::{ChangeError, Health, Import, Rates, Snapshot, SourceSnapshot};
pub use registry::SourceChangeError;
pub use totals::{Accumulator, Counters, ImportRefused};

use registry::{Origin, Registry};

/// File names in the config directory.
pub const CONF_FILE: &str = "stats.conf";
/// The totals file.
pub const TOTALS_FILE: &str = "stats.totals";
/// The history file.
pub const HISTORY_FILE: &str = "stats.history";

struct Shared {
    /// The running plugin's sources (also the handles' link).
    running: Mutex<Option<Arc<Registry>>>,
    link: RwLock<Option<Arc<Registry>>>,
    snapshots: Arc<watch::Sender<Snapshot>>,
    /// A daemon's named sources; `None`: the host's one source.
    set: Option<Arc<Mutex<SourceSet>>>,
    /// The embedded engine the quotas' actions pause or limit.
    engine: std::sync::RwLock<Option<Arc<dyn crate::torrent::TorrentEngine>>>,
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
    /// A disabled Stats plugin counting the host's session source, its files in the
    /// config directory itself.
    pub fn new() -> Self {
        Stats::with(None)
    }

    /// A disabled Stats plugin counting a daemon's named sources: each source's files in
    /// `sources/<name>/`, sources added and removed at run time (saved in the sources
    /// file). A config directory of before named sources becomes the first active
    /// source's at the first enable.
    pub fn with_sources(set: Arc<Mutex<SourceSet>>) -> Self {
        Stats::with(Some(set))
    }

    fn with(set: Option<Arc<Mutex<SourceSet>>>) -> Self {
        let (snapshots, _) = watch::channel(Snapshot::default());
        Stats {
            shared: Arc::new(Shared {
                running: Mutex::new(None),
                link: RwLock::new(None),
                snapshots: Arc::new(snapshots),
                set,
                engine: std::sync::RwLock::new(None),
            }),
        }
    }

    /// Gives the quotas' actions (pause, rate limits at 100 %) the daemon's embedded
    /// engine.
    pub fn with_engine(self, engine: Option<Arc<dyn crate::torrent::TorrentEngine>>) -> Self {
        *self
            .shared
            .engine
            .write()
            .unwrap_or_else(|e| e.into_inner()) = engine;
        self
    }

    /// A typed handle on this plugin: valid for the plugin's whole life, answering
    /// [`StatsError::NotRunning`] while it is disabled.
    pub fn handle(&self) -> StatsHandle {
        StatsHandle {
            shared: self.shared.clone(),
        }
    }
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
        if let Some(registry) = running.as_ref() {
            if !registry.finished() {
                return Ok(());
            }
            // A host that was dropped without a shutdown stopped the tasks.
            *running = None;
        }
        let (conf, config) = open_config(&ctx).await?;
        let engine = self
            .shared
            .engine
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let origin = match &self.shared.set {
            Some(set) => Origin::Set(set.clone()),
            None => Origin::Single(ctx.source()),
        };
        let registry = Registry::start(
            ctx.config_dir(),
            conf,
            config,
            origin,
            self.shared.snapshots.clone(),
            ctx.shutdown(),
            registry::Extras {
                events: ctx.events().clone(),
                engine,
            },
        )
        .await?;
        if let Err(source) = methods::export(ctx.exports(), &registry) {
            registry.stop().await;
            return Err(PluginError::Export {
                plugin: "Stats".into(),
                source,
            });
        }
        tracing::info!(sources = registry.entries().len(), "Stats enabled");
        *self.shared.link.write().unwrap_or_else(|e| e.into_inner()) = Some(registry.clone());
        *running = Some(registry);
        Ok(())
    }

    async fn disable(&self) -> Result<(), PluginError> {
        let Some(registry) = self.shared.running.lock().await.take() else {
            return Ok(());
        };
        *self.shared.link.write().unwrap_or_else(|e| e.into_inner()) = None;
        let failed = registry.stop().await;
        if !failed.is_empty() {
            return Err(PluginError::Failed {
                plugin: "Stats".into(),
                message: format!(
                    "the final save failed ({}); the files keep the last totals saved before it",
                    failed.join("; ")
                ),
            });
        }
        tracing::info!("Stats disabled");
        Ok(())
    }
}
