//! Tests that the status methods ask the engine for no more than they answer: the ids of
//! the filter (looked up, not every torrent), the facts of the keys asked for; and that a
//! torrent's values are the same whether the engine gives the whole-torrent sizes alone or
//! with the file list.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::export::AuthLevel;
use crate::host::PluginHost;
use crate::service::Core;
use crate::session::{SessionId, SessionSource, SessionStatus, SourceError, StatusKey};
use crate::torrent::{
    AddOptions, MetaInfo, Needs, TorrentEngine, TorrentError, TorrentFile, TorrentInfo,
    TorrentSource, TorrentState, Tracker,
};

/// What the status methods asked of [`Recorded`].
#[derive(Debug, Clone, PartialEq)]
enum Asked {
    /// `torrents()`: every torrent with everything.
    All,
    /// `torrents_with(ids, needs)`.
    With(Option<Vec<String>>, Needs),
}

/// Torrents `0…0` to `n`, each of one file of 1000 bytes, 600 present (one wanted file
/// of 600 bytes: the whole-torrent figures differ from the wanted ones), a tracker; every
/// call recorded.
struct Recorded {
    torrents: Vec<TorrentInfo>,
    asked: Mutex<Vec<Asked>>,
}

fn id(i: usize) -> String {
    format!("{i:040x}")
}

/// Torrent `i`, its whole-torrent figures in the file list (`files`) or alone.
fn torrent(i: usize, files: bool) -> TorrentInfo {
    let mut t = TorrentInfo::new(id(i), format!("t{i}"), TorrentState::Seeding);
    t.total_size = 600;
    t.total_done = 600;
    t.total_uploaded = 1200;
    t.upload_payload_rate = Some(if i == 1 { 10 } else { 0 });
    t.save_path = PathBuf::from("/data");
    t.trackers = vec![Tracker::new("http://tracker.example.com/announce", 0)];
    if files {
        let mut file = TorrentFile::new("a", 1000, 0);
        file.done = Some(700);
        t.meta = Some(MetaInfo::new(vec![file], 16384, 1, true));
    } else {
        t.all_files_size = Some(1000);
        t.all_files_done = Some(700);
    }
    t
}

impl Recorded {
    fn new(n: usize) -> Arc<Recorded> {
        Arc::new(Recorded {
            torrents: (0..n).map(|i| torrent(i, true)).collect(),
            asked: Mutex::default(),
        })
    }

    fn asked(&self) -> Vec<Asked> {
        std::mem::take(&mut *self.asked.lock().unwrap())
    }
}

#[async_trait::async_trait]
impl SessionSource for Recorded {
    async fn session_status(&self, _: &[StatusKey]) -> Result<SessionStatus, SourceError> {
        Ok(SessionStatus::new(SessionId::new("recorded")))
    }
}

#[async_trait::async_trait]
impl TorrentEngine for Recorded {
    async fn add(&self, _: TorrentSource, _: AddOptions) -> Result<String, TorrentError> {
        Err(TorrentError::Unsupported("no adds".into()))
    }
    fn torrents(&self) -> Vec<TorrentInfo> {
        self.asked.lock().unwrap().push(Asked::All);
        self.torrents.clone()
    }
    fn torrents_with(&self, ids: Option<&[&str]>, needs: Needs) -> Vec<TorrentInfo> {
        let owned = ids.map(|ids| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        self.asked
            .lock()
            .unwrap()
            .push(Asked::With(owned.clone(), needs));
        self.torrents
            .iter()
            .filter(|t| owned.as_ref().is_none_or(|ids| ids.contains(&t.id)))
            .cloned()
            .collect()
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
        "recorded".into()
    }
}

struct Setup {
    core: Core,
    engine: Arc<Recorded>,
    _dir: tempfile::TempDir,
}

fn setup(n: usize) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let engine = Recorded::new(n);
    let host = PluginHost::open(engine.clone(), dir.path()).unwrap();
    let core = Core::with_engine_conf(host, Some(engine.clone()), None).unwrap();
    Setup {
        core,
        engine,
        _dir: dir,
    }
}

async fn call(s: &Setup, method: &str, args: Value) -> Value {
    let args = args.as_array().unwrap().clone();
    s.core
        .dispatch(method, args, Default::default(), AuthLevel::Admin)
        .await
        .unwrap()
}

/// A dozen keys of a torrent list (Deluge GTK's and Flood's kind).
const LIST_KEYS: [&str; 12] = [
    "name",
    "state",
    "progress",
    "total_size",
    "total_done",
    "ratio",
    "num_peers",
    "download_payload_rate",
    "upload_payload_rate",
    "eta",
    "time_added",
    "save_path",
];

fn with(ids: Option<&[String]>, meta: bool, trackers: bool) -> Asked {
    let mut needs = Needs::NONE;
    needs.meta = meta;
    needs.trackers = trackers;
    Asked::With(ids.map(<[String]>::to_vec), needs)
}

#[tokio::test]
async fn a_list_of_every_torrent_asks_for_no_file_list_and_no_trackers() {
    let s = setup(5);
    let out = call(&s, "core.get_torrents_status", json!([{}, LIST_KEYS])).await;
    assert_eq!(out.as_object().unwrap().len(), 5);
    assert_eq!(out[id(3)].as_object().unwrap().len(), 12);
    assert_eq!(s.engine.asked(), [with(None, false, false)]);

    let keys = json!(["name", "tracker_host"]);
    call(&s, "core.get_torrents_status", json!([{}, keys])).await;
    assert_eq!(s.engine.asked(), [with(None, false, true)]);
    let keys = json!(["num_files"]);
    call(&s, "core.get_torrents_status", json!([{}, keys])).await;
    assert_eq!(s.engine.asked(), [with(None, true, false)]);
    // No keys: every key.
    call(&s, "core.get_torrents_status", json!([{}, []])).await;
    assert_eq!(s.engine.asked(), [with(None, true, true)]);
    // A filter on the tracker host needs the trackers.
    let filter = json!({"tracker_host": "example.com", "state": ["Seeding", "Active"]});
    let out = call(&s, "core.get_torrents_status", json!([filter, ["name"]])).await;
    assert_eq!(out.as_object().unwrap().len(), 5);
    assert_eq!(s.engine.asked(), [with(None, false, true)]);
}

#[tokio::test]
async fn an_id_filter_looks_the_ids_up() {
    let s = setup(50);
    let one = [id(7)];
    let out = call(
        &s,
        "core.get_torrents_status",
        json!([{"id": id(7)}, LIST_KEYS]),
    )
    .await;
    assert_eq!(
        out.as_object().unwrap().keys().collect::<Vec<_>>(),
        [&id(7)]
    );
    assert_eq!(s.engine.asked(), [with(Some(&one), false, false)]);

    let two = [id(7), "f".repeat(40)];
    let filter = json!({"id": two, "state": "Active"});
    let out = call(&s, "core.get_torrents_status", json!([filter, ["name"]])).await;
    assert_eq!(out, json!({}), "torrent 7 is not active, the other unknown");
    assert_eq!(s.engine.asked(), [with(Some(&two), false, false)]);
    // "All" is no filter.
    call(
        &s,
        "core.get_torrents_status",
        json!([{"id": "All"}, ["name"]]),
    )
    .await;
    assert_eq!(s.engine.asked(), [with(None, false, false)]);

    let out = call(&s, "core.get_torrent_status", json!([id(7), ["name"]])).await;
    assert_eq!(out, json!({"name": "t7"}));
    assert_eq!(s.engine.asked(), [with(Some(&one), false, false)]);
    call(&s, "core.get_torrent_status", json!([id(7), ["files"]])).await;
    assert_eq!(s.engine.asked(), [with(Some(&one), true, false)]);
}

#[tokio::test]
async fn session_state_and_filter_tree_build_no_file_list() {
    let s = setup(3);
    let ids = call(&s, "core.get_session_state", json!([])).await;
    assert_eq!(ids, json!([id(0), id(1), id(2)]));
    // The default for_each_state walks torrents().
    assert_eq!(s.engine.asked(), [Asked::All]);
    let tree = call(&s, "core.get_filter_tree", json!([])).await;
    assert_eq!(
        tree["tracker_host"],
        json!([["All", 3], ["example.com", 3]])
    );
    assert_eq!(tree["state"][1], json!(["Active", 1]));
    assert_eq!(s.engine.asked(), [with(None, false, true)]);
}

#[test]
fn whole_torrent_figures_without_the_file_list_give_the_same_values() {
    for key in super::status::ALL_KEYS {
        if super::status::needs_of(&[key.to_string()]).meta {
            continue;
        }
        let listed = super::status::status_value(&torrent(1, true), key);
        let alone = super::status::status_value(&torrent(1, false), key);
        assert_eq!(listed, alone, "{key}");
    }
    let t = torrent(1, false);
    let value = |key| super::status::status_value(&t, key).unwrap();
    assert_eq!(value("total_size"), json!(1000));
    assert_eq!(value("total_done"), json!(700));
    assert_eq!(value("total_wanted"), json!(600));
    assert_eq!(value("ratio"), json!(1200.0 / 700.0));
    assert_eq!(value("is_seed"), json!(false));
}
