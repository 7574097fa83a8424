//! The Stats plugin's preferences (`stats.conf`) and their validation.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::DispatchError;
use crate::export::{kind, Args};
use crate::store::Persist;

/// Preferences of the Stats plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatsConfig {
    /// Seconds between polls of the session (1..=60, default 2).
    pub update_interval: u64,
    /// Points kept per history series and resolution (10..=10000, default 150).
    pub length: u64,
    /// Most seconds between fsync'd checkpoints while totals change (5..=3600, default 30).
    pub save_interval: u64,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            update_interval: 2,
            length: 150,
            save_interval: 30,
        }
    }
}

/// The settable keys and their inclusive ranges.
pub const RANGES: [(&str, u64, u64); 3] = [
    ("update_interval", 1, 60),
    ("length", 10, 10_000),
    ("save_interval", 5, 3600),
];

impl StatsConfig {
    fn field(&mut self, key: &str) -> Option<&mut u64> {
        match key {
            "update_interval" => Some(&mut self.update_interval),
            "length" => Some(&mut self.length),
            "save_interval" => Some(&mut self.save_interval),
            _ => None,
        }
    }

    /// The preferences as a JSON object (what `stats.get_config` returns).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// A copy with `changes` applied, or an error naming the first bad key; all or nothing.
    pub fn with_changes(
        &self,
        changes: &Map<String, Value>,
        args: &Args,
    ) -> Result<StatsConfig, DispatchError> {
        let mut next = self.clone();
        for (key, value) in changes {
            let arg = format!("config[{key:?}]");
            let Some(&(_, lo, hi)) = RANGES.iter().find(|(k, _, _)| k == key) else {
                let known: Vec<&str> = RANGES.iter().map(|r| r.0).collect();
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
            if n < lo as i64 || n > hi as i64 {
                return Err(args.value_error(&arg, format!("{n} is out of range {lo}..={hi}")));
            }
            if let Some(slot) = next.field(key) {
                *slot = n as u64;
            }
        }
        Ok(next)
    }
}

impl Persist for StatsConfig {
    const SEALED: bool = false;

    fn validate(&self) -> Result<(), String> {
        let mut copy = self.clone();
        for (key, lo, hi) in RANGES {
            let v = *copy.field(key).expect("known key");
            if !(lo..=hi).contains(&v) {
                return Err(format!("{key} = {v} is out of range {lo}..={hi}"));
            }
        }
        Ok(())
    }
}
