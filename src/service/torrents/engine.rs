//! What the engine tells about itself: `get_libtorrent_version`, `get_listen_port`,
//! `get_free_space`.

use serde_json::{json, Value};

use crate::export::Args;
use crate::export::DispatchError;

use super::{torrent_error, Ctx};

/// `core.get_libtorrent_version()`: the engine's name and version.
pub(super) async fn get_libtorrent_version(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    let version = cx
        .engine
        .as_ref()
        .map_or_else(|| "none (no engine)".to_string(), |e| e.version());
    a.params(&[], 0)?;
    Ok(json!(version))
}

/// `core.get_listen_port()`: the engine's peer port, 0 without one.
pub(super) async fn get_listen_port(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    let port = cx
        .engine
        .as_ref()
        .and_then(|e| e.listen_port())
        .unwrap_or(0);
    a.params(&[], 0)?;
    Ok(json!(port))
}

/// `core.get_free_space(path=None)`: bytes free where the engine stores data (or at
/// `path`), -1 without an engine.
pub(super) async fn get_free_space(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    a.params(&["path"], 0)?;
    let path: Option<String> = a.get_opt(0, "path")?;
    let Some(engine) = cx.engine else {
        return Ok(json!(-1)); // nothing stores data here: Deluge's "unknown"
    };
    let path = path.filter(|p| !p.is_empty()).map(std::path::PathBuf::from);
    engine
        .free_space(path.as_deref())
        .map(|bytes| json!(bytes))
        .map_err(|err| torrent_error(&a, err))
}
