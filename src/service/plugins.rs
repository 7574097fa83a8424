//! The plugins as Deluge's core answers them: `get_available_plugins`,
//! `get_enabled_plugins`, `enable_plugin`, `disable_plugin`.

use serde_json::{json, Value};

use crate::export::Args;
use crate::export::DispatchError;
use crate::host::PluginHost;
use crate::plugin::PluginError;

use super::Ctx;

/// `core.get_available_plugins()`: every registered plugin's name.
pub(super) async fn get_available_plugins(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    let h = cx.host(&a)?;
    a.params(&[], 0)?;
    Ok(json!(h.available().await))
}

/// `core.get_enabled_plugins()`: the enabled plugins' names.
pub(super) async fn get_enabled_plugins(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    let h = cx.host(&a)?;
    a.params(&[], 0)?;
    Ok(json!(h.enabled().await))
}

/// `core.enable_plugin(plugin)`: `True`, or `False` when it failed (the log says why).
pub(super) async fn enable_plugin(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    let h = cx.host(&a)?;
    switch_plugin(&h, &a, true).await
}

/// `core.disable_plugin(plugin)`: `True`, or `False` when it failed (the log says why).
pub(super) async fn disable_plugin(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    let h = cx.host(&a)?;
    switch_plugin(&h, &a, false).await
}

/// Enables or disables the plugin named by the call; an unknown name is a `ValueError`
/// listing the available ones.
async fn switch_plugin(host: &PluginHost, a: &Args, enable: bool) -> Result<Value, DispatchError> {
    a.params(&["plugin"], 1)?;
    let name: String = a.get(0, "plugin")?;
    let result = if enable {
        host.enable(&name).await
    } else {
        host.disable(&name).await
    };
    match result {
        Ok(()) => Ok(json!(true)),
        Err(PluginError::NotFound(_)) => Err(a.value_error(
            "plugin",
            format!(
                "no plugin named {name:?}; available: {:?}",
                host.available().await
            ),
        )),
        Err(e) => {
            // Deluge answers False; the reason goes to the log.
            tracing::warn!(plugin = %name, error = %e, "plugin change failed");
            Ok(json!(false))
        }
    }
}
