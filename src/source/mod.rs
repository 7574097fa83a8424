//! Session sources: where session status comes from.
//!
//! - [`SimSource`]: deterministic synthetic traffic for demos and tests (`sim:...`).
//! - `DelugeSource`: a running Deluge 2 daemon (`deluge://USER:PASS@HOST[:PORT]`,
//!   feature `rpc-client`).
//! - `RqbitEngine`: the embedded librqbit BitTorrent engine (feature `rqbit`; payload
//!   counters only).
//! - `TransmissionSource`: a running Transmission daemon's RPC
//!   (`transmission://[USER:PASS@]HOST[:PORT][/PATH]`, feature `sidecars`; payload counters
//!   only).
//!
//! Every kind is named by a specification and built on one path:
//! [`SourceSpec::parse`] (a `--source` string) then [`SourceSpec::build`] with a
//! [`SourceContext`] (the config directory, the engine's options), which gives a
//! [`BuiltSource`]: the session source and, for an engine that holds torrents, its
//! [`TorrentEngine`](crate::torrent::TorrentEngine).
//!
//! Embedders implement [`SessionSource`](crate::session::SessionSource) for their own
//! engine.

#[cfg(feature = "rpc-client")]
mod deluge;
#[cfg(feature = "rqbit")]
mod http;
#[cfg(feature = "sidecars")]
mod qbittorrent;
#[cfg(feature = "rqbit")]
#[cfg_attr(docsrs, doc(cfg(feature = "rqbit")))]
mod rqbit;
#[cfg(feature = "sidecars")]
mod rqbit_http;
mod set;
#[cfg(feature = "sidecars")]
mod sidecar;
mod sim;
mod spec;
#[cfg(feature = "sidecars")]
mod transmission;

#[cfg(feature = "rpc-client")]
pub use deluge::{DelugeSource, DelugeSpecError};
#[cfg(feature = "sidecars")]
pub use qbittorrent::QbittorrentSource;
#[cfg(feature = "rqbit")]
pub use rqbit::{EngineError, EngineOptions, RqbitEngine};
#[cfg(feature = "sidecars")]
pub use rqbit_http::RqbitHttpSource;
pub use set::{
    name_sources, split_named, Member, SourceEntry, SourceName, SourceNameError, SourceSet,
    SourceSetError, SourcesFile, SOURCES_DIR, SOURCES_FILE,
};
#[cfg(feature = "sidecars")]
pub use sidecar::SidecarSpecError;
pub use sim::{SimParamError, SimSource};
pub(crate) use spec::ENGINE as ENGINE_KIND;
pub use spec::{
    BuildError, BuiltSource, SourceContext, SourceSpec, SourceSpecError, SourceSpecReason,
};
#[cfg(feature = "sidecars")]
pub use transmission::TransmissionSource;

/// An error and its causes, `: `-separated (reqwest's top level says only "error sending
/// request"). reqwest's errors name the URL, which holds no password here: logins go in
/// headers and bodies, never in URLs.
#[cfg(any(feature = "rqbit", feature = "sidecars"))]
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
