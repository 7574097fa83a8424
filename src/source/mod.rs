//! Session sources: where session status comes from.
//!
//! - [`SimSource`]: deterministic synthetic traffic for demos and tests (`sim:...`).
//! - `DelugeSource`: a running Deluge 2 daemon (`deluge://USER:PASS@HOST[:PORT]`,
//!   feature `rpc-client`).
//! - `RqbitEngine`: the embedded librqbit BitTorrent engine (feature `rqbit`; payload
//!   counters only).
//!
//! Embedders implement [`SessionSource`] for their own engine.

#[cfg(feature = "rpc-client")]
mod deluge;
#[cfg(feature = "rqbit")]
mod http;
#[cfg(feature = "rqbit")]
#[cfg_attr(docsrs, doc(cfg(feature = "rqbit")))]
pub mod rqbit;
mod sim;

use std::sync::Arc;

#[cfg(feature = "rpc-client")]
pub use deluge::{DelugeSource, DelugeSpecError};
#[cfg(feature = "rqbit")]
pub use rqbit::{EngineError, EngineOptions, RqbitEngine};
pub use sim::{SimParamError, SimSource};

use crate::error::{SourceSpecError, SourceSpecReason};
use crate::session::SessionSource;

/// Builds a source from a `--source` specification.
///
/// ```
/// let src = torrent_stats::source::from_spec("sim:up=2MiB/s,down=8MiB/s").unwrap();
/// assert_eq!(src.describe(), "sim:up=2097152B/s,down=8388608B/s,peers=0");
/// use torrent_stats::error::SourceSpecReason;
/// let Err(err) = torrent_stats::source::from_spec("ftp://x") else { panic!() };
/// assert_eq!(err.reason, SourceSpecReason::UnknownKind);
/// // Errors never repeat a password.
/// let Err(err) = torrent_stats::source::from_spec("deluge://me:s3cret@host:0") else {
///     panic!("port 0 accepted")
/// };
/// assert!(!err.to_string().contains("s3cret"), "{err}");
/// ```
pub fn from_spec(spec: &str) -> Result<Arc<dyn SessionSource>, SourceSpecError> {
    let (scheme, rest) = spec.split_once(':').unwrap_or((spec, ""));
    let bad = |spec: String, reason: SourceSpecReason| SourceSpecError { spec, reason };
    match scheme {
        "sim" => Ok(Arc::new(
            SimSource::from_params(rest).map_err(|e| bad(spec.to_string(), e.into()))?,
        )),
        #[cfg(feature = "rpc-client")]
        "deluge" => Ok(Arc::new(
            DelugeSource::from_spec(spec).map_err(|e| bad(redact_password(spec), e.into()))?,
        )),
        #[cfg(not(feature = "rpc-client"))]
        "deluge" => Err(bad(redact_password(spec), SourceSpecReason::NoDelugeClient)),
        "rqbit" => Err(bad(spec.to_string(), SourceSpecReason::Engine)),
        _ => Err(bad(spec.to_string(), SourceSpecReason::UnknownKind)),
    }
}

/// `deluge://USER:PASS@...` with the password replaced by `***`, for messages.
fn redact_password(spec: &str) -> String {
    let Some(rest) = spec.strip_prefix("deluge://") else {
        return spec.to_string();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, hostport)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("deluge://{user}:***@{hostport}"),
            None => spec.to_string(),
        },
        None => spec.to_string(),
    }
}
