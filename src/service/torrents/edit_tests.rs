//! Tests of the torrent methods Flood calls (`set_torrent_options`, `force_reannounce`,
//! `move_storage`, `set_torrent_trackers`) and the status keys they and @ctrl/deluge
//! read, over a test engine that records what it is asked.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::export::{ArgErrorKind, AuthLevel, DispatchError};
use crate::host::PluginHost;
use crate::service::Core;
use crate::session::{SessionId, SessionSource, SessionStatus, SourceError, StatusKey};
use crate::torrent::{
    AddOptions, MetaInfo, TorrentEngine, TorrentError, TorrentFile, TorrentInfo, TorrentSource,
    TorrentState, Tracker,
};

const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// Torrents `A` (two files, a comment, two trackers) and `B` (one file); every change
/// asked of the engine is recorded and applied to them. `capable: false` leaves the
/// trait's defaults (refusals) in place.
struct Fake {
    torrents: Mutex<Vec<TorrentInfo>>,
    calls: Mutex<Vec<String>>,
    capable: bool,
}

fn torrent(id: &str, files: &[u64]) -> TorrentInfo {
    let mut t = TorrentInfo::new(id, format!("t-{}", &id[..1]), TorrentState::Seeding);
    let mut offset = 0;
    let files = files
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            let mut f = TorrentFile::new(format!("f{i}"), size, offset);
            f.done = Some(size);
            offset += size;
            f
        })
        .collect();
    let mut meta = MetaInfo::new(files, 16384, 2, false);
    meta.comment = Some(format!("comment of {}", &id[..1]));
    t.meta = Some(meta);
    t.total_size = offset;
    t.total_done = offset;
    t.save_path = PathBuf::from("/data");
    t.time_added = Some(1_700_000_000.75);
    t
}

impl Fake {
    fn new(capable: bool) -> Arc<Fake> {
        let mut a = torrent(A, &[100, 50]);
        a.trackers = vec![
            Tracker::new("http://tracker.example.co.uk:80/announce", 0),
            Tracker::new("udp://10.1.2.3:6969", 1),
        ];
        Arc::new(Fake {
            torrents: Mutex::new(vec![a, torrent(B, &[10])]),
            calls: Mutex::default(),
            capable,
        })
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn edit(&self, id: &str, call: String, f: impl FnOnce(&mut TorrentInfo)) {
        self.calls.lock().unwrap().push(call);
        let mut list = self.torrents.lock().unwrap();
        f(list.iter_mut().find(|t| t.id == id).unwrap());
    }
}

#[async_trait::async_trait]
impl SessionSource for Fake {
    async fn session_status(&self, _: &[StatusKey]) -> Result<SessionStatus, SourceError> {
        Ok(SessionStatus::new(SessionId::new("fake")))
    }
}

#[async_trait::async_trait]
impl TorrentEngine for Fake {
    async fn add(&self, _: TorrentSource, _: AddOptions) -> Result<String, TorrentError> {
        Err(TorrentError::Unsupported("no adds".into()))
    }
    fn torrents(&self) -> Vec<TorrentInfo> {
        self.torrents.lock().unwrap().clone()
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
    async fn reannounce(&self, id: &str) -> Result<(), TorrentError> {
        if !self.capable {
            return Err(TorrentError::Unsupported("no re-announce".into()));
        }
        self.edit(id, format!("reannounce {id}"), |_| ());
        Ok(())
    }
    async fn set_file_priorities(&self, id: &str, p: &[u8]) -> Result<(), TorrentError> {
        if !self.capable {
            return Err(TorrentError::Unsupported("no priorities".into()));
        }
        self.edit(id, format!("priorities {id} {p:?}"), |t| {
            for (f, p) in t.meta.as_mut().unwrap().files.iter_mut().zip(p) {
                f.priority = if *p > 0 { 4 } else { 0 };
            }
        });
        Ok(())
    }
    async fn move_storage(&self, id: &str, dest: &Path) -> Result<(), TorrentError> {
        if !self.capable {
            return Err(TorrentError::Unsupported("no moves".into()));
        }
        self.edit(id, format!("move {id} {}", dest.display()), |t| {
            t.save_path = dest.to_path_buf()
        });
        Ok(())
    }
    async fn set_trackers(&self, id: &str, trackers: &[Tracker]) -> Result<(), TorrentError> {
        if !self.capable {
            return Err(TorrentError::Unsupported("no trackers".into()));
        }
        let urls: Vec<String> = trackers
            .iter()
            .map(|t| format!("{}@{}", t.url, t.tier))
            .collect();
        self.edit(id, format!("trackers {id} {urls:?}"), |t| {
            t.trackers = trackers.to_vec()
        });
        Ok(())
    }
    fn download_location(&self) -> PathBuf {
        PathBuf::from("/data")
    }
    fn listen_port(&self) -> Option<u16> {
        None
    }
    fn version(&self) -> String {
        "fake 1".into()
    }
}

/// The trait's own defaults: an engine that only lists torrents.
struct Bare(Arc<Fake>);

#[async_trait::async_trait]
impl SessionSource for Bare {
    async fn session_status(&self, k: &[StatusKey]) -> Result<SessionStatus, SourceError> {
        self.0.session_status(k).await
    }
}

#[async_trait::async_trait]
impl TorrentEngine for Bare {
    async fn add(&self, s: TorrentSource, o: AddOptions) -> Result<String, TorrentError> {
        self.0.add(s, o).await
    }
    fn torrents(&self) -> Vec<TorrentInfo> {
        self.0.torrents()
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
        PathBuf::from("/data")
    }
    fn listen_port(&self) -> Option<u16> {
        None
    }
    fn version(&self) -> String {
        "bare 1".into()
    }
}

struct Setup {
    core: Core,
    _dir: tempfile::TempDir,
}

fn core_of<E: TorrentEngine + SessionSource>(engine: Arc<E>) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let host = PluginHost::open(engine.clone(), dir.path()).unwrap();
    let core = Core::with_engine_conf(host, Some(engine), None).unwrap();
    Setup { core, _dir: dir }
}

async fn call(s: &Setup, method: &str, args: Value) -> Result<Value, DispatchError> {
    let args = args.as_array().unwrap().clone();
    s.core
        .dispatch(method, args, Default::default(), AuthLevel::Admin)
        .await
}

/// The Deluge exception class and message of a refused call.
fn refused(r: Result<Value, DispatchError>) -> (String, String) {
    match r {
        Err(DispatchError::Deluge { class, message, .. }) => (class.to_string(), message),
        Err(DispatchError::BadArgument {
            kind, arg, reason, ..
        }) => {
            let class = match kind {
                ArgErrorKind::Type => "TypeError",
                ArgErrorKind::Value => "ValueError",
            };
            (class.to_string(), format!("{arg}: {reason}"))
        }
        other => panic!("not refused: {other:?}"),
    }
}

#[tokio::test]
async fn options_equal_to_the_current_ones_or_none_change_nothing_and_are_accepted() {
    let fake = Fake::new(true);
    let s = core_of(fake.clone());
    // What the GTK client's Options tab and Flood send, at the values reported.
    let same = json!({
        "max_download_speed": -1.0, "max_upload_speed": -5, "max_connections": 0,
        "max_upload_slots": -1, "sequential_download": false, "super_seeding": false,
        "prioritize_first_last_pieces": false, "auto_managed": false, "stop_at_ratio": false,
        "stop_ratio": 2.0, "remove_at_ratio": false, "move_completed": false,
        "move_completed_path": "", "shared": false, "owner": "", "name": "",
        "download_location": "/data", "file_priorities": [4, 4], "add_paused": true,
        "seed_mode": false, "pre_allocate_storage": false, "mapped_files": {},
        "label": null, "super_seeding_none": null,
    });
    let r = call(&s, "core.set_torrent_options", json!([[A], same])).await;
    assert_eq!(r.unwrap(), Value::Null);
    let r = call(
        &s,
        "core.set_torrent_options",
        json!([A, {"file_priorities": []}]),
    )
    .await;
    assert_eq!(r.unwrap(), Value::Null);
    assert_eq!(fake.calls(), Vec::<String>::new(), "nothing to change");
}

#[tokio::test]
async fn file_priorities_reach_the_engine_and_a_change_it_cannot_do_refuses_everything() {
    let fake = Fake::new(true);
    let s = core_of(fake.clone());
    let r = call(
        &s,
        "core.set_torrent_options",
        json!([[A], {"file_priorities": [0, 7]}]),
    )
    .await;
    assert_eq!(r.unwrap(), Value::Null);
    assert_eq!(fake.calls(), vec![format!("priorities {A} [0, 7]")]);
    let st = call(
        &s,
        "core.get_torrent_status",
        json!([A, ["file_priorities"]]),
    )
    .await;
    assert_eq!(st.unwrap(), json!({"file_priorities": [0, 4]}));

    // Flood's "sequential": refused by name, and the priorities given with it not applied.
    let both = json!({"file_priorities": [4, 4], "sequential_download": true});
    let (class, message) = refused(call(&s, "core.set_torrent_options", json!([[A], both])).await);
    assert_eq!(class, "DelugeError");
    assert!(
        message.contains("sequential_download") && message.contains("fake 1"),
        "{message}"
    );
    for (key, value) in [
        ("super_seeding", json!(true)),
        ("max_download_speed", json!(100)),
        ("stop_ratio", json!(1.5)),
        ("download_location", json!("/elsewhere")),
        ("name", json!("renamed")),
    ] {
        let (class, message) =
            refused(call(&s, "core.set_torrent_options", json!([[A], {key: value}])).await);
        assert_eq!(class, "DelugeError", "{key}");
        assert!(message.starts_with(&format!("{key}: ")), "{message}");
    }
    assert_eq!(fake.calls().len(), 1, "{:?}", fake.calls());
}

#[tokio::test]
async fn set_torrent_options_checks_ids_keys_types_and_counts_before_anything() {
    let fake = Fake::new(true);
    let s = core_of(fake.clone());
    let cases = [
        (
            json!([[A, "ff"], {"file_priorities": [0, 4]}]),
            "InvalidTorrentError",
            "ff",
        ),
        (json!([[A], {"bogus": 1}]), "ValueError", "\"bogus\""),
        (
            json!([[A], {"sequential_download": "yes"}]),
            "TypeError",
            "expected a bool",
        ),
        (
            json!([[A], {"max_connections": "10"}]),
            "TypeError",
            "expected a number",
        ),
        (
            json!([[A], {"file_priorities": [4]}]),
            "ValueError",
            "1 priorities for 2 files",
        ),
        (
            json!([[A], {"file_priorities": [4, 8]}]),
            "ValueError",
            "8 is not a priority",
        ),
        (
            json!([[A], {"file_priorities": "4,4"}]),
            "TypeError",
            "list of ints",
        ),
        (
            json!([[A, B], {"file_priorities": [0, 4]}]),
            "ValueError",
            "for 1 files",
        ),
        (
            json!([[A], {"mapped_files": []}]),
            "TypeError",
            "expected a dict",
        ),
        (json!([[A], []]), "TypeError", "options"),
    ];
    for (args, class, needle) in cases {
        let (got, message) = refused(call(&s, "core.set_torrent_options", args.clone()).await);
        assert_eq!(got, class, "{args}: {message}");
        assert!(message.contains(needle), "{args}: {message}");
    }
    assert_eq!(fake.calls(), Vec::<String>::new());
}

#[tokio::test]
async fn reannounce_move_and_trackers_take_one_id_or_a_list_and_check_every_id_first() {
    let fake = Fake::new(true);
    let s = core_of(fake.clone());
    call(&s, "core.force_reannounce", json!([[A, B]]))
        .await
        .unwrap();
    call(&s, "core.force_reannounce", json!([B])).await.unwrap();
    call(&s, "core.move_storage", json!([[B], "/new/place"]))
        .await
        .unwrap();
    let trackers = json!([
        {"url": "udp://two.example.org:1", "tier": 1},
        {"url": "http://one.example.net/a", "tier": 0, "fails": 0},
    ]);
    call(&s, "core.set_torrent_trackers", json!([[B], trackers]))
        .await
        .unwrap();
    call(&s, "core.set_torrent_trackers", json!([A, []]))
        .await
        .unwrap();
    assert_eq!(
        fake.calls(),
        vec![
            format!("reannounce {A}"),
            format!("reannounce {B}"),
            format!("reannounce {B}"),
            format!("move {B} /new/place"),
            format!("trackers {B} [\"http://one.example.net/a@0\", \"udp://two.example.org:1@1\"]"),
            format!("trackers {A} []"),
        ]
    );
    let st = call(
        &s,
        "core.get_torrent_status",
        json!([B, ["trackers", "tracker_host", "download_location"]]),
    );
    assert_eq!(
        st.await.unwrap(),
        json!({
            "trackers": [{"url": "http://one.example.net/a", "tier": 0},
                         {"url": "udp://two.example.org:1", "tier": 1}],
            "tracker_host": "example.net",
            "download_location": "/new/place",
        })
    );
}

#[tokio::test]
async fn reannounce_move_and_trackers_refuse_bad_ids_and_arguments_changing_nothing() {
    let fake = Fake::new(true);
    let s = core_of(fake.clone());
    for (method, args, class, needle) in [
        (
            "core.force_reannounce",
            json!([[A, "nope"]]),
            "InvalidTorrentError",
            "nope",
        ),
        (
            "core.move_storage",
            json!([[A, "nope"], "/x"]),
            "InvalidTorrentError",
            "nope",
        ),
        (
            "core.move_storage",
            json!([[A], "relative/dir"]),
            "ValueError",
            "absolute",
        ),
        (
            "core.move_storage",
            json!([[A], ""]),
            "ValueError",
            "absolute",
        ),
        (
            "core.set_torrent_trackers",
            json!([["nope"], []]),
            "InvalidTorrentError",
            "nope",
        ),
        (
            "core.set_torrent_trackers",
            json!([A, [{"url": "ftp://x/"}]]),
            "ValueError",
            "ftp",
        ),
        (
            "core.set_torrent_trackers",
            json!([A, [{"tier": 0}]]),
            "TypeError",
            "url",
        ),
        (
            "core.set_torrent_trackers",
            json!([A, [{"url": "http://x/", "tier": -1}]]),
            "ValueError",
            "tier",
        ),
        (
            "core.set_torrent_trackers",
            json!([A, "http://x/"]),
            "TypeError",
            "trackers",
        ),
    ] {
        let (got, message) = refused(call(&s, method, args.clone()).await);
        assert_eq!(got, class, "{method} {args}: {message}");
        assert!(message.contains(needle), "{method} {args}: {message}");
    }
    assert_eq!(
        fake.calls(),
        Vec::<String>::new(),
        "a refused call changed something"
    );
}

#[tokio::test]
async fn an_engine_without_these_abilities_refuses_them_naming_the_limit() {
    let s = core_of(Arc::new(Bare(Fake::new(false))));
    for (method, args, needle) in [
        ("core.force_reannounce", json!([[A]]), "re-announce"),
        ("core.move_storage", json!([[A], "/x"]), "move"),
        ("core.set_torrent_trackers", json!([A, []]), "trackers"),
        (
            "core.set_torrent_options",
            json!([[A], {"file_priorities": [0, 4]}]),
            "which files",
        ),
    ] {
        let (class, message) = refused(call(&s, method, args).await);
        assert_eq!(class, "DelugeError", "{method}");
        assert!(message.contains(needle), "{method}: {message}");
    }
}

#[tokio::test]
async fn the_status_keys_flood_and_ctrl_deluge_read_have_deluges_types() {
    let fake = Fake::new(true);
    let s = core_of(fake.clone());
    let all = call(&s, "core.get_torrent_status", json!([A, []]))
        .await
        .unwrap();
    let keys = [
        ("comment", json!("comment of a")),
        ("finished_time", json!(0)),
        ("sequential_download", json!(false)),
        ("super_seeding", json!(false)),
        ("tracker", json!("")),
        ("tracker_status", json!("")),
        ("tracker_host", json!("example.co.uk")),
        ("time_added", json!(1_700_000_000)),
        ("total_size", json!(150)),
        ("total_wanted", json!(150)),
        ("is_seed", json!(true)),
        ("max_download_speed", json!(-1)),
        (
            "trackers",
            json!([
                {"url": "http://tracker.example.co.uk:80/announce", "tier": 0},
                {"url": "udp://10.1.2.3:6969", "tier": 1},
            ]),
        ),
    ];
    for (key, want) in keys {
        assert_eq!(all[key], want, "{key}");
    }
    // A skipped file: the torrent is finished but not a seed; its size stays the whole.
    call(
        &s,
        "core.set_torrent_options",
        json!([[A], {"file_priorities": [4, 0]}]),
    )
    .await
    .unwrap();
    fake.edit(A, "wanted".into(), |t| {
        (t.total_size, t.total_done) = (100, 100);
        t.meta.as_mut().unwrap().files[1].done = Some(0);
    });
    let st = call(
        &s,
        "core.get_torrent_status",
        json!([
            A,
            [
                "total_size",
                "total_wanted",
                "total_done",
                "is_seed",
                "is_finished",
                "progress"
            ]
        ]),
    );
    assert_eq!(
        st.await.unwrap(),
        json!({"total_size": 150, "total_wanted": 100, "total_done": 100, "is_seed": false,
               "is_finished": true, "progress": 100.0})
    );
}

#[tokio::test]
async fn the_filter_tree_and_filter_group_torrents_by_tracker_host() {
    let s = core_of(Fake::new(true));
    let tree = call(&s, "core.get_filter_tree", json!([])).await.unwrap();
    assert_eq!(
        tree["tracker_host"],
        json!([["All", 2], ["", 1], ["example.co.uk", 1]])
    );
    let only = call(
        &s,
        "core.get_torrents_status",
        json!([{"tracker_host": "example.co.uk"}, ["name"]]),
    );
    assert_eq!(only.await.unwrap(), json!({A: {"name": "t-a"}}));
}

#[test]
fn tracker_host_shortens_as_deluge_does() {
    let host = |url: &str| {
        let mut t = TorrentInfo::new(A, "a", TorrentState::Seeding);
        t.trackers = vec![Tracker::new(url, 0)];
        super::status::tracker_host(&t)
    };
    assert_eq!(
        host("http://tracker.example.com:6969/announce"),
        "example.com"
    );
    assert_eq!(host("udp://open.tracker.example.org:1337"), "example.org");
    assert_eq!(host("https://a.b.example.co.uk/x"), "example.co.uk");
    assert_eq!(host("https://t.example.net.au/x"), "example.net.au");
    assert_eq!(
        host("http://user:pw@Tracker.Example.COM/a?x=1"),
        "example.com"
    );
    assert_eq!(host("http://192.168.1.2:80/a"), "192.168.1.2");
    assert_eq!(host("http://[::1]:80/a"), "::1");
    assert_eq!(host("http://localhost/a"), "localhost");
    assert_eq!(host("http:///a"), "DHT");
    assert_eq!(
        super::status::tracker_host(&TorrentInfo::new(A, "a", TorrentState::Seeding)),
        ""
    );
}
