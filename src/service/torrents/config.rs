//! Deluge's configuration: `get_config`, `get_config_value`, `get_config_values`, and
//! `set_config`, which changes the rate limits only and keeps them in `engine.conf`.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::export::Args;
use crate::export::DispatchError;
use crate::store::{Durability, Store};

use super::{deluge, torrent_error, Ctx, Engine, EngineConfig};

/// `core.get_config()`: every configuration key clients read.
pub(super) async fn get_config(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    let h = cx.host(&a)?;
    a.params(&[], 0)?;
    Ok(Value::Object(config(h.enabled().await, &cx.engine)))
}

/// `core.get_config_value(key)`: one key's value, `None` for a key not known.
pub(super) async fn get_config_value(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    let h = cx.host(&a)?;
    a.params(&["key"], 1)?;
    let key: String = a.get(0, "key")?;
    Ok(config(h.enabled().await, &cx.engine)
        .remove(&key)
        .unwrap_or(Value::Null))
}

/// `core.get_config_values(keys)`: the asked keys' values, `None` for the ones not known.
pub(super) async fn get_config_values(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    let h = cx.host(&a)?;
    a.params(&["keys"], 1)?;
    let keys: Vec<String> = a.get(0, "keys")?;
    let all = config(h.enabled().await, &cx.engine);
    let out: Map<String, Value> = keys
        .into_iter()
        .map(|k| {
            let v = all.get(&k).cloned().unwrap_or(Value::Null);
            (k, v)
        })
        .collect();
    Ok(Value::Object(out))
}

/// `core.set_config(config)`: changes the rate limits (kept in `engine.conf` first); any
/// other key is accepted only with its current value. Every change is checked before any
/// is made, and each change made is announced with `ConfigValueChangedEvent`.
pub(super) async fn set_config(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    let h = cx.host(&a)?;
    a.params(&["config"], 1)?;
    let changes: Map<String, Value> = a.get(0, "config")?;
    let current = config(h.enabled().await, &cx.engine);
    let limits = cx.engine.as_ref().map_or((None, None), |e| e.rate_limits());
    let (limits, changed) = check_changes(&a, &cx.engine, &current, &changes, limits)?;
    if let Some(engine) = &cx.engine {
        keep_limits(&a, cx.saved.clone(), limits).await?;
        engine
            .set_rate_limits(limits.0, limits.1)
            .map_err(|err| torrent_error(&a, err))?;
    }
    for (key, value) in changed {
        tracing::info!(setting = %key, %value, "setting changed");
        cx.events
            .emit("ConfigValueChangedEvent", vec![json!(key), value]);
    }
    Ok(Value::Null)
}

/// Download and upload limits, bytes/s (`None`: unlimited).
type Limits = (Option<u64>, Option<u64>);

/// Checks every change of a `set_config` against the `current` configuration: the
/// `limits` they make, and the changed settings to announce.
fn check_changes(
    a: &Args,
    engine: &Engine,
    current: &Map<String, Value>,
    changes: &Map<String, Value>,
    (mut down, mut up): Limits,
) -> Result<(Limits, Vec<(String, Value)>), DispatchError> {
    let mut changed = Vec::new();
    for (key, value) in changes {
        let arg = format!("config[{key:?}]");
        match key.as_str() {
            "max_download_speed" | "max_upload_speed" => {
                let bps = rate_limit(a, &arg, value, engine)?;
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
                return Err(
                    a.value_error(&arg, "this setting cannot be changed on this daemon".into())
                )
            }
            _ => return Err(a.value_error(&arg, "unknown setting".into())),
        }
    }
    Ok(((down, up), changed))
}

/// A rate limit setting (`arg`, Deluge's KiB/s as a number, -1 for unlimited) in bytes/s.
fn rate_limit(
    a: &Args,
    arg: &str,
    value: &Value,
    engine: &Engine,
) -> Result<Option<u64>, DispatchError> {
    let kib = value.as_f64().ok_or_else(|| {
        a.type_error(
            arg,
            format!("expected a number (KiB/s, -1 for unlimited), got {value}"),
        )
    })?;
    if engine.is_none() {
        return Err(a.value_error(arg, "this daemon has no torrent engine".into()));
    }
    let bps = (kib > 0.0).then(|| (kib * 1024.0).round() as u64);
    if bps.is_some_and(|b| b > u64::from(u32::MAX)) {
        return Err(a.value_error(arg, format!("{kib} KiB/s is over 4 GiB/s")));
    }
    Ok(bps)
}

/// Saves `limits` to `engine.conf` (when it is kept): before they are applied, so a
/// change that cannot be saved is not made.
async fn keep_limits(
    a: &Args,
    saved: Option<Arc<Store<EngineConfig>>>,
    (down, up): Limits,
) -> Result<(), DispatchError> {
    let Some(store) = saved else {
        return Ok(());
    };
    let config = EngineConfig {
        max_download_bps: down,
        max_upload_bps: up,
    };
    tokio::task::spawn_blocking(move || store.save(&config, Durability::Durable))
        .await
        .map_err(|err| deluge(a, "DelugeError", err.to_string()))?
        .map_err(|err| deluge(a, "DelugeError", format!("settings not changed: {err}")))
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
