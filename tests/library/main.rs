//! The library's integration tests, one binary: accounting, the plugin host, the typed
//! handle, persistence; with feature `rpc` the wire codec, our client and server, the
//! `deluge://` source against a real deluged; with `rpc` and `web` the fuzz corpus
//! replay; with `sidecars` the `qbittorrent://` and `transmission://` sources against a real
//! qbittorrent-nox and real transmission-daemons.
//!
//! A test that needs a program besides Rust's toolchain (deluged, Deluge's Python rencode,
//! transmission-daemon)
//! or root is `#[ignore]`d with what it needs named; `scripts/test.sh` installs them and
//! runs those too (`--include-ignored`).

#[path = "../support/mod.rs"]
mod support;

mod accounting;
#[cfg(feature = "rpc")]
mod codec;
#[cfg(feature = "rpc")]
mod deluge_source;
#[cfg(all(feature = "rpc", feature = "web"))]
mod fuzz_corpus;
mod handle;
mod host;
#[cfg(feature = "ledger")]
mod ledger;
mod persistence;
#[cfg(feature = "sidecars")]
mod qbittorrent_source;
#[cfg(feature = "rpc")]
mod rpc_client;
#[cfg(feature = "rqbit")]
mod rqbit_legacy_layout;
#[cfg(feature = "sidecars")]
mod rqbit_source;
#[cfg(feature = "sidecars")]
mod sources;
#[cfg(feature = "sidecars")]
mod transmission_source;
