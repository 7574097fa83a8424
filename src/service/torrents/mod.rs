//! Deluge's torrent methods and configuration on the core service, over a
//! [`TorrentEngine`]: the argument and result shapes of Deluge 2.0.3, torrent ids as
//! info-hash hex, errors as `deluge.error` classes, and the torrent events.
//!
//! `export` is the table of methods; each is one function in the file of its group:
//! `add`, `status`, `control`, `config` and `engine`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::event::EventBus;
use crate::export::{Args, AuthLevel};
use crate::export::{DispatchError, ExportError};
use crate::host::WeakHost;
use crate::store::{Persist, Store};
use crate::torrent::{TorrentEngine, TorrentError, TorrentState};

use super::{Ctx, Methods};

mod add;
mod config;
mod control;
mod engine;
mod status;

/// The engine settings kept across restarts (`engine.conf`, hand-editable TOML): what
/// `core.set_config` changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Download limit, bytes/s (absent: unlimited).
    pub max_download_bps: Option<u64>,
    /// Upload limit, bytes/s (absent: unlimited).
    pub max_upload_bps: Option<u64>,
}

impl Persist for EngineConfig {
    const SEALED: bool = false;
}

/// The file of [`EngineConfig`] in the config directory.
pub const ENGINE_CONF: &str = "engine.conf";

/// Refuses an `engine.conf` in `dir` that does not parse or holds an unknown key (a file a
/// person may edit: it is left as written); a missing one is fine.
pub(crate) fn check_engine_conf(dir: &std::path::Path) -> Result<(), crate::store::StoreError> {
    let path = dir.join(ENGINE_CONF);
    match crate::store::read::<EngineConfig>(&path) {
        Ok(_) | Err(crate::store::Rejected::Missing) => Ok(()),
        Err(crate::store::Rejected::Bad(reason)) => {
            Err(crate::store::StoreError::Invalid { path, reason })
        }
    }
}

/// Opens `engine.conf` and applies what it holds to `engine`. A file that cannot be used
/// is reported and the engine runs on its defaults (settings changed later are then not
/// kept).
pub(super) fn restore(
    engine: &dyn TorrentEngine,
    dir: &std::path::Path,
) -> Option<Arc<Store<EngineConfig>>> {
    let opened = Store::<EngineConfig>::open(dir.join(ENGINE_CONF)).and_then(|store| {
        let (config, _) = store.load()?;
        Ok((store, config))
    });
    match opened {
        Ok((store, config)) => {
            let (down, up) = (config.max_download_bps, config.max_upload_bps);
            if down.is_some() || up.is_some() {
                if let Err(e) = engine.set_rate_limits(down, up) {
                    tracing::error!(error = %e, "the saved rate limits do not apply to this engine");
                }
            }
            Some(Arc::new(store))
        }
        Err(e) => {
            tracing::error!(error = %e, "{ENGINE_CONF} unusable: engine settings will not be kept");
            None
        }
    }
}

/// The core's engine, if it has one.
type Engine = Option<Arc<dyn TorrentEngine>>;

/// A `deluge.error` exception of `class`.
fn deluge(a: &Args, class: &'static str, message: impl Into<String>) -> DispatchError {
    DispatchError::Deluge {
        method: a.method().to_string(),
        class,
        message: message.into(),
    }
}

/// An engine's error as its `deluge.error` exception.
fn torrent_error(a: &Args, e: TorrentError) -> DispatchError {
    deluge(a, e.deluge_class(), e.to_string())
}

/// The engine, for a method that cannot answer without one.
fn need(a: &Args, engine: &Engine) -> Result<Arc<dyn TorrentEngine>, DispatchError> {
    engine.clone().ok_or_else(|| {
        deluge(
            a,
            "DelugeError",
            "this daemon has no torrent engine (it counts another source)",
        )
    })
}

/// Exports the torrent methods and `get_config*` into the `core` scope: one method each,
/// answered by the function named after it.
pub(super) fn export(core: &Methods) -> Result<(), ExportError> {
    use AuthLevel as L;
    core.add("get_config", L::ReadOnly, config::get_config)?;
    core.add("get_config_value", L::ReadOnly, config::get_config_value)?;
    core.add("get_config_values", L::ReadOnly, config::get_config_values)?;
    core.add("set_config", L::Admin, config::set_config)?;
    core.add("add_torrent_file", L::Normal, add::add_torrent_file)?;
    core.add("add_torrent_file_async", L::Normal, add::add_torrent_file)?;
    core.add("add_torrent_url", L::Normal, add::add_torrent_url)?;
    core.add("add_torrent_magnet", L::Normal, add::add_torrent_magnet)?;
    core.add("get_session_state", L::ReadOnly, status::get_session_state)?;
    core.add(
        "get_torrents_status",
        L::ReadOnly,
        status::get_torrents_status,
    )?;
    core.add(
        "get_torrent_status",
        L::ReadOnly,
        status::get_torrent_status,
    )?;
    core.add("get_filter_tree", L::ReadOnly, status::get_filter_tree)?;
    core.add("pause_torrent", L::Normal, control::pause_torrent)?;
    core.add("resume_torrent", L::Normal, control::resume_torrent)?;
    core.add("pause_torrents", L::Normal, control::pause_torrents)?;
    core.add("resume_torrents", L::Normal, control::resume_torrents)?;
    core.add("pause_session", L::Normal, control::pause_session)?;
    core.add("resume_session", L::Normal, control::resume_session)?;
    core.add("remove_torrent", L::Normal, control::remove_torrent)?;
    core.add("remove_torrents", L::Normal, control::remove_torrents)?;
    core.add("connect_peer", L::Normal, control::connect_peer)?;
    core.add("force_recheck", L::Normal, control::force_recheck)?;
    core.add(
        "get_libtorrent_version",
        L::ReadOnly,
        engine::get_libtorrent_version,
    )?;
    core.add("get_listen_port", L::ReadOnly, engine::get_listen_port)?;
    core.add("get_free_space", L::ReadOnly, engine::get_free_space)?;
    Ok(())
}

/// Emits `TorrentStateChangedEvent(id, state)` and `TorrentFinishedEvent(id)` as the
/// engine's torrents change, checking once a second until the host is gone.
pub(super) fn watch_states(engine: Arc<dyn TorrentEngine>, events: EventBus, host: WeakHost) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("no tokio runtime: torrent state events are off");
        return;
    };
    runtime.spawn(async move {
        let mut known: HashMap<String, (TorrentState, bool)> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            if host.upgrade().is_none() {
                return;
            }
            let now: HashMap<String, (TorrentState, bool)> = engine
                .torrents()
                .into_iter()
                .map(|t| {
                    let finished = t.is_finished();
                    (t.id, (t.state, finished))
                })
                .collect();
            for (id, (state, finished)) in &now {
                if let Some((was, was_finished)) = known.get(id) {
                    if was != state {
                        events.emit(
                            "TorrentStateChangedEvent",
                            vec![json!(id), json!(state.as_str())],
                        );
                    }
                    if *finished && !was_finished {
                        events.emit("TorrentFinishedEvent", vec![json!(id)]);
                    }
                }
            }
            known = now;
        }
    });
}
