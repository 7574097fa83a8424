//! Deluge's torrent methods and configuration on the core service, over a
//! [`TorrentEngine`]: the argument and result shapes of Deluge 2.0.3, torrent ids as
//! info-hash hex, errors as `deluge.error` classes, and the torrent events.
//!
//! `export` is the table of methods; each is one function in the file of its group:
//! `add`, `status`, `control`, `options`, `config` and `engine`.

use std::path::Path;
use std::sync::Arc;

use crate::export::{Args, AuthLevel};
use crate::export::{DispatchError, ExportError};
use crate::store::StoreError;
use crate::store::{Persist, Store};
use crate::torrent::{TorrentEngine, TorrentError};

use super::{Ctx, Methods};

mod add;
mod answer;
mod config;
mod config_values;
mod control;
#[cfg(test)]
mod edit_tests;
mod engine;
mod fields;
mod options;
mod status;
#[cfg(test)]
mod status_tests;
mod watch;

pub use answer::TorrentsStatus;
pub(super) use status::torrents_status;

pub(super) use watch::watch_states;

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

/// `engine.conf`, opened (its writer lock taken) and loaded once at start: what it held,
/// and the store `core.set_config` keeps later changes in.
pub(crate) struct EngineConf {
    store: Store<EngineConfig>,
    config: EngineConfig,
}

impl EngineConf {
    /// Opens and loads `engine.conf` in `dir`. A missing or empty file is the defaults; one
    /// that does not parse or holds an unknown key is refused with
    /// [`StoreError::Invalid`] naming it (a file a person may edit: it is left as written).
    pub(crate) fn open(dir: &Path) -> Result<EngineConf, StoreError> {
        let store = Store::<EngineConfig>::open(dir.join(ENGINE_CONF))?;
        let (config, _) = store.load()?;
        Ok(EngineConf { store, config })
    }

    /// Opens `engine.conf` as [`open`](EngineConf::open) does, but a file that cannot be
    /// used is reported and gives `None`: the engine then runs on its defaults, and settings
    /// changed later are not kept.
    pub(super) fn open_or_report(dir: &Path) -> Option<EngineConf> {
        EngineConf::open(dir)
            .map_err(|e| {
                tracing::error!(error = %e, "{ENGINE_CONF} unusable: engine settings will not be kept");
            })
            .ok()
    }

    /// Applies the saved rate limits to `engine`; the store, for the changes to come.
    pub(super) fn restore(self, engine: &dyn TorrentEngine) -> Arc<Store<EngineConfig>> {
        let (down, up) = (self.config.max_download_bps, self.config.max_upload_bps);
        if down.is_some() || up.is_some() {
            if let Err(e) = engine.set_rate_limits(down, up) {
                tracing::error!(error = %e, "the saved rate limits do not apply to this engine");
            }
        }
        Arc::new(self.store)
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
    core.add("force_reannounce", L::Normal, control::force_reannounce)?;
    core.add("move_storage", L::Normal, control::move_storage)?;
    core.add(
        "set_torrent_trackers",
        L::Normal,
        control::set_torrent_trackers,
    )?;
    core.add(
        "set_torrent_options",
        L::Normal,
        options::set_torrent_options,
    )?;
    core.add(
        "get_libtorrent_version",
        L::ReadOnly,
        engine::get_libtorrent_version,
    )?;
    core.add("get_listen_port", L::ReadOnly, engine::get_listen_port)?;
    core.add("get_free_space", L::ReadOnly, engine::get_free_space)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::path::PathBuf;
    use std::sync::Mutex;

    use serde_json::Value;

    use super::*;
    use crate::host::PluginHost;
    use crate::service::Core;
    use crate::session::SourceError;
    use crate::session::{SessionId, SessionSource, SessionStatus, StatusKey};
    use crate::torrent::{AddOptions, TorrentInfo, TorrentSource};

    /// An engine with rate limits only, and a session source without figures.
    #[derive(Default)]
    pub(super) struct Limits(Mutex<(Option<u64>, Option<u64>)>);

    #[async_trait::async_trait]
    impl SessionSource for Limits {
        async fn session_status(&self, _: &[StatusKey]) -> Result<SessionStatus, SourceError> {
            Ok(SessionStatus::new(SessionId::new("limits")))
        }
    }

    #[async_trait::async_trait]
    impl TorrentEngine for Limits {
        async fn add(&self, _: TorrentSource, _: AddOptions) -> Result<String, TorrentError> {
            Err(TorrentError::Unsupported("no adds".into()))
        }
        fn torrents(&self) -> Vec<TorrentInfo> {
            Vec::new()
        }
        async fn pause(&self, _: &str) -> Result<(), TorrentError> {
            Ok(())
        }
        async fn resume(&self, _: &str) -> Result<(), TorrentError> {
            Ok(())
        }
        async fn remove(&self, _: &str, _: bool) -> Result<(), TorrentError> {
            Ok(())
        }
        async fn connect_peer(&self, _: &str, _: SocketAddr) -> Result<(), TorrentError> {
            Ok(())
        }
        fn download_location(&self) -> PathBuf {
            PathBuf::new()
        }
        fn listen_port(&self) -> Option<u16> {
            None
        }
        fn version(&self) -> String {
            "limits".into()
        }
        fn rate_limits(&self) -> (Option<u64>, Option<u64>) {
            *self.0.lock().unwrap()
        }
        fn set_rate_limits(&self, down: Option<u64>, up: Option<u64>) -> Result<(), TorrentError> {
            *self.0.lock().unwrap() = (down, up);
            Ok(())
        }
    }

    #[test]
    fn engine_conf_missing_or_empty_is_the_defaults_and_a_bad_one_is_refused_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(ENGINE_CONF);
        assert_eq!(
            EngineConf::open(dir.path()).unwrap().config,
            EngineConfig::default()
        );
        std::fs::write(&file, "").unwrap();
        assert_eq!(
            EngineConf::open(dir.path()).unwrap().config,
            EngineConfig::default()
        );
        let bad = "max_download_bps = 1000\nmax_upload_bsp = 10\n";
        std::fs::write(&file, bad).unwrap();
        match EngineConf::open(dir.path()) {
            Err(StoreError::Invalid { path, reason }) => {
                assert_eq!(path, file);
                assert!(reason.contains("max_upload_bsp"), "{reason}");
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("{bad:?} accepted"),
        }
        assert_eq!(std::fs::read_to_string(&file).unwrap(), bad);
    }

    /// What `EngineConf::open` loaded is what the core applies: the file is not read again.
    #[tokio::test]
    async fn the_core_applies_engine_conf_as_opened_without_reading_it_again() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(ENGINE_CONF);
        std::fs::write(&file, "max_download_bps = 2048\n").unwrap();
        let conf = EngineConf::open(dir.path()).unwrap();
        std::fs::write(&file, "max_download_bps = \"fast\"\n").unwrap();
        let engine = Arc::new(Limits::default());
        let host = PluginHost::open(engine.clone(), dir.path()).unwrap();
        let core = Core::with_engine_conf(host, Some(engine.clone()), Some(conf)).unwrap();
        assert_eq!(engine.rate_limits(), (Some(2048), None));
        let kib = core
            .dispatch(
                "core.get_config_value",
                vec![Value::from("max_download_speed")],
                Default::default(),
                AuthLevel::Admin,
            )
            .await
            .unwrap();
        assert_eq!(kib, 2.0);
    }
}
