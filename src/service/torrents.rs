//! Deluge's torrent methods and configuration on the core service, over a
//! [`TorrentEngine`]: the argument and result shapes of Deluge 2.0.3, torrent ids as
//! info-hash hex, errors as `deluge.error` classes, and the torrent events.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::event::EventBus;
use crate::export::{Args, AuthLevel, ExportScope};
use crate::export::{DispatchError, ExportError};
use crate::host::WeakHost;
use crate::store::{Durability, Persist, Store};
use crate::torrent::{
    AddOptions, TorrentEngine, TorrentError, TorrentInfo, TorrentSource, TorrentState,
    MAX_TORRENT_FILE,
};

use super::on_host;

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

/// Refuses an `engine.conf` in `dir` that does not parse or holds an unknown key (a file a
/// person may edit: it is left as written); a missing one is fine.
pub(crate) fn check_engine_conf(dir: &std::path::Path) -> Result<(), crate::store::StoreError> {
    let path = dir.join(ENGINE_CONF);
    match crate::store::read::<EngineConfig>(&path) {
        Ok(_) | Err(crate::store::Rejected::Missing) => Ok(()),
        Err(crate::store::Rejected::Bad(reason)) => {
            Err(crate::store::StoreError::Invalid { path, reason })
        }
    }
}

/// Opens `engine.conf` and applies what it holds to `engine`. A file that cannot be used
/// is reported and the engine runs on its defaults (settings changed later are then not
/// kept).
pub(super) fn restore(
    engine: &dyn TorrentEngine,
    dir: &std::path::Path,
) -> Option<Arc<Store<EngineConfig>>> {
    let opened = Store::<EngineConfig>::open(dir.join(ENGINE_CONF)).and_then(|store| {
        let (config, _) = store.load()?;
        Ok((store, config))
    });
    match opened {
        Ok((store, config)) => {
            let (down, up) = (config.max_download_bps, config.max_upload_bps);
            if down.is_some() || up.is_some() {
                if let Err(e) = engine.set_rate_limits(down, up) {
                    tracing::error!(error = %e, "the saved rate limits do not apply to this engine");
                }
            }
            Some(Arc::new(store))
        }
        Err(e) => {
            tracing::error!(error = %e, "{ENGINE_CONF} unusable: engine settings will not be kept");
            None
        }
    }
}

type Engine = Option<Arc<dyn TorrentEngine>>;

fn deluge(a: &Args, class: &'static str, message: impl Into<String>) -> DispatchError {
    DispatchError::Deluge {
        method: a.method().to_string(),
        class,
        message: message.into(),
    }
}

fn torrent_error(a: &Args, e: TorrentError) -> DispatchError {
    deluge(a, e.deluge_class(), e.to_string())
}

fn need(a: &Args, engine: &Engine) -> Result<Arc<dyn TorrentEngine>, DispatchError> {
    engine.clone().ok_or_else(|| {
        deluge(
            a,
            "DelugeError",
            "this daemon has no torrent engine (it counts another source)",
        )
    })
}

/// Deluge's `options` dict of an add: `add_paused` and `download_location` are used,
/// other keys are accepted and ignored (clients send their whole add dialog).
fn add_options(a: &Args, index: usize) -> Result<AddOptions, DispatchError> {
    let options: Option<Map<String, Value>> = a.get_opt(index, "options")?;
    let mut out = AddOptions::default();
    let Some(options) = options else {
        return Ok(out);
    };
    match options.get("add_paused") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(b)) => out.paused = *b,
        Some(other) => {
            return Err(a.type_error(
                "options[\"add_paused\"]",
                format!("expected a bool, got {other}"),
            ))
        }
    }
    match options.get("download_location") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.is_empty() => {}
        Some(Value::String(s)) => out.download_location = Some(s.into()),
        Some(other) => {
            return Err(a.type_error(
                "options[\"download_location\"]",
                format!("expected a path, got {other}"),
            ))
        }
    }
    Ok(out)
}

/// One id or a list of ids (Deluge's `pause_torrent` takes either).
fn ids(a: &Args, index: usize, name: &str) -> Result<Vec<String>, DispatchError> {
    match a.value(index, name) {
        Some(Value::String(id)) => Ok(vec![id.clone()]),
        _ => a.get(index, name),
    }
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
            "state" => values.iter().any(|v| {
                *v == t.state.as_str()
                    || (*v == "Active"
                        && (t.download_payload_rate.unwrap_or(0) > 0
                            || t.upload_payload_rate.unwrap_or(0) > 0))
            }),
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

/// The configuration keys clients read, with this daemon's values.
fn config(enabled: Vec<String>, engine: &Engine) -> Map<String, Value> {
    let location = engine
        .as_ref()
        .map(|e| e.download_location().display().to_string())
        .unwrap_or_default();
    let port = engine.as_ref().and_then(|e| e.listen_port()).unwrap_or(0);
    let (down, up) = engine.as_ref().map_or((None, None), |e| e.rate_limits());
    // Deluge's unit: KiB/s as a float, -1 for unlimited.
    let kib = |bps: Option<u64>| bps.map_or(-1.0, |b| b as f64 / 1024.0);
    let value = json!({
        "enabled_plugins": enabled,
        "download_location": location,
        "move_completed": false,
        "move_completed_path": location,
        "torrentfiles_location": location,
        "copy_torrent_file": false,
        "del_copy_torrent_file": false,
        "add_paused": false,
        "pre_allocate_storage": false,
        "prioritize_first_last_pieces": false,
        "sequential_download": false,
        "super_seeding": false,
        "auto_managed": true,
        "dht": engine.is_some(),
        "upnp": false,
        "natpmp": false,
        "utpex": false,
        "lsd": false,
        "listen_ports": [port, port],
        "random_port": false,
        "max_connections_global": -1,
        "max_connections_per_torrent": -1,
        "max_upload_slots_global": -1,
        "max_upload_slots_per_torrent": -1,
        "max_download_speed": kib(down),
        "max_upload_speed": kib(up),
        "max_download_speed_per_torrent": -1,
        "max_upload_speed_per_torrent": -1,
        "max_half_open_connections": -1,
        "max_connections_per_second": -1,
        "max_active_limit": -1,
        "max_active_downloading": -1,
        "max_active_seeding": -1,
        "stop_seed_at_ratio": false,
        "stop_seed_ratio": 2.0,
        "remove_seed_at_ratio": false,
        "share_ratio_limit": -1.0,
        "new_release_check": false,
        "allow_remote": false,
    });
    value.as_object().cloned().unwrap_or_default()
}

/// Pauses (or resumes) every torrent of `ids`, stopping at the first error.
async fn switch(
    engine: &dyn TorrentEngine,
    ids: &[String],
    pause: bool,
) -> Result<(), TorrentError> {
    for id in ids {
        if pause {
            engine.pause(id).await?;
        } else {
            engine.resume(id).await?;
        }
    }
    Ok(())
}

/// Exports the torrent methods and `get_config*` into the `core` scope.
pub(super) fn export(
    core: &ExportScope,
    host: &WeakHost,
    engine: Engine,
    events: EventBus,
    saved: Option<Arc<Store<EngineConfig>>>,
) -> Result<(), ExportError> {
    let e = engine.clone();
    on_host(
        core,
        host,
        "get_config",
        AuthLevel::ReadOnly,
        move |h, a| {
            let e = e.clone();
            async move {
                a.params(&[], 0)?;
                Ok(Value::Object(config(h.enabled().await, &e)))
            }
        },
    )?;
    let e = engine.clone();
    on_host(
        core,
        host,
        "get_config_value",
        AuthLevel::ReadOnly,
        move |h, a| {
            let e = e.clone();
            async move {
                a.params(&["key"], 1)?;
                let key: String = a.get(0, "key")?;
                Ok(config(h.enabled().await, &e)
                    .remove(&key)
                    .unwrap_or(Value::Null))
            }
        },
    )?;
    let e = engine.clone();
    on_host(
        core,
        host,
        "get_config_values",
        AuthLevel::ReadOnly,
        move |h, a| {
            let e = e.clone();
            async move {
                a.params(&["keys"], 1)?;
                let keys: Vec<String> = a.get(0, "keys")?;
                let all = config(h.enabled().await, &e);
                let out: Map<String, Value> = keys
                    .into_iter()
                    .map(|k| {
                        let v = all.get(&k).cloned().unwrap_or(Value::Null);
                        (k, v)
                    })
                    .collect();
                Ok(Value::Object(out))
            }
        },
    )?;

    let e = engine.clone();
    let ev = events.clone();
    on_host(core, host, "set_config", AuthLevel::Admin, move |h, a| {
        let e = e.clone();
        let ev = ev.clone();
        let saved = saved.clone();
        async move {
            a.params(&["config"], 1)?;
            let changes: Map<String, Value> = a.get(0, "config")?;
            let current = config(h.enabled().await, &e);
            let (mut down, mut up) = e.as_ref().map_or((None, None), |e| e.rate_limits());
            let mut changed = Vec::new();
            // Validate everything first: all or nothing.
            for (key, value) in &changes {
                let arg = format!("config[{key:?}]");
                match key.as_str() {
                    "max_download_speed" | "max_upload_speed" => {
                        let kib = value.as_f64().ok_or_else(|| {
                            a.type_error(
                                &arg,
                                format!("expected a number (KiB/s, -1 for unlimited), got {value}"),
                            )
                        })?;
                        if e.is_none() {
                            return Err(
                                a.value_error(&arg, "this daemon has no torrent engine".into())
                            );
                        }
                        let bps = (kib > 0.0).then(|| (kib * 1024.0).round() as u64);
                        if bps.is_some_and(|b| b > u64::from(u32::MAX)) {
                            return Err(a.value_error(&arg, format!("{kib} KiB/s is over 4 GiB/s")));
                        }
                        if key == "max_download_speed" {
                            down = bps;
                        } else {
                            up = bps;
                        }
                        changed.push((key.clone(), value.clone()));
                    }
                    // Clients send their whole preferences dialog: unchanged values are fine.
                    _ if current.get(key) == Some(value) => {}
                    _ if current.contains_key(key) => {
                        return Err(a.value_error(
                            &arg,
                            "this setting cannot be changed on this daemon".into(),
                        ))
                    }
                    _ => return Err(a.value_error(&arg, "unknown setting".into())),
                }
            }
            if let Some(engine) = &e {
                if let Some(store) = saved.clone() {
                    // Kept first: a change that cannot be saved is not made.
                    let config = EngineConfig {
                        max_download_bps: down,
                        max_upload_bps: up,
                    };
                    tokio::task::spawn_blocking(move || store.save(&config, Durability::Durable))
                        .await
                        .map_err(|err| deluge(&a, "DelugeError", err.to_string()))?
                        .map_err(|err| {
                            deluge(&a, "DelugeError", format!("settings not changed: {err}"))
                        })?;
                }
                engine
                    .set_rate_limits(down, up)
                    .map_err(|err| torrent_error(&a, err))?;
            }
            for (key, value) in changed {
                tracing::info!(setting = %key, %value, "setting changed");
                ev.emit("ConfigValueChangedEvent", vec![json!(key), value]);
            }
            Ok(Value::Null)
        }
    })?;

    let e = engine.clone();
    let ev = events.clone();
    let add_file = move |a: Args| {
        let e = e.clone();
        let ev = ev.clone();
        async move {
            a.params(&["filename", "filedump", "options"], 2)?;
            let _filename: String = a.get(0, "filename")?;
            let dump: String = a.get(1, "filedump")?;
            let options = add_options(&a, 2)?;
            let engine = need(&a, &e)?;
            if dump.len() > MAX_TORRENT_FILE / 3 * 4 + 4 {
                return Err(deluge(
                    &a,
                    "InvalidTorrentError",
                    format!("torrent file over {MAX_TORRENT_FILE} bytes"),
                ));
            }
            let bytes = crate::base64::decode(&dump).map_err(|err| {
                deluge(
                    &a,
                    "InvalidTorrentError",
                    format!("filedump is not base64: {err}"),
                )
            })?;
            let id = engine
                .add(TorrentSource::File(bytes), options)
                .await
                .map_err(|err| torrent_error(&a, err))?;
            ev.emit("TorrentAddedEvent", vec![json!(id), json!(false)]);
            Ok(json!(id))
        }
    };
    core.export("add_torrent_file", add_file.clone())?;
    core.export("add_torrent_file_async", add_file)?;

    // Deluge fetches the file, then adds it as add_torrent_file does.
    let e = engine.clone();
    let ev = events.clone();
    core.export("add_torrent_url", move |a: Args| {
        let e = e.clone();
        let ev = ev.clone();
        async move {
            a.params(&["url", "options", "headers"], 2)?;
            let url: String = a.get(0, "url")?;
            let options = add_options(&a, 1)?;
            let headers: Option<BTreeMap<String, String>> = a.get_opt(2, "headers")?;
            let engine = need(&a, &e)?;
            let source = TorrentSource::Url {
                url,
                headers: headers.unwrap_or_default().into_iter().collect(),
            };
            let id = engine
                .add(source, options)
                .await
                .map_err(|err| torrent_error(&a, err))?;
            ev.emit("TorrentAddedEvent", vec![json!(id), json!(false)]);
            Ok(json!(id))
        }
    })?;

    let e = engine.clone();
    let ev = events.clone();
    core.export("add_torrent_magnet", move |a: Args| {
        let e = e.clone();
        let ev = ev.clone();
        async move {
            a.params(&["uri", "options"], 1)?;
            let uri: String = a.get(0, "uri")?;
            let options = add_options(&a, 1)?;
            let engine = need(&a, &e)?;
            let id = engine
                .add(TorrentSource::Magnet(uri), options)
                .await
                .map_err(|err| torrent_error(&a, err))?;
            ev.emit("TorrentAddedEvent", vec![json!(id), json!(false)]);
            Ok(json!(id))
        }
    })?;

    let e = engine.clone();
    core.export_at("get_session_state", AuthLevel::ReadOnly, move |a: Args| {
        let list = e.as_ref().map(|e| e.torrents()).unwrap_or_default();
        async move {
            a.params(&[], 0)?;
            Ok(json!(list.into_iter().map(|t| t.id).collect::<Vec<_>>()))
        }
    })?;
    let e = engine.clone();
    core.export_at(
        "get_torrents_status",
        AuthLevel::ReadOnly,
        move |a: Args| {
            let list = e.as_ref().map(|e| e.torrents()).unwrap_or_default();
            async move {
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
        },
    )?;
    let e = engine.clone();
    core.export_at("get_torrent_status", AuthLevel::ReadOnly, move |a: Args| {
        let e = e.clone();
        async move {
            a.params(&["torrent_id", "keys", "diff"], 2)?;
            let id: String = a.get(0, "torrent_id")?;
            let keys: Vec<String> = a.get(1, "keys")?;
            let _diff: bool = a.get_or(2, "diff", false)?;
            // Deluge answers an unknown id with an empty dict.
            Ok(e.as_ref()
                .and_then(|e| e.torrent(&id))
                .map_or_else(|| json!({}), |t| status(&t, &keys)))
        }
    })?;
    let e = engine.clone();
    core.export_at("get_filter_tree", AuthLevel::ReadOnly, move |a: Args| {
        let list = e.as_ref().map(|e| e.torrents()).unwrap_or_default();
        async move {
            a.params(&["show_zero_hits", "hide_cat"], 0)?;
            let show_zero: bool = a.get_or(0, "show_zero_hits", true)?;
            let _hide: Option<Vec<String>> = a.get_opt(1, "hide_cat")?;
            let mut states = vec![json!(["All", list.len()])];
            let active = list
                .iter()
                .filter(|t| {
                    t.download_payload_rate.unwrap_or(0) > 0
                        || t.upload_payload_rate.unwrap_or(0) > 0
                })
                .count();
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
    })?;

    for (name, pause) in [("pause_torrent", true), ("resume_torrent", false)] {
        let e = engine.clone();
        core.export(name, move |a: Args| {
            let e = e.clone();
            async move {
                a.params(&["torrent_ids"], 1)?;
                let ids = ids(&a, 0, "torrent_ids")?;
                let engine = need(&a, &e)?;
                switch(&*engine, &ids, pause)
                    .await
                    .map_err(|err| torrent_error(&a, err))?;
                Ok(Value::Null)
            }
        })?;
    }
    for (name, pause) in [("pause_torrents", true), ("resume_torrents", false)] {
        let e = engine.clone();
        core.export(name, move |a: Args| {
            let e = e.clone();
            async move {
                a.params(&["torrent_ids"], 0)?;
                let engine = need(&a, &e)?;
                let ids = match a.get_opt::<Vec<String>>(0, "torrent_ids")? {
                    Some(ids) => ids,
                    None => engine.torrents().into_iter().map(|t| t.id).collect(),
                };
                switch(&*engine, &ids, pause)
                    .await
                    .map_err(|err| torrent_error(&a, err))?;
                Ok(Value::Null)
            }
        })?;
    }
    for (name, pause, event) in [
        ("pause_session", true, "SessionPausedEvent"),
        ("resume_session", false, "SessionResumedEvent"),
    ] {
        let e = engine.clone();
        let ev = events.clone();
        core.export(name, move |a: Args| {
            let e = e.clone();
            let ev = ev.clone();
            async move {
                a.params(&[], 0)?;
                let engine = need(&a, &e)?;
                for t in engine.torrents() {
                    let done = if pause {
                        engine.pause(&t.id).await
                    } else {
                        engine.resume(&t.id).await
                    };
                    // A magnet still resolving cannot be paused yet: it is not refused.
                    if let Err(err) = done {
                        tracing::debug!(torrent = %t.id, error = %err, "{name}: torrent skipped");
                    }
                }
                ev.emit(event, vec![]);
                Ok(Value::Null)
            }
        })?;
    }
    let e = engine.clone();
    let ev = events.clone();
    core.export("remove_torrent", move |a: Args| {
        let e = e.clone();
        let ev = ev.clone();
        async move {
            a.params(&["torrent_id", "remove_data"], 2)?;
            let id: String = a.get(0, "torrent_id")?;
            let remove_data: bool = a.get(1, "remove_data")?;
            let engine = need(&a, &e)?;
            engine
                .remove(&id, remove_data)
                .await
                .map_err(|err| torrent_error(&a, err))?;
            ev.emit("TorrentRemovedEvent", vec![json!(id)]);
            Ok(json!(true))
        }
    })?;
    let e = engine.clone();
    let ev = events.clone();
    core.export("remove_torrents", move |a: Args| {
        let e = e.clone();
        let ev = ev.clone();
        async move {
            a.params(&["torrent_ids", "remove_data"], 2)?;
            let ids: Vec<String> = a.get(0, "torrent_ids")?;
            let remove_data: bool = a.get(1, "remove_data")?;
            let engine = need(&a, &e)?;
            let mut failures = Vec::new();
            for id in ids {
                match engine.remove(&id, remove_data).await {
                    Ok(()) => ev.emit("TorrentRemovedEvent", vec![json!(id)]),
                    Err(err) => failures.push(json!([id, err.to_string()])),
                }
            }
            Ok(Value::Array(failures))
        }
    })?;
    let e = engine.clone();
    core.export("connect_peer", move |a: Args| {
        let e = e.clone();
        async move {
            a.params(&["torrent_id", "ip", "port"], 3)?;
            let id: String = a.get(0, "torrent_id")?;
            let ip: String = a.get(1, "ip")?;
            let port: u16 = a.get(2, "port")?;
            let ip: IpAddr = ip
                .parse()
                .map_err(|_| a.value_error("ip", format!("{ip:?} is not an IP address")))?;
            if port == 0 {
                return Err(a.value_error("port", "0 is not a port".into()));
            }
            let engine = need(&a, &e)?;
            engine
                .connect_peer(&id, SocketAddr::new(ip, port))
                .await
                .map_err(|err| torrent_error(&a, err))?;
            Ok(Value::Null)
        }
    })?;
    let e = engine.clone();
    core.export("force_recheck", move |a: Args| {
        let e = e.clone();
        async move {
            a.params(&["torrent_ids"], 1)?;
            let ids = ids(&a, 0, "torrent_ids")?;
            let engine = need(&a, &e)?;
            for id in &ids {
                if engine.torrent(id).is_none() {
                    return Err(torrent_error(&a, TorrentError::Unknown(id.clone())));
                }
            }
            Err(deluge(
                &a,
                "DelugeError",
                format!("{} cannot re-check a torrent on request", engine.version()),
            ))
        }
    })?;
    let e = engine.clone();
    core.export_at(
        "get_libtorrent_version",
        AuthLevel::ReadOnly,
        move |a: Args| {
            let version = e
                .as_ref()
                .map_or_else(|| "none (no engine)".to_string(), |e| e.version());
            async move {
                a.params(&[], 0)?;
                Ok(json!(version))
            }
        },
    )?;
    let e = engine.clone();
    core.export_at("get_listen_port", AuthLevel::ReadOnly, move |a: Args| {
        let port = e.as_ref().and_then(|e| e.listen_port()).unwrap_or(0);
        async move {
            a.params(&[], 0)?;
            Ok(json!(port))
        }
    })?;
    let e = engine;
    core.export_at("get_free_space", AuthLevel::ReadOnly, move |a: Args| {
        let e = e.clone();
        async move {
            a.params(&["path"], 0)?;
            let path: Option<String> = a.get_opt(0, "path")?;
            let Some(engine) = e else {
                return Ok(json!(-1)); // nothing stores data here: Deluge's "unknown"
            };
            let path = path.filter(|p| !p.is_empty()).map(std::path::PathBuf::from);
            engine
                .free_space(path.as_deref())
                .map(|bytes| json!(bytes))
                .map_err(|err| torrent_error(&a, err))
        }
    })?;
    Ok(())
}

/// Emits `TorrentStateChangedEvent(id, state)` and `TorrentFinishedEvent(id)` as the
/// engine's torrents change, checking once a second until the host is gone.
pub(super) fn watch_states(engine: Arc<dyn TorrentEngine>, events: EventBus, host: WeakHost) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("no tokio runtime: torrent state events are off");
        return;
    };
    runtime.spawn(async move {
        let mut known: HashMap<String, (TorrentState, bool)> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            if host.upgrade().is_none() {
                return;
            }
            let now: HashMap<String, (TorrentState, bool)> = engine
                .torrents()
                .into_iter()
                .map(|t| {
                    let finished = t.is_finished();
                    (t.id, (t.state, finished))
                })
                .collect();
            for (id, (state, finished)) in &now {
                if let Some((was, was_finished)) = known.get(id) {
                    if was != state {
                        events.emit(
                            "TorrentStateChangedEvent",
                            vec![json!(id), json!(state.as_str())],
                        );
                    }
                    if *finished && !was_finished {
                        events.emit("TorrentFinishedEvent", vec![json!(id)]);
                    }
                }
            }
            known = now;
        }
    });
}
