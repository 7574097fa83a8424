//! The plugin manager: the Rust form of Deluge's `PluginManager`.
//!
//! It registers plugins by name, enables and disables them (idempotently), remembers the
//! enabled list in `core.conf` and re-enables it at start, calls `update()` on enabled
//! plugins that want it once per second, and disables everything on shutdown.
//!
//! No lock is held while a plugin's `enable`, `disable` or `update` runs: the host's state
//! is behind a short-lived mutex, and each plugin has its own operation lock so its
//! enable, disable and update never overlap. Dropping the last [`PluginHost`] handle fires
//! every plugin's shutdown signal and stops the update task.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::event::EventBus;
use crate::export::Exports;
use crate::plugin::PluginError;
use crate::plugin::{ContextParts, CorePlugin, PluginContext, Shutdown, ShutdownTrigger};
use crate::session::SessionSource;
use crate::store::StoreError;
use crate::store::{Durability, LoadOutcome, Persist, Store};

/// The host's own preferences, kept in `core.conf`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostConfig {
    /// Plugins to enable at start.
    pub enabled_plugins: Vec<String>,
}

impl Persist for HostConfig {
    const SEALED: bool = false;
}

/// How often enabled plugins' `update()` is called.
pub const UPDATE_PERIOD: Duration = Duration::from_secs(1);

/// Serialises one plugin's enable, disable and update.
type OpLock = Arc<tokio::sync::Mutex<()>>;

struct Slot {
    plugin: Arc<dyn CorePlugin>,
    op: OpLock,
    running: Option<ShutdownTrigger>,
}

struct State {
    slots: BTreeMap<String, Slot>,
    config: HostConfig,
}

struct Inner {
    source: Arc<dyn SessionSource>,
    config_dir: PathBuf,
    exports: Exports,
    events: EventBus,
    state: Mutex<State>,
    store: Arc<Store<HostConfig>>,
    /// Serialises saves of `core.conf`, so the last save always writes the latest list.
    saving: tokio::sync::Mutex<()>,
    first_start: bool,
    updates_started: AtomicBool,
}

/// Manages plugins on one session source and one config directory. Clones share the host.
#[derive(Clone)]
pub struct PluginHost {
    inner: Arc<Inner>,
}

/// A handle that does not keep the host alive (for exported methods that call the host).
#[derive(Clone)]
pub struct WeakHost(Weak<Inner>);

impl WeakHost {
    /// The host, if a strong handle still exists.
    pub fn upgrade(&self) -> Option<PluginHost> {
        self.0.upgrade().map(|inner| PluginHost { inner })
    }
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("config_dir", &self.inner.config_dir)
            .finish_non_exhaustive()
    }
}

impl PluginHost {
    /// Opens the host on `config_dir` (loading `core.conf`) with `source` as session
    /// source, a new method table and a new event bus.
    pub fn open(
        source: Arc<dyn SessionSource>,
        config_dir: impl Into<PathBuf>,
    ) -> Result<Self, StoreError> {
        Self::with_parts(source, config_dir, Exports::new(), EventBus::new())
    }

    /// Opens the host with a given method table and event bus (the core service does).
    pub fn with_parts(
        source: Arc<dyn SessionSource>,
        config_dir: impl Into<PathBuf>,
        exports: Exports,
        events: EventBus,
    ) -> Result<Self, StoreError> {
        let config_dir = config_dir.into();
        let store = Store::<HostConfig>::open(config_dir.join("core.conf"))?;
        let (config, outcome) = store.load()?;
        Ok(PluginHost {
            inner: Arc::new(Inner {
                source,
                config_dir,
                exports,
                events,
                state: Mutex::new(State {
                    slots: BTreeMap::new(),
                    config,
                }),
                store: Arc::new(store),
                saving: tokio::sync::Mutex::new(()),
                first_start: outcome == LoadOutcome::Missing,
                updates_started: AtomicBool::new(false),
            }),
        })
    }

    /// A handle that does not keep the host alive.
    pub fn downgrade(&self) -> WeakHost {
        WeakHost(Arc::downgrade(&self.inner))
    }

    /// True when `core.conf` did not exist: the caller may enable its default plugins.
    pub fn is_first_start(&self) -> bool {
        self.inner.first_start
    }

    /// The method table every transport dispatches into.
    pub fn exports(&self) -> &Exports {
        &self.inner.exports
    }

    /// The event bus plugins and the core emit on.
    pub fn events(&self) -> &EventBus {
        &self.inner.events
    }

    /// The session source plugins see.
    pub fn source(&self) -> Arc<dyn SessionSource> {
        self.inner.source.clone()
    }

    /// The config directory.
    pub fn config_dir(&self) -> &Path {
        &self.inner.config_dir
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a plugin (disabled).
    pub async fn register(&self, plugin: Arc<dyn CorePlugin>) -> Result<(), PluginError> {
        let mut state = self.state();
        let name = plugin.name().to_string();
        if state.slots.contains_key(&name) {
            return Err(PluginError::Duplicate(name));
        }
        state.slots.insert(
            name,
            Slot {
                plugin,
                op: Arc::new(tokio::sync::Mutex::new(())),
                running: None,
            },
        );
        Ok(())
    }

    /// Names of registered plugins, sorted.
    pub async fn available(&self) -> Vec<String> {
        self.state().slots.keys().cloned().collect()
    }

    /// Names of enabled plugins, sorted.
    pub async fn enabled(&self) -> Vec<String> {
        self.state()
            .slots
            .iter()
            .filter(|(_, s)| s.running.is_some())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Whether `name` is enabled.
    pub fn is_enabled(&self, name: &str) -> bool {
        self.state()
            .slots
            .get(name)
            .is_some_and(|s| s.running.is_some())
    }

    fn slot(&self, name: &str) -> Result<(Arc<dyn CorePlugin>, OpLock), PluginError> {
        let state = self.state();
        let slot = state
            .slots
            .get(name)
            .ok_or_else(|| PluginError::NotFound(name.to_string()))?;
        Ok((slot.plugin.clone(), slot.op.clone()))
    }

    /// Enables `name`; does nothing if it already is. On failure the plugin stays disabled,
    /// nothing it exported remains, and other plugins are untouched. Emits
    /// `PluginEnabledEvent` when the plugin was disabled before.
    pub async fn enable(&self, name: &str) -> Result<(), PluginError> {
        self.enable_inner(name).await?;
        self.remember(name, true).await;
        Ok(())
    }

    async fn enable_inner(&self, name: &str) -> Result<(), PluginError> {
        let (plugin, op) = self.slot(name)?;
        let _op = op.lock().await;
        if self.is_enabled(name) {
            return Ok(());
        }
        let namespace = plugin.namespace();
        self.inner
            .exports
            .claim(name, &namespace)
            .map_err(|source| PluginError::Export {
                plugin: name.to_string(),
                source,
            })?;
        let (trigger, shutdown) = Shutdown::new();
        let parts = ContextParts {
            source: self.inner.source.clone(),
            config_dir: self.inner.config_dir.clone(),
            exports: self.inner.exports.clone(),
            events: self.inner.events.clone(),
        };
        let ctx = PluginContext::new(name, &namespace, parts, shutdown);
        match plugin.enable(ctx).await {
            Ok(()) => {
                if let Some(slot) = self.state().slots.get_mut(name) {
                    slot.running = Some(trigger);
                }
                tracing::info!(plugin = name, "plugin enabled");
                self.inner
                    .events
                    .emit("PluginEnabledEvent", vec![json!(name)]);
                if plugin.wants_updates() {
                    self.start_updates();
                }
                Ok(())
            }
            Err(e) => {
                trigger.trigger();
                self.inner.exports.remove_owner(name);
                tracing::error!(plugin = name, error = %e, "plugin failed to enable");
                Err(e)
            }
        }
    }

    /// Disables `name` (saving its state); does nothing if it is not enabled. Emits
    /// `PluginDisabledEvent` when it was enabled.
    pub async fn disable(&self, name: &str) -> Result<(), PluginError> {
        let result = self.disable_inner(name).await;
        if !matches!(result, Err(PluginError::NotFound(_))) {
            self.remember(name, false).await;
        }
        result
    }

    async fn disable_inner(&self, name: &str) -> Result<(), PluginError> {
        let (plugin, op) = self.slot(name)?;
        let _op = op.lock().await;
        let trigger = match self.state().slots.get_mut(name) {
            Some(slot) => slot.running.take(),
            None => None,
        };
        let Some(trigger) = trigger else {
            return Ok(());
        };
        self.inner.exports.remove_owner(name);
        trigger.trigger();
        let result = plugin.disable().await;
        match &result {
            Ok(()) => tracing::info!(plugin = name, "plugin disabled"),
            Err(e) => {
                tracing::error!(plugin = name, error = %e, "plugin failed to disable cleanly")
            }
        }
        self.inner
            .events
            .emit("PluginDisabledEvent", vec![json!(name)]);
        result
    }

    /// Enables every plugin in the remembered list; returns the ones that failed.
    pub async fn start(&self) -> Vec<(String, PluginError)> {
        let names = self.state().config.enabled_plugins.clone();
        let mut failures = Vec::new();
        for name in names {
            if let Err(e) = self.enable_inner(&name).await {
                failures.push((name, e));
            }
        }
        failures
    }

    /// Enables the remembered plugins (failures are logged) and then `defaults` (a failure
    /// is returned): what a daemon does before it serves clients.
    pub async fn start_with(&self, defaults: &[&str]) -> Result<(), PluginError> {
        for (name, e) in self.start().await {
            tracing::error!(plugin = %name, error = %e, "remembered plugin not enabled");
        }
        for name in defaults {
            self.enable(name).await?;
        }
        Ok(())
    }

    /// Disables every enabled plugin (each saves); the remembered list is kept for the next
    /// start. Returns the plugins whose disable reported an error.
    pub async fn shutdown(&self) -> Vec<(String, PluginError)> {
        let names: Vec<String> = self.state().slots.keys().cloned().collect();
        let mut failures = Vec::new();
        for name in names {
            if let Err(e) = self.disable_inner(&name).await {
                failures.push((name, e));
            }
        }
        failures
    }

    /// Waits for `shutdown`, then disables every plugin so each saves. The daemon passes
    /// SIGINT/SIGTERM; tests pass any future. `update()` runs by itself meanwhile.
    pub async fn run(
        &self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), PluginError> {
        shutdown.await;
        tracing::info!("shutting down: disabling plugins");
        match self.shutdown().await.into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }

    /// Starts the task calling `update()` every second, once per host, when the first
    /// plugin that wants updates is enabled (a host whose plugins all say no never wakes
    /// for them). It holds no strong handle: it ends when the last [`PluginHost`] is
    /// dropped.
    fn start_updates(&self) {
        if self.inner.updates_started.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(UPDATE_PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            tick.tick().await; // the first tick is immediate: updates start a second later
            loop {
                tick.tick().await;
                let running: Vec<_> = {
                    let Some(inner) = weak.upgrade() else { return };
                    let state = inner.state.lock().unwrap_or_else(|e| e.into_inner());
                    state
                        .slots
                        .values()
                        .filter(|s| s.running.is_some() && s.plugin.wants_updates())
                        .map(|s| (s.plugin.clone(), s.op.clone()))
                        .collect()
                };
                for (plugin, op) in running {
                    // Skipped this tick while the plugin is being enabled or disabled.
                    if let Ok(_op) = op.try_lock() {
                        plugin.update().await;
                    }
                }
            }
        });
    }

    /// Adds or removes `name` in the remembered list and saves it (on a blocking thread)
    /// if it changed.
    async fn remember(&self, name: &str, enabled: bool) {
        let _saving = self.inner.saving.lock().await;
        let config = {
            let mut state = self.state();
            let list = &mut state.config.enabled_plugins;
            let present = list.iter().any(|n| n == name);
            match (enabled, present) {
                (true, false) => list.push(name.to_string()),
                (false, true) => list.retain(|n| n != name),
                _ => return,
            }
            state.config.clone()
        };
        let store = self.inner.store.clone();
        let saved = tokio::task::spawn_blocking(move || store.save(&config, Durability::Durable))
            .await
            .unwrap_or_else(|e| {
                Err(StoreError::Io {
                    op: "save",
                    path: PathBuf::from("core.conf"),
                    source: std::io::Error::other(e.to_string()),
                })
            });
        if let Err(e) = saved {
            tracing::error!(error = %e, "could not save the enabled plugin list");
        }
    }
}
