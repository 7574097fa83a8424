//! `core.set_torrent_options(torrent_ids, options)`: Deluge's per-torrent options, each
//! checked against what the engine can do before anything is applied.
//!
//! `file_priorities` is applied through the engine (0 skips a file, 1 to 7 download it).
//! Every other option is one the engine interface has no setting for: the value this core
//! reports for it (its `get_torrent_status` key of the same name) is accepted as "no
//! change", and so is `None`; any other value refuses the whole call, naming the key.
//! The add-time options (`add_paused`, `pre_allocate_storage`, `seed_mode`,
//! `mapped_files`) are type-checked and have no effect, as in Deluge once a torrent is in.

use serde_json::{Map, Value};

use crate::export::{kind, Args, DispatchError};
use crate::torrent::{TorrentError, TorrentInfo};

use super::control::ids;
use super::status::status_value;
use super::{deluge, need, torrent_error, Ctx};

/// How a value of an option is checked and compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `True` or `False`.
    Bool,
    /// A number; `unlimited_below`: values under it mean "unlimited" (-1), as Deluge
    /// reads them.
    Number { unlimited_below: i64 },
    /// A string.
    Text,
}

/// The options this core knows and how their values are checked; `None`: add-time only.
fn option_kind(key: &str) -> Option<Option<Kind>> {
    use Kind::*;
    Some(match key {
        "max_connections" => Some(Number { unlimited_below: 1 }), // 0 is unlimited too
        "max_upload_slots" => Some(Number { unlimited_below: 0 }),
        "max_upload_speed" | "max_download_speed" => Some(Number { unlimited_below: 0 }),
        "stop_ratio" => Some(Number {
            unlimited_below: i64::MIN,
        }),
        "prioritize_first_last_pieces"
        | "sequential_download"
        | "super_seeding"
        | "auto_managed"
        | "stop_at_ratio"
        | "remove_at_ratio"
        | "move_completed"
        | "shared" => Some(Bool),
        "move_completed_path" | "owner" | "name" | "download_location" => Some(Text),
        "add_paused" | "pre_allocate_storage" | "seed_mode" | "mapped_files" => None,
        _ => return None,
    })
}

/// What the engine cannot do for an option, in the error that refuses a change of it.
fn limit(key: &str) -> &'static str {
    match key {
        "sequential_download" => "it cannot download pieces in order",
        "super_seeding" => "it has no super-seeding (initial seeding)",
        "prioritize_first_last_pieces" => "it cannot prioritize first and last pieces",
        "max_connections" => "it has no per-torrent connection limit",
        "max_upload_slots" => "it has no per-torrent upload slots",
        "max_upload_speed" | "max_download_speed" => {
            "it has no per-torrent rate limit (set the session's with core.set_config)"
        }
        "auto_managed" => "it has no queue (no torrent is auto-managed)",
        "stop_at_ratio" | "stop_ratio" | "remove_at_ratio" => "it does not stop at a ratio",
        "move_completed" | "move_completed_path" => {
            "it does not move completed torrents (use core.move_storage)"
        }
        "download_location" => "the data is where it is: use core.move_storage to move it",
        "owner" | "shared" => "torrents have no owner or sharing here",
        "name" => "it cannot rename a torrent",
        _ => "it has no such setting",
    }
}

/// `core.set_torrent_options(torrent_ids, options)`: one id or a list; `None`.
pub(super) async fn set_torrent_options(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    a.params(&["torrent_ids", "options"], 2)?;
    let ids = ids(&a, 0, "torrent_ids")?;
    let options: Map<String, Value> = a.get(1, "options")?;
    let engine = need(&a, &cx.engine)?;
    let mut torrents = Vec::with_capacity(ids.len());
    for id in &ids {
        let t = engine
            .torrent(id)
            .ok_or_else(|| torrent_error(&a, TorrentError::Unknown(id.clone())))?;
        torrents.push(t);
    }
    let priorities = check(&a, &options, &torrents, &engine.version())?;
    if let Some(priorities) = priorities {
        for t in &torrents {
            if needs_change(t, &priorities) {
                engine
                    .set_file_priorities(&t.id, &priorities)
                    .await
                    .map_err(|err| torrent_error(&a, err))?;
            }
        }
    }
    Ok(Value::Null)
}

/// Checks every option against every torrent; the file priorities to apply, if given.
fn check(
    a: &Args,
    options: &Map<String, Value>,
    torrents: &[TorrentInfo],
    engine: &str,
) -> Result<Option<Vec<u8>>, DispatchError> {
    let mut priorities = None;
    for (key, value) in options {
        if value.is_null() {
            continue;
        }
        if key == "file_priorities" {
            priorities = file_priorities(a, value, torrents)?;
            continue;
        }
        let Some(checked) = option_kind(key) else {
            return Err(a.value_error(
                "options",
                format!("unknown torrent option {key:?} (Deluge 2.0.3's TorrentOptions keys)"),
            ));
        };
        let Some(kind) = checked else {
            check_add_time(a, key, value)?;
            continue;
        };
        check_type(a, key, kind, value)?;
        for t in torrents {
            let current = status_value(t, key).unwrap_or(Value::Null);
            if !same(kind, key, &current, value) {
                return Err(deluge(
                    a,
                    "DelugeError",
                    format!(
                        "{key}: {engine} cannot change it to {value} for {} ({}); nothing was changed",
                        t.id,
                        limit(key)
                    ),
                ));
            }
        }
    }
    Ok(priorities)
}

/// A value of the right JSON type for `kind`, or a `TypeError` naming the key.
fn check_type(a: &Args, key: &str, expected: Kind, value: &Value) -> Result<(), DispatchError> {
    let ok = match expected {
        Kind::Bool => value.is_boolean(),
        Kind::Number { .. } => value.is_number(),
        Kind::Text => value.is_string(),
    };
    if ok {
        return Ok(());
    }
    let want = match expected {
        Kind::Bool => "a bool",
        Kind::Number { .. } => "a number",
        Kind::Text => "a string",
    };
    Err(a.type_error(
        &format!("options[{key:?}]"),
        format!("expected {want}, got {} {value}", kind(value)),
    ))
}

/// The add-time options: their type only.
fn check_add_time(a: &Args, key: &str, value: &Value) -> Result<(), DispatchError> {
    let ok = if key == "mapped_files" {
        value.is_object()
    } else {
        value.is_boolean()
    };
    if ok {
        return Ok(());
    }
    let want = if key == "mapped_files" {
        "a dict"
    } else {
        "a bool"
    };
    Err(a.type_error(
        &format!("options[{key:?}]"),
        format!("expected {want}, got {} {value}", kind(value)),
    ))
}

/// Whether `value` means what `current` is (numbers compared as Deluge reads them: any
/// value under the "unlimited" bound is -1; an empty `name` is the torrent's own).
fn same(kind: Kind, key: &str, current: &Value, value: &Value) -> bool {
    match kind {
        Kind::Number { unlimited_below } => {
            let norm = |v: &Value| {
                v.as_f64()
                    .map(|n| if n < unlimited_below as f64 { -1.0 } else { n })
            };
            norm(current).is_some() && norm(current) == norm(value)
        }
        Kind::Text if key == "name" && value.as_str() == Some("") => true,
        _ => current == value,
    }
}

/// The `file_priorities` list checked against each torrent (one priority per file, each
/// 0 to 7); `None` for an empty list (Deluge keeps the current priorities).
fn file_priorities(
    a: &Args,
    value: &Value,
    torrents: &[TorrentInfo],
) -> Result<Option<Vec<u8>>, DispatchError> {
    let arg = "options[\"file_priorities\"]";
    let Value::Array(items) = value else {
        return Err(a.type_error(arg, format!("expected a list of ints, got {}", kind(value))));
    };
    if items.is_empty() {
        return Ok(None);
    }
    let mut priorities = Vec::with_capacity(items.len());
    for item in items {
        match item.as_u64() {
            Some(p) if p <= 7 => priorities.push(p as u8),
            _ => {
                return Err(a.value_error(
                    arg,
                    format!("{item} is not a priority (0 skips a file, 1 to 7 download it)"),
                ))
            }
        }
    }
    for t in torrents {
        let Some(meta) = &t.meta else {
            return Err(deluge(
                a,
                "DelugeError",
                format!(
                    "file_priorities: {} has no metadata yet (its files are not known)",
                    t.id
                ),
            ));
        };
        if meta.files.len() != priorities.len() {
            return Err(a.value_error(
                arg,
                format!(
                    "{} priorities for {} files (torrent {})",
                    priorities.len(),
                    meta.files.len(),
                    t.id
                ),
            ));
        }
    }
    Ok(Some(priorities))
}

/// Whether `priorities` differ from the ones `t`'s engine reports.
fn needs_change(t: &TorrentInfo, priorities: &[u8]) -> bool {
    t.meta.as_ref().is_some_and(|m| {
        m.files
            .iter()
            .zip(priorities)
            .any(|(f, p)| f.priority != *p)
    })
}
