//! The torrent list and each torrent's status: `get_session_state`,
//! `get_torrents_status`, `get_torrent_status`, `get_filter_tree`.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::answer::TorrentsStatus;
use super::fields::Field;
pub(super) use super::fields::{tracker_host, ALL_KEYS};
use crate::export::Args;
use crate::export::DispatchError;
use crate::torrent::{Needs, TorrentEngine, TorrentInfo, TorrentState};

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
/// torrent that passes the filter, by id ([`torrents_status`] as a `Value`).
pub(super) async fn get_torrents_status(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    torrents_status(cx.engine.as_ref(), &a).map(TorrentsStatus::into_value)
}

/// `core.get_torrents_status`'s answer, typed. The engine is asked for the filter's ids
/// only (looked up, not searched for) and for the facts the keys and the filter need;
/// each torrent's values go into one list, no map per torrent.
pub(in crate::service) fn torrents_status(
    engine: Option<&Arc<dyn TorrentEngine>>,
    a: &Args,
) -> Result<TorrentsStatus, DispatchError> {
    a.params(&["filter_dict", "keys", "diff"], 2)?;
    let filter_dict: Map<String, Value> = a.get(0, "filter_dict")?;
    let keys: Vec<String> = a.get(1, "keys")?;
    let _diff: bool = a.get_or(2, "diff", false)?; // full answers are valid diffs
    let filter = Filter::parse(a, &filter_dict)?;
    let Some(engine) = engine else {
        return Ok(TorrentsStatus::default());
    };
    let needs = needs_of(&keys).union(filter.needs());
    let list = engine.torrents_with(filter.ids.as_deref(), needs);
    let mut answer = TorrentsStatus::new(if keys.is_empty() {
        ALL_KEYS.iter().map(|k| k.to_string()).collect()
    } else {
        keys
    });
    answer.reserve(list.len());
    let fields: Vec<Option<Field>> = answer.keys().iter().map(|k| Field::of(k)).collect();
    for mut t in list {
        if filter.passes(&t) {
            let values = fields.iter().map(|f| f.map(|f| f.value(&t))).collect();
            answer.push(std::mem::take(&mut t.id), values);
        }
    }
    Ok(answer.finish())
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
/// as Deluge leaves out unknown keys): see [`Field`].
pub(super) fn status_value(t: &TorrentInfo, key: &str) -> Option<Value> {
    Field::of(key).map(|f| f.value(t))
}

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
