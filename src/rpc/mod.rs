//! Deluge's daemon RPC protocol: the client side with feature `rpc-client`, the server
//! side (the gateway, the server, the TLS key pair) with feature `rpc`. The wire and
//! nothing else: no Stats types (the typed `stats.*` calls are [`crate::remote`]).
//!
//! - [`client`]: an async client of ours or of a real `deluged`.
//! - [`tls`]: the daemon's key pair, the client's certificate policy.
//! - [`gateway`]: logins and each connection's state, calls answered through the core.
//! - [`server`]: the TLS server, `run(listener, tls, gateway, options, shutdown)`.
//! - `frame` (framing, limits, version-probe resynchronisation), `codec` (rencode to and
//!   from `serde_json::Value`, depth-limited) and `message` (requests, responses, errors,
//!   events) are internal; their errors are re-exported here, the modules themselves only
//!   with feature `unstable-internals` (`crate::unstable`).

pub mod client;
pub(crate) mod codec;
pub(crate) mod frame;
#[cfg(feature = "rpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "rpc")))]
pub mod gateway;
pub(crate) mod message;
#[cfg(feature = "rpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "rpc")))]
pub mod server;
pub mod tls;

pub use codec::CodecError;
pub use frame::{FrameError, Limits};
pub use message::RemoteError;

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
