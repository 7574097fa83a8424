//! Deluge's `daemon.*` methods answered by the core: the version, the method list, the
//! auth check of a call, and shutdown. (`daemon.login` and `daemon.set_event_interest`
//! are the connection transport's.)

use serde_json::{json, Value};

use crate::export::Args;
use crate::export::DispatchError;

use super::{version, Ctx};

/// `daemon.info()`: the version, asked before logging in.
pub(super) async fn info(_cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    a.params(&[], 0)?;
    Ok(json!(version()))
}

/// `daemon.get_version()`: the version.
pub(super) async fn get_version(_cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    a.params(&[], 0)?;
    Ok(json!(version()))
}

/// `daemon.get_method_list()`: every exported method, sorted.
pub(super) async fn get_method_list(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    a.params(&[], 0)?;
    Ok(json!(cx.table.method_list()))
}

/// `daemon.authorized_call(rpc)`: whether the caller may call the method `rpc` (`False`
/// for a method not exported).
pub(super) async fn authorized_call(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    a.params(&["rpc"], 1)?;
    let target: String = a.get(0, "rpc")?;
    Ok(json!(cx
        .table
        .level_of(&target)
        .is_some_and(|l| a.caller().level >= l)))
}

/// `daemon.shutdown()`: asks the daemon to stop.
pub(super) async fn shutdown(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    a.params(&[], 0)?;
    tracing::info!(user = ?a.caller().user, "shutdown requested");
    cx.stop.send_replace(true);
    Ok(Value::Null)
}
