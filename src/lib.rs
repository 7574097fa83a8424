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
//! | [`core`] | [`SessionStatus`](core::SessionStatus), [`SessionSource`](core::SessionSource), session identity |
//! | [`source`] | sources: [`SimSource`](source::SimSource) (synthetic), `from_spec` |
//! | [`plugin`] | the [`CorePlugin`](plugin::CorePlugin) trait (lifecycle documented there) and its [`PluginContext`](plugin::PluginContext) |
//! | [`host`] | [`PluginHost`](host::PluginHost): enable/disable, 1 s `update()`, enabled list, shutdown |
//! | [`export`] | method table, [`AuthLevel`](export::AuthLevel), argument decoding, [`dispatch`](export::Exports::dispatch) |
//! | [`store`] | durable TOML files on confy: temp + fsync + rename, `.bak`, checksum, recovery |
//! | [`stats`] | the [`Stats`](stats::Stats) plugin: accumulator, history, preferences, poll task |
//! | [`import`] | other clients' all-time totals: Deluge `stats.totals`, Transmission `stats.json`, fingerprints |
//! | [`units`] | byte units for rates and human output |
//! | [`checksum`] | `fnv1a64`, the store's checksum and the import fingerprint |
//! | [`error`] | the error enums |
//!
//! ## Embedding
//! ```
//! use std::sync::Arc;
//! use torrent_stats::{export::AuthLevel, host::PluginHost, source::SimSource, stats::Stats};
//!
//! # tokio_test::block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let host = PluginHost::open(Arc::new(SimSource::new(1000, 4000, 5)), dir.path()).unwrap();
//! host.register(Arc::new(Stats::new())).await.unwrap();
//! host.enable("Stats").await.unwrap();
//! let totals = host
//!     .exports()
//!     .dispatch("stats.get_totals", vec![], Default::default(), AuthLevel::ReadOnly)
//!     .await;
//! assert!(totals.is_err()); // get_totals needs NORMAL
//! host.shutdown().await;
//! # });
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod checksum;
pub mod core;
pub mod error;
pub mod export;
pub mod host;
pub mod import;
pub mod plugin;
#[cfg(feature = "rpc")]
pub mod rpc;
pub mod source;
pub mod stats;
pub mod store;
pub mod units;

/// Re-exported so embedders can implement [`core::SessionSource`] and
/// [`plugin::CorePlugin`] without depending on async-trait themselves.
pub use async_trait::async_trait;

/// The README's examples, compiled as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
