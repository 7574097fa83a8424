//! The library's error types.
//!
//! Each layer has its own enum: a [`SourceError`] comes from a session source, a
//! [`StoreError`] from the durable store, a [`DispatchError`] from an exported method call
//! and a [`PluginError`] from enabling a plugin. Every [`DispatchError`] carries the name
//! of the Deluge exception a wire transport should send for it. A bad `--source` is a
//! [`SourceSpecError`], its [`SourceSpecReason`] the typed cause.
//!
//! Errors of one parser or check live beside it: [`ParseBytesError`](crate::units::ParseBytesError),
//! [`SimParamError`](crate::source::SimParamError), `source::DelugeSpecError`,
//! [`ImportError`](crate::import::ImportError), [`ImportRefused`](crate::stats::totals::ImportRefused),
//! and with feature `rpc` `rpc::message::PayloadError`, `auth::LoginError` and
//! `rpc::client::ClientError`.

use std::path::PathBuf;

/// A session source could not produce a status sample.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SourceError {
    /// The source is reachable but answered with an error.
    #[error("session source failed: {0}")]
    Failed(String),
    /// The source could not be reached (connection refused, daemon down, ...).
    #[error("session source unavailable: {0}")]
    Unavailable(String),
    /// The source did not answer within the poll interval.
    #[error("session source timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The source answered without a counter that is required.
    #[error("session source did not report {0}")]
    Missing(crate::session::StatusKey),
}

/// The durable store could not load or save a file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// An I/O operation on a store file failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`"write"`, `"rename"`, ...).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// confy could not serialize or write the file.
    #[error("confy could not store {path}: {message}")]
    Confy {
        /// The file being written.
        path: PathBuf,
        /// confy's message.
        message: String,
    },
    /// The value could not be serialized to TOML.
    #[error("could not serialize {path}: {message}")]
    Serialize {
        /// The file being written.
        path: PathBuf,
        /// The serializer's message.
        message: String,
    },
    /// The file and its `.bak` are both unusable: refusing to start rather than resetting.
    #[error(
        "{path} is unusable ({reason}) and so is its backup ({backup}); refusing to start \
         rather than silently resetting to defaults: repair or remove the file"
    )]
    Unrecoverable {
        /// The primary file.
        path: PathBuf,
        /// Why the primary file was rejected.
        reason: String,
        /// Why the backup was rejected (or that it is missing).
        backup: String,
    },
    /// A file a person may edit (not sealed) does not parse or holds an unknown key or a
    /// bad value; it is left as written.
    #[error(
        "{path}: {reason}; the file is left as written: fix it, or remove it to start from \
         the defaults"
    )]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line where known.
        reason: String,
    },
    /// A blocking save task failed (panicked or was cancelled).
    #[error("a save task failed: {0}")]
    Task(String),
    /// Another writer holds the file's lock.
    #[error("{path} is locked by {holder}")]
    Locked {
        /// The file that is locked.
        path: PathBuf,
        /// Who holds it.
        holder: LockHolder,
    },
}

/// Who holds a store file's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockHolder {
    /// Another store in this process that did not let go in time (a plugin host that is
    /// still shutting down, or a second host on the same directory).
    ThisProcess,
    /// Another process (is another daemon using this config directory?).
    OtherProcess,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LockHolder::ThisProcess => {
                "another store in this process (a second plugin host on the same directory, \
                 or one that is still shutting down)"
            }
            LockHolder::OtherProcess => {
                "another process (is another daemon using this config directory?)"
            }
        })
    }
}

/// How an argument of an exported method was wrong: decides the wire exception name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArgErrorKind {
    /// Wrong number of arguments, an unexpected keyword or a value of the wrong type.
    Type,
    /// Right type, unacceptable value (out of range, unknown key, ...).
    Value,
}

/// An exported method could not be called or failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum DispatchError {
    /// No method of that name is exported (Deluge: `AttributeError`).
    #[error("RPC call on invalid function: {0}")]
    UnknownMethod(String),
    /// An argument is missing, extra or wrong (Deluge: `TypeError` / `ValueError`).
    #[error("{method}(): argument '{arg}': {reason}")]
    BadArgument {
        /// The full method name.
        method: String,
        /// The argument at fault.
        arg: String,
        /// Why it was rejected.
        reason: String,
        /// Type or value error.
        kind: ArgErrorKind,
    },
    /// The caller's auth level is below the method's (Deluge: `NotAuthorizedError`).
    #[error("{method} needs auth level {required}, caller has {have}")]
    NotAuthorized {
        /// The full method name.
        method: String,
        /// Level the method needs.
        required: u8,
        /// Level the caller has.
        have: u8,
    },
    /// The method ran and failed.
    #[error("{method}: {message}")]
    Plugin {
        /// The full method name.
        method: String,
        /// What went wrong.
        message: String,
    },
    /// The method failed with one of Deluge's own exception classes
    /// (`InvalidTorrentError`, `AddTorrentError`, `DelugeError`, …), which Deluge's clients
    /// show by name.
    #[error("{method}: {class}: {message}")]
    Deluge {
        /// The full method name.
        method: String,
        /// The `deluge.error` class.
        class: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The method exists but this transport cannot answer it (e.g. `daemon.login` called
    /// in-process).
    #[error("{method} is answered by a connection's transport, not through dispatch")]
    TransportOnly {
        /// The full method name.
        method: String,
    },
}

impl DispatchError {
    /// The Python exception class name a Deluge transport reports for this error.
    pub fn exception_name(&self) -> &'static str {
        match self {
            DispatchError::UnknownMethod(_) => "AttributeError",
            DispatchError::BadArgument {
                kind: ArgErrorKind::Type,
                ..
            } => "TypeError",
            DispatchError::BadArgument {
                kind: ArgErrorKind::Value,
                ..
            } => "ValueError",
            DispatchError::NotAuthorized { .. } => "NotAuthorizedError",
            DispatchError::Plugin { .. } => "PluginError",
            DispatchError::TransportOnly { .. } => "AttributeError",
            DispatchError::Deluge { class, .. } => class,
        }
    }
}

/// A method could not be exported.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExportError {
    /// The namespace belongs to another owner.
    #[error(
        "namespace {namespace:?} belongs to {owner}; {refused} may not export into it \
         (give the plugin another namespace)"
    )]
    NamespaceTaken {
        /// The namespace.
        namespace: String,
        /// Its owner.
        owner: String,
        /// Who tried to export into it.
        refused: String,
    },
    /// The method is already exported.
    #[error("{method} is already exported")]
    Duplicate {
        /// The full method name.
        method: String,
    },
    /// The name is not `namespace.method`.
    #[error("{name:?} is not a method name of the form namespace.method")]
    BadName {
        /// The name given.
        name: String,
    },
}

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

/// A `--source` specification could not be understood.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("bad source {spec:?}: {reason}")]
pub struct SourceSpecError {
    /// The specification as given, any password replaced by `***`.
    pub spec: String,
    /// What is wrong with it (in this error's message, so not its source).
    pub reason: SourceSpecReason,
}

/// What is wrong with a `--source` specification.
#[non_exhaustive]
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SourceSpecReason {
    /// A bad `sim:` parameter list.
    #[error(transparent)]
    Sim(#[from] crate::source::SimParamError),
    /// A bad `deluge://` address.
    #[cfg(feature = "rpc-client")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rpc-client")))]
    #[error(transparent)]
    Deluge(#[from] crate::source::DelugeSpecError),
    /// A `deluge://` source in a build without feature `rpc-client`.
    #[error("this build has no Deluge client (feature `rpc-client`)")]
    NoDelugeClient,
    /// `rqbit`: the embedded engine is started with `RqbitEngine::start` (async, with its
    /// options), not from a specification; the daemon does it for `--source rqbit`.
    #[error(
        "the embedded engine is not built from a source specification: start it with \
         RqbitEngine::start (the daemon does this for --source rqbit), or build with \
         feature `rqbit`"
    )]
    Engine,
    /// Neither `sim:`, `deluge://` nor `rqbit`.
    #[error(
        "unknown source kind; expected rqbit, sim:up=RATE,down=RATE[,peers=N] or \
         deluge://USER:PASS@HOST[:PORT]"
    )]
    UnknownKind,
}
