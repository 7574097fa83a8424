//! Adding torrents: `add_torrent_file` (and `add_torrent_file_async`, the same),
//! `add_torrent_url`, `add_torrent_magnet`. Each announces the new torrent with
//! `TorrentAddedEvent`.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::export::Args;
use crate::export::DispatchError;
use crate::torrent::{AddOptions, TorrentEngine, TorrentSource, MAX_TORRENT_FILE};

use super::{deluge, need, torrent_error, Ctx};

/// `core.add_torrent_file(filename, filedump, options)`: a torrent file, base64.
pub(super) async fn add_torrent_file(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    a.params(&["filename", "filedump", "options"], 2)?;
    let _filename: String = a.get(0, "filename")?;
    let dump: String = a.get(1, "filedump")?;
    let options = add_options(&a, 2)?;
    let engine = need(&a, &cx.engine)?;
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
    add(&cx, &a, &*engine, TorrentSource::File(bytes), options).await
}

/// `core.add_torrent_url(url, options, headers=None)`: Deluge fetches the file, then adds
/// it as `add_torrent_file` does.
pub(super) async fn add_torrent_url(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    a.params(&["url", "options", "headers"], 2)?;
    let url: String = a.get(0, "url")?;
    let options = add_options(&a, 1)?;
    let headers: Option<BTreeMap<String, String>> = a.get_opt(2, "headers")?;
    let engine = need(&a, &cx.engine)?;
    let source = TorrentSource::Url {
        url,
        headers: headers.unwrap_or_default().into_iter().collect(),
    };
    add(&cx, &a, &*engine, source, options).await
}

/// `core.add_torrent_magnet(uri, options)`.
pub(super) async fn add_torrent_magnet(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    a.params(&["uri", "options"], 1)?;
    let uri: String = a.get(0, "uri")?;
    let options = add_options(&a, 1)?;
    let engine = need(&a, &cx.engine)?;
    add(&cx, &a, &*engine, TorrentSource::Magnet(uri), options).await
}

/// Adds `source` to `engine` and announces it: the new torrent's id.
async fn add(
    cx: &Ctx,
    a: &Args,
    engine: &dyn TorrentEngine,
    source: TorrentSource,
    options: AddOptions,
) -> Result<Value, DispatchError> {
    let id = engine
        .add(source, options)
        .await
        .map_err(|err| torrent_error(a, err))?;
    cx.events
        .emit("TorrentAddedEvent", vec![json!(id), json!(false)]);
    Ok(json!(id))
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
