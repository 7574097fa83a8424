//! The session's figures as Deluge's core answers them: `get_session_status`,
//! `get_num_connections`, `get_external_ip`.

use serde_json::{json, Map, Value};

use crate::export::Args;
use crate::export::DispatchError;
use crate::session::StatusKey;

use super::session_keys::{lookup, SessionKey, KEYS};
use super::{failed, Ctx};

/// `core.get_session_status(keys)`: the asked keys Deluge's clients read, each with its
/// value, typed as Deluge types it (see `session_keys`); names not answered are left out,
/// as Deluge leaves out names it does not know. No keys (an empty list or `None`): every
/// key, as Deluge answers its whole session status then.
pub(super) async fn get_session_status(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    a.params(&["keys"], 1)?;
    let names: Vec<String> = a.get_opt(0, "keys")?.unwrap_or_default();
    let mut keys: Vec<&SessionKey> = if names.is_empty() {
        KEYS.iter().collect()
    } else {
        names.iter().filter_map(|n| lookup(n)).collect()
    };
    let mut seen = std::collections::HashSet::new();
    keys.retain(|k| seen.insert(k.name));
    let mut needed: Vec<StatusKey> = keys.iter().flat_map(|k| k.needs()).collect();
    needed.sort_unstable();
    needed.dedup();
    let status = cx
        .source
        .session_status(&needed)
        .await
        .map_err(|e| failed(&a, e))?;
    let out: Map<String, Value> = keys
        .iter()
        .map(|k| (k.name.to_string(), k.value(&status)))
        .collect();
    Ok(Value::Object(out))
}

/// `core.get_num_connections()`: the peer connections, 0 when not measured.
pub(super) async fn get_num_connections(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    a.params(&[], 0)?;
    let status = cx
        .source
        .session_status(&[StatusKey::NumConnections])
        .await
        .map_err(|e| failed(&a, e))?;
    Ok(json!(status.get(StatusKey::NumConnections).unwrap_or(0)))
}

/// `core.get_external_ip()`: not discovered by this daemon, so Deluge's "unknown".
pub(super) async fn get_external_ip(_cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    a.params(&[], 0)?;
    Ok(Value::Null)
}
