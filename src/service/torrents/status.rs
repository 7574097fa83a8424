//! The torrent list and each torrent's status: `get_session_state`,
//! `get_torrents_status`, `get_torrent_status`, `get_filter_tree`.

use serde_json::{json, Map, Value};

use crate::export::Args;
use crate::export::DispatchError;
use crate::torrent::{Needs, TorrentInfo, TorrentState};

use super::Ctx;

/// `core.get_session_state()`: the ids of every torrent.
pub(super) async fn get_session_state(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    a.params(&[], 0)?;
    let mut ids = Vec::new();
    if let Some(engine) = &cx.engine {
        engine.for_each_state(&mut |id, _, _| ids.push(Value::from(id)));
    }
    Ok(Value::Array(ids))
}

/// `core.get_torrents_status(filter_dict, keys, diff=False)`: the asked keys of every
/// torrent that passes the filter, by id. The engine is asked for the filter's ids only
/// (looked up, not searched for) and for the facts the keys and the filter need.
pub(super) async fn get_torrents_status(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    a.params(&["filter_dict", "keys", "diff"], 2)?;
    let filter_dict: Map<String, Value> = a.get(0, "filter_dict")?;
    let keys: Vec<String> = a.get(1, "keys")?;
    let _diff: bool = a.get_or(2, "diff", false)?; // full answers are valid diffs
    let filter = Filter::parse(&a, &filter_dict)?;
    let Some(engine) = &cx.engine else {
        return Ok(json!({}));
    };
    let needs = needs_of(&keys).union(filter.needs());
    let list = engine.torrents_with(filter.ids.as_deref(), needs);
    // The maps are built from their entries in one pass (sorted, then laid out), not by
    // inserting one by one: a thousand torrents' maps are most of this call's work.
    let mut entries = Vec::with_capacity(list.len());
    for t in list {
        if filter.passes(&t) {
            let value = status(&t, &keys);
            entries.push((t.id, value));
        }
    }
    Ok(Value::Object(Map::from_iter(entries)))
}

/// `core.get_torrent_status(torrent_id, keys, diff=False)`: the asked keys of one torrent.
pub(super) async fn get_torrent_status(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    a.params(&["torrent_id", "keys", "diff"], 2)?;
    let id: String = a.get(0, "torrent_id")?;
    let keys: Vec<String> = a.get(1, "keys")?;
    let _diff: bool = a.get_or(2, "diff", false)?;
    // Deluge answers an unknown id with an empty dict.
    Ok(cx
        .engine
        .as_ref()
        .and_then(|e| e.torrents_with(Some(&[id.as_str()]), needs_of(&keys)).pop())
        .map_or_else(|| json!({}), |t| status(&t, &keys)))
}

/// `core.get_filter_tree(show_zero_hits=True, hide_cat=None)`: how many torrents are in
/// each state and under each tracker host (and the one owner, the empty one).
pub(super) async fn get_filter_tree(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    a.params(&["show_zero_hits", "hide_cat"], 0)?;
    let show_zero: bool = a.get_or(0, "show_zero_hits", true)?;
    let _hide: Option<Vec<String>> = a.get_opt(1, "hide_cat")?;
    let needs = Needs {
        trackers: true,
        ..Needs::NONE
    };
    let list = cx
        .engine
        .as_ref()
        .map(|e| e.torrents_with(None, needs))
        .unwrap_or_default();
    let mut states = vec![json!(["All", list.len()])];
    let active = list.iter().filter(|t| is_active(t)).count();
    if show_zero || active > 0 {
        states.push(json!(["Active", active]));
    }
    for state in TorrentState::ALL {
        let n = list.iter().filter(|t| t.state == state).count();
        if show_zero || n > 0 {
            states.push(json!([state.as_str(), n]));
        }
    }
    // Tracker hosts in name order, the torrents without a tracker under "" (Deluge's
    // "None" entry); the one owner, "".
    let mut hosts = std::collections::BTreeMap::<String, usize>::new();
    for t in &list {
        *hosts.entry(tracker_host(t)).or_default() += 1;
    }
    let mut tracker_hosts = vec![json!(["All", list.len()])];
    tracker_hosts.extend(hosts.into_iter().map(|(host, n)| json!([host, n])));
    Ok(json!({
        "state": states,
        "tracker_host": tracker_hosts,
        "owner": [["All", list.len()]],
    }))
}

/// The status keys that need the metainfo (its file list included).
const META_KEYS: &[&str] = &[
    "num_files",
    "num_pieces",
    "piece_length",
    "private",
    "comment",
    "creator",
    "files",
    "orig_files",
    "file_priorities",
    "file_progress",
];

/// The status keys that need the trackers.
const TRACKER_KEYS: &[&str] = &["trackers", "tracker_host"];

/// What the engine must build for `keys` (empty: every key).
pub(super) fn needs_of(keys: &[String]) -> Needs {
    if keys.is_empty() {
        return Needs::ALL;
    }
    let any = |set: &[&str]| keys.iter().any(|k| set.contains(&k.as_str()));
    Needs {
        meta: any(META_KEYS),
        trackers: any(TRACKER_KEYS),
    }
}

/// Deluge's `Active` state: moving data either way.
fn is_active(t: &TorrentInfo) -> bool {
    t.download_payload_rate.unwrap_or(0) > 0 || t.upload_payload_rate.unwrap_or(0) > 0
}

/// A status key's value for `t`, or `None` for a key this core does not know (left out,
/// as Deluge leaves out unknown keys). Figures the engine does not measure get Deluge's
/// neutral value for "nothing known" (0, -1, empty), never an estimate; the keys of
/// torrent options the engine has no setting for report what it does (Deluge's
/// "off" / "unlimited").
pub(super) fn status_value(t: &TorrentInfo, key: &str) -> Option<Value> {
    if let Some(v) = option_value(key) {
        return Some(v);
    }
    if let Some(v) = meta_value(t, key) {
        return Some(v);
    }
    let size = t.total_size; // the wanted bytes
    let done = t.total_done; // of the wanted bytes
    let down = t.download_payload_rate.unwrap_or(0);
    let up = t.upload_payload_rate.unwrap_or(0);
    let finished = t.is_finished();
    Some(match key {
        "hash" | "id" => json!(t.id),
        "name" => json!(t.name),
        "state" => json!(t.state.as_str()),
        "message" => json!(t.error.as_deref().unwrap_or("OK")),
        "progress" if size > 0 => json!(done as f64 * 100.0 / size as f64),
        "progress" => json!(0.0),
        "total_wanted" => json!(size),
        "total_size" => json!(torrent_size(t)),
        "total_done" => json!(all_done(t)),
        "total_remaining" => json!(size.saturating_sub(done)),
        "total_uploaded" | "total_payload_upload" | "all_time_upload" => json!(t.total_uploaded),
        "total_payload_download" => json!(t.total_payload_download.unwrap_or(0)),
        "ratio" if all_done(t) > 0 => json!(t.total_uploaded as f64 / all_done(t) as f64),
        "ratio" => json!(-1.0),
        "download_payload_rate" => json!(down),
        "upload_payload_rate" => json!(up),
        "num_peers" => json!(t.num_peers.unwrap_or(0)),
        "eta" if down > 0 && !finished => json!(size.saturating_sub(done) / down),
        "eta" => json!(0),
        "save_path" | "download_location" => json!(t.save_path.display().to_string()),
        "is_finished" => json!(finished),
        // Every piece present (not only the wanted files').
        "is_seed" => json!(torrent_size(t) > 0 && all_done(t) >= torrent_size(t)),
        "paused" => json!(t.state == TorrentState::Paused),
        // Deluge's is whole seconds.
        "time_added" => json!(t.time_added.unwrap_or(0.0) as i64),
        "trackers" => json!(t
            .trackers
            .iter()
            .map(|tr| json!({"url": tr.url, "tier": tr.tier}))
            .collect::<Vec<_>>()),
        "tracker_host" => json!(tracker_host(t)),
        // Not measured by the engine: Deluge's values for "unknown".
        "num_seeds" | "all_time_download" | "active_time" | "seeding_time" | "finished_time"
        | "last_seen_complete" | "seed_rank" | "next_announce" | "completed_time" => json!(0),
        "total_seeds" | "total_peers" | "queue" => json!(-1),
        "time_since_transfer" | "time_since_download" | "time_since_upload" => json!(-1),
        "distributed_copies" | "seeds_peers_ratio" => json!(0.0),
        // The engine reports neither the tracker it last reached nor how that went.
        "tracker" | "tracker_status" | "owner" | "label" => json!(""),
        // Not reported per peer by the engine: empty, Deluge's neutral value (the GTK
        // client's Peers tab indexes the key).
        "peers" => json!([]),
        _ => return None,
    })
}

/// The keys of the torrent options the engine has no setting for: what it does.
fn option_value(key: &str) -> Option<Value> {
    Some(match key {
        "max_connections" | "max_upload_slots" | "max_download_speed" | "max_upload_speed" => {
            json!(-1)
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
        | "seed_mode" => json!(false),
        // Unused while stop_at_ratio is off: Deluge's default.
        "stop_ratio" => json!(2.0),
        "move_completed_path" | "move_on_completed_path" => json!(""),
        // librqbit creates files sparse.
        "storage_mode" => json!("sparse"),
        _ => return None,
    })
}

/// The keys from the metainfo, once the engine has it (Deluge's values before that).
fn meta_value(t: &TorrentInfo, key: &str) -> Option<Value> {
    let meta = t.meta.as_ref();
    Some(match key {
        "num_files" => json!(meta.map_or(0, |m| m.files.len())),
        "num_pieces" => json!(meta.map_or(0, |m| m.num_pieces)),
        "piece_length" => json!(meta.map_or(0, |m| m.piece_length)),
        "private" => json!(meta.is_some_and(|m| m.private)),
        "comment" => json!(meta.and_then(|m| m.comment.as_deref()).unwrap_or("")),
        "creator" => json!(meta.and_then(|m| m.creator.as_deref()).unwrap_or("")),
        "files" | "orig_files" => json!(meta.map_or_else(Vec::new, |m| m
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
        "file_priorities" => {
            json!(meta.map_or_else(Vec::new, |m| m.files.iter().map(|f| f.priority).collect()))
        }
        // Fraction of each file present; 0 where the engine does not say.
        "file_progress" => json!(meta.map_or_else(Vec::new, |m| m
            .files
            .iter()
            .map(|f| match f.done {
                Some(done) if f.size > 0 => done as f64 / f.size as f64,
                Some(_) => 1.0,
                None => 0.0,
            })
            .collect())),
        _ => return None,
    })
}

/// The whole torrent's size (every file, wanted or not), once the metainfo is there.
fn torrent_size(t: &TorrentInfo) -> u64 {
    t.all_files_size.unwrap_or_else(|| {
        t.meta
            .as_ref()
            .map_or(t.total_size, |m| m.files.iter().map(|f| f.size).sum())
    })
}

/// Bytes present of every file (wanted or not) when the engine reports each file's, else
/// of the wanted ones.
fn all_done(t: &TorrentInfo) -> u64 {
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

/// The asked keys of `t` (every key for none), as a dict built in one pass from its
/// entries (a repeated key: once).
fn status(t: &TorrentInfo, keys: &[String]) -> Value {
    let mut entries = Vec::with_capacity(if keys.is_empty() {
        ALL_KEYS.len()
    } else {
        keys.len()
    });
    if keys.is_empty() {
        for key in ALL_KEYS {
            if let Some(v) = status_value(t, key) {
                entries.push((key.to_string(), v));
            }
        }
    } else {
        for key in keys {
            if let Some(v) = status_value(t, key) {
                entries.push((key.clone(), v));
            }
        }
    }
    Value::Object(Map::from_iter(entries))
}

/// Deluge's `filter_dict`, parsed (`id`: one or a list; `state`: a name, `All` or
/// `Active`; `tracker_host`; `owner` and `label`, which only the empty one passes; any
/// key with `All` is no filter). An unknown key is a `ValueError`.
struct Filter<'a> {
    /// The ids asked for (`None`: any).
    ids: Option<Vec<&'a str>>,
    /// The other keys and the values each accepts.
    rest: Vec<(&'a str, Vec<&'a str>)>,
}

impl<'a> Filter<'a> {
    fn parse(a: &Args, filter: &'a Map<String, Value>) -> Result<Filter<'a>, DispatchError> {
        let mut out = Filter {
            ids: None,
            rest: Vec::new(),
        };
        for (key, want) in filter {
            let values: Vec<&str> = match want {
                Value::String(s) => vec![s.as_str()],
                Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
                other => {
                    return Err(a.type_error(
                        &format!("filter_dict[{key:?}]"),
                        format!("expected a string or a list of strings, got {other}"),
                    ))
                }
            };
            match key.as_str() {
                "id" | "state" | "tracker_host" | "owner" | "label" => {}
                other => {
                    return Err(a.value_error(
                        "filter_dict",
                        format!("unknown filter key {other:?}; this daemon filters by id, state, tracker_host, owner and label"),
                    ))
                }
            }
            if values.contains(&"All") {
                continue;
            }
            if key == "id" {
                out.ids = Some(values);
            } else {
                out.rest.push((key.as_str(), values));
            }
        }
        Ok(out)
    }

    /// What the engine must build for the filter.
    fn needs(&self) -> Needs {
        Needs {
            trackers: self.rest.iter().any(|(k, _)| *k == "tracker_host"),
            ..Needs::NONE
        }
    }

    /// Whether `t` (one of the ids asked for) passes the other keys.
    fn passes(&self, t: &TorrentInfo) -> bool {
        self.rest.iter().all(|(key, values)| match *key {
            "state" => values
                .iter()
                .any(|v| *v == t.state.as_str() || (*v == "Active" && is_active(t))),
            "tracker_host" => values.contains(&tracker_host(t).as_str()),
            // "owner" and "label": the one owner and label are the empty ones.
            _ => values.contains(&""),
        })
    }
}
