//! Internals the fuzz targets (`fuzz/`) and the tests that replay their corpus drive
//! directly: decoders, file loaders and the web router. Feature `unstable-internals`;
//! **no stability promise**: anything here may change or go in any release.

pub use crate::stats::config::{parse_file as parse_stats_conf, read_file as read_stats_conf};
pub use crate::stats::history::{self, History};
pub use crate::stats::poller::FINAL_POLL_TIMEOUT;
pub use crate::stats::totals::MAX_TOTAL;
pub use crate::store::{parse, read, sealed, to_text, Rejected};

/// Deluge's framing: limits, the decoder and encoder, version-probe resynchronisation.
#[cfg(feature = "rpc-client")]
pub mod frame {
    pub use crate::rpc::frame::*;
}

/// rencode to and from `serde_json::Value`, depth-limited.
#[cfg(feature = "rpc-client")]
pub mod codec {
    pub use crate::rpc::codec::*;
}

/// Requests, responses, errors and events as Deluge's wire carries them.
#[cfg(feature = "rpc-client")]
pub mod message {
    pub use crate::rpc::message::*;
}
#[cfg(feature = "web")]
pub use crate::web::{router, WebState};
