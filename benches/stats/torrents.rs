//! `core.get_torrents_status` at seedbox scale (issue 21), through `Core::dispatch` over a
//! test engine of 10, 1000 and 10 000 torrents (one file and one tracker each):
//!
//! - `torrents_status_all_12_keys/{engine}/{n}`: every torrent, a dozen list keys;
//! - `torrents_status_one_id/{engine}/{n}`: a filter on one id (`{"id": "<hash>"}`);
//! - `torrents_status_all_12_keys/typed/{n}`: every torrent, a dozen keys, as the typed
//!   answer the RPC server writes without building a `Value` (`Core::torrents_status`).
//!
//! `{engine}` is `lookup` (an engine that implements `torrents_with`: looks ids up, builds
//! the file list and trackers only when asked, as `RqbitEngine` does) or `default` (an
//! engine with only `torrents()`: every torrent built in full, file list included, then
//! filtered, which is what every status call cost before `torrents_with`).
//!
//! Before measuring, each case prints the heap allocations of one call (a counting global
//! allocator: `allocations/call`, bytes).

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::hint::black_box;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion};
use serde_json::{json, Map, Value};
use torrent_stats::{
    AddOptions, AuthLevel, Core, MetaInfo, Needs, PluginHost, SessionId, SessionSource,
    SessionStatus, StatusKey, TorrentEngine, TorrentError, TorrentFile, TorrentInfo, TorrentSource,
    TorrentState, Tracker,
};

/// The system allocator, counting allocations and their bytes.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static ALLOCATED: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        ALLOCATED.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: the caller's layout, as GlobalAlloc::alloc requires.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        ALLOCATED.fetch_add(new_size as u64, Ordering::Relaxed);
        // SAFETY: as GlobalAlloc::realloc requires, from the caller.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The torrent counts measured.
const SIZES: [usize; 3] = [10, 1000, 10_000];

/// A dozen keys of a torrent list (what Deluge's GTK client and Flood ask for).
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

/// What the engine keeps of a torrent.
struct Record {
    id: String,
    name: String,
    file: String,
}

/// `n` seeding torrents; `lookup`: implements `torrents_with`, else only `torrents()`.
struct Fleet {
    records: Vec<Record>,
    index: HashMap<String, usize>,
    lookup: bool,
}

impl Fleet {
    fn new(n: usize, lookup: bool) -> Arc<Fleet> {
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                id: format!("{i:040x}"),
                name: format!("torrent {i}"),
                file: format!("torrent {i}/data.bin"),
            })
            .collect();
        let index = records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.clone(), i))
            .collect();
        Arc::new(Fleet {
            records,
            index,
            lookup,
        })
    }

    /// A torrent as an engine builds it, the file list and trackers only if `needs` them.
    fn build(&self, r: &Record, needs: Needs) -> TorrentInfo {
        let mut t = TorrentInfo::new(r.id.clone(), r.name.clone(), TorrentState::Seeding);
        t.total_size = 1 << 20;
        t.total_done = 1 << 20;
        t.total_uploaded = 3 << 20;
        t.download_payload_rate = Some(0);
        t.upload_payload_rate = Some(0);
        t.num_peers = Some(0);
        t.save_path = PathBuf::from("/srv/torrents");
        t.time_added = Some(1_700_000_000.0);
        t.all_files_size = Some(1 << 20);
        t.all_files_done = Some(1 << 20);
        if needs.meta {
            let mut file = TorrentFile::new(r.file.clone(), 1 << 20, 0);
            file.done = Some(1 << 20);
            t.meta = Some(MetaInfo::new(vec![file], 16384, 64, true));
        }
        if needs.trackers {
            t.trackers = vec![Tracker::new("http://tracker.example.org/announce", 0)];
        }
        t
    }
}

#[async_trait::async_trait]
impl SessionSource for Fleet {
    async fn session_status(
        &self,
        _: &[StatusKey],
    ) -> Result<SessionStatus, torrent_stats::SourceError> {
        Ok(SessionStatus::new(SessionId::new("fleet")))
    }
}

#[async_trait::async_trait]
impl TorrentEngine for Fleet {
    async fn add(&self, _: TorrentSource, _: AddOptions) -> Result<String, TorrentError> {
        Err(TorrentError::Unsupported("no adds".into()))
    }
    fn torrents(&self) -> Vec<TorrentInfo> {
        self.records
            .iter()
            .map(|r| self.build(r, Needs::ALL))
            .collect()
    }
    fn torrents_with(&self, ids: Option<&[&str]>, needs: Needs) -> Vec<TorrentInfo> {
        if !self.lookup {
            let mut list = self.torrents();
            if let Some(ids) = ids {
                list.retain(|t| ids.contains(&t.id.as_str()));
            }
            return list;
        }
        match ids {
            None => self.records.iter().map(|r| self.build(r, needs)).collect(),
            Some(ids) => ids
                .iter()
                .filter_map(|id| self.index.get(*id))
                .map(|&i| self.build(&self.records[i], needs))
                .collect(),
        }
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
        PathBuf::from("/srv/torrents")
    }
    fn listen_port(&self) -> Option<u16> {
        None
    }
    fn version(&self) -> String {
        "fleet".into()
    }
}

/// The allocations and bytes of one run of `f`.
fn allocations<T>(f: impl FnOnce() -> T) -> (u64, u64, T) {
    let (count, bytes) = (
        ALLOCATIONS.load(Ordering::SeqCst),
        ALLOCATED.load(Ordering::SeqCst),
    );
    let out = f();
    (
        ALLOCATIONS.load(Ordering::SeqCst) - count,
        ALLOCATED.load(Ordering::SeqCst) - bytes,
        out,
    )
}

/// The two cases over `n` torrents of an engine: every torrent with 12 keys, one id.
fn cases(c: &mut Criterion, rt: &tokio::runtime::Runtime, n: usize, lookup: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Fleet::new(n, lookup);
    let core = rt.block_on(async {
        let host = PluginHost::open(engine.clone(), dir.path()).expect("open host");
        Core::with_engine(host, Some(engine.clone())).expect("core")
    });
    let call = |args: Vec<Value>| {
        let core = &core;
        async move {
            core.dispatch(
                "core.get_torrents_status",
                args,
                Map::new(),
                AuthLevel::Admin,
            )
            .await
            .expect("get_torrents_status")
        }
    };
    let one = format!("{:040x}", n / 2);
    let name = if lookup { "lookup" } else { "default" };
    let all_args = vec![json!({}), json!(LIST_KEYS)];
    let one_args = vec![json!({ "id": one }), json!(LIST_KEYS)];
    for (case, args, expect) in [
        ("torrents_status_all_12_keys", &all_args, n),
        ("torrents_status_one_id", &one_args, 1),
    ] {
        let (count, bytes, out) = allocations(|| rt.block_on(call(args.clone())));
        assert_eq!(
            out.as_object().map(Map::len),
            Some(expect),
            "{case}/{name}/{n}"
        );
        eprintln!("{case}/{name}/{n}: {count} allocations/call, {bytes} bytes");
        c.bench_with_input(
            BenchmarkId::new(format!("{case}/{name}"), n),
            args,
            |b, args| {
                b.to_async(rt)
                    .iter(|| async { black_box(call(args.clone()).await) })
            },
        );
    }
    if lookup {
        // The typed answer the RPC server writes without a Value (Core::torrents_status).
        let typed = || {
            core.torrents_status(all_args.clone(), Map::new(), AuthLevel::Admin)
                .expect("torrents_status")
        };
        let (count, bytes, out) = allocations(typed);
        assert_eq!(out.rows().len(), n, "typed/{n}");
        eprintln!("torrents_status_all_12_keys/typed/{n}: {count} allocations/call, {bytes} bytes");
        c.bench_with_input(
            BenchmarkId::new("torrents_status_all_12_keys/typed", n),
            &(),
            |b, _| b.iter(|| black_box(typed())),
        );
    }
}

/// The benchmarks of this file.
pub fn torrents_status(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    for lookup in [true, false] {
        for n in SIZES {
            cases(c, &rt, n, lookup);
        }
    }
}
