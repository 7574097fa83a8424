//! # torrent-stats
//!
//! Crash-safe all-time download/upload statistics for BitTorrent daemons: the Rust form of
//! Deluge's Stats plugin, with its plugin host, built to be embedded.
//!
//! ## Embedding
//! Your engine implements [`SessionSource`]; register [`Stats`] with a [`PluginHost`] on it
//! and keep its typed [`StatsHandle`]:
//! ```
//! use std::sync::Arc;
//! use torrent_stats::{PluginHost, SimSource, Stats};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! # let dir = std::env::temp_dir().join(format!("ts-doc-lib-{}", std::process::id()));
//! let host = PluginHost::open(Arc::new(SimSource::new(1000, 4000, 5)), &dir).unwrap();
//! let stats = Arc::new(Stats::new());
//! let handle = stats.handle();
//! host.register(stats).await.unwrap();
//! host.enable("Stats").await.unwrap(); // loads or recovers the files, polls every 2 s
//! let totals = handle.poll_now().await.unwrap(); // e.g. before your engine restarts
//! assert!(handle.totals().unwrap().total_upload >= totals.total_upload); // it keeps counting
//! host.shutdown().await; // disables every plugin; each saves
//! # drop(host); std::fs::remove_dir_all(&dir).unwrap();
//! # });
//! ```
//! - **Typed access**: [`StatsHandle`] reads totals, preferences and health, changes
//!   preferences ([`ConfigChange`], refused with a [`ConfigError`] naming the key and its
//!   range), resets, imports and polls on demand; [`StatsHandle::watch`] gives a
//!   [`Snapshot`] after every poll (a `tokio::sync::watch` receiver: this crate runs on
//!   tokio).
//! - **Your own plugins** implement [`CorePlugin`] (its lifecycle is documented there); the
//!   [`PluginContext`] they get exports methods ([`ExportScope`], typed [`Args`]), opens
//!   durable files ([`Store`] of a [`Persist`] type) and emits events ([`EventBus`]).
//!   Methods take and return `serde_json::Value`s: that is what transports carry.
//! - **Sources**: [`SimSource`] (synthetic), and with features a remote Deluge daemon
//!   (`DelugeSource`, `rpc-client`), the embedded librqbit engine (`RqbitEngine`,
//!   `rqbit`) and the HTTP sidecars for Transmission, qBittorrent and rqbit
//!   (`TransmissionSource`, `QbittorrentSource`, `RqbitHttpSource`, `sidecars`), each
//!   named by a [`SourceSpec`] and built with a [`SourceContext`]. A daemon counts a
//!   [`SourceSet`] of named sources (the sources file, [`Stats::with_sources`]); an
//!   embedder's [`Stats::new`] counts the host's one source.
//! - **A whole daemon** in your process: [`Daemon::builder`] runs the host, the core's
//!   Deluge methods ([`Core`], over a [`TorrentEngine`] if you have one) and, with features,
//!   Deluge's RPC protocol (`rpc`) and the web page, JSON API and Prometheus metrics (`web`)
//!   until a shutdown future completes.
//!
//! Beyond the root: [`units`] (byte units), [`clock`] (Unix time as the files write it),
//! [`import`] (other clients' totals files), [`offline`] (the totals read from the files
//! without the daemon), [`auth`] (the auth file), and with feature `rpc-client` [`rpc`]'s
//! client and [`remote`] (the `stats.*` methods of a remote daemon, typed). The `unstable`
//! module (feature `unstable-internals`) exposes decoders for the fuzz targets only, with
//! no stability promise.
//!
//! ## Layout
//! Data flows one way: source → accumulator → store → exports → transports. Modules import
//! only those below them (`layers.py` checks it):
//!
//! | module | holds |
//! |---|---|
//! | `daemon` | [`Daemon`] and its builder: config dir + source + plugins + transports → `run(shutdown)` |
//! | `web` (feature `web`) | the HTTP server: the page, `POST /json`, `GET /metrics`, `GET /events`; browser logins |
//! | `rpc` (features `rpc-client`, `rpc`) | Deluge's wire protocol: framing, rencode, TLS, the gateway (logins, connections), server, client |
//! | `service` | the core service [`Core`]: Deluge's `core.*`/`daemon.*` methods, one file per group |
//! | `stats` | the [`Stats`] plugin: `totals` (pure accumulator), `history`, `config` (typed preferences), `poller` (one source's loop, owning its files), `ledger` (feature `ledger`: the calendar, quotas, backup), `quota_watch` (quotas at run time), `registry` (the sources of the running plugin, combined figures), `combined` (their session as one source), `handle` (typed), `methods` and `calendar_methods` (the only files decoding `stats.*` JSON), `remote`, `offline` |
//! | `import` | other clients' all-time totals: Deluge `stats.totals`, Transmission `stats.json` |
//! | `host` | [`PluginHost`]: enable/disable, 1 s `update()`, enabled list, shutdown |
//! | `plugin` | [`CorePlugin`] (lifecycle) and [`PluginContext`] |
//! | `source` | [`SourceSpec`] → [`BuiltSource`]: `sim`, `deluge`, the engine, the sidecars (`transmission`, `qbittorrent`, `rqbit`); `set`: [`SourceName`], the sources file, [`SourceSet`] |
//! | `torrent` | the [`TorrentEngine`] trait behind Deluge's torrent methods |
//! | `session` | [`SessionStatus`], [`SessionSource`], [`SessionId`], [`SourceError`] |
//! | `export` | the method table, [`AuthLevel`], [`Caller`], [`Args`], `dispatch`, [`DispatchError`] |
//! | `auth`, `throttle` | the auth file; login throttling shared by every transport |
//! | `store` | durable TOML files: temp file + fsync + rename, `.bak`, checksum, recovery; [`StoreError`] |
//! | `event` | the [`EventBus`] |
//! | `units`, `clock`, `checksum`, `base64` | byte units, the wall clock, FNV-1a, base64 |
//!
//! ## Features
//! | feature | adds |
//! |---|---|
//! | (default: none) | the core above on tokio, serde, serde_json, confy (and its toml), tracing, async-trait, thiserror |
//! | `rpc-client` | Deluge RPC client side: framing, rencode, TLS client, [`rpc::client`], `DelugeSource` |
//! | `rpc` | `rpc-client` plus the server side: TLS key pair, logins, `rpc::server`, `DaemonBuilder::rpc` |
//! | `rqbit` | the embedded librqbit engine, `RqbitEngine` (payload counters only) |
//! | `sidecars` | the HTTP sidecar sources: `transmission://`, `qbittorrent://`, `rqbit://` (reqwest, rustls) |
//! | `web` | the HTTP server on axum, `DaemonBuilder::web`; over HTTPS (`WebConfig`, `web.toml`) with `rpc` too |
//! | `ledger` | [`ledger`]: the calendar ledger (SQLite through rusqlite, bundled; local time through jiff, its time-zone database bundled), quotas, `stats.get_calendar`/`get_quotas`/`set_quotas`, backups |
//! | `unstable-internals` | the `unstable` module: decoders and loaders for the fuzz targets; no stability promise |
//!
//! The daemon itself is the `torrent-stats-cli` package of the workspace, built on this
//! crate with `rpc`, `sidecars`, `rqbit` and `web`. `scripts/test.sh` builds every feature alone.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod auth;
mod base64;
mod checksum;
pub mod clock;
mod daemon;
mod event;
mod export;
mod host;
pub mod import;
mod plugin;
#[cfg(feature = "rpc-client")]
#[cfg_attr(docsrs, doc(cfg(feature = "rpc-client")))]
pub mod rpc;
mod service;
mod session;
mod source;
mod stats;
mod store;
mod throttle;
mod torrent;
pub mod units;
#[cfg(feature = "unstable-internals")]
#[cfg_attr(docsrs, doc(cfg(feature = "unstable-internals")))]
pub mod unstable;
#[cfg(feature = "web")]
mod web;

#[cfg(feature = "ledger")]
#[cfg_attr(docsrs, doc(cfg(feature = "ledger")))]
pub use stats::ledger;

#[cfg(feature = "rpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "rpc")))]
pub use daemon::RpcSettings;
pub use daemon::{prepare_config_dir, Daemon, DaemonBuilder, DaemonError, ReloadError, Reloader};
pub use event::{Event, EventBus, Interest, WeakEventBus};
pub use export::{
    ArgErrorKind, Args, AuthLevel, Caller, DispatchError, ExportError, ExportScope, Exports,
};
pub use host::{HostConfig, PluginHost};
pub use plugin::{CorePlugin, PluginContext, PluginError, Shutdown, ShutdownTrigger};
pub use service::{Core, EngineConfig, TorrentsStatus};
pub use session::{SessionId, SessionSource, SessionStatus, SourceError, StatusKey};
pub use source::{
    name_sources, split_named, BuildError, BuiltSource, Member, SimParamError, SimSource,
    SourceContext, SourceEntry, SourceName, SourceNameError, SourceSet, SourceSetError, SourceSpec,
    SourceSpecError, SourceSpecReason, SourcesFile, SOURCES_DIR, SOURCES_FILE,
};
#[cfg(feature = "rpc-client")]
#[cfg_attr(docsrs, doc(cfg(feature = "rpc-client")))]
pub use source::{DelugeSource, DelugeSpecError};
#[cfg(feature = "rqbit")]
#[cfg_attr(docsrs, doc(cfg(feature = "rqbit")))]
pub use source::{EngineError, EngineOptions, RqbitEngine};
#[cfg(feature = "sidecars")]
#[cfg_attr(docsrs, doc(cfg(feature = "sidecars")))]
pub use source::{QbittorrentSource, RqbitHttpSource, SidecarSpecError, TransmissionSource};
pub use stats::offline;
#[cfg(feature = "rpc-client")]
#[cfg_attr(docsrs, doc(cfg(feature = "rpc-client")))]
pub use stats::remote;
pub use stats::{
    Accumulator, ChangeError, CombinedSession, ConfigChange, ConfigError, ConfigFileError,
    ConfigKey, Counters, Health, Import, ImportRefused, Rates, Snapshot, SourceChangeError,
    SourceSnapshot, Stats, StatsConfig, StatsError, StatsHandle,
};
pub use stats::{CONF_FILE, HISTORY_FILE, TOTALS_FILE};
pub use store::{Durability, LockHolder, Persist, Store, StoreError};
pub use torrent::{
    AddOptions, Discovery, MetaInfo, Needs, TorrentEngine, TorrentError, TorrentFile, TorrentInfo,
    TorrentSource, TorrentState, Tracker,
};
/// How to log in to the web page: the user and the file holding its password.
#[cfg(feature = "web")]
#[cfg_attr(docsrs, doc(cfg(feature = "web")))]
pub use web::login_hint as web_login_hint;
/// The web server's default port (Deluge-Web's).
#[cfg(feature = "web")]
#[cfg_attr(docsrs, doc(cfg(feature = "web")))]
pub use web::DEFAULT_PORT as DEFAULT_WEB_PORT;
/// The web server's settings (`web.toml`: HTTPS and its key pair) and their errors.
#[cfg(feature = "web")]
#[cfg_attr(docsrs, doc(cfg(feature = "web")))]
pub use web::{WebConfig, WebConfigError, WebTlsError, WEB_CONFIG_FILE};

/// Re-exported so embedders can implement [`SessionSource`] and [`CorePlugin`] without
/// depending on async-trait themselves.
pub use async_trait::async_trait;

/// The README's examples, compiled as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// The examples of `docs/embedding.md`, compiled as doctests.
#[doc = include_str!("../docs/embedding.md")]
#[cfg(doctest)]
pub struct EmbeddingDoctests;
