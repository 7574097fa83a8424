//! Deluge's daemon RPC protocol: the client side with feature `rpc-client`, the server
//! side (auth, daemon, server, the TLS key pair) with feature `rpc`.
//!
//! - [`frame`]: framing, limits, version-probe resynchronisation.
//! - [`codec`]: rencode to and from `serde_json::Value`, with a depth limit.
//! - [`message`]: requests, responses, errors, events.
//! - [`auth`]: the auth file and its accounts (the transport-neutral [`crate::auth`]).
//! - [`tls`]: the daemon's key pair, the client's certificate policy.
//! - [`daemon`]: the `daemon.*` and `core.*` methods, sessions, events.
//! - [`server`]: the TLS server, `run(listener, tls, daemon, options, shutdown)`.
//! - [`client`]: an async client with a typed Stats API.

/// The auth file (moved to [`crate::auth`]; this path is kept).
#[cfg(feature = "rpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "rpc")))]
pub use crate::auth;
pub mod client;
pub mod codec;
#[cfg(feature = "rpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "rpc")))]
pub mod daemon;
pub mod frame;
pub mod message;
#[cfg(feature = "rpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "rpc")))]
pub mod server;
pub mod tls;

use std::path::{Path, PathBuf};

/// Errors of the RPC layer's setup and client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// TLS setup or handshake failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// The auth file could not be created or read.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
}

impl RpcError {
    #[cfg_attr(not(feature = "rpc"), allow(dead_code))]
    pub(crate) fn io(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        RpcError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}
