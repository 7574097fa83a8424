//! The [`CorePlugin`] trait and the [`PluginContext`] handed to `enable`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::core::SessionSource;
use crate::error::{PluginError, StoreError};
use crate::export::ExportScope;
use crate::store::{Persist, Store};

/// A plugin running inside the core: the Rust form of Deluge's `CorePluginBase`.
///
/// # Lifecycle
/// 1. The host registers the plugin ([`PluginHost::register`](crate::host::PluginHost::register));
///    nothing runs yet.
/// 2. [`enable`](CorePlugin::enable) is called with a fresh [`PluginContext`]: load state,
///    export methods through [`PluginContext::exports`], spawn tasks. Return an error to stay
///    disabled; the host then removes anything exported and reports the error.
/// 3. While enabled, [`update`](CorePlugin::update) is called once per second.
/// 4. [`disable`](CorePlugin::disable) is called (explicitly, or by
///    [`PluginHost::shutdown`](crate::host::PluginHost::shutdown) on SIGINT/SIGTERM): stop
///    tasks and save state. The host has already removed the exported methods and
///    triggered [`PluginContext::shutdown`].
/// 5. A disabled plugin may be enabled again, with a new context.
#[async_trait]
pub trait CorePlugin: Send + Sync + 'static {
    /// The plugin's name, as Deluge shows it (`"Stats"`).
    fn name(&self) -> &str;

    /// The RPC namespace of its methods; defaults to the name in lower case.
    fn namespace(&self) -> String {
        self.name().to_lowercase()
    }

    /// Starts the plugin.
    async fn enable(&self, ctx: PluginContext) -> Result<(), PluginError>;

    /// Stops the plugin, saving what it must keep.
    async fn disable(&self) -> Result<(), PluginError>;

    /// Called once per second while enabled.
    async fn update(&self) {}
}

/// A signal that the plugin is being disabled or the host is shutting down.
#[derive(Clone, Debug)]
pub struct Shutdown(watch::Receiver<bool>);

/// The sending side of a [`Shutdown`].
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

impl Shutdown {
    /// A new signal and its trigger.
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger(tx), Shutdown(rx))
    }

    /// Whether the signal has fired.
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits until the signal fires (or its trigger is dropped).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|fired| *fired).await;
    }
}

impl ShutdownTrigger {
    /// Fires the signal.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }
}

/// What a plugin gets when it is enabled: typed access to the core's session status, its
/// config directory and stores, the method table, and a shutdown signal.
#[derive(Clone)]
pub struct PluginContext {
    plugin: String,
    core: Arc<dyn SessionSource>,
    config_dir: PathBuf,
    exports: ExportScope,
    shutdown: Shutdown,
}

impl std::fmt::Debug for PluginContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginContext")
            .field("plugin", &self.plugin)
            .field("config_dir", &self.config_dir)
            .finish_non_exhaustive()
    }
}

impl PluginContext {
    /// Builds a context (the host does this; tests and embedders may too).
    pub fn new(
        plugin: &str,
        core: Arc<dyn SessionSource>,
        config_dir: PathBuf,
        exports: ExportScope,
        shutdown: Shutdown,
    ) -> Self {
        PluginContext {
            plugin: plugin.to_string(),
            core,
            config_dir,
            exports,
            shutdown,
        }
    }

    /// The core's session-status source.
    pub fn core(&self) -> Arc<dyn SessionSource> {
        self.core.clone()
    }

    /// The directory the plugin's files live in.
    pub fn config_dir(&self) -> &Path {
        &self.config_dir
    }

    /// Opens the store for `file_name` in the config directory.
    pub fn store<T: Persist>(&self, file_name: &str) -> Result<Store<T>, PluginError> {
        Store::open(self.config_dir.join(file_name)).map_err(|source| self.store_error(source))
    }

    /// Wraps a store error as this plugin's error.
    pub fn store_error(&self, source: StoreError) -> PluginError {
        PluginError::Store {
            plugin: self.plugin.clone(),
            source,
        }
    }

    /// Where to export methods; they are removed when the plugin is disabled.
    pub fn exports(&self) -> &ExportScope {
        &self.exports
    }

    /// Fires when the plugin is disabled or the host shuts down.
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }
}
