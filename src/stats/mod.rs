//! The Stats plugin: persistent all-time upload/download totals, API-compatible with
//! Deluge 2's Stats plugin (plugin name `Stats`, RPC namespace `stats`).
//!
//! - [`totals`]: the accumulator (pure).
//! - [`history`]: rate and peer series at four resolutions.
//! - [`config`]: validated preferences.
//! - [`poller`]: the task that polls, accumulates and owns the files.
//!
//! Files in the config directory: `stats.conf` (preferences, hand-editable TOML),
//! `stats.totals` and `stats.history` (machine-owned TOML with a checksum line), each with
//! a `.bak` kept by fsync'd checkpoints.

pub mod config;
pub mod history;
pub mod poller;
pub mod totals;

use async_trait::async_trait;
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinHandle;

use crate::error::{DispatchError, PluginError, StoreError};
use crate::export::{Args, AuthLevel, ExportScope};
use crate::plugin::{CorePlugin, PluginContext, Shutdown, ShutdownTrigger};
use crate::store::{Persist, Store};

pub use config::StatsConfig;
pub use history::History;
pub use poller::{SharedView, View};
pub use totals::{Accumulator, Counters};

/// File names in the config directory.
pub const CONF_FILE: &str = "stats.conf";
/// The totals file.
pub const TOTALS_FILE: &str = "stats.totals";
/// The history file.
pub const HISTORY_FILE: &str = "stats.history";

struct Running {
    stop: ShutdownTrigger,
    task: JoinHandle<()>,
}

/// The Stats plugin. Register it with a [`PluginHost`](crate::host::PluginHost).
#[derive(Default)]
pub struct Stats {
    running: Mutex<Option<Running>>,
}

impl Stats {
    /// A disabled Stats plugin.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Loads a store's value (the store logs any recovery from its backup).
fn load<T: Persist>(ctx: &PluginContext, store: &Store<T>) -> Result<T, PluginError> {
    store
        .load()
        .map(|(value, _)| value)
        .map_err(|e| ctx.store_error(e))
}

#[async_trait]
impl CorePlugin for Stats {
    fn name(&self) -> &str {
        "Stats"
    }

    async fn enable(&self, ctx: PluginContext) -> Result<(), PluginError> {
        let mut running = self.running.lock().await;
        if running.is_some() {
            return Ok(());
        }
        let conf = ctx.store::<StatsConfig>(CONF_FILE)?;
        let config = load(&ctx, &conf)?;
        if !conf.path().exists() {
            // Write the defaults once so users can see and edit them.
            if let Err(e) = conf.save(&config, crate::store::Durability::Durable) {
                tracing::warn!(error = %e, "could not write default preferences");
            }
        }
        let totals = ctx.store::<totals::Accumulator>(TOTALS_FILE)?;
        let acc = load(&ctx, &totals)?;
        let history_store = ctx.store::<History>(HISTORY_FILE)?;
        let mut history = match history_store.load() {
            Ok((h, _)) => h,
            Err(e @ StoreError::Unrecoverable { .. }) => {
                // History is derived data: start afresh, but keep the bad file.
                let kept = history_store.quarantine().map_err(|e| ctx.store_error(e))?;
                tracing::warn!(error = %e, kept_as = ?kept, "history unusable; starting an empty one");
                History::new(config.update_interval, config.length)
            }
            Err(e) => return Err(ctx.store_error(e)),
        };
        if history.base_interval != config.update_interval {
            history = History::new(config.update_interval, config.length);
        } else {
            history.set_length(config.length);
        }
        tracing::info!(
            source = %ctx.core().describe(),
            upload = acc.totals.total_upload,
            download = acc.totals.total_download,
            "Stats enabled"
        );
        let view = SharedView::new(View {
            acc,
            history,
            config,
        });
        let (tx, rx) = mpsc::channel(16);
        export_methods(ctx.exports(), &view, &tx);
        let files = poller::Files {
            conf,
            totals,
            history: history_store,
        };
        let (stop, stop_signal) = Shutdown::new();
        let poller = poller::Poller::new(ctx.core(), view, files);
        let task = tokio::spawn(poller.run(rx, ctx.shutdown(), stop_signal));
        *running = Some(Running { stop, task });
        Ok(())
    }

    async fn disable(&self) -> Result<(), PluginError> {
        let Some(run) = self.running.lock().await.take() else {
            return Ok(());
        };
        run.stop.trigger();
        run.task.await.map_err(|e| PluginError::Failed {
            plugin: "Stats".into(),
            message: format!("poll task ended abnormally: {e}"),
        })?;
        tracing::info!("Stats disabled");
        Ok(())
    }
}

fn counters_value(c: &Counters) -> Value {
    serde_json::to_value(c).unwrap_or(Value::Null)
}

fn not_running(args: &Args) -> DispatchError {
    DispatchError::Plugin {
        method: args.method().to_string(),
        message: "the Stats plugin is not running".into(),
    }
}

fn export_methods(scope: &ExportScope, view: &SharedView, tx: &mpsc::Sender<poller::Command>) {
    let v = view.clone();
    scope.export("get_totals", move |args: Args| {
        let result = args
            .expect(&[], 0)
            .map(|()| counters_value(&v.read().acc.totals));
        async move { result }
    });
    let v = view.clone();
    scope.export("get_session_totals", move |args: Args| {
        let result = args
            .expect(&[], 0)
            .map(|()| counters_value(&v.read().acc.last));
        async move { result }
    });
    let v = view.clone();
    scope.export("get_config", move |args: Args| {
        let result = args.expect(&[], 0).map(|()| v.read().config.to_value());
        async move { result }
    });
    let v = view.clone();
    scope.export("get_intervals", move |args: Args| {
        let result = args
            .expect(&[], 0)
            .map(|()| json!(v.read().history.intervals()));
        async move { result }
    });
    let v = view.clone();
    scope.export("get_stats", move |args: Args| {
        let result = get_stats(&v, &args);
        async move { result }
    });
    let t = tx.clone();
    scope.export("set_config", move |args: Args| {
        let t = t.clone();
        async move {
            args.expect(&["config"], 1)?;
            let changes = args.dict(0, "config")?.clone();
            let (reply, answer) = oneshot::channel();
            t.send(poller::Command::SetConfig(changes, args.clone(), reply))
                .await
                .map_err(|_| not_running(&args))?;
            answer.await.map_err(|_| not_running(&args))??;
            Ok(Value::Null)
        }
    });
    let t = tx.clone();
    scope.export_at("import_totals", AuthLevel::Admin, move |args: Args| {
        let t = t.clone();
        async move {
            let (source, fingerprint, added) = import_args(&args)?;
            let (reply, answer) = oneshot::channel();
            t.send(poller::Command::Import(
                args.clone(),
                source,
                fingerprint,
                added,
                reply,
            ))
            .await
            .map_err(|_| not_running(&args))?;
            let totals = answer.await.map_err(|_| not_running(&args))??;
            Ok(counters_value(&totals))
        }
    });
    let t = tx.clone();
    scope.export_at("reset_totals", AuthLevel::Admin, move |args: Args| {
        let t = t.clone();
        async move {
            args.expect(&[], 0)?;
            let (reply, answer) = oneshot::channel();
            t.send(poller::Command::Reset(args.clone(), reply))
                .await
                .map_err(|_| not_running(&args))?;
            let before = answer.await.map_err(|_| not_running(&args))??;
            Ok(counters_value(&before))
        }
    });
}

/// Decodes `stats.import_totals(source, fingerprint, totals)`'s arguments.
fn import_args(args: &Args) -> Result<(String, String, Counters), DispatchError> {
    args.expect(&["source", "fingerprint", "totals"], 3)?;
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
    let counters = Counters {
        total_upload: fields[0],
        total_download: fields[1],
        total_payload_upload: fields[2],
        total_payload_download: fields[3],
    };
    Ok((source, fingerprint, counters))
}

fn get_stats(view: &SharedView, args: &Args) -> Result<Value, DispatchError> {
    args.expect(&["keys", "interval"], 2)?;
    let keys = args.str_list(0, "keys")?;
    let interval = args.u64(1, "interval")?;
    let v = view.read();
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
}
