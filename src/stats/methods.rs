//! The exported `stats.*` methods: JSON arguments decoded into the typed operations of
//! the plugin, typed answers and errors encoded back. With `calendar_methods.rs` (the
//! ledger's), the only file of the plugin that knows the method table's [`Args`].

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::export::{kind, Args, AuthLevel, DispatchError, ExportError, ExportScope};
use crate::source::SourceName;
use crate::stats::config::{ConfigChange, ConfigKey};
use crate::stats::handle::StatsError;
use crate::stats::history;
use crate::stats::poller::{ChangeError, Import};
use crate::stats::registry::Registry;
use crate::stats::totals::{self, Counters};

/// Registers every `stats.*` method on `scope`, answering from `registry`.
pub(crate) fn export(scope: &ExportScope, registry: &Arc<Registry>) -> Result<(), ExportError> {
    read(scope, registry, "get_status", status)?;
    read(scope, registry, "get_totals", |r| {
        serde_json::to_value(r.totals())
    })?;
    read(scope, registry, "get_session_totals", |r| {
        serde_json::to_value(r.session_totals())
    })?;
    read(scope, registry, "get_config", |r| {
        serde_json::to_value(r.config())
    })?;
    read(scope, registry, "get_intervals", |r| {
        let entries = r.entries();
        let intervals = entries
            .first()
            .map(|e| e.view.read().history.intervals())
            .unwrap_or_default();
        serde_json::to_value(intervals)
    })?;
    read(scope, registry, "get_sources", |r| {
        serde_json::to_value(r.snapshot(true).sources)
    })?;
    let r = registry.clone();
    scope.export("get_stats", move |args: Args| {
        let result = get_stats(&r, &args);
        async move { result }
    })?;
    let r = registry.clone();
    scope.export("set_config", move |args: Args| {
        let r = r.clone();
        async move {
            let change = config_change(&args)?;
            r.set_config(change).await.map_err(|e| refused(&args, e))?;
            Ok(Value::Null)
        }
    })?;
    let r = registry.clone();
    scope.export_at("import_totals", AuthLevel::Admin, move |args: Args| {
        let r = r.clone();
        async move {
            let (import, into) = import_args(&args)?;
            let totals = r
                .import_totals(import, into.as_deref())
                .await
                .map_err(|e| refused(&args, e))?;
            Ok(counters_value(&totals))
        }
    })?;
    let r = registry.clone();
    scope.export_at("reset_totals", AuthLevel::Admin, move |args: Args| {
        let r = r.clone();
        async move {
            args.params(&["source"], 0)?;
            let source = source_arg(&args, 0)?;
            let before = r
                .reset_totals(source.as_deref())
                .await
                .map_err(|e| refused(&args, e))?;
            Ok(counters_value(&before))
        }
    })?;
    #[cfg(feature = "ledger")]
    crate::stats::calendar_methods::export(scope, registry)?;
    export_sources(scope, registry)
}

/// `stats.add_source(name, spec)`, `stats.remove_source(name)`, `stats.purge_source(name)`
/// (ADMIN: the spec carries a password, and a purge deletes totals).
fn export_sources(scope: &ExportScope, registry: &Arc<Registry>) -> Result<(), ExportError> {
    let r = registry.clone();
    scope.export_at("add_source", AuthLevel::Admin, move |args: Args| {
        let r = r.clone();
        async move {
            args.params(&["name", "spec"], 2)?;
            let name = name_arg(&args, 0)?;
            let spec = args.str(1, "spec")?;
            if spec.is_empty() || spec.len() > 2048 {
                return Err(args.value_error("spec", "must be 1..=2048 characters".into()));
            }
            let added = r
                .add_source(&name, spec)
                .await
                .map_err(|e| refused(&args, e))?;
            Ok(serde_json::to_value(added).unwrap_or(Value::Null))
        }
    })?;
    for (method, purge) in [("remove_source", false), ("purge_source", true)] {
        let r = registry.clone();
        scope.export_at(method, AuthLevel::Admin, move |args: Args| {
            let r = r.clone();
            async move {
                args.params(&["name"], 1)?;
                let name = name_arg(&args, 0)?;
                let totals = if purge {
                    r.purge_source(&name).await
                } else {
                    r.remove_source(&name).await
                };
                Ok(counters_value(&totals.map_err(|e| refused(&args, e))?))
            }
        })?;
    }
    Ok(())
}

/// A source name argument: checked against the name rule.
fn name_arg(args: &Args, index: usize) -> Result<String, DispatchError> {
    let name = args.str(index, "name")?;
    SourceName::new(name)
        .map(|n| n.to_string())
        .map_err(|e| args.value_error("name", e.to_string()))
}

/// An optional source name (`None` or absent: every source).
fn source_arg(args: &Args, index: usize) -> Result<Option<String>, DispatchError> {
    match args.value(index, "source") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => SourceName::new(s)
            .map(|n| Some(n.to_string()))
            .map_err(|e| args.value_error("source", e.to_string())),
        Some(other) => Err(args.type_error(
            "source",
            format!("expected a source name or None, got {}", kind(other)),
        )),
    }
}

/// `stats.get_status()`: the combined health, and per source what it measures.
fn status(r: &Registry) -> serde_json::Result<Value> {
    let snapshot = r.snapshot(true);
    let mut value = serde_json::to_value(&snapshot.health)?;
    let sources: Map<String, Value> = snapshot
        .sources
        .iter()
        .map(|s| {
            let payload_only = !s.health.measured.iter().any(|m| m == "total_upload");
            (
                s.name.clone(),
                json!({
                    "kind": s.kind,
                    "description": s.description,
                    "retired": s.retired,
                    "source_up": s.health.source_up,
                    "measured": s.health.measured,
                    "measures": if s.health.measured.is_empty() { "unknown yet" }
                        else if payload_only { "payload only" } else { "wire bytes" },
                    "last_error": s.health.last_error,
                }),
            )
        })
        .collect();
    if let Value::Object(map) = &mut value {
        map.insert("sources".into(), Value::Object(sources));
        #[cfg(feature = "ledger")]
        map.insert(
            "time_zone".into(),
            Value::String(crate::stats::ledger::calendar::zone_name(
                r.ledger().time_zone(),
            )),
        );
    }
    Ok(value)
}

/// Exports a method without arguments that answers from the state.
fn read(
    scope: &ExportScope,
    registry: &Arc<Registry>,
    name: &str,
    answer: fn(&Registry) -> serde_json::Result<Value>,
) -> Result<(), ExportError> {
    let r = registry.clone();
    scope.export(name, move |args: Args| {
        let result = args
            .params(&[], 0)
            .map(|()| answer(&r).unwrap_or(Value::Null));
        async move { result }
    })
}

fn counters_value(c: &Counters) -> Value {
    serde_json::to_value(c).unwrap_or(Value::Null)
}

/// A typed refusal as the wire error Deluge's clients expect.
fn refused(args: &Args, error: StatsError) -> DispatchError {
    match error {
        StatsError::Refused(ChangeError::Config(e)) => args.value_error(
            &format!("config[{:?}]", e.key.as_str()),
            format!("{} is out of range {}..={}", e.value, e.min, e.max),
        ),
        StatsError::Refused(ChangeError::Import(e)) => {
            args.value_error("fingerprint", e.to_string())
        }
        other => DispatchError::Plugin {
            method: args.method().to_string(),
            message: other.to_string(),
        },
    }
}

/// Decodes `stats.set_config(config)`: every key known, every value an integer in range
/// (the first bad key is named).
fn config_change(args: &Args) -> Result<ConfigChange, DispatchError> {
    args.params(&["config"], 1)?;
    let mut change = ConfigChange::new();
    for (key, value) in args.dict(0, "config")? {
        let arg = format!("config[{key:?}]");
        let Some(config_key) = ConfigKey::from_name(key) else {
            let known: Vec<&str> = ConfigKey::ALL.iter().map(|k| k.as_str()).collect();
            return Err(args.value_error(
                &arg,
                format!("unknown key; settable keys are {}", known.join(", ")),
            ));
        };
        let n = match value {
            Value::Number(n) if n.is_u64() || n.is_i64() => n.as_i64().unwrap_or(i64::MAX),
            other => {
                return Err(
                    args.type_error(&arg, format!("expected an integer, got {}", kind(other)))
                )
            }
        };
        let n = config_key
            .check(n)
            .map_err(|e| refused(args, ChangeError::Config(e).into()))?;
        change = change.with(config_key, n);
    }
    Ok(change)
}

/// Decodes `stats.import_totals(source, fingerprint, totals, into=None)`'s arguments
/// (`into`: the source name the totals go to; default the first active source).
fn import_args(args: &Args) -> Result<(Import, Option<String>), DispatchError> {
    args.params(&["source", "fingerprint", "totals", "into"], 3)?;
    let text = |i, name: &str, max: usize| -> Result<String, DispatchError> {
        let s = args.str(i, name)?;
        if s.is_empty() || s.len() > max {
            return Err(args.value_error(name, format!("must be 1..={max} characters")));
        }
        Ok(s.to_string())
    };
    let source = text(0, "source", 64)?;
    let fingerprint = text(1, "fingerprint", 256)?;
    let dict = args.dict(2, "totals")?;
    let mut fields = [0u64; 4];
    const KEYS: [&str; 4] = [
        "total_upload",
        "total_download",
        "total_payload_upload",
        "total_payload_download",
    ];
    for (key, value) in dict {
        let arg = format!("totals[{key:?}]");
        let Some(i) = KEYS.iter().position(|k| k == key) else {
            return Err(
                args.value_error(&arg, format!("unknown key; expected {}", KEYS.join(", ")))
            );
        };
        fields[i] = match value.as_u64() {
            Some(n) if n <= totals::MAX_TOTAL => n,
            _ => {
                return Err(args.type_error(
                    &arg,
                    format!("expected a byte count 0..=2^63-1, got {value}"),
                ))
            }
        };
    }
    for key in &KEYS[..2] {
        if !dict.contains_key(*key) {
            return Err(args.value_error(&format!("totals[{key:?}]"), "missing".into()));
        }
    }
    let totals = Counters {
        total_upload: fields[0],
        total_download: fields[1],
        total_payload_upload: fields[2],
        total_payload_download: fields[3],
    };
    let into = match args.value(3, "into") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            SourceName::new(s)
                .map_err(|e| args.value_error("into", e.to_string()))?
                .to_string(),
        ),
        Some(other) => {
            return Err(args.type_error(
                "into",
                format!("expected a source name or None, got {}", kind(other)),
            ))
        }
    };
    Ok((
        Import {
            source,
            fingerprint,
            totals,
        },
        into,
    ))
}

/// `stats.get_stats(keys, interval, source=None)`: the history series Deluge's graphs
/// draw, of one source or, without one, of every active source summed point by point
/// (newest first).
fn get_stats(registry: &Registry, args: &Args) -> Result<Value, DispatchError> {
    args.params(&["keys", "interval", "source"], 2)?;
    let keys = args.str_list(0, "keys")?;
    let interval = args.u64(1, "interval")?;
    let source = source_arg(args, 2)?;
    let entries = registry.entries();
    let chosen: Vec<_> = entries
        .iter()
        .filter(|e| match &source {
            Some(s) => e.name.as_str() == s,
            None => !e.retired(),
        })
        .collect();
    if let (Some(s), true) = (&source, chosen.is_empty()) {
        return Err(args.value_error("source", format!("no source is named {s}")));
    }
    let views: Vec<_> = chosen.iter().map(|e| e.view.read()).collect();
    let config = registry.config();
    let intervals = views
        .first()
        .map(|v| v.history.intervals())
        .unwrap_or_default();
    let Some(level) = views.first().and_then(|v| v.history.level_for(interval)) else {
        return Err(args.value_error(
            "interval",
            format!("{interval} is not one of {intervals:?}"),
        ));
    };
    let mut out = Map::new();
    for key in keys {
        let mut sum: Option<Vec<u64>> = None;
        for v in &views {
            if let Some(series) = v.history.series(level, key) {
                let acc = sum.get_or_insert_with(Vec::new);
                for (i, x) in series.iter().enumerate() {
                    match acc.get_mut(i) {
                        Some(a) => *a = a.saturating_add(*x),
                        None => acc.push(*x),
                    }
                }
            }
        }
        if let Some(series) = sum {
            out.insert(key.to_string(), json!(series));
        } else if history::SERIES.iter().any(|k| k.as_str() == key) {
            // Deluge lists every stat it records at every interval, empty until filled.
            out.insert(key.to_string(), json!([]));
        }
    }
    let last_update = views
        .iter()
        .map(|v| v.history.levels[level].last_update)
        .fold(0.0_f64, f64::max);
    out.insert("_last_update".into(), json!(last_update));
    out.insert("_length".into(), json!(config.length));
    out.insert("_update_interval".into(), json!(interval));
    Ok(Value::Object(out))
}
