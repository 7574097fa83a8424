//! Acting on torrents: pausing and resuming them (one, a list, or the whole session),
//! removing them, connecting a peer, re-checking, re-announcing, moving their data and
//! replacing their trackers.

use std::net::{IpAddr, SocketAddr};

use serde_json::{json, Value};

use crate::export::Args;
use crate::export::DispatchError;
use crate::torrent::{Needs, TorrentEngine, TorrentError, Tracker};

use super::{deluge, need, torrent_error, Ctx};

/// `core.pause_torrent(torrent_ids)`: one id or a list.
pub(super) async fn pause_torrent(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    switch_given(cx, a, true).await
}

/// `core.resume_torrent(torrent_ids)`: one id or a list.
pub(super) async fn resume_torrent(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    switch_given(cx, a, false).await
}

/// `core.pause_torrents(torrent_ids=None)`: a list, or every torrent.
pub(super) async fn pause_torrents(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    switch_given_or_all(cx, a, true).await
}

/// `core.resume_torrents(torrent_ids=None)`: a list, or every torrent.
pub(super) async fn resume_torrents(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    switch_given_or_all(cx, a, false).await
}

/// `core.pause_session()`: every torrent, then `SessionPausedEvent`.
pub(super) async fn pause_session(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    switch_session(cx, a, true).await
}

/// `core.resume_session()`: every torrent, then `SessionResumedEvent`.
pub(super) async fn resume_session(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    switch_session(cx, a, false).await
}

/// `core.remove_torrent(torrent_id, remove_data)`: `True`, then `TorrentRemovedEvent`.
pub(super) async fn remove_torrent(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    a.params(&["torrent_id", "remove_data"], 2)?;
    let id: String = a.get(0, "torrent_id")?;
    let remove_data: bool = a.get(1, "remove_data")?;
    let engine = need(&a, &cx.engine)?;
    engine
        .remove(&id, remove_data)
        .await
        .map_err(|err| torrent_error(&a, err))?;
    cx.events.emit("TorrentRemovedEvent", vec![json!(id)]);
    Ok(json!(true))
}

/// `core.remove_torrents(torrent_ids, remove_data)`: every one it can, announced; the
/// `[id, reason]` pairs of the others.
pub(super) async fn remove_torrents(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    a.params(&["torrent_ids", "remove_data"], 2)?;
    let ids: Vec<String> = a.get(0, "torrent_ids")?;
    let remove_data: bool = a.get(1, "remove_data")?;
    let engine = need(&a, &cx.engine)?;
    let mut failures = Vec::new();
    for id in ids {
        match engine.remove(&id, remove_data).await {
            Ok(()) => cx.events.emit("TorrentRemovedEvent", vec![json!(id)]),
            Err(err) => failures.push(json!([id, err.to_string()])),
        }
    }
    Ok(Value::Array(failures))
}

/// `core.connect_peer(torrent_id, ip, port)`.
pub(super) async fn connect_peer(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
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
    let engine = need(&a, &cx.engine)?;
    engine
        .connect_peer(&id, SocketAddr::new(ip, port))
        .await
        .map_err(|err| torrent_error(&a, err))?;
    Ok(Value::Null)
}

/// `core.force_recheck(torrent_ids)`: refused (the engine cannot), after the ids are
/// checked.
pub(super) async fn force_recheck(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    a.params(&["torrent_ids"], 1)?;
    let ids = ids(&a, 0, "torrent_ids")?;
    let engine = need(&a, &cx.engine)?;
    known(&a, &*engine, &ids)?;
    Err(deluge(
        &a,
        "DelugeError",
        format!("{} cannot re-check a torrent on request", engine.version()),
    ))
}

/// `core.force_reannounce(torrent_ids)`: one id or a list, every id checked first.
pub(super) async fn force_reannounce(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    a.params(&["torrent_ids"], 1)?;
    let ids = ids(&a, 0, "torrent_ids")?;
    let engine = need(&a, &cx.engine)?;
    known(&a, &*engine, &ids)?;
    for id in &ids {
        engine
            .reannounce(id)
            .await
            .map_err(|err| torrent_error(&a, err))?;
    }
    Ok(Value::Null)
}

/// `core.move_storage(torrent_ids, dest)`: one id or a list; `dest` an absolute path
/// (created if missing). Every id is checked first; the moves stop at the first failure.
pub(super) async fn move_storage(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    a.params(&["torrent_ids", "dest"], 2)?;
    let ids = ids(&a, 0, "torrent_ids")?;
    let dest: String = a.get(1, "dest")?;
    let path = std::path::PathBuf::from(&dest);
    if dest.is_empty() || !path.is_absolute() {
        return Err(a.value_error(
            "dest",
            format!("{dest:?} is not an absolute path (the daemon's working directory is no place for data)"),
        ));
    }
    let engine = need(&a, &cx.engine)?;
    known(&a, &*engine, &ids)?;
    for id in &ids {
        engine
            .move_storage(id, &path)
            .await
            .map_err(|err| torrent_error(&a, err))?;
    }
    Ok(Value::Null)
}

/// `core.set_torrent_trackers(torrent_id, trackers)`: `trackers` a list of
/// `{"url", "tier"}` (other keys of a tracker, as `get_torrent_status` lists them in
/// Deluge, are ignored). `torrent_id` one id as in Deluge, or a list as Flood and
/// @ctrl/deluge send it.
pub(super) async fn set_torrent_trackers(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    a.params(&["torrent_id", "trackers"], 2)?;
    let ids = ids(&a, 0, "torrent_id")?;
    let trackers = trackers(&a)?;
    let engine = need(&a, &cx.engine)?;
    known(&a, &*engine, &ids)?;
    for id in &ids {
        engine
            .set_trackers(id, &trackers)
            .await
            .map_err(|err| torrent_error(&a, err))?;
    }
    Ok(Value::Null)
}

/// The `trackers` argument: each an http, https or udp URL with a tier from 0, in tier
/// order (the order given within a tier).
fn trackers(a: &Args) -> Result<Vec<Tracker>, DispatchError> {
    let list: Vec<serde_json::Map<String, Value>> = a.get(1, "trackers")?;
    let mut out = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let arg = format!("trackers[{i}]");
        let url = match entry.get("url") {
            Some(Value::String(url)) => url.trim().to_string(),
            _ => return Err(a.type_error(&arg, "expected a \"url\" string".into())),
        };
        let scheme_ok = ["http://", "https://", "udp://"]
            .iter()
            .any(|s| url.len() > s.len() && url[..s.len()].eq_ignore_ascii_case(s));
        if !scheme_ok || url.contains(char::is_whitespace) {
            return Err(a.value_error(
                &arg,
                format!("{url:?} is not an http, https or udp announce URL"),
            ));
        }
        let tier = match entry.get("tier") {
            None | Some(Value::Null) => 0,
            Some(v) => v
                .as_u64()
                .and_then(|t| u32::try_from(t).ok())
                .ok_or_else(|| {
                    a.value_error(&arg, format!("tier {v} is not a whole number from 0"))
                })?,
        };
        out.push(Tracker::new(url, tier));
    }
    out.sort_by_key(|t| t.tier); // stable: the order within a tier stays
    Ok(out)
}

/// Every id of `ids` is a torrent of `engine`, or Deluge's `InvalidTorrentError`.
fn known(a: &Args, engine: &dyn TorrentEngine, ids: &[String]) -> Result<(), DispatchError> {
    for id in ids {
        if engine.torrents_with(Some(&[id]), Needs::NONE).is_empty() {
            return Err(torrent_error(a, TorrentError::Unknown(id.clone())));
        }
    }
    Ok(())
}

/// The id of every torrent of `engine`.
fn all_ids(engine: &dyn TorrentEngine) -> Vec<String> {
    let mut ids = Vec::new();
    engine.for_each_state(&mut |id, _, _| ids.push(id.to_string()));
    ids
}

/// Pauses or resumes the torrents of a required `torrent_ids` (one id or a list).
async fn switch_given(cx: Ctx, a: Args, pause: bool) -> Result<Value, DispatchError> {
    a.params(&["torrent_ids"], 1)?;
    let ids = ids(&a, 0, "torrent_ids")?;
    let engine = need(&a, &cx.engine)?;
    switch(&*engine, &ids, pause)
        .await
        .map_err(|err| torrent_error(&a, err))?;
    Ok(Value::Null)
}

/// Pauses or resumes the torrents of an optional `torrent_ids` list, every torrent
/// without one.
async fn switch_given_or_all(cx: Ctx, a: Args, pause: bool) -> Result<Value, DispatchError> {
    a.params(&["torrent_ids"], 0)?;
    let engine = need(&a, &cx.engine)?;
    let ids = match a.get_opt::<Vec<String>>(0, "torrent_ids")? {
        Some(ids) => ids,
        None => all_ids(&*engine),
    };
    switch(&*engine, &ids, pause)
        .await
        .map_err(|err| torrent_error(&a, err))?;
    Ok(Value::Null)
}

/// Pauses or resumes every torrent, skipping the ones that refuse, then announces it.
async fn switch_session(cx: Ctx, a: Args, pause: bool) -> Result<Value, DispatchError> {
    let (name, event) = if pause {
        ("pause_session", "SessionPausedEvent")
    } else {
        ("resume_session", "SessionResumedEvent")
    };
    a.params(&[], 0)?;
    let engine = need(&a, &cx.engine)?;
    for id in all_ids(&*engine) {
        let done = if pause {
            engine.pause(&id).await
        } else {
            engine.resume(&id).await
        };
        // A magnet still resolving cannot be paused yet: it is not refused.
        if let Err(err) = done {
            tracing::debug!(torrent = %id, error = %err, "{name}: torrent skipped");
        }
    }
    cx.events.emit(event, vec![]);
    Ok(Value::Null)
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

/// One id or a list of ids (Deluge's `pause_torrent` takes either).
pub(super) fn ids(a: &Args, index: usize, name: &str) -> Result<Vec<String>, DispatchError> {
    match a.value(index, name) {
        Some(Value::String(id)) => Ok(vec![id.clone()]),
        _ => a.get(index, name),
    }
}
