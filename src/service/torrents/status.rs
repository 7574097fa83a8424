//! The torrent list and each torrent's status: `get_session_state`,
//! `get_torrents_status`, `get_torrent_status`, `get_filter_tree`.

use serde_json::{json, Map, Value};

use crate::export::Args;
use crate::export::DispatchError;
use crate::torrent::{TorrentInfo, TorrentState};

use super::Ctx;

/// `core.get_session_state()`: the ids of every torrent.
pub(super) async fn get_session_state(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    let list = torrents(&cx);
    a.params(&[], 0)?;
    Ok(json!(list.into_iter().map(|t| t.id).collect::<Vec<_>>()))
}

/// `core.get_torrents_status(filter_dict, keys, diff=False)`: the asked keys of every
/// torrent that passes the filter, by id.
pub(super) async fn get_torrents_status(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    let list = torrents(&cx);
    a.params(&["filter_dict", "keys", "diff"], 2)?;
    let filter_dict: Map<String, Value> = a.get(0, "filter_dict")?;
    let keys: Vec<String> = a.get(1, "keys")?;
    let _diff: bool = a.get_or(2, "diff", false)?; // full answers are valid diffs
    let mut out = Map::new();
    for t in &list {
        if filter(&a, &filter_dict, t)? {
            out.insert(t.id.clone(), status(t, &keys));
        }
    }
    Ok(Value::Object(out))
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
        .and_then(|e| e.torrent(&id))
        .map_or_else(|| json!({}), |t| status(&t, &keys)))
}

/// `core.get_filter_tree(show_zero_hits=True, hide_cat=None)`: how many torrents are in
/// each state (and under the one tracker host and owner, the empty ones).
pub(super) async fn get_filter_tree(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    let list = torrents(&cx);
    a.params(&["show_zero_hits", "hide_cat"], 0)?;
    let show_zero: bool = a.get_or(0, "show_zero_hits", true)?;
    let _hide: Option<Vec<String>> = a.get_opt(1, "hide_cat")?;
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
    Ok(json!({
        "state": states,
        "tracker_host": [["All", list.len()], ["", list.len()]],
        "owner": [["All", list.len()]],
    }))
}

/// The engine's torrents (none without an engine).
fn torrents(cx: &Ctx) -> Vec<TorrentInfo> {
    cx.engine.as_ref().map(|e| e.torrents()).unwrap_or_default()
}

/// Deluge's `Active` state: moving data either way.
fn is_active(t: &TorrentInfo) -> bool {
    t.download_payload_rate.unwrap_or(0) > 0 || t.upload_payload_rate.unwrap_or(0) > 0
}

/// A status key's value for `t`, or `None` for a key this core does not know (left out,
/// as Deluge leaves out unknown keys). Figures the engine does not measure get Deluge's
/// neutral value for "nothing known" (0, -1, empty), never an estimate.
fn status_value(t: &TorrentInfo, key: &str) -> Option<Value> {
    let size = t.total_size;
    let done = t.total_done;
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
        "total_size" | "total_wanted" => json!(size),
        "total_done" => json!(done),
        "total_remaining" => json!(size.saturating_sub(done)),
        "total_uploaded" | "total_payload_upload" | "all_time_upload" => json!(t.total_uploaded),
        "total_payload_download" => json!(t.total_payload_download.unwrap_or(0)),
        "ratio" if done > 0 => json!(t.total_uploaded as f64 / done as f64),
        "ratio" => json!(-1.0),
        "download_payload_rate" => json!(down),
        "upload_payload_rate" => json!(up),
        "num_peers" => json!(t.num_peers.unwrap_or(0)),
        "eta" if down > 0 && !finished => json!(size.saturating_sub(done) / down),
        "eta" => json!(0),
        "save_path" | "download_location" => json!(t.save_path.display().to_string()),
        "is_finished" | "is_seed" => json!(finished),
        "paused" => json!(t.state == TorrentState::Paused),
        "time_added" => json!(t.time_added.unwrap_or(0.0)),
        // From the metainfo, once the engine has it.
        "num_files" => json!(t.meta.as_ref().map_or(0, |m| m.files.len())),
        "num_pieces" => json!(t.meta.as_ref().map_or(0, |m| m.num_pieces)),
        "piece_length" => json!(t.meta.as_ref().map_or(0, |m| m.piece_length)),
        "private" => json!(t.meta.as_ref().is_some_and(|m| m.private)),
        "files" => json!(t.meta.as_ref().map_or_else(Vec::new, |m| m
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
        // Every file is downloaded: Deluge's "normal" priority (4) for each.
        "file_priorities" => json!(t
            .meta
            .as_ref()
            .map_or_else(Vec::new, |m| vec![4; m.files.len()])),
        // Fraction of each file present; 0 where the engine does not say.
        "file_progress" => json!(t.meta.as_ref().map_or_else(Vec::new, |m| m
            .files
            .iter()
            .map(|f| match f.done {
                Some(done) if f.size > 0 => done as f64 / f.size as f64,
                Some(_) => 1.0,
                None => 0.0,
            })
            .collect())),
        // Not measured by the engine: Deluge's values for "unknown".
        "num_seeds"
        | "all_time_download"
        | "active_time"
        | "seeding_time"
        | "time_since_transfer"
        | "last_seen_complete"
        | "seed_rank"
        | "next_announce"
        | "completed_time" => json!(0),
        "total_seeds" | "total_peers" | "queue" => json!(-1),
        "max_download_speed" | "max_upload_speed" => json!(-1.0),
        "distributed_copies" | "seeds_peers_ratio" => json!(0.0),
        "tracker_host" | "tracker_status" | "owner" | "label" => json!(""),
        "is_auto_managed" => json!(false),
        // Not reported per peer or tracker by the engine: empty, Deluge's neutral value
        // (the GTK client's Peers and Trackers tabs index the key).
        "peers" | "trackers" => json!([]),
        _ => return None,
    })
}

/// Every key [`status_value`] answers (what an empty `keys` list asks for).
const ALL_KEYS: [&str; 53] = [
    "num_files",
    "total_payload_download",
    "all_time_download",
    "hash",
    "id",
    "name",
    "state",
    "message",
    "progress",
    "total_size",
    "total_wanted",
    "total_done",
    "total_remaining",
    "total_uploaded",
    "total_payload_upload",
    "all_time_upload",
    "ratio",
    "download_payload_rate",
    "upload_payload_rate",
    "num_peers",
    "eta",
    "save_path",
    "download_location",
    "is_finished",
    "is_seed",
    "paused",
    "time_added",
    "num_seeds",
    "active_time",
    "seeding_time",
    "time_since_transfer",
    "last_seen_complete",
    "seed_rank",
    "next_announce",
    "completed_time",
    "num_pieces",
    "piece_length",
    "total_seeds",
    "total_peers",
    "queue",
    "max_download_speed",
    "max_upload_speed",
    "distributed_copies",
    "seeds_peers_ratio",
    "tracker_host",
    "tracker_status",
    "owner",
    "label",
    "is_auto_managed",
    "private",
    "files",
    "file_priorities",
    "file_progress",
];

fn status(t: &TorrentInfo, keys: &[String]) -> Value {
    let mut out = Map::new();
    if keys.is_empty() {
        for key in ALL_KEYS {
            if let Some(v) = status_value(t, key) {
                out.insert(key.to_string(), v);
            }
        }
    } else {
        for key in keys {
            if let Some(v) = status_value(t, key) {
                out.insert(key.clone(), v);
            }
        }
    }
    Value::Object(out)
}

/// Whether `t` passes Deluge's `filter_dict` (`id`: one or a list; `state`: a name,
/// `All` or `Active`; any key with `All` is no filter). An unknown key is a `ValueError`.
fn filter(a: &Args, filter: &Map<String, Value>, t: &TorrentInfo) -> Result<bool, DispatchError> {
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
        if values.contains(&"All") {
            continue;
        }
        let ok = match key.as_str() {
            "id" => values.contains(&t.id.as_str()),
            "state" => values
                .iter()
                .any(|v| *v == t.state.as_str() || (*v == "Active" && is_active(t))),
            "tracker_host" | "owner" | "label" => values.contains(&""),
            other => {
                return Err(a.value_error(
                    "filter_dict",
                    format!("unknown filter key {other:?}; this daemon filters by id and state"),
                ))
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}
