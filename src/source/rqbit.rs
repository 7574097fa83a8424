//! The embedded BitTorrent engine: a librqbit session as a session source (feature `rqbit`).
//!
//! librqbit counts **payload only** (`fetched_bytes`, `uploaded_bytes`): the engine reports
//! `total_payload_upload` and `total_payload_download`, and leaves `total_upload` /
//! `total_download` (wire bytes including protocol overhead) out rather than inventing
//! them; `stats.get_status` lists what is measured. Rates are derived by Stats from the
//! counter deltas (librqbit's own speeds are smoothed averages). Every start of the engine
//! is a new session identity: its counters begin at 0.

use crate::clock::unix_now;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use librqbit::api::TorrentIdOrHash;
use librqbit::dht::Id20;
use librqbit::{
    AddTorrent, AddTorrentOptions, AddTorrentResponse, ListenerMode, ListenerOptions, Magnet,
    ManagedTorrent, ManagedTorrentState, Session, SessionOptions, SessionPersistenceConfig,
    TorrentStatsState,
};

use super::http::Fetcher;
use crate::session::SourceError;
use crate::torrent::{
    AddOptions, Discovery, MetaInfo, Needs, TorrentEngine, TorrentError, TorrentFile, TorrentInfo,
    TorrentSource, TorrentState, Tracker, MAX_TORRENT_FILE,
};

mod layout;
mod metainfo;
mod relocate;

use crate::session::{SessionId, SessionSource, SessionStatus, StatusKey};

/// How to start the engine.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EngineOptions {
    /// Where torrents' data goes.
    pub download_dir: PathBuf,
    /// Where the engine keeps its torrent list and fast-resume data (`None`: nothing is
    /// kept, torrents are gone after a restart).
    pub state_dir: Option<PathBuf>,
    /// Address and port for incoming peer connections (`None`: no listening).
    pub listen: Option<SocketAddr>,
    /// The DHT (trackerless peer discovery).
    pub dht: bool,
    /// Trackers.
    pub trackers: bool,
    /// Local service discovery (multicast on the LAN).
    pub lsd: bool,
    /// UPnP port forwarding of the listening port.
    pub upnp: bool,
}

impl EngineOptions {
    /// Defaults for a daemon: listen on all addresses at 6881 (Deluge's default), DHT,
    /// trackers and LSD on, UPnP off; the torrent list kept in `state_dir`.
    pub fn new(download_dir: impl Into<PathBuf>, state_dir: Option<PathBuf>) -> Self {
        EngineOptions {
            download_dir: download_dir.into(),
            state_dir,
            listen: Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 6881)),
            dht: true,
            trackers: true,
            lsd: true,
            upnp: false,
        }
    }

    /// For tests and demos on one machine: listen on 127.0.0.1 (any free port), no DHT,
    /// trackers, LSD or UPnP, nothing persisted.
    pub fn loopback(download_dir: impl Into<PathBuf>) -> Self {
        EngineOptions {
            download_dir: download_dir.into(),
            state_dir: None,
            listen: Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)),
            dht: false,
            trackers: false,
            lsd: false,
            upnp: false,
        }
    }
}

/// The engine could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A directory could not be created.
    #[error("creating {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// librqbit refused to start (its message).
    #[error("the BitTorrent engine did not start: {0}")]
    Start(String),
}

/// How long a resume waits for a torrent's initial check.
const RESUME_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// A magnet whose metadata is still being fetched (librqbit lists it once resolved).
#[derive(Debug, Clone)]
struct Pending {
    name: String,
    error: Option<String>,
    added: f64,
    /// Its download location (its save path once resolved).
    location: PathBuf,
}

/// A running librqbit session and its identity.
pub struct RqbitEngine {
    session: Arc<Session>,
    id: SessionId,
    describe: String,
    download_dir: PathBuf,
    pending: Arc<Mutex<HashMap<String, Pending>>>,
    /// Peers given with `connect_peer`, per torrent, kept across re-adds.
    peers: Mutex<HashMap<String, Vec<SocketAddr>>>,
    added: Mutex<HashMap<String, f64>>,
    /// What each torrent's file says outside its info dictionary, read once per (re-)add.
    facts: Mutex<HashMap<String, Arc<metainfo::Facts>>>,
    /// Fetches `.torrent` files from URLs.
    fetcher: Fetcher,
    /// The discovery it was started with.
    discovery: Discovery,
}

impl std::fmt::Debug for RqbitEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RqbitEngine")
            .field("session", &self.id)
            .field("listen", &self.listen_addr())
            .finish_non_exhaustive()
    }
}

impl RqbitEngine {
    /// Starts a librqbit session (restoring the persisted torrent list, if any).
    pub async fn start(opts: EngineOptions) -> Result<Self, EngineError> {
        let mut dirs = vec![opts.download_dir.clone()];
        dirs.extend(opts.state_dir.clone());
        for dir in dirs {
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(|source| EngineError::Dir { path: dir, source })?;
        }
        let session_opts = SessionOptions {
            dht: if opts.dht {
                Some(Default::default())
            } else {
                None
            },
            disable_trackers: !opts.trackers,
            disable_local_service_discovery: !opts.lsd,
            fastresume: opts.state_dir.is_some(),
            persistence: opts
                .state_dir
                .clone()
                .map(|folder| SessionPersistenceConfig::Json {
                    folder: Some(folder),
                }),
            listen: opts.listen.map(|addr| ListenerOptions {
                mode: ListenerMode::TcpOnly,
                listen_addr: addr,
                enable_upnp_port_forwarding: opts.upnp,
                ipv4_only: addr.is_ipv4(),
                ..Default::default()
            }),
            ipv4_only: opts.listen.is_some_and(|a| a.is_ipv4()),
            ..Default::default()
        };
        let session = Session::new_with_opts(opts.download_dir.clone(), session_opts)
            .await
            .map_err(|e| EngineError::Start(format!("{e:#}")))?;
        let id = SessionId::fresh("rqbit");
        let listen = session.listen_addr().map_or_else(
            || "not listening".to_string(),
            |a| format!("port {}", a.port()),
        );
        let describe = format!("rqbit ({listen}, data in {})", opts.download_dir.display());
        tracing::info!(session = %id, %describe, "BitTorrent engine started");
        Ok(RqbitEngine {
            session,
            id,
            describe,
            download_dir: opts.download_dir,
            pending: Arc::default(),
            peers: Mutex::default(),
            added: Mutex::default(),
            facts: Mutex::default(),
            fetcher: Fetcher::new().map_err(|e| EngineError::Start(e.to_string()))?,
            discovery: Discovery::new(opts.dht, opts.lsd, opts.upnp),
        })
    }

    /// The librqbit session (add, pause, remove torrents; its own statistics): a type of the
    /// `librqbit` crate (this crate builds on version 9.1.0 with `default-features = false,
    /// features = ["rust-tls"]`; depend on the same to use it), not re-exported here.
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// The address peers connect to, if the engine listens.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.session.listen_addr()
    }

    /// The payload bytes the engine counted this session: (uploaded, downloaded).
    pub fn payload_counters(&self) -> (u64, u64) {
        let c = self.session.stats_snapshot().counters;
        (c.uploaded_bytes, c.fetched_bytes)
    }

    /// Stops the session and every torrent task (the torrent list stays persisted).
    pub async fn stop(&self) {
        self.session.stop().await;
    }
}

#[async_trait]
impl SessionSource for RqbitEngine {
    async fn session_status(&self, keys: &[StatusKey]) -> Result<SessionStatus, SourceError> {
        let snap = self.session.stats_snapshot();
        let mut status = SessionStatus::new(self.id.clone());
        for &key in keys {
            let value = match key {
                StatusKey::TotalPayloadUpload => snap.counters.uploaded_bytes,
                StatusKey::TotalPayloadDownload => snap.counters.fetched_bytes,
                StatusKey::NumPeers => u64::from(snap.peers.live),
                // Deluge's connections: connected and half-open (being connected).
                StatusKey::NumConnections => {
                    u64::from(snap.peers.live) + u64::from(snap.peers.connecting)
                }
                // The DHT's routing table (IPv4 and IPv6 nodes); none without a DHT.
                StatusKey::DhtNodes => self.session.get_dht().map_or(0, |dht| {
                    let s = dht.stats();
                    (s.routing_table_size + s.routing_table_size_v6) as u64
                }),
                // The engine's own payload speed estimate (its counters' deltas over a few
                // seconds, in MiB/s).
                StatusKey::PayloadDownloadRate => mib_per_s(snap.download_speed.mbps),
                StatusKey::PayloadUploadRate => mib_per_s(snap.upload_speed.mbps),
                // Wire totals and rates, the DHT's node cache and torrents are not
                // measured by librqbit: left out, never invented.
                _ => continue,
            };
            status.values.insert(key, value);
        }
        Ok(status)
    }

    fn kind(&self) -> &'static str {
        crate::source::ENGINE_KIND
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}

/// Bytes per second from librqbit's MiB/s.
fn mib_per_s(mib: f64) -> u64 {
    (mib * 1_048_576.0).round().max(0.0) as u64
}

fn engine_error(e: impl std::fmt::Display) -> TorrentError {
    let mut message = format!("{e:#}");
    if message.contains("(os error 24)") {
        // EMFILE: librqbit keeps each torrent's data files and its fast-resume file open.
        message.push_str(
            " — the engine keeps every torrent's files open (two for a single-file torrent): \
             raise the daemon's open-file limit (ulimit -n, or LimitNOFILE in its systemd unit)",
        );
    }
    TorrentError::Engine(message)
}

/// The files (paths inside the output folder, bytes done, none while checking) and piece
/// facts of a torrent's metadata.
fn meta_info(m: &librqbit::TorrentMetadata, progress: &[u64], state: TorrentState) -> MetaInfo {
    let lengths = m.info.lengths();
    let files = m
        .file_infos
        .iter()
        .zip(progress.iter().map(Some).chain(std::iter::repeat(None)))
        .map(|(f, done)| {
            let mut file = TorrentFile::new(
                f.relative_filename.to_string_lossy().replace('\\', "/"),
                f.len,
                f.offset_in_torrent,
            );
            file.done = done.copied().filter(|_| state != TorrentState::Checking);
            file
        })
        .collect();
    MetaInfo::new(
        files,
        u64::from(lengths.default_piece_length()),
        u64::from(lengths.total_pieces()),
        m.info.info().private,
    )
}

impl RqbitEngine {
    fn handle(&self, id: &str) -> Result<Arc<ManagedTorrent>, TorrentError> {
        let hash = Id20::from_str(id).map_err(|_| TorrentError::Unknown(id.to_string()))?;
        self.session
            .get(TorrentIdOrHash::Hash(hash))
            .ok_or_else(|| TorrentError::Unknown(id.to_string()))
    }

    /// What `needs` asks of `t` (and what every [`TorrentInfo`] has).
    fn info(&self, t: &ManagedTorrent, needs: Needs) -> TorrentInfo {
        let mut hex = [0u8; 40];
        let id = hex_id(&t.info_hash(), &mut hex);
        let mut stats = t.stats();
        let state = match stats.state {
            TorrentStatsState::Initializing { .. } => TorrentState::Checking,
            TorrentStatsState::Paused => TorrentState::Paused,
            TorrentStatsState::Error => TorrentState::Error,
            TorrentStatsState::Live if stats.finished => TorrentState::Seeding,
            TorrentStatsState::Live => TorrentState::Downloading,
        };
        let mut info = TorrentInfo::new(id, t.name().unwrap_or_else(|| id.to_string()), state);
        info.error = stats.error.take();
        info.total_size = stats.total_bytes;
        // While librqbit checks, its progress counts the bytes checked so far, not the
        // bytes found good: nothing is known present until the check ends.
        info.total_done = if state == TorrentState::Checking {
            0
        } else {
            stats.progress_bytes
        };
        info.total_uploaded = stats.uploaded_bytes;
        if let Some(live) = &stats.live {
            let bytes = |mib_per_s: f64| (mib_per_s * 1024.0 * 1024.0) as u64;
            info.download_payload_rate = Some(bytes(live.download_speed.mbps));
            info.upload_payload_rate = Some(bytes(live.upload_speed.mbps));
            info.num_peers = Some(u64::from(live.snapshot.peer_stats.live));
            info.total_payload_download = Some(live.snapshot.fetched_bytes);
        }
        self.add_sizes(t, &stats.file_progress, &mut info);
        info.save_path = t.output_folder().to_path_buf();
        info.time_added = self
            .added
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .copied();
        if !needs.meta {
            if needs.trackers {
                self.add_facts(t, &mut info, None);
            }
            return info;
        }
        let wanted = t.only_files();
        let (meta, root) = t
            .with_metadata(|m| {
                let meta = meta_info(m, &stats.file_progress, state);
                (Some(meta), layout::root(&m.info, id))
            })
            .unwrap_or_default();
        info.meta = meta;
        // As Deluge shows it: a multi-file torrent's save path is the folder its own
        // folder is in, its files' paths begin with that folder's name.
        let shown = layout::shown(t.output_folder(), root.as_deref());
        if let (Some(meta), Some(prefix)) = (info.meta.as_mut(), &shown.prefix) {
            for f in &mut meta.files {
                f.path.insert_str(0, prefix);
            }
        }
        info.save_path = shown.save_path;
        self.add_facts(t, &mut info, wanted.as_deref());
        info
    }

    /// A magnet still resolving, as a torrent: checking, or in error if it failed.
    fn pending_info(&self, id: &str, p: &Pending) -> TorrentInfo {
        let state = if p.error.is_some() {
            TorrentState::Error
        } else {
            TorrentState::Checking
        };
        let mut info = TorrentInfo::new(id, p.name.clone(), state);
        info.error = p.error.clone();
        info.save_path = p.location.clone();
        info.time_added = Some(p.added);
        info
    }

    /// Fills in the bytes of every file and, once checked, of every file present, without
    /// building the file list (`file_progress`: each file's present bytes, from its stats).
    fn add_sizes(&self, t: &ManagedTorrent, file_progress: &[u64], info: &mut TorrentInfo) {
        let Ok((size, files)) = t.with_metadata(|m| {
            let size: u64 = m.file_infos.iter().map(|f| f.len).sum();
            (size, m.file_infos.len())
        }) else {
            return;
        };
        info.all_files_size = Some(size);
        let known = info.state != TorrentState::Checking && file_progress.len() >= files;
        info.all_files_done = known.then(|| file_progress[..files].iter().sum());
    }

    /// Fills in what the torrent file says outside its info dictionary (comment, creator,
    /// trackers; the trackers librqbit holds while a magnet's file is missing) and the
    /// files' priorities: 4 for a file downloaded, 0 for one skipped.
    fn add_facts(&self, t: &ManagedTorrent, info: &mut TorrentInfo, wanted: Option<&[usize]>) {
        if let Some(meta) = info.meta.as_mut() {
            if let Some(wanted) = wanted {
                for (i, f) in meta.files.iter_mut().enumerate() {
                    f.priority = if wanted.contains(&i) { 4 } else { 0 };
                }
            }
        }
        let cached = self
            .facts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&info.id)
            .cloned();
        let facts = cached.or_else(|| {
            let facts = Arc::new(
                t.with_metadata(|m| metainfo::facts(&m.torrent_bytes))
                    .ok()??,
            );
            self.facts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(info.id.clone(), facts.clone());
            Some(facts)
        });
        match facts {
            Some(facts) => {
                if let Some(meta) = info.meta.as_mut() {
                    meta.comment = facts.comment.clone();
                    meta.creator = facts.creator.clone();
                }
                info.trackers = facts.trackers.clone();
            }
            None => {
                let mut urls: Vec<String> =
                    t.shared().trackers.iter().map(|u| u.to_string()).collect();
                urls.sort();
                info.trackers = urls.into_iter().map(|u| Tracker::new(u, 0)).collect();
            }
        }
    }

    /// Waits (at most [`RESUME_WAIT`]) for the initial check of `t` to end: librqbit
    /// changes a torrent's files or starts it only after.
    async fn wait_checked(&self, t: &ManagedTorrent, id: &str) -> Result<(), TorrentError> {
        let deadline = tokio::time::Instant::now() + RESUME_WAIT;
        while matches!(t.stats().state, TorrentStatsState::Initializing { .. }) {
            if tokio::time::Instant::now() > deadline {
                return Err(TorrentError::Engine(format!(
                    "{id} is still checking its data after {RESUME_WAIT:?}; try again later"
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Takes `t` out of the session and adds it again from the torrent file `bytes` into
    /// `location`, paused or not, as it was otherwise (the same files wanted, the peers
    /// given with `connect_peer`); the data is checked again, nothing is fetched again.
    /// librqbit has no call to change a running torrent's trackers, peers or directory.
    async fn readd(
        &self,
        t: &ManagedTorrent,
        bytes: Vec<u8>,
        location: PathBuf,
        paused: bool,
    ) -> Result<(), TorrentError> {
        let id = t.info_hash().as_string();
        let peers = self
            .peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned();
        let opts = AddTorrentOptions {
            paused,
            overwrite: true,
            output_folder: Some(location.display().to_string()),
            only_files: t.only_files(),
            initial_peers: peers,
            ..Default::default()
        };
        self.session
            .delete(TorrentIdOrHash::Hash(t.info_hash()), false)
            .await
            .map_err(engine_error)?;
        self.facts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        match self
            .session
            .add_torrent(AddTorrent::from_bytes(bytes), Some(opts))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(engine_error(e)),
        }
    }

    /// Adds a torrent file's bytes to the session, its files in `folder`, with the peers
    /// known for `id`.
    async fn add_to_session(
        &self,
        bytes: Vec<u8>,
        id: &str,
        paused: bool,
        folder: &std::path::Path,
    ) -> Result<String, TorrentError> {
        let peers = self
            .peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned();
        let opts = AddTorrentOptions {
            paused,
            overwrite: true, // resume into existing files: pieces are checked, not re-fetched
            output_folder: Some(folder.display().to_string()),
            initial_peers: peers,
            ..Default::default()
        };
        match self
            .session
            .add_torrent(AddTorrent::from_bytes(bytes), Some(opts))
            .await
        {
            Ok(AddTorrentResponse::Added(_, handle)) => Ok(handle.info_hash().as_string()),
            Ok(AddTorrentResponse::AlreadyManaged(_, handle)) => {
                Err(TorrentError::AlreadyAdded(handle.info_hash().as_string()))
            }
            Ok(AddTorrentResponse::ListOnly(_)) => Err(TorrentError::Engine(
                "the engine only listed the torrent".into(),
            )),
            Err(e) => Err(engine_error(e)),
        }
    }

    /// The download location of an add: the one given, else the download directory.
    fn location(&self, options: &AddOptions) -> PathBuf {
        options
            .download_location
            .clone()
            .unwrap_or_else(|| self.download_dir.clone())
    }

    /// Adds a `.torrent` file's bytes: a multi-file torrent's files go in a folder named
    /// after it in the download location, as Deluge puts them ([`layout`]).
    async fn add_file(&self, bytes: Vec<u8>, options: AddOptions) -> Result<String, TorrentError> {
        let not_a_torrent = |e: &dyn std::fmt::Display| TorrentError::NotATorrent(format!("{e:#}"));
        let parsed = librqbit::torrent_from_bytes(&bytes).map_err(|e| not_a_torrent(&e))?;
        let id = parsed.info_hash.as_string();
        if self.handle(&id).is_ok() {
            return Err(TorrentError::AlreadyAdded(id));
        }
        let info = parsed.info.data.validate().map_err(|e| not_a_torrent(&e))?;
        let folder = layout::folder(
            &self.location(&options),
            layout::root(&info, &id).as_deref(),
        )?;
        let added = self
            .add_to_session(bytes, &id, options.paused, &folder)
            .await
            .map_err(|e| match e {
                // The bytes parsed above: a system call's failure (files, descriptors) is
                // the engine's, not the torrent file's.
                TorrentError::Engine(m) if !m.contains("(os error ") => {
                    TorrentError::NotATorrent(m)
                }
                other => other,
            })?;
        self.added
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(added.clone(), unix_now());
        Ok(added)
    }

    /// Adds a magnet link. Fetching the metadata takes as long as finding peers: this
    /// answers at once, as Deluge does, lists the torrent as Checking meanwhile, and
    /// resolves it in the background ([`resolve_magnet`]).
    fn add_magnet(&self, uri: String, options: AddOptions) -> Result<String, TorrentError> {
        let magnet = Magnet::parse(&uri).map_err(|e| TorrentError::BadMagnet(format!("{e:#}")))?;
        let id = magnet
            .as_id20()
            .ok_or_else(|| {
                TorrentError::BadMagnet("no BitTorrent v1 info-hash (xt=urn:btih:…)".into())
            })?
            .as_string();
        let known = self.handle(&id).is_ok()
            || self
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(&id);
        if known {
            return Err(TorrentError::AlreadyAdded(id));
        }
        let name = magnet.name.clone().unwrap_or_else(|| id.clone());
        let now = unix_now();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                id.clone(),
                Pending {
                    name,
                    error: None,
                    added: now,
                    location: self.location(&options),
                },
            );
        self.added
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), now);
        let magnet = PendingMagnet {
            uri,
            paused: options.paused,
            location: self.location(&options),
            key: id.clone(),
        };
        let (session, pending) = (self.session.clone(), self.pending.clone());
        tokio::spawn(resolve_magnet(session, pending, magnet));
        Ok(id)
    }
}

/// The lower-case hex of `hash`, written into `buf`.
fn hex_id<'a>(hash: &Id20, buf: &'a mut [u8; 40]) -> &'a str {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in hash.0.iter().enumerate() {
        buf[2 * i] = DIGITS[usize::from(b >> 4)];
        buf[2 * i + 1] = DIGITS[usize::from(b & 15)];
    }
    std::str::from_utf8(buf).unwrap_or_default()
}

/// The state of `t` and whether every wanted byte is present, as [`RqbitEngine::info`]
/// tells them, read from its state machine: a running torrent's piece counts, no stats
/// built (a paused one's counts are librqbit's own: its stats are built).
fn light_state(t: &ManagedTorrent) -> (TorrentState, bool) {
    let read = t.with_state(|s| match s {
        ManagedTorrentState::Initializing(_) => Some((TorrentState::Checking, false)),
        ManagedTorrentState::Live(live) => {
            let hns = live.get_hns().unwrap_or_default();
            let state = if hns.finished() {
                TorrentState::Seeding
            } else {
                TorrentState::Downloading
            };
            Some((state, hns.total() > 0 && hns.progress() >= hns.total()))
        }
        ManagedTorrentState::Paused(_) => None,
        ManagedTorrentState::Error(_) | ManagedTorrentState::None => {
            Some((TorrentState::Error, false))
        }
    });
    read.unwrap_or_else(|| {
        let stats = t.stats();
        let finished = stats.total_bytes > 0 && stats.progress_bytes >= stats.total_bytes;
        (TorrentState::Paused, finished)
    })
}

/// A magnet being resolved: its link, how it is to be added, its key in the pending list.
struct PendingMagnet {
    uri: String,
    paused: bool,
    location: PathBuf,
    key: String,
}

/// Fetches the metadata of `magnet` (only listing it in `session`), then adds it from its
/// torrent file into its folder at its location ([`layout`]; librqbit would put a magnet
/// given a location straight into it), with the peers seen meanwhile; `None` if it left
/// the `pending` list meanwhile (removed: nothing is added).
async fn add_resolved(
    session: &Arc<Session>,
    pending: &Mutex<HashMap<String, Pending>>,
    magnet: &PendingMagnet,
) -> Result<Option<AddTorrentResponse>, String> {
    let list_only = AddTorrentOptions {
        list_only: true,
        ..Default::default()
    };
    let listed = match session
        .add_torrent(AddTorrent::from_url(&magnet.uri), Some(list_only))
        .await
        .map_err(|e| format!("{e:#}"))?
    {
        AddTorrentResponse::ListOnly(listed) => listed,
        // Added meanwhile by other means: already where it is.
        other => return Ok(Some(other)),
    };
    let still_wanted = pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains_key(&magnet.key);
    if !still_wanted {
        return Ok(None);
    }
    let root = layout::root(&listed.info, &magnet.key);
    let folder = layout::folder(&magnet.location, root.as_deref()).map_err(|e| e.to_string())?;
    let opts = AddTorrentOptions {
        paused: magnet.paused,
        overwrite: true,
        output_folder: Some(folder.display().to_string()),
        only_files: listed.only_files,
        initial_peers: Some(listed.seen_peers),
        ..Default::default()
    };
    let added = session
        .add_torrent(AddTorrent::from_bytes(listed.torrent_bytes), Some(opts))
        .await
        .map_err(|e| format!("{e:#}"))?;
    Ok(Some(added))
}

/// Resolves `magnet` ([`add_resolved`]), then takes it off the `pending` list; a failure
/// stays there as the torrent's error. A magnet removed meanwhile is dropped from the
/// session again.
async fn resolve_magnet(
    session: Arc<Session>,
    pending: Arc<Mutex<HashMap<String, Pending>>>,
    magnet: PendingMagnet,
) {
    let key = &magnet.key;
    let result = add_resolved(&session, &pending, &magnet).await;
    let removed_meanwhile = {
        let mut pending = pending.lock().unwrap_or_else(|e| e.into_inner());
        match &result {
            Ok(_) => pending.remove(key).is_none(),
            Err(e) => {
                tracing::warn!(torrent = %key, error = %e, "magnet could not be resolved");
                if let Some(p) = pending.get_mut(key) {
                    p.error = Some(e.clone());
                }
                false
            }
        }
    };
    // Removed while its metadata was being fetched: it must not come back.
    if let (true, Ok(Some(response))) = (removed_meanwhile, result) {
        if let Some(handle) = response.into_handle() {
            let id = TorrentIdOrHash::Hash(handle.info_hash());
            if let Err(e) = session.delete(id, false).await {
                tracing::warn!(torrent = %key, error = %format!("{e:#}"), "could not drop a removed magnet");
            }
        }
    }
}

#[async_trait]
impl TorrentEngine for RqbitEngine {
    async fn add(
        &self,
        source: TorrentSource,
        options: AddOptions,
    ) -> Result<String, TorrentError> {
        match source {
            TorrentSource::Url { url, headers } => {
                let bytes = self.fetcher.fetch(&url, &headers, MAX_TORRENT_FILE).await?;
                self.add_file(bytes, options).await
            }
            TorrentSource::File(bytes) => self.add_file(bytes, options).await,
            TorrentSource::Magnet(uri) => self.add_magnet(uri, options),
        }
    }

    fn torrents(&self) -> Vec<TorrentInfo> {
        self.torrents_with(None, Needs::ALL)
    }

    /// Each id is looked up in the session (librqbit compares info-hashes, no
    /// [`TorrentInfo`] built), then among the magnets still resolving; only `needs` is
    /// built.
    fn torrents_with(&self, ids: Option<&[&str]>, needs: Needs) -> Vec<TorrentInfo> {
        let Some(ids) = ids else {
            let mut list: Vec<TorrentInfo> = self
                .session
                .with_torrents(|it| it.map(|(_, t)| self.info(t, needs)).collect());
            let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            for (id, p) in pending.iter() {
                if !list.iter().any(|t| &t.id == id) {
                    list.push(self.pending_info(id, p));
                }
            }
            return list;
        };
        ids.iter()
            .filter_map(|id| match self.handle(id) {
                Ok(t) => Some(self.info(&t, needs)),
                Err(_) => {
                    let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                    pending.get(*id).map(|p| self.pending_info(id, p))
                }
            })
            .collect()
    }

    /// No [`TorrentInfo`], no file list, no allocation but the pending magnets' list: the
    /// state from the torrent's state machine and, while it runs, its piece counts.
    fn for_each_state(&self, each: &mut dyn FnMut(&str, TorrentState, bool)) {
        let each = std::cell::RefCell::new(each);
        self.session.with_torrents(|it| {
            for (_, t) in it {
                let mut hex = [0u8; 40];
                let (state, finished) = light_state(t);
                (each.borrow_mut())(hex_id(&t.info_hash(), &mut hex), state, finished);
            }
        });
        let each = each.into_inner();
        let pending: Vec<(String, bool)> = {
            let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            if pending.is_empty() {
                return;
            }
            pending
                .iter()
                .map(|(id, p)| (id.clone(), p.error.is_some()))
                .collect()
        };
        for (id, failed) in pending {
            if self.handle(&id).is_err() {
                let state = if failed {
                    TorrentState::Error
                } else {
                    TorrentState::Checking
                };
                each(&id, state, false);
            }
        }
    }

    async fn pause(&self, id: &str) -> Result<(), TorrentError> {
        let t = self.handle(id)?;
        if t.is_paused() {
            return Ok(());
        }
        self.session.pause(&t).await.map_err(engine_error)
    }

    async fn resume(&self, id: &str) -> Result<(), TorrentError> {
        let t = self.handle(id)?;
        // librqbit starts a torrent only once its initial check is over: a resume during
        // the check waits for it (else the torrent would come out of it paused).
        self.wait_checked(&t, id).await?;
        if !t.is_paused() {
            return Ok(());
        }
        self.session.unpause(&t).await.map_err(engine_error)
    }

    async fn remove(&self, id: &str, remove_data: bool) -> Result<(), TorrentError> {
        if self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
            .is_some()
        {
            return Ok(());
        }
        let t = self.handle(id)?;
        self.session
            .delete(TorrentIdOrHash::Hash(t.info_hash()), remove_data)
            .await
            .map_err(engine_error)?;
        self.peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        self.facts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        Ok(())
    }

    /// librqbit has no call that hands a peer to a running torrent, so the torrent is
    /// re-added (same data, pieces re-checked, nothing fetched again) with every peer
    /// given so far as an initial peer; a paused torrent stays paused.
    async fn connect_peer(&self, id: &str, peer: SocketAddr) -> Result<(), TorrentError> {
        let t = self.handle(id)?;
        let bytes = t.with_metadata(|m| m.torrent_bytes.to_vec()).map_err(|_| {
            TorrentError::Unsupported("the torrent's metadata is not there yet".into())
        })?;
        {
            let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
            let list = peers.entry(id.to_string()).or_default();
            if !list.contains(&peer) {
                list.push(peer);
            }
        }
        let location = t.output_folder().to_path_buf();
        self.readd(&t, bytes, location, t.is_paused()).await
    }

    /// librqbit announces when a torrent starts: a running torrent is paused and started
    /// again (its peer connections are made anew, nothing is checked again). A paused
    /// torrent does not announce (as in libtorrent), a checking one announces when its
    /// check ends, a magnet announces while it looks for its metadata: nothing to do.
    async fn reannounce(&self, id: &str) -> Result<(), TorrentError> {
        if self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(id)
        {
            return Ok(());
        }
        let t = self.handle(id)?;
        if !matches!(t.stats().state, TorrentStatsState::Live) {
            return Ok(());
        }
        self.session.pause(&t).await.map_err(engine_error)?;
        self.session.unpause(&t).await.map_err(engine_error)
    }

    /// librqbit downloads a file or skips it: 0 skips, 1 to 7 all download.
    async fn set_file_priorities(&self, id: &str, priorities: &[u8]) -> Result<(), TorrentError> {
        let t = self.handle(id)?;
        self.wait_checked(&t, id).await?;
        let files = t.with_metadata(|m| m.file_infos.len()).map_err(|_| {
            TorrentError::Unsupported("the torrent's metadata is not there yet".into())
        })?;
        if priorities.len() != files {
            return Err(TorrentError::Engine(format!(
                "{} priorities for {files} files",
                priorities.len()
            )));
        }
        let wanted: std::collections::HashSet<usize> = priorities
            .iter()
            .enumerate()
            .filter(|(_, p)| **p > 0)
            .map(|(i, _)| i)
            .collect();
        self.session
            .update_only_files(&t, &wanted)
            .await
            .map_err(engine_error)
    }

    /// The files are moved here (librqbit cannot) — a multi-file torrent's into a folder
    /// named after it, as Deluge moves them ([`layout`]) — then the torrent is re-added
    /// there (`readd`); a failure leaves it where it was.
    async fn move_storage(&self, id: &str, dest: &std::path::Path) -> Result<(), TorrentError> {
        let t = self.handle(id)?;
        self.wait_checked(&t, id).await?;
        let from = t.output_folder().to_path_buf();
        let (bytes, files, root) = t
            .with_metadata(|m| {
                let files: Vec<PathBuf> = m
                    .file_infos
                    .iter()
                    .map(|f| f.relative_filename.clone())
                    .collect();
                (m.torrent_bytes.to_vec(), files, layout::root(&m.info, id))
            })
            .map_err(|_| {
                TorrentError::Unsupported("the torrent's metadata is not there yet".into())
            })?;
        // Deluge's place: a multi-file torrent in a folder named after it under `dest`.
        let to = layout::folder(dest, root.as_deref())?;
        if from == to {
            return Ok(());
        }
        let paused = t.is_paused();
        // The files are let go of while they move.
        if !paused {
            self.session.pause(&t).await.map_err(engine_error)?;
        }
        // The emptied old folder goes only when it is the torrent's own (named after it,
        // as Deluge removes it); a location the user chose stays.
        let own_folder = root
            .as_deref()
            .is_some_and(|name| from.file_name() == Some(std::ffi::OsStr::new(name)));
        let (src, dst, remove_from) = (from.clone(), to.clone(), own_folder);
        let moved = tokio::task::spawn_blocking(move || {
            relocate::move_files(&src, &dst, &files, remove_from)
        })
        .await
        .map_err(engine_error)
        .and_then(|r| r);
        if let Err(e) = moved {
            if !paused {
                self.session.unpause(&t).await.map_err(engine_error)?;
            }
            return Err(e);
        }
        self.readd(&t, bytes, to, paused).await
    }

    /// The torrent is re-added (`readd`) from its file with these
    /// trackers instead of its own (same info dictionary: same id).
    async fn set_trackers(&self, id: &str, trackers: &[Tracker]) -> Result<(), TorrentError> {
        let t = self.handle(id)?;
        let bytes = t.with_metadata(|m| m.torrent_bytes.to_vec()).map_err(|_| {
            TorrentError::Unsupported("the torrent's metadata is not there yet".into())
        })?;
        let bytes = metainfo::with_trackers(&bytes, trackers)?;
        let location = t.output_folder().to_path_buf();
        self.readd(&t, bytes, location, t.is_paused()).await
    }

    fn download_location(&self) -> PathBuf {
        self.download_dir.clone()
    }

    fn listen_port(&self) -> Option<u16> {
        self.listen_addr().map(|a| a.port())
    }

    fn discovery(&self) -> Discovery {
        self.discovery
    }

    async fn stop(&self) {
        RqbitEngine::stop(self).await
    }

    fn version(&self) -> String {
        "librqbit 9.1.0 (not libtorrent)".into()
    }

    fn free_space(&self, path: Option<&std::path::Path>) -> Result<u64, TorrentError> {
        let path = path.unwrap_or(&self.download_dir);
        let st = nix::sys::statvfs::statvfs(path)
            .map_err(|e| TorrentError::BadPath(format!("{}: {e}", path.display())))?;
        // Both are narrower than u64 on some targets.
        #[allow(clippy::useless_conversion)]
        let (blocks, size) = (
            u64::from(st.blocks_available()),
            u64::from(st.fragment_size()),
        );
        Ok(blocks.saturating_mul(size))
    }

    fn rate_limits(&self) -> (Option<u64>, Option<u64>) {
        let get = |v: Option<std::num::NonZeroU32>| v.map(|n| u64::from(n.get()));
        (
            get(self.session.ratelimits.get_download_bps()),
            get(self.session.ratelimits.get_upload_bps()),
        )
    }

    fn set_rate_limits(
        &self,
        download: Option<u64>,
        upload: Option<u64>,
    ) -> Result<(), TorrentError> {
        let bps = |v: Option<u64>| -> Result<Option<std::num::NonZeroU32>, TorrentError> {
            match v {
                None => Ok(None),
                Some(n) => u32::try_from(n)
                    .ok()
                    .and_then(std::num::NonZeroU32::new)
                    .map(Some)
                    .ok_or_else(|| {
                        TorrentError::Unsupported(format!(
                            "{n} bytes/s is not a limit librqbit takes (1..=4 GiB/s)"
                        ))
                    }),
            }
        };
        let (down, up) = (bps(download)?, bps(upload)?);
        self.session.ratelimits.set_download_bps(down);
        self.session.ratelimits.set_upload_bps(up);
        Ok(())
    }
}
