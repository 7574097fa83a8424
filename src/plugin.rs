//! The [`CorePlugin`] trait and the [`PluginContext`] handed to `enable`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;

use serde_json::{Map, Value};

use crate::event::EventBus;
use crate::export::DispatchError;
use crate::export::{AuthLevel, Caller, ExportError, ExportScope, Exports};
use crate::session::SessionSource;
use crate::store::StoreError;
use crate::store::{Persist, Store, RELEASE_WAIT};

/// A plugin could not be registered, enabled or disabled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// No plugin of that name is registered.
    #[error("no plugin named {0:?} is registered")]
    NotFound(String),
    /// A plugin of that name is already registered.
    #[error("a plugin named {0:?} is already registered")]
    Duplicate(String),
    /// The plugin's store could not be opened or loaded.
    #[error("plugin {plugin}: {source}")]
    Store {
        /// The plugin's name.
        plugin: String,
        /// The store error.
        #[source]
        source: StoreError,
    },
    /// The plugin's methods could not be exported.
    #[error("plugin {plugin}: {source}")]
    Export {
        /// The plugin's name.
        plugin: String,
        /// Why.
        #[source]
        source: ExportError,
    },
    /// The plugin failed to enable for another reason.
    #[error("plugin {plugin}: {message}")]
    Failed {
        /// The plugin's name.
        plugin: String,
        /// What went wrong.
        message: String,
    },
}

/// A plugin running inside the core: the Rust form of Deluge's `CorePluginBase`.
///
/// # Lifecycle
/// 1. The host registers the plugin ([`PluginHost::register`](crate::host::PluginHost::register));
///    nothing runs yet.
/// 2. [`enable`](CorePlugin::enable) is called with a fresh [`PluginContext`]: load state,
///    export methods through [`PluginContext::exports`] (into the plugin's own
///    [`namespace`](CorePlugin::namespace), which the host claims for it first; a namespace
///    another plugin or the core owns is refused), spawn tasks. Return an error to stay
///    disabled; the host then removes anything exported and reports the error. The host
///    holds no lock while `enable` runs: it may call the host or other methods (through
///    [`PluginContext::call`]), but not enable or disable itself.
/// 3. While enabled, [`update`](CorePlugin::update) is called once per second by the host
///    itself (a task it starts with the first enabled plugin that
///    [`wants_updates`](CorePlugin::wants_updates), and that ends when the last handle on
///    the host is dropped); never at the same time as `enable` or `disable`.
/// 4. [`disable`](CorePlugin::disable) is called (explicitly, or by
///    [`PluginHost::shutdown`](crate::host::PluginHost::shutdown) on SIGINT/SIGTERM): stop
///    tasks and save state. The host has already removed the exported methods and
///    triggered [`PluginContext::shutdown`]. If the host is dropped without a shutdown,
///    `disable` is not called but the shutdown signal fires: save and let go of files.
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

    /// Called once per second by the host while enabled.
    async fn update(&self) {}

    /// Whether the host should call [`update`](Self::update) (default: yes). A plugin
    /// whose `update` does nothing says no, so that an idle daemon does not wake up every
    /// second for it.
    fn wants_updates(&self) -> bool {
        true
    }
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

/// What a plugin gets when it is enabled: typed access to the session source, its config
/// directory and stores, its export scope, the method table for calling other methods, the
/// event bus, and a shutdown signal.
#[derive(Clone)]
pub struct PluginContext {
    plugin: String,
    source: Arc<dyn SessionSource>,
    config_dir: PathBuf,
    exports: ExportScope,
    table: Exports,
    events: EventBus,
    shutdown: Shutdown,
}

/// The parts the host (or a test) builds a [`PluginContext`] from.
#[derive(Clone)]
pub struct ContextParts {
    /// The session source.
    pub source: Arc<dyn SessionSource>,
    /// The config directory.
    pub config_dir: PathBuf,
    /// The method table (the plugin exports into its namespace of it).
    pub exports: Exports,
    /// The event bus.
    pub events: EventBus,
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
    /// Builds the context of `plugin` exporting into `namespace` (the host does this;
    /// tests and embedders may too).
    pub fn new(plugin: &str, namespace: &str, parts: ContextParts, shutdown: Shutdown) -> Self {
        PluginContext {
            plugin: plugin.to_string(),
            source: parts.source,
            config_dir: parts.config_dir,
            exports: ExportScope::new(parts.exports.clone(), plugin, namespace),
            table: parts.exports,
            events: parts.events,
            shutdown,
        }
    }

    /// The plugin's name.
    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    /// The session-status source.
    pub fn source(&self) -> Arc<dyn SessionSource> {
        self.source.clone()
    }

    /// The directory the plugin's files live in.
    pub fn config_dir(&self) -> &Path {
        &self.config_dir
    }

    /// Opens the store for `file_name` in the config directory. If a store of this process
    /// still holds it (a host dropped a moment ago, its plugin still saving), waits up to
    /// `RELEASE_WAIT` for it.
    pub async fn store<T: Persist>(&self, file_name: &str) -> Result<Store<T>, PluginError> {
        Store::open_waiting(self.config_dir.join(file_name), RELEASE_WAIT)
            .await
            .map_err(|source| self.store_error(source))
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

    /// Fires when the plugin is disabled or the host shuts down (or is dropped).
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// The event bus: emit events for subscribed clients.
    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// Calls another exported method (of the core or a plugin) as an ADMIN caller named
    /// `plugin:<name>`.
    pub async fn call(
        &self,
        method: &str,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
    ) -> Result<Value, DispatchError> {
        let caller = Caller::user(format!("plugin:{}", self.plugin), AuthLevel::Admin);
        self.table.dispatch(method, args, kwargs, caller).await
    }
}
