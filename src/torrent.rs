//! Torrents: the [`TorrentEngine`] trait the core service drives Deluge's torrent methods
//! through (`core.add_torrent_file`, `core.get_torrents_status`, …), and the typed
//! torrent status it answers with.
//!
//! The embedded librqbit engine implements it ([`RqbitEngine`](crate::source::RqbitEngine),
//! feature `rqbit`); an embedding application may implement it for its own engine. Torrent
//! ids are info-hashes in lower-case hex, as Deluge's.

use std::net::SocketAddr;
use std::path::PathBuf;

use async_trait::async_trait;

/// Largest torrent file accepted, from a client or fetched from a URL (base64 text of it:
/// a third more).
pub const MAX_TORRENT_FILE: usize = 16 << 20;

/// What to add.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TorrentSource {
    /// The bytes of a `.torrent` file.
    File(Vec<u8>),
    /// A `magnet:` URI.
    Magnet(String),
    /// An http(s) URL of a `.torrent` file, fetched by the engine with these headers.
    Url {
        /// The URL.
        url: String,
        /// Request headers (name, value), e.g. a cookie.
        headers: Vec<(String, String)>,
    },
}

/// Options of an add (Deluge's `add_paused`, `download_location`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AddOptions {
    /// Add without starting.
    pub paused: bool,
    /// Where the data goes (default: the engine's download directory).
    pub download_location: Option<PathBuf>,
}

/// A torrent's state, with Deluge's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TorrentState {
    /// Checking existing data or fetching metadata.
    Checking,
    /// Downloading.
    Downloading,
    /// Complete and sharing.
    Seeding,
    /// Paused by the user.
    Paused,
    /// Stopped by an error.
    Error,
}

impl TorrentState {
    /// Deluge's name.
    pub fn as_str(self) -> &'static str {
        match self {
            TorrentState::Checking => "Checking",
            TorrentState::Downloading => "Downloading",
            TorrentState::Seeding => "Seeding",
            TorrentState::Paused => "Paused",
            TorrentState::Error => "Error",
        }
    }

    /// Every state, in the order Deluge's filter tree lists them.
    pub const ALL: [TorrentState; 5] = [
        TorrentState::Downloading,
        TorrentState::Seeding,
        TorrentState::Paused,
        TorrentState::Checking,
        TorrentState::Error,
    ];
}

/// What an engine knows of one torrent. A figure the engine does not measure is `None`,
/// never a guess.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TorrentInfo {
    /// Info-hash, lower-case hex.
    pub id: String,
    /// Name (the info dictionary's, or the id while a magnet's metadata is missing).
    pub name: String,
    /// State.
    pub state: TorrentState,
    /// Why it stopped, in the `Error` state.
    pub error: Option<String>,
    /// Bytes wanted (0 while the metadata is missing).
    pub total_size: u64,
    /// Bytes present and checked (0 while the check runs).
    pub total_done: u64,
    /// Payload bytes uploaded this engine session.
    pub total_uploaded: u64,
    /// Payload bytes downloaded this engine session, if measured.
    pub total_payload_download: Option<u64>,
    /// Payload download rate, bytes/s.
    pub download_payload_rate: Option<u64>,
    /// Payload upload rate, bytes/s.
    pub upload_payload_rate: Option<u64>,
    /// Connected peers.
    pub num_peers: Option<u64>,
    /// Deluge's save path: the folder a single file, or a multi-file torrent's own folder
    /// (named after it), is in; for a torrent whose files are not in such a folder, the
    /// folder they are in.
    pub save_path: PathBuf,
    /// Unix seconds when it was added to this engine, if known.
    pub time_added: Option<f64>,
    /// What the metainfo says, once the engine has it (a magnet's arrives later).
    pub meta: Option<MetaInfo>,
    /// The trackers it announces to, in tier order (empty: none, or not known).
    pub trackers: Vec<Tracker>,
    /// Bytes of every file, wanted or not, when the engine tells them without the file
    /// list (`None`: the sum of [`meta`](Self::meta)'s files, else `total_size`).
    pub all_files_size: Option<u64>,
    /// Bytes present of every file, wanted or not, when the engine tells them without the
    /// file list (`None`: the sum of [`meta`](Self::meta)'s files' `done`, else
    /// `total_done`).
    pub all_files_done: Option<u64>,
}

/// Which of a torrent's costlier facts a caller needs ([`TorrentEngine::torrents_with`]):
/// the rest of a [`TorrentInfo`] (id, name, state, sizes, counters, rates, place) is always
/// there; a fact not asked for may be left empty (`meta: None`, no trackers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Needs {
    /// The metainfo ([`TorrentInfo::meta`]): pieces, private flag, comment, creator and
    /// the file list with each file's progress and priority.
    pub meta: bool,
    /// The trackers ([`TorrentInfo::trackers`]).
    pub trackers: bool,
}

impl Needs {
    /// Only what every [`TorrentInfo`] has.
    pub const NONE: Needs = Needs {
        meta: false,
        trackers: false,
    };
    /// Everything.
    pub const ALL: Needs = Needs {
        meta: true,
        trackers: true,
    };

    /// These needs and `other`'s.
    pub fn union(self, other: Needs) -> Needs {
        Needs {
            meta: self.meta || other.meta,
            trackers: self.trackers || other.trackers,
        }
    }
}

/// A tracker of a torrent, as Deluge lists it (`{"url", "tier"}`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Tracker {
    /// The announce URL.
    pub url: String,
    /// The tier (0 first); trackers of a tier are tried before the next tier's.
    pub tier: u32,
}

impl Tracker {
    /// A tracker at `url` in `tier`.
    pub fn new(url: impl Into<String>, tier: u32) -> Self {
        Tracker {
            url: url.into(),
            tier,
        }
    }
}

/// The facts of a torrent's metainfo (its info dictionary).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MetaInfo {
    /// Files, in torrent order.
    pub files: Vec<TorrentFile>,
    /// Piece length, bytes.
    pub piece_length: u64,
    /// Number of pieces.
    pub num_pieces: u64,
    /// The private flag (no DHT or peer exchange).
    pub private: bool,
    /// The metainfo's `comment`, if it has one.
    pub comment: Option<String>,
    /// The metainfo's `created by`, if it has one.
    pub creator: Option<String>,
}

impl MetaInfo {
    /// Metainfo facts.
    pub fn new(files: Vec<TorrentFile>, piece_length: u64, num_pieces: u64, private: bool) -> Self {
        MetaInfo {
            files,
            piece_length,
            num_pieces,
            private,
            comment: None,
            creator: None,
        }
    }
}

/// One file of a torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TorrentFile {
    /// Path inside the torrent, `/`-separated, the torrent's name first for a
    /// multi-file torrent (as Deluge shows it).
    pub path: String,
    /// Length, bytes.
    pub size: u64,
    /// Offset of its first byte in the torrent.
    pub offset: u64,
    /// Bytes present and checked, if the engine says.
    pub done: Option<u64>,
    /// Deluge's file priority: 0 skipped, 1 to 7 downloaded (4 normal; an engine without
    /// levels reports 4 for every file it downloads).
    pub priority: u8,
}

impl TorrentFile {
    /// A file at `offset` of `size` bytes, its progress unknown, downloaded (priority 4).
    pub fn new(path: impl Into<String>, size: u64, offset: u64) -> Self {
        TorrentFile {
            path: path.into(),
            size,
            offset,
            done: None,
            priority: 4,
        }
    }
}

impl TorrentInfo {
    /// A torrent in `state` with nothing measured yet.
    pub fn new(id: impl Into<String>, name: impl Into<String>, state: TorrentState) -> Self {
        TorrentInfo {
            id: id.into(),
            name: name.into(),
            state,
            error: None,
            total_size: 0,
            total_done: 0,
            total_uploaded: 0,
            total_payload_download: None,
            download_payload_rate: None,
            upload_payload_rate: None,
            num_peers: None,
            save_path: PathBuf::new(),
            time_added: None,
            meta: None,
            trackers: Vec::new(),
            all_files_size: None,
            all_files_done: None,
        }
    }

    /// Whether every wanted byte is present.
    pub fn is_finished(&self) -> bool {
        self.total_size > 0 && self.total_done >= self.total_size
    }
}

/// Which peer discovery and port mapping an engine runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Discovery {
    /// The DHT (trackerless peer discovery).
    pub dht: bool,
    /// Local service discovery (multicast on the LAN).
    pub lsd: bool,
    /// UPnP port forwarding of the listening port.
    pub upnp: bool,
}

impl Discovery {
    /// DHT, LSD and UPnP on or off.
    pub fn new(dht: bool, lsd: bool, upnp: bool) -> Self {
        Discovery { dht, lsd, upnp }
    }
}

/// A torrent operation failed. Each maps to Deluge's exception class
/// ([`deluge_class`](TorrentError::deluge_class)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TorrentError {
    /// The bytes are not a torrent file.
    #[error("not a torrent file: {0}")]
    NotATorrent(String),
    /// The magnet URI cannot be used.
    #[error("bad magnet URI: {0}")]
    BadMagnet(String),
    /// No torrent has this id.
    #[error("Torrent ID not in session: {0}")]
    Unknown(String),
    /// The torrent is already in the session.
    #[error("Torrent already in session ({0})")]
    AlreadyAdded(String),
    /// The URL cannot be fetched from (not http or https, or malformed).
    #[error("bad URL: {0}")]
    BadUrl(String),
    /// Fetching the URL failed (network, HTTP status, size).
    #[error("could not fetch the torrent file: {0}")]
    Fetch(String),
    /// The engine cannot do this.
    #[error("{0}")]
    Unsupported(String),
    /// A path cannot be used.
    #[error("{0}")]
    BadPath(String),
    /// The engine failed.
    #[error("{0}")]
    Engine(String),
}

impl TorrentError {
    /// The `deluge.error` class a Deluge client gets for this error.
    pub fn deluge_class(&self) -> &'static str {
        match self {
            TorrentError::NotATorrent(_)
            | TorrentError::BadMagnet(_)
            | TorrentError::BadUrl(_)
            | TorrentError::Unknown(_) => "InvalidTorrentError",
            TorrentError::AlreadyAdded(_) | TorrentError::Fetch(_) => "AddTorrentError",
            TorrentError::BadPath(_) => "InvalidPathError",
            TorrentError::Unsupported(_) | TorrentError::Engine(_) => "DelugeError",
        }
    }
}

/// A BitTorrent engine the core service can drive.
#[async_trait]
pub trait TorrentEngine: Send + Sync + 'static {
    /// Adds a torrent; returns its id. A torrent already there is
    /// [`TorrentError::AlreadyAdded`].
    async fn add(&self, source: TorrentSource, options: AddOptions)
        -> Result<String, TorrentError>;

    /// Every torrent, in the order they were added.
    fn torrents(&self) -> Vec<TorrentInfo>;

    /// One torrent.
    fn torrent(&self, id: &str) -> Option<TorrentInfo> {
        self.torrents_with(Some(&[id]), Needs::ALL).pop()
    }

    /// The torrents `ids` (`None`: every torrent, in the order they were added; an
    /// unknown id is left out), with at least the facts `needs` says. An engine that can
    /// should look each id up rather than walk every torrent, and build only what is
    /// needed. The default filters [`torrents`](Self::torrents).
    fn torrents_with(&self, ids: Option<&[&str]>, needs: Needs) -> Vec<TorrentInfo> {
        let _ = needs;
        let mut list = self.torrents();
        if let Some(ids) = ids {
            list.retain(|t| ids.contains(&t.id.as_str()));
        }
        list
    }

    /// Calls `each(id, state, finished)` for every torrent (`finished`:
    /// [`TorrentInfo::is_finished`]): what the torrent state events watch, which an engine
    /// should tell without building a [`TorrentInfo`]. The default walks
    /// [`torrents`](Self::torrents).
    fn for_each_state(&self, each: &mut dyn FnMut(&str, TorrentState, bool)) {
        for t in self.torrents() {
            each(&t.id, t.state, t.is_finished());
        }
    }

    /// Pauses a torrent (a paused one stays paused).
    async fn pause(&self, id: &str) -> Result<(), TorrentError>;

    /// Resumes a torrent (a running one keeps running).
    async fn resume(&self, id: &str) -> Result<(), TorrentError>;

    /// Removes a torrent, and its data if `remove_data`.
    async fn remove(&self, id: &str, remove_data: bool) -> Result<(), TorrentError>;

    /// Connects a torrent to a peer.
    async fn connect_peer(&self, id: &str, peer: SocketAddr) -> Result<(), TorrentError>;

    /// Announces a torrent to its trackers (and the DHT) now, as Deluge's
    /// `force_reannounce`.
    async fn reannounce(&self, id: &str) -> Result<(), TorrentError> {
        let _ = id;
        Err(TorrentError::Unsupported(
            "this engine cannot re-announce a torrent on request".into(),
        ))
    }

    /// Sets which files of a torrent are downloaded, one Deluge priority per file in
    /// torrent order (0: skip; 1 to 7: download). The caller has checked the count.
    async fn set_file_priorities(&self, id: &str, priorities: &[u8]) -> Result<(), TorrentError> {
        let _ = (id, priorities);
        Err(TorrentError::Unsupported(
            "this engine cannot change which files are downloaded".into(),
        ))
    }

    /// Moves a torrent's data to the directory `dest` (absolute; created if missing), where
    /// the torrent then goes on: `dest` becomes its save path (a multi-file torrent's
    /// files in `dest/<name>/`, as Deluge moves them).
    async fn move_storage(&self, id: &str, dest: &std::path::Path) -> Result<(), TorrentError> {
        let _ = (id, dest);
        Err(TorrentError::Unsupported(
            "this engine cannot move a torrent's data".into(),
        ))
    }

    /// Replaces a torrent's trackers (an empty list: none).
    async fn set_trackers(&self, id: &str, trackers: &[Tracker]) -> Result<(), TorrentError> {
        let _ = (id, trackers);
        Err(TorrentError::Unsupported(
            "this engine cannot change a torrent's trackers".into(),
        ))
    }

    /// Where torrents go by default.
    fn download_location(&self) -> PathBuf;

    /// The port peers connect to, if the engine listens.
    fn listen_port(&self) -> Option<u16>;

    /// Which peer discovery and port mapping the engine runs (what `core.get_config`
    /// reports as `dht`, `lsd`, `upnp`). The default: none.
    fn discovery(&self) -> Discovery {
        Discovery::default()
    }

    /// The engine's name and version (what `core.get_libtorrent_version` reports).
    fn version(&self) -> String;

    /// Stops the engine and every torrent task, once its owner is done with it (after
    /// the daemon's final poll). The default does nothing.
    async fn stop(&self) {}

    /// Bytes free for unprivileged users on the file system of `path` (default: the
    /// download location).
    fn free_space(&self, path: Option<&std::path::Path>) -> Result<u64, TorrentError> {
        let _ = path;
        Err(TorrentError::Unsupported(
            "this engine does not measure free space".into(),
        ))
    }

    /// The session's rate limits, bytes/s: (download, upload); `None` is unlimited.
    fn rate_limits(&self) -> (Option<u64>, Option<u64>) {
        (None, None)
    }

    /// Sets the session's rate limits, bytes/s (`None`: unlimited); they apply at once.
    fn set_rate_limits(
        &self,
        download: Option<u64>,
        upload: Option<u64>,
    ) -> Result<(), TorrentError> {
        let _ = (download, upload);
        Err(TorrentError::Unsupported(
            "this engine has no rate limits".into(),
        ))
    }
}
