//! # torrent-stats
//!
//! Crash-safe all-time download/upload statistics for BitTorrent daemons: the Rust form of
//! Deluge's Stats plugin, with its plugin host, built to be embedded.
//!
//! ## Layout
//! Data flows one way: source → accumulator → store → exports → transports.
//!
//! | module | holds |
//! |---|---|
//! | [`session`] | [`SessionStatus`](session::SessionStatus), the [`SessionSource`](session::SessionSource) trait, session identity |
//! | [`source`] | sources: [`SimSource`](source::SimSource) (synthetic), `DelugeSource` (feature `rpc-client`), `RqbitEngine` (feature `rqbit`), `from_spec` |
//! | [`torrent`] | the [`TorrentEngine`](torrent::TorrentEngine) trait behind Deluge's torrent methods, torrent status, errors |
//! | [`plugin`] | the [`CorePlugin`](plugin::CorePlugin) trait (lifecycle documented there) and its [`PluginContext`](plugin::PluginContext) |
//! | [`host`] | [`PluginHost`](host::PluginHost): enable/disable, 1 s `update()`, enabled list, shutdown |
//! | [`export`] | method table, [`AuthLevel`](export::AuthLevel), [`Caller`](export::Caller), typed arguments, [`dispatch`](export::Exports::dispatch) |
//! | [`event`] | the [`EventBus`](event::EventBus) |
//! | [`service`] | the core service [`Core`](service::Core): Deluge's `core.*`/`daemon.*` methods (torrents through an engine), host, source, events, one `dispatch` |
//! | [`daemon`] | [`Daemon::builder`](daemon::Daemon::builder): config dir + source + plugins + transports → `run(shutdown)` |
//! | [`store`] | durable TOML files (confy's toml): fresh temp file + fsync + rename, `.bak`, checksum, recovery |
//! | [`stats`] | the [`Stats`](stats::Stats) plugin and its typed [`StatsHandle`](stats::StatsHandle): accumulator, history, preferences, poll task |
//! | [`auth`] | the auth file: accounts and levels every transport logs users in against |
//! | [`throttle`] | login throttling per connection and source address, flood-proof log counters, every transport's |
//! | `rpc` (features `rpc-client`, `rpc`) | Deluge's wire protocol: framing, rencode, TLS, login, server, client |
//! | `web` (feature `web`) | the HTTP server: the page, `POST /json`, `GET /metrics` (Prometheus), `GET /events` (SSE) |
//! | [`import`] | other clients' all-time totals: Deluge `stats.totals`, Transmission `stats.json`, fingerprints |
//! | [`units`] | byte units for rates and human output |
//! | [`checksum`] | `fnv1a64`, the store's checksum and the import fingerprint |
//! | [`base64`] | decoding the torrent files Deluge's clients send |
//!
//! ## Features
//! | feature | adds |
//! |---|---|
//! | (none) | the library above on tokio, serde, serde_json, confy (and its toml), tracing, async-trait, thiserror |
//! | `rpc-client` | Deluge RPC client side: framing, rencode, TLS client, `rpc::client`, the `deluge://` source |
//! | `rpc` (default) | `rpc-client` plus the server side: auth file, TLS key pair, logins, `rpc::server`, `DaemonBuilder::rpc` |
//! | `rqbit` (default) | the embedded librqbit engine: [`source::RqbitEngine`] (payload counters only) |
//! | `web` (default) | the HTTP server on axum: the page, the JSON API, Prometheus metrics, server-sent events, `DaemonBuilder::web` |
//! | `cli` (default) | the `torrent-stats` binary (turns on `rpc`; uses `rqbit` and `web` when built with them) |
//!
//! `scripts/test.sh` builds every one of these combinations.
//!
//! ## Embedding
//! Register [`Stats`](stats::Stats) with a host on your engine's
//! [`SessionSource`](session::SessionSource), keep its typed handle:
//! ```
//! use std::sync::Arc;
//! use torrent_stats::{host::PluginHost, source::SimSource, stats::Stats};
//!
//! # torrent_stats::tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! # let dir = std::env::temp_dir().join(format!("ts-doc-lib-{}", std::process::id()));
//! let host = PluginHost::open(Arc::new(SimSource::new(1000, 4000, 5)), &dir).unwrap();
//! let stats = Arc::new(Stats::new());
//! let handle = stats.handle();
//! host.register(stats).await.unwrap();
//! host.enable("Stats").await.unwrap(); // polls every 2 s; update() runs every second
//! let totals = handle.poll_now().await.unwrap(); // e.g. before your engine restarts
//! assert!(handle.totals().unwrap().total_upload >= totals.total_upload); // it keeps counting
//! host.shutdown().await; // disables every plugin; each saves
//! # drop(host); std::fs::remove_dir_all(&dir).unwrap();
//! # });
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod auth;
pub mod base64;
pub mod checksum;
pub mod clock;
pub mod daemon;
pub mod event;
pub mod export;
pub mod host;
pub mod import;
pub mod plugin;
#[cfg(feature = "rpc-client")]
#[cfg_attr(docsrs, doc(cfg(feature = "rpc-client")))]
pub mod rpc;
pub mod service;
pub mod session;
pub mod source;
pub mod stats;
pub mod store;
pub mod throttle;
pub mod torrent;
pub mod units;
#[cfg(feature = "web")]
#[cfg_attr(docsrs, doc(cfg(feature = "web")))]
pub mod web;

/// Re-exported so embedders can implement [`session::SessionSource`] and
/// [`plugin::CorePlugin`] without depending on async-trait themselves.
pub use async_trait::async_trait;
/// Re-exported: method arguments and results are `serde_json::Value`s.
pub use serde_json;
/// Re-exported: handles return tokio channels (e.g. [`stats::StatsHandle::watch`]).
pub use tokio;

/// The README's examples, compiled as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
