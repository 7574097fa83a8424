//! The session's figures as Deluge's core answers them: `get_session_status`,
//! `get_num_connections`, `get_external_ip`.

use std::str::FromStr;

use serde_json::{json, Map, Value};

use crate::export::Args;
use crate::export::DispatchError;
use crate::session::{SessionStatus, StatusKey};

use super::{failed, Ctx};

/// `core.get_session_status(keys)`: the asked keys Deluge knows, each with its value or
/// Deluge's neutral one.
pub(super) async fn get_session_status(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    a.params(&["keys"], 1)?;
    let names: Vec<String> = a.get(0, "keys")?;
    // Deluge answers only the keys it knows.
    let keys: Vec<StatusKey> = names
        .iter()
        .filter_map(|n| StatusKey::from_str(n).ok())
        .collect();
    let status = cx
        .source
        .session_status(&with_payload_rates(&keys))
        .await
        .map_err(|e| failed(&a, e))?;
    let mut out: Map<String, Value> = keys
        .iter()
        .map(|&k| {
            (
                k.as_str().to_string(),
                json!(value(&status, k).unwrap_or(0)),
            )
        })
        .collect();
    // Deluge's one boolean key (the web UI and the GTK status bar ask for it): not
    // measured here, so its neutral value.
    if names.iter().any(|n| n == "has_incoming_connections") {
        out.insert("has_incoming_connections".into(), json!(false));
    }
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

/// `keys` and the payload rates of the wire rates among them, for [`value`]'s fallback.
fn with_payload_rates(keys: &[StatusKey]) -> Vec<StatusKey> {
    let mut asked = keys.to_vec();
    for (wire, payload) in [
        (StatusKey::DownloadRate, StatusKey::PayloadDownloadRate),
        (StatusKey::UploadRate, StatusKey::PayloadUploadRate),
    ] {
        if asked.contains(&wire) && !asked.contains(&payload) {
            asked.push(payload);
        }
    }
    asked
}

/// The value of `k` in `status`. A known key the source does not measure answers
/// Deluge's neutral 0 (the caller's default): clients index the dict by every key they
/// asked for (deluge-console's `status` hangs otherwise). Except a wire rate next to a
/// measured payload rate (the embedded engine): it answers the payload rate, its lower
/// bound, as clients show `wire - payload` as protocol overhead (negative with 0).
fn value(status: &SessionStatus, k: StatusKey) -> Option<u64> {
    status.get(k).or_else(|| match k {
        StatusKey::DownloadRate => status.get(StatusKey::PayloadDownloadRate),
        StatusKey::UploadRate => status.get(StatusKey::PayloadUploadRate),
        _ => None,
    })
}
