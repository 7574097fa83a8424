//! Deluge's configuration: `get_config`, `get_config_value`, `get_config_values`, and
//! `set_config`, which changes the rate limits only and keeps them in `engine.conf` (the
//! values are in `config_values`).

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::export::Args;
use crate::export::DispatchError;
use crate::store::{Durability, Store};

use super::config_values::config;
use super::{deluge, torrent_error, Ctx, Engine, EngineConfig};

/// `core.get_config()`: every configuration key clients read.
pub(super) async fn get_config(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    let h = cx.host(&a)?;
    a.params(&[], 0)?;
    Ok(Value::Object(config(
        h.enabled().await,
        &cx.engine,
        cx.listening(),
    )))
}

/// `core.get_config_value(key)`: one key's value, `None` for a key not known.
pub(super) async fn get_config_value(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    let h = cx.host(&a)?;
    a.params(&["key"], 1)?;
    let key: String = a.get(0, "key")?;
    Ok(config(h.enabled().await, &cx.engine, cx.listening())
        .remove(&key)
        .unwrap_or(Value::Null))
}

/// `core.get_config_values(keys)`: the asked keys' values, `None` for the ones not known.
pub(super) async fn get_config_values(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    let h = cx.host(&a)?;
    a.params(&["keys"], 1)?;
    let keys: Vec<String> = a.get(0, "keys")?;
    let all = config(h.enabled().await, &cx.engine, cx.listening());
    let out: Map<String, Value> = keys
        .into_iter()
        .map(|k| {
            let v = all.get(&k).cloned().unwrap_or(Value::Null);
            (k, v)
        })
        .collect();
    Ok(Value::Object(out))
}

/// `core.set_config(config)`: changes the rate limits (kept in `engine.conf` first). A
/// value equal to the current one, or `None`, changes nothing and is not stored; a key
/// Deluge does not have is ignored (deluged 2.0.3 stores it, to no effect). Any real
/// change of another setting refuses the whole call, naming the key: every change is
/// checked before any is made. Each change made is announced with
/// `ConfigValueChangedEvent`.
pub(super) async fn set_config(cx: Ctx, a: Args) -> Result<Value, DispatchError> {
    let h = cx.host(&a)?;
    a.params(&["config"], 1)?;
    let changes: Map<String, Value> = a.get(0, "config")?;
    let current = config(h.enabled().await, &cx.engine, cx.listening());
    let limits = cx.engine.as_ref().map_or((None, None), |e| e.rate_limits());
    let (limits, changed) = check_changes(&a, &cx.engine, &current, &changes, limits)?;
    if let (Some(engine), false) = (&cx.engine, changed.is_empty()) {
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
/// `limits` they make, and the changed settings to announce (with the value Deluge
/// stores: a rate limit as a float).
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
        let Some(now) = current.get(key) else {
            tracing::info!(setting = %key, %value, "set_config: not a Deluge setting, ignored");
            continue;
        };
        if value.is_null() || same(now, value) {
            continue;
        }
        match key.as_str() {
            "max_download_speed" | "max_upload_speed" => {
                let bps = rate_limit(a, &arg, value, engine)?;
                if key == "max_download_speed" {
                    down = bps;
                } else {
                    up = bps;
                }
                changed.push((key.clone(), json!(value.as_f64())));
            }
            _ => {
                return Err(a.value_error(
                    &arg,
                    format!("{key} cannot be changed on this daemon (it is {now}, asked {value}); nothing was changed"),
                ))
            }
        }
    }
    Ok(((down, up), changed))
}

/// Whether a setting's `value` is its `current` one: numbers by value (`4` is `4.0`, as
/// Deluge converts to the setting's type), lists item by item.
fn same(current: &Value, value: &Value) -> bool {
    match (current, value) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => current == value,
    }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{json, Value};

    use super::super::tests::Limits;
    use crate::export::{AuthLevel, DispatchError};
    use crate::host::PluginHost;
    use crate::service::Core;
    use crate::torrent::TorrentEngine;

    /// A core on the rate-limits-only engine (`None`: no engine, the same type as the
    /// session source only).
    fn core(engine: Option<Arc<Limits>>, dir: &std::path::Path) -> Core {
        match engine {
            Some(engine) => {
                let host = PluginHost::open(engine.clone(), dir).unwrap();
                Core::with_engine(host, Some(engine)).unwrap()
            }
            None => Core::open(Arc::new(Limits::default()), dir).unwrap(),
        }
    }

    async fn call(core: &Core, method: &str, arg: Value) -> Result<Value, DispatchError> {
        core.dispatch(method, vec![arg], Default::default(), AuthLevel::Admin)
            .await
    }

    /// What Flood 4.16 sends when its speed-limit menu sets 1 MiB/s: its
    /// `setClientSettings` (server/services/Deluge/clientGatewayService.ts) lists every
    /// setting it maps, `undefined` (rencoded as `None`) for those not given, and passes
    /// Flood's number through unchanged.
    fn flood_payload(download: Value) -> Value {
        json!({
            "dht": null,
            "download_location": null,
            "listen_interface": null,
            "listen_ports": null,
            "max_download_speed": download,
            "max_upload_speed": null,
            "max_upload_slots_per_torrent": null,
            "max_upload_slots_global": null,
            "random_port": null,
            "utpex": null,
        })
    }

    /// The keys Flood 4.16's settings page reads (`getClientSettings`).
    const FLOOD_READS: [&str; 10] = [
        "dht",
        "download_location",
        "listen_interface",
        "listen_ports",
        "max_download_speed",
        "max_upload_speed",
        "max_upload_slots_per_torrent",
        "max_upload_slots_global",
        "random_port",
        "utpex",
    ];

    #[tokio::test]
    async fn floods_payload_changes_the_limit_and_stores_no_none() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(Limits::default());
        let core = core(Some(engine.clone()), dir.path());
        let before = call(&core, "core.get_config_values", json!(FLOOD_READS))
            .await
            .unwrap();
        assert!(FLOOD_READS.iter().all(|k| !before[k].is_null()), "{before}");
        call(&core, "core.set_config", flood_payload(json!(1048576)))
            .await
            .unwrap();
        assert_eq!(engine.rate_limits(), (Some(1 << 30), None));
        let after = call(&core, "core.get_config_values", json!(FLOOD_READS))
            .await
            .unwrap();
        let mut want = before.clone();
        want["max_download_speed"] = json!(1048576.0);
        assert_eq!(after, want);
        // Flood's whole settings page sent back as read (ints where we have floats):
        // nothing changes.
        let mut same = after.clone();
        same["max_download_speed"] = json!(1048576);
        call(&core, "core.set_config", same).await.unwrap();
        assert_eq!(engine.rate_limits(), (Some(1 << 30), None));
    }

    #[tokio::test]
    async fn a_change_that_cannot_be_made_refuses_the_whole_call() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(Limits::default());
        let core = core(Some(engine.clone()), dir.path());
        let mut payload = flood_payload(json!(100));
        payload["dht"] = json!(true);
        let err = call(&core, "core.set_config", payload).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("dht") && text.contains("cannot be changed"),
            "{text}"
        );
        assert_eq!(engine.rate_limits(), (None, None), "a limit was applied");
        let dht = call(&core, "core.get_config_value", json!("dht")).await;
        assert_eq!(dht.unwrap(), json!(false));
    }

    /// deluged 2.0.3 accepts any key (it stores an unknown one, to no effect): accepted
    /// here too, and not stored.
    #[tokio::test]
    async fn unknown_keys_are_accepted_and_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let core = core(Some(Arc::new(Limits::default())), dir.path());
        call(&core, "core.set_config", json!({"no_such_setting": 5}))
            .await
            .unwrap();
        let v = call(&core, "core.get_config_value", json!("no_such_setting")).await;
        assert_eq!(v.unwrap(), Value::Null);
    }

    /// Without an engine: the current values and `None` are accepted, a limit is not.
    #[tokio::test]
    async fn without_an_engine_only_no_change_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let core = core(None, dir.path());
        call(&core, "core.set_config", flood_payload(json!(-1)))
            .await
            .unwrap();
        call(&core, "core.set_config", flood_payload(Value::Null))
            .await
            .unwrap();
        let err = call(&core, "core.set_config", flood_payload(json!(100)))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no torrent engine"), "{err}");
    }
}
