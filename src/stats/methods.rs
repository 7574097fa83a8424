//! The exported `stats.*` methods: JSON arguments decoded into the typed operations of
//! the plugin, typed answers and errors encoded back. The only file of the plugin that
//! knows the method table's [`Args`].

use serde_json::{json, Map, Value};

use crate::export::{kind, Args, AuthLevel, DispatchError, ExportError, ExportScope};
use crate::stats::config::{ConfigChange, ConfigKey};
use crate::stats::handle::{Link, StatsError};
use crate::stats::history;
use crate::stats::poller::{ChangeError, Import};
use crate::stats::totals::{self, Counters};

/// Registers every `stats.*` method on `scope`, answering from `link`.
pub(crate) fn export(scope: &ExportScope, link: &Link) -> Result<(), ExportError> {
    read(scope, link, "get_status", |l| {
        l.read(|v| serde_json::to_value(&v.health))
    })?;
    read(scope, link, "get_totals", |l| {
        l.read(|v| serde_json::to_value(v.acc.totals))
    })?;
    read(scope, link, "get_session_totals", |l| {
        l.read(|v| serde_json::to_value(v.acc.last))
    })?;
    read(scope, link, "get_config", |l| {
        l.read(|v| serde_json::to_value(&v.config))
    })?;
    read(scope, link, "get_intervals", |l| {
        l.read(|v| serde_json::to_value(v.history.intervals()))
    })?;
    let l = link.clone();
    scope.export("get_stats", move |args: Args| {
        let result = get_stats(&l, &args);
        async move { result }
    })?;
    let l = link.clone();
    scope.export("set_config", move |args: Args| {
        let l = l.clone();
        async move {
            let change = config_change(&args)?;
            l.set_config(change).await.map_err(|e| refused(&args, e))?;
            Ok(Value::Null)
        }
    })?;
    let l = link.clone();
    scope.export_at("import_totals", AuthLevel::Admin, move |args: Args| {
        let l = l.clone();
        async move {
            let import = import_args(&args)?;
            let totals = l
                .import_totals(import)
                .await
                .map_err(|e| refused(&args, e))?;
            Ok(counters_value(&totals))
        }
    })?;
    let l = link.clone();
    scope.export_at("reset_totals", AuthLevel::Admin, move |args: Args| {
        let l = l.clone();
        async move {
            args.params(&[], 0)?;
            let before = l.reset_totals().await.map_err(|e| refused(&args, e))?;
            Ok(counters_value(&before))
        }
    })?;
    Ok(())
}

/// Exports a method without arguments that answers from the state.
fn read(
    scope: &ExportScope,
    link: &Link,
    name: &str,
    answer: fn(&Link) -> serde_json::Result<Value>,
) -> Result<(), ExportError> {
    let l = link.clone();
    scope.export(name, move |args: Args| {
        let result = args
            .params(&[], 0)
            .map(|()| answer(&l).unwrap_or(Value::Null));
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

/// Decodes `stats.import_totals(source, fingerprint, totals)`'s arguments.
fn import_args(args: &Args) -> Result<Import, DispatchError> {
    args.params(&["source", "fingerprint", "totals"], 3)?;
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
    Ok(Import {
        source,
        fingerprint,
        totals,
    })
}

/// `stats.get_stats(keys, interval)`: the history series Deluge's graphs draw.
fn get_stats(link: &Link, args: &Args) -> Result<Value, DispatchError> {
    args.params(&["keys", "interval"], 2)?;
    let keys = args.str_list(0, "keys")?;
    let interval = args.u64(1, "interval")?;
    link.read(|v| {
        let Some(level) = v.history.level_for(interval) else {
            return Err(args.value_error(
                "interval",
                format!("{interval} is not one of {:?}", v.history.intervals()),
            ));
        };
        let mut out = Map::new();
        for key in keys {
            if let Some(series) = v.history.series(level, key) {
                out.insert(key.to_string(), json!(series));
            } else if history::SERIES.iter().any(|k| k.as_str() == key) {
                // Deluge lists every stat it records at every interval, empty until filled.
                out.insert(key.to_string(), json!([]));
            }
        }
        out.insert(
            "_last_update".into(),
            json!(v.history.levels[level].last_update),
        );
        out.insert("_length".into(), json!(v.config.length));
        out.insert("_update_interval".into(), json!(interval));
        Ok(Value::Object(out))
    })
}
