//! The calendar ledger's `stats.*` methods (feature `ledger`): `get_calendar` (answered
//! from the ledger file on a blocking thread), `get_quotas` and `set_quotas` (ADMIN),
//! decoded from JSON.

use std::sync::Arc;

use serde_json::Value;

use crate::export::{kind, Args, AuthLevel, DispatchError, ExportError, ExportScope};
use crate::stats::ledger::quota::Quota;
use crate::stats::ledger::{calendar, Period};
use crate::stats::registry::Registry;

/// Registers the calendar's methods on `scope`.
pub(crate) fn export(scope: &ExportScope, registry: &Arc<Registry>) -> Result<(), ExportError> {
    let r = registry.clone();
    scope.export("get_calendar", move |args: Args| {
        let r = r.clone();
        async move { get_calendar(&r, &args).await }
    })?;
    let r = registry.clone();
    scope.export("get_quotas", move |args: Args| {
        let result = args.params(&[], 0).map(|()| get_quotas(&r, &args));
        async move { result }
    })?;
    let r = registry.clone();
    scope.export_at("set_quotas", AuthLevel::Admin, move |args: Args| {
        let r = r.clone();
        async move {
            args.params(&["quotas"], 1)?;
            let quotas: Vec<Quota> = match args.value(0, "quotas") {
                Some(Value::Array(items)) => items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        serde_json::from_value(item.clone())
                            .map_err(|e| args.value_error(&format!("quotas[{i}]"), e.to_string()))
                    })
                    .collect::<Result<_, _>>()?,
                Some(other) => {
                    return Err(args.type_error(
                        "quotas",
                        format!("expected a list of quotas, got {}", kind(other)),
                    ))
                }
                None => unreachable!("checked by params"),
            };
            for q in &quotas {
                if let Some(source) = &q.source {
                    if let Some(known) = unknown_source(&r, source.as_str()) {
                        return Err(args.value_error(
                            "quotas",
                            format!(
                                "quota {:?}: no source is named {source}; the sources are \
                                 {known} (no source: all sources combined)",
                                q.name
                            ),
                        ));
                    }
                }
            }
            r.quotas()
                .set(quotas)
                .await
                .map_err(|e| args.value_error("quotas", e))?;
            Ok(get_quotas(&r, &args))
        }
    })
}

/// `stats.get_quotas()`: each quota's settings and state (its command only for ADMIN
/// callers: it may hold a secret).
fn get_quotas(r: &Registry, args: &Args) -> Value {
    let statuses = r.quotas().statuses();
    let admin = args.caller().level >= AuthLevel::Admin;
    let list: Vec<Value> = r
        .quotas()
        .quotas()
        .into_iter()
        .map(|q| {
            let mut v = serde_json::to_value(&q).unwrap_or(Value::Null);
            if let Value::Object(map) = &mut v {
                if !admin && map.contains_key("command") {
                    map.insert(
                        "command".into(),
                        Value::String("(set; ADMIN callers see it)".into()),
                    );
                }
                let status = statuses.iter().find(|s| s.name == q.name);
                let state = serde_json::to_value(status).unwrap_or(Value::Null);
                map.insert("status".into(), state);
            }
            v
        })
        .collect();
    Value::Array(list)
}

/// `stats.get_calendar(period, source=None, start=None, end=None)`: the buckets of one
/// source (or the combined series) whose start lies in `[start, end)`, oldest first.
async fn get_calendar(r: &Arc<Registry>, args: &Args) -> Result<Value, DispatchError> {
    args.params(&["period", "source", "start", "end"], 1)?;
    let period = Period::parse(args.str(0, "period")?)
        .map_err(|e| args.value_error("period", e.to_string()))?;
    let source = match args.value(1, "source") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => match unknown_source(r, name) {
            None => Some(name.clone()),
            Some(known) => {
                return Err(args.value_error(
                    "source",
                    format!(
                        "no source is named {:?}; the sources are {known} (None: the \
                         combined series)",
                        name.chars().take(64).collect::<String>()
                    ),
                ))
            }
        },
        Some(other) => {
            return Err(args.type_error(
                "source",
                format!("expected a source name or None, got {}", kind(other)),
            ))
        }
    };
    let ledger = r.ledger().clone();
    let bound = |index, name: &str| -> Result<Option<i64>, DispatchError> {
        match args.value(index, name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| args.value_error(name, "expected whole Unix seconds".into())),
            Some(Value::String(s)) => calendar::parse_bound(s, ledger.time_zone())
                .map(Some)
                .map_err(|e| args.value_error(name, e.to_string())),
            Some(other) => Err(args.type_error(
                name,
                format!(
                    "expected a date, a date-time or Unix seconds, got {}",
                    kind(other)
                ),
            )),
        }
    };
    let (start, end) = (bound(2, "start")?, bound(3, "end")?);
    let rows =
        tokio::task::spawn_blocking(move || ledger.calendar(period, source.as_deref(), start, end))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(|message| DispatchError::Plugin {
                method: args.method().to_string(),
                message,
            })?;
    Ok(serde_json::to_value(rows).unwrap_or(Value::Null))
}

/// `None` if `name` is one of the plugin's sources (active or retired); else their names.
fn unknown_source(r: &Registry, name: &str) -> Option<String> {
    let entries = r.entries();
    let names = || {
        let all: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        all.join(", ")
    };
    (!entries.iter().any(|e| e.name.as_str() == name)).then(names)
}
