//! Session sources: where session status comes from.
//!
//! - [`SimSource`]: deterministic synthetic traffic for demos and tests (`sim:...`).
//!
//! Embedders implement [`SessionSource`](crate::core::SessionSource) for their own engine.

mod sim;

use std::sync::Arc;

pub use sim::SimSource;

use crate::core::SessionSource;
use crate::error::SourceSpecError;

/// Builds a source from a `--source` specification.
///
/// ```
/// let src = torrent_stats::source::from_spec("sim:up=2MiB/s,down=8MiB/s").unwrap();
/// assert_eq!(src.describe(), "sim:up=2097152B/s,down=8388608B/s,peers=0");
/// assert!(torrent_stats::source::from_spec("ftp://x").is_err());
/// ```
pub fn from_spec(spec: &str) -> Result<Arc<dyn SessionSource>, SourceSpecError> {
    let (scheme, rest) = spec.split_once(':').unwrap_or((spec, ""));
    match scheme {
        "sim" => Ok(Arc::new(SimSource::from_params(rest).map_err(
            |reason| SourceSpecError {
                spec: spec.to_string(),
                reason,
            },
        )?)),
        _ => Err(SourceSpecError {
            spec: spec.to_string(),
            reason: "unknown source kind; expected sim:up=RATE,down=RATE[,peers=N]".into(),
        }),
    }
}
