//! Deluge's torrent status keys: each key resolved once to a [`Field`]
//! ([`Field::of`]), then read from every torrent ([`Field::value`]) without matching its
//! name again (a thousand torrents' dozen keys were a few hundred thousand string
//! comparisons).

use serde_json::{json, Value};

use crate::torrent::{TorrentInfo, TorrentState};

/// A status key this core answers, resolved from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Field {
    Id,
    Name,
    State,
    Message,
    Progress,
    TotalWanted,
    TotalSize,
    TotalDone,
    TotalRemaining,
    Uploaded,
    PayloadDownload,
    Ratio,
    DownloadRate,
    UploadRate,
    NumPeers,
    Eta,
    SavePath,
    IsFinished,
    IsSeed,
    Paused,
    TimeAdded,
    Trackers,
    TrackerHost,
    NumFiles,
    NumPieces,
    PieceLength,
    Private,
    Comment,
    Creator,
    Files,
    FilePriorities,
    FileProgress,
    /// Not measured by the engine, or an option it has no setting for: Deluge's value for
    /// "unknown" or what the engine does.
    Fixed(Fixed),
}

/// The values of the keys that are the same for every torrent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fixed {
    Zero,
    MinusOne,
    ZeroFloat,
    False,
    Empty,
    EmptyList,
    StopRatio,
    Sparse,
}

impl Fixed {
    fn value(self) -> Value {
        match self {
            Fixed::Zero => json!(0),
            Fixed::MinusOne => json!(-1),
            Fixed::ZeroFloat => json!(0.0),
            Fixed::False => json!(false),
            Fixed::Empty => json!(""),
            Fixed::EmptyList => json!([]),
            // Unused while stop_at_ratio is off: Deluge's default.
            Fixed::StopRatio => json!(2.0),
            // librqbit creates files sparse.
            Fixed::Sparse => json!("sparse"),
        }
    }
}

impl Field {
    /// The field of status key `key`; `None` for a key this core does not know (left
    /// out, as Deluge leaves out unknown keys). Figures the engine does not measure get
    /// Deluge's neutral value for "nothing known" (0, -1, empty), never an estimate; the
    /// keys of torrent options the engine has no setting for report what it does
    /// (Deluge's "off" / "unlimited").
    pub(super) fn of(key: &str) -> Option<Field> {
        use Field as F;
        Some(match key {
            "hash" | "id" => F::Id,
            "name" => F::Name,
            "state" => F::State,
            "message" => F::Message,
            "progress" => F::Progress,
            "total_wanted" => F::TotalWanted,
            "total_size" => F::TotalSize,
            "total_done" => F::TotalDone,
            "total_remaining" => F::TotalRemaining,
            "total_uploaded" | "total_payload_upload" | "all_time_upload" => F::Uploaded,
            "total_payload_download" => F::PayloadDownload,
            "ratio" => F::Ratio,
            "download_payload_rate" => F::DownloadRate,
            "upload_payload_rate" => F::UploadRate,
            "num_peers" => F::NumPeers,
            "eta" => F::Eta,
            "save_path" | "download_location" => F::SavePath,
            "is_finished" => F::IsFinished,
            "is_seed" => F::IsSeed,
            "paused" => F::Paused,
            "time_added" => F::TimeAdded,
            "trackers" => F::Trackers,
            "tracker_host" => F::TrackerHost,
            "num_files" => F::NumFiles,
            "num_pieces" => F::NumPieces,
            "piece_length" => F::PieceLength,
            "private" => F::Private,
            "comment" => F::Comment,
            "creator" => F::Creator,
            "files" | "orig_files" => F::Files,
            "file_priorities" => F::FilePriorities,
            "file_progress" => F::FileProgress,
            // Not measured by the engine: Deluge's values for "unknown".
            "num_seeds" | "all_time_download" | "active_time" | "seeding_time"
            | "finished_time" | "last_seen_complete" | "seed_rank" | "next_announce"
            | "completed_time" => F::Fixed(Fixed::Zero),
            "total_seeds" | "total_peers" | "queue" => F::Fixed(Fixed::MinusOne),
            "time_since_transfer" | "time_since_download" | "time_since_upload" => {
                F::Fixed(Fixed::MinusOne)
            }
            "distributed_copies" | "seeds_peers_ratio" => F::Fixed(Fixed::ZeroFloat),
            // The engine reports neither the tracker it last reached nor how that went.
            "tracker" | "tracker_status" | "owner" | "label" => F::Fixed(Fixed::Empty),
            // Not reported per peer by the engine: empty, Deluge's neutral value (the GTK
            // client's Peers tab indexes the key).
            "peers" => F::Fixed(Fixed::EmptyList),
            // The torrent options the engine has no setting for: what it does.
            "max_connections" | "max_upload_slots" | "max_download_speed" | "max_upload_speed" => {
                F::Fixed(Fixed::MinusOne)
            }
            "auto_managed"
            | "is_auto_managed"
            | "sequential_download"
            | "super_seeding"
            | "prioritize_first_last_pieces"
            | "prioritize_first_last"
            | "stop_at_ratio"
            | "remove_at_ratio"
            | "move_completed"
            | "move_on_completed"
            | "shared"
            | "seed_mode" => F::Fixed(Fixed::False),
            "stop_ratio" => F::Fixed(Fixed::StopRatio),
            "move_completed_path" | "move_on_completed_path" => F::Fixed(Fixed::Empty),
            "storage_mode" => F::Fixed(Fixed::Sparse),
            _ => return None,
        })
    }

    /// This field of `t`.
    pub(super) fn value(self, t: &TorrentInfo) -> Value {
        use Field as F;
        let size = t.total_size; // the wanted bytes
        let done = t.total_done; // of the wanted bytes
        let down = t.download_payload_rate.unwrap_or(0);
        let meta = t.meta.as_ref();
        match self {
            F::Id => json!(t.id),
            F::Name => json!(t.name),
            F::State => json!(t.state.as_str()),
            F::Message => json!(t.error.as_deref().unwrap_or("OK")),
            F::Progress if size > 0 => json!(done as f64 * 100.0 / size as f64),
            F::Progress => json!(0.0),
            F::TotalWanted => json!(size),
            F::TotalSize => json!(torrent_size(t)),
            F::TotalDone => json!(all_done(t)),
            F::TotalRemaining => json!(size.saturating_sub(done)),
            F::Uploaded => json!(t.total_uploaded),
            F::PayloadDownload => json!(t.total_payload_download.unwrap_or(0)),
            F::Ratio if all_done(t) > 0 => json!(t.total_uploaded as f64 / all_done(t) as f64),
            F::Ratio => json!(-1.0),
            F::DownloadRate => json!(down),
            F::UploadRate => json!(t.upload_payload_rate.unwrap_or(0)),
            F::NumPeers => json!(t.num_peers.unwrap_or(0)),
            F::Eta if down > 0 && !t.is_finished() => json!(size.saturating_sub(done) / down),
            F::Eta => json!(0),
            F::SavePath => json!(t.save_path.display().to_string()),
            F::IsFinished => json!(t.is_finished()),
            // Every piece present (not only the wanted files').
            F::IsSeed => json!(torrent_size(t) > 0 && all_done(t) >= torrent_size(t)),
            F::Paused => json!(t.state == TorrentState::Paused),
            // Deluge's is whole seconds.
            F::TimeAdded => json!(t.time_added.unwrap_or(0.0) as i64),
            F::Trackers => json!(t
                .trackers
                .iter()
                .map(|tr| json!({"url": tr.url, "tier": tr.tier}))
                .collect::<Vec<_>>()),
            F::TrackerHost => json!(tracker_host(t)),
            // The keys from the metainfo, once the engine has it (Deluge's values before).
            F::NumFiles => json!(meta.map_or(0, |m| m.files.len())),
            F::NumPieces => json!(meta.map_or(0, |m| m.num_pieces)),
            F::PieceLength => json!(meta.map_or(0, |m| m.piece_length)),
            F::Private => json!(meta.is_some_and(|m| m.private)),
            F::Comment => json!(meta.and_then(|m| m.comment.as_deref()).unwrap_or("")),
            F::Creator => json!(meta.and_then(|m| m.creator.as_deref()).unwrap_or("")),
            F::Files => json!(meta.map_or_else(Vec::new, |m| m
                .files
                .iter()
                .enumerate()
                .map(|(index, f)| json!({
                    "index": index,
                    "path": f.path,
                    "size": f.size,
                    "offset": f.offset,
                }))
                .collect())),
            F::FilePriorities => {
                json!(meta.map_or_else(Vec::new, |m| m.files.iter().map(|f| f.priority).collect()))
            }
            // Fraction of each file present; 0 where the engine does not say.
            F::FileProgress => json!(meta.map_or_else(Vec::new, |m| m
                .files
                .iter()
                .map(|f| match f.done {
                    Some(done) if f.size > 0 => done as f64 / f.size as f64,
                    Some(_) => 1.0,
                    None => 0.0,
                })
                .collect())),
            F::Fixed(fixed) => fixed.value(),
        }
    }
}

/// The whole torrent's size (every file, wanted or not), once the metainfo is there.
pub(super) fn torrent_size(t: &TorrentInfo) -> u64 {
    t.all_files_size.unwrap_or_else(|| {
        t.meta
            .as_ref()
            .map_or(t.total_size, |m| m.files.iter().map(|f| f.size).sum())
    })
}

/// Bytes present of every file (wanted or not) when the engine reports each file's, else
/// of the wanted ones.
pub(super) fn all_done(t: &TorrentInfo) -> u64 {
    t.all_files_done.unwrap_or_else(|| {
        t.meta
            .as_ref()
            .and_then(|m| m.files.iter().map(|f| f.done).sum::<Option<u64>>())
            .unwrap_or(t.total_done)
    })
}

/// Deluge's `tracker_host`: the first tracker's host name shortened to its registered
/// domain (`tracker.example.com` → `example.com`, `a.b.co.uk` → `b.co.uk`), an IP address
/// as it is, empty without trackers.
pub(super) fn tracker_host(t: &TorrentInfo) -> String {
    let Some(first) = t.trackers.first() else {
        return String::new();
    };
    let rest = first.url.split_once("://").map_or("", |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or("").to_string();
    } else {
        authority.split(':').next().unwrap_or("").to_lowercase()
    };
    if host.is_empty() {
        return "DHT".into(); // Deluge's name for a URL without a host
    }
    if host.parse::<std::net::Ipv4Addr>().is_ok() {
        return host;
    }
    let parts: Vec<&str> = host.split('.').collect();
    let n = parts.len();
    if n <= 2 {
        return host;
    }
    let keep = if ["co", "com", "net", "org"].contains(&parts[n - 2]) || parts[n - 1] == "uk" {
        3
    } else {
        2
    };
    parts[n - keep..].join(".")
}

/// Every key [`status_value`] answers (what an empty `keys` list asks for).
pub(super) const ALL_KEYS: &[&str] = &[
    "active_time",
    "all_time_download",
    "all_time_upload",
    "auto_managed",
    "comment",
    "completed_time",
    "creator",
    "distributed_copies",
    "download_location",
    "download_payload_rate",
    "eta",
    "file_priorities",
    "file_progress",
    "files",
    "finished_time",
    "hash",
    "id",
    "is_auto_managed",
    "is_finished",
    "is_seed",
    "label",
    "last_seen_complete",
    "max_connections",
    "max_download_speed",
    "max_upload_slots",
    "max_upload_speed",
    "message",
    "move_completed",
    "move_completed_path",
    "move_on_completed",
    "move_on_completed_path",
    "name",
    "next_announce",
    "num_files",
    "num_peers",
    "num_pieces",
    "num_seeds",
    "orig_files",
    "owner",
    "paused",
    "peers",
    "piece_length",
    "prioritize_first_last",
    "prioritize_first_last_pieces",
    "private",
    "progress",
    "queue",
    "ratio",
    "remove_at_ratio",
    "save_path",
    "seed_mode",
    "seed_rank",
    "seeding_time",
    "seeds_peers_ratio",
    "sequential_download",
    "shared",
    "state",
    "stop_at_ratio",
    "stop_ratio",
    "storage_mode",
    "super_seeding",
    "time_added",
    "time_since_download",
    "time_since_transfer",
    "time_since_upload",
    "total_done",
    "total_payload_download",
    "total_payload_upload",
    "total_peers",
    "total_remaining",
    "total_seeds",
    "total_size",
    "total_uploaded",
    "total_wanted",
    "tracker",
    "tracker_host",
    "tracker_status",
    "trackers",
    "upload_payload_rate",
];
