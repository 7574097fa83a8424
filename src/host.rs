//! The plugin manager: the Rust form of Deluge's `PluginManager`.
//!
//! It registers plugins by name, enables and disables them (idempotently), remembers the
//! enabled list in `core.conf` and re-enables it at start, calls `update()` on enabled
//! plugins once per second, and disables everything on shutdown.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::core::SessionSource;
use crate::error::{PluginError, StoreError};
use crate::export::{ExportScope, Exports};
use crate::plugin::{CorePlugin, PluginContext, Shutdown, ShutdownTrigger};
use crate::store::{Durability, LoadOutcome, Persist, Store};

/// The host's own preferences, kept in `core.conf`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostConfig {
    /// Plugins to enable at start.
    pub enabled_plugins: Vec<String>,
}

impl Persist for HostConfig {
    const SEALED: bool = false;
}

struct Slot {
    plugin: Arc<dyn CorePlugin>,
    running: Option<ShutdownTrigger>,
}

struct State {
    slots: BTreeMap<String, Slot>,
    config: HostConfig,
    store: Store<HostConfig>,
}

/// Manages plugins on one session source and one config directory.
#[derive(Clone)]
pub struct PluginHost {
    core: Arc<dyn SessionSource>,
    config_dir: PathBuf,
    exports: Exports,
    state: Arc<Mutex<State>>,
    first_start: bool,
}

impl PluginHost {
    /// Opens the host on `config_dir` (loading `core.conf`) with `core` as session source.
    pub fn open(
        core: Arc<dyn SessionSource>,
        config_dir: impl Into<PathBuf>,
    ) -> Result<Self, StoreError> {
        let config_dir = config_dir.into();
        let store = Store::<HostConfig>::open(config_dir.join("core.conf"))?;
        let (config, outcome) = store.load()?;
        Ok(PluginHost {
            core,
            config_dir,
            exports: Exports::new(),
            state: Arc::new(Mutex::new(State {
                slots: BTreeMap::new(),
                config,
                store,
            })),
            first_start: outcome == LoadOutcome::Missing,
        })
    }

    /// True when `core.conf` did not exist: the caller may enable its default plugins.
    pub fn is_first_start(&self) -> bool {
        self.first_start
    }

    /// The method table every transport dispatches into.
    pub fn exports(&self) -> &Exports {
        &self.exports
    }

    /// The session source plugins see.
    pub fn core(&self) -> Arc<dyn SessionSource> {
        self.core.clone()
    }

    /// The config directory.
    pub fn config_dir(&self) -> &Path {
        &self.config_dir
    }

    /// Adds a plugin (disabled).
    pub async fn register(&self, plugin: Arc<dyn CorePlugin>) -> Result<(), PluginError> {
        let mut state = self.state.lock().await;
        let name = plugin.name().to_string();
        if state.slots.contains_key(&name) {
            return Err(PluginError::Duplicate(name));
        }
        state.slots.insert(
            name,
            Slot {
                plugin,
                running: None,
            },
        );
        Ok(())
    }

    /// Names of registered plugins, sorted.
    pub async fn available(&self) -> Vec<String> {
        self.state.lock().await.slots.keys().cloned().collect()
    }

    /// Names of enabled plugins, sorted.
    pub async fn enabled(&self) -> Vec<String> {
        let state = self.state.lock().await;
        state
            .slots
            .iter()
            .filter(|(_, s)| s.running.is_some())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Enables `name`; does nothing if it already is. On failure the plugin stays disabled,
    /// nothing it exported remains, and other plugins are untouched.
    pub async fn enable(&self, name: &str) -> Result<(), PluginError> {
        let mut state = self.state.lock().await;
        self.enable_locked(&mut state, name).await?;
        remember(&mut state, name, true);
        Ok(())
    }

    async fn enable_locked(&self, state: &mut State, name: &str) -> Result<(), PluginError> {
        let slot = state
            .slots
            .get_mut(name)
            .ok_or_else(|| PluginError::NotFound(name.to_string()))?;
        if slot.running.is_some() {
            return Ok(());
        }
        let (trigger, shutdown) = Shutdown::new();
        let scope = ExportScope::new(self.exports.clone(), name, &slot.plugin.namespace());
        let ctx = PluginContext::new(
            name,
            self.core.clone(),
            self.config_dir.clone(),
            scope,
            shutdown,
        );
        match slot.plugin.enable(ctx).await {
            Ok(()) => {
                slot.running = Some(trigger);
                tracing::info!(plugin = name, "plugin enabled");
                Ok(())
            }
            Err(e) => {
                trigger.trigger();
                self.exports.remove_owner(name);
                tracing::error!(plugin = name, error = %e, "plugin failed to enable");
                Err(e)
            }
        }
    }

    /// Disables `name` (saving its state); does nothing if it is not enabled.
    pub async fn disable(&self, name: &str) -> Result<(), PluginError> {
        let mut state = self.state.lock().await;
        if !state.slots.contains_key(name) {
            return Err(PluginError::NotFound(name.to_string()));
        }
        let result = self.disable_locked(&mut state, name).await;
        remember(&mut state, name, false);
        result
    }

    async fn disable_locked(&self, state: &mut State, name: &str) -> Result<(), PluginError> {
        let Some(slot) = state.slots.get_mut(name) else {
            return Ok(());
        };
        let Some(trigger) = slot.running.take() else {
            return Ok(());
        };
        self.exports.remove_owner(name);
        trigger.trigger();
        let result = slot.plugin.disable().await;
        match &result {
            Ok(()) => tracing::info!(plugin = name, "plugin disabled"),
            Err(e) => {
                tracing::error!(plugin = name, error = %e, "plugin failed to disable cleanly")
            }
        }
        result
    }

    /// Enables every plugin in the remembered list; returns the ones that failed.
    pub async fn start(&self) -> Vec<(String, PluginError)> {
        let mut state = self.state.lock().await;
        let mut failures = Vec::new();
        for name in state.config.enabled_plugins.clone() {
            if let Err(e) = self.enable_locked(&mut state, &name).await {
                failures.push((name, e));
            }
        }
        failures
    }

    /// Calls `update()` on every enabled plugin once per second until `shutdown` fires.
    pub fn spawn_updates(&self, mut shutdown: Shutdown) -> JoinHandle<()> {
        let state = self.state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.wait() => return,
                }
                let running: Vec<Arc<dyn CorePlugin>> = {
                    let state = state.lock().await;
                    state
                        .slots
                        .values()
                        .filter(|s| s.running.is_some())
                        .map(|s| s.plugin.clone())
                        .collect()
                };
                for plugin in running {
                    plugin.update().await;
                }
            }
        })
    }

    /// Disables every enabled plugin (each saves); the remembered list is kept for the next
    /// start. Returns the plugins whose disable reported an error.
    pub async fn shutdown(&self) -> Vec<(String, PluginError)> {
        let mut state = self.state.lock().await;
        let names: Vec<String> = state.slots.keys().cloned().collect();
        let mut failures = Vec::new();
        for name in names {
            if let Err(e) = self.disable_locked(&mut state, &name).await {
                failures.push((name, e));
            }
        }
        failures
    }
}

impl PluginHost {
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

    /// Runs the host until `shutdown` completes: calls `update()` every second, then
    /// disables every plugin so each saves. The daemon passes SIGINT/SIGTERM; tests pass
    /// any future.
    pub async fn run(
        &self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), PluginError> {
        let (stop_updates, updates_signal) = Shutdown::new();
        let updates = self.spawn_updates(updates_signal);
        shutdown.await;
        tracing::info!("shutting down: disabling plugins");
        stop_updates.trigger();
        let _ = updates.await;
        let failures = self.shutdown().await;
        match failures.into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }
}

/// Adds or removes `name` in the remembered list and saves it if it changed.
fn remember(state: &mut State, name: &str, enabled: bool) {
    let list = &mut state.config.enabled_plugins;
    let present = list.iter().any(|n| n == name);
    match (enabled, present) {
        (true, false) => list.push(name.to_string()),
        (false, true) => list.retain(|n| n != name),
        _ => return,
    }
    if let Err(e) = state.store.save(&state.config, Durability::Durable) {
        tracing::error!(error = %e, "could not save the enabled plugin list");
    }
}
