//! Quotas at run time (feature `ledger`): `quotas.toml`, each quota's state from the
//! ledger after every poll interval, thresholds (a log line, `QuotaThresholdEvent`, the
//! quota's command) and the embedded engine's action at 100 % (pause, or rate limits),
//! undone when the period rolls over.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jiff::{Timestamp, ZonedDateTime};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::event::EventBus;
use crate::stats::ledger::quota::{
    crossed, evaluate, Measure, Quota, QuotaAction, QuotaStatus, QuotasFile, ThresholdState, Usage,
    QUOTAS_FILE,
};
use crate::stats::ledger::{Ledger, LedgerError, Period};
use crate::stats::totals::Counters;
use crate::store::{Durability, Store};
use crate::torrent::{Needs, TorrentEngine, TorrentState};

/// The Deluge event a threshold raises: `QuotaThresholdEvent(name, percent)`.
pub const THRESHOLD_EVENT: &str = "QuotaThresholdEvent";

/// How long a quota's command may run before it is killed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// What a quota did this period, kept in the ledger (`quota_state`) across restarts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Saved {
    thresholds: ThresholdState,
    /// The engine action in force, if any.
    #[serde(default)]
    action: Option<Applied>,
}

/// An engine action in force: what to undo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Applied {
    /// The period it was taken in.
    period_start: i64,
    /// The torrents the quota paused (only these resume).
    paused: Vec<String>,
    /// The rate limits before (download, upload), for a `limit` action.
    limits: Option<(Option<u64>, Option<u64>)>,
}

/// The quotas of the running plugin.
pub(crate) struct QuotaWatch {
    ledger: Arc<Ledger>,
    path: PathBuf,
    quotas: RwLock<Vec<Quota>>,
    statuses: RwLock<Vec<QuotaStatus>>,
    saved: tokio::sync::Mutex<HashMap<String, Saved>>,
    events: EventBus,
    engine: Option<Arc<dyn TorrentEngine>>,
}

/// Reads `quotas.toml`: none if it is missing; a file that cannot be used is refused with
/// where and why.
fn read_file(path: &Path) -> Result<Vec<Quota>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let file: QuotasFile = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    file.check()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(file.quota)
}

fn sum(
    ledger: &Ledger,
    period: Period,
    q: &Quota,
    a: i64,
    b: i64,
) -> Result<Counters, LedgerError> {
    let source = q.source.as_ref().map(|s| s.as_str());
    if q.measure == Measure::Payload {
        return ledger.sum(period, source, a, b);
    }
    // Wire bytes: a source that measures payload only (the embedded engine) counts its
    // payload, the most it measures, rather than nothing.
    let sources = match source {
        Some(s) => vec![s.to_string()],
        None => ledger.sources()?,
    };
    let mut total = Counters::default();
    for s in &sources {
        total = total.saturating_add(wire_or_payload(ledger.sum(period, Some(s), a, b)?));
    }
    Ok(total)
}

/// `c`, its payload counters standing for the wire ones if it has payload bytes and no
/// wire bytes (a payload-only source).
fn wire_or_payload(mut c: Counters) -> Counters {
    if c.total_upload == 0 && c.total_download == 0 {
        c.total_upload = c.total_payload_upload;
        c.total_download = c.total_payload_download;
    }
    c
}

/// One quota's state at `now`, from the ledger.
fn status(ledger: &Ledger, q: &Quota, now: &ZonedDateTime) -> Result<QuotaStatus, LedgerError> {
    let (start, end) = q.period.bounds(now);
    let (s, e) = (start.timestamp().as_second(), end.timestamp().as_second());
    let used = sum(ledger, Period::Day, q, s, e)?;
    let (window, secs) = q.rate_window(now);
    // The rate from 5-minute buckets while they cover the window, else hourly ones.
    let fine = i64::from(ledger.retention().five_min_hours) >= 24;
    let period = if fine { Period::FiveMin } else { Period::Hour };
    let recent = sum(
        ledger,
        period,
        q,
        window.as_second(),
        now.timestamp().as_second() + 1,
    )?;
    Ok(evaluate(
        q,
        now,
        &Usage {
            used,
            recent,
            recent_secs: secs,
        },
    ))
}

impl QuotaWatch {
    /// Opens `quotas.toml` in `dir`.
    pub(crate) fn open(
        dir: &Path,
        ledger: Arc<Ledger>,
        events: EventBus,
        engine: Option<Arc<dyn TorrentEngine>>,
    ) -> Result<QuotaWatch, String> {
        let path = dir.join(QUOTAS_FILE);
        let quotas = read_file(&path)?;
        Ok(QuotaWatch {
            ledger,
            path,
            quotas: RwLock::new(quotas),
            statuses: RwLock::new(Vec::new()),
            saved: tokio::sync::Mutex::new(HashMap::new()),
            events,
            engine,
        })
    }

    /// The quotas in force.
    pub(crate) fn quotas(&self) -> Vec<Quota> {
        self.quotas
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Each quota's last evaluated state.
    pub(crate) fn statuses(&self) -> Vec<QuotaStatus> {
        self.statuses
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Undoes the actions in force of quotas no longer configured (removed by
    /// `stats.set_quotas`, SIGHUP, or an edit while the daemon was stopped) and forgets
    /// their state.
    pub(crate) async fn release_removed(&self) {
        let names: Vec<String> = self.quotas().into_iter().map(|q| q.name).collect();
        let ledger = self.ledger.clone();
        let Ok(Ok(states)) = tokio::task::spawn_blocking(move || ledger.quota_states()).await
        else {
            return;
        };
        let mut saved = self.saved.lock().await;
        for (name, json) in states {
            if names.contains(&name) {
                continue;
            }
            let state: Saved = serde_json::from_str(&json).unwrap_or_default();
            if let Some(applied) = &state.action {
                tracing::info!(quota = name, "the quota was removed: its action is undone");
                self.undo(&name, applied).await;
            }
            saved.remove(&name);
            let (ledger, key) = (self.ledger.clone(), name.clone());
            let _ = tokio::task::spawn_blocking(move || ledger.delete_quota_state(&key)).await;
        }
    }

    /// Re-reads `quotas.toml` (SIGHUP), then evaluates the quotas; a file that cannot be
    /// used changes nothing. Answers how many quotas are in force.
    pub(crate) async fn reload(&self) -> Result<usize, String> {
        let path = self.path.clone();
        let quotas = tokio::task::spawn_blocking(move || read_file(&path))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("{e}; the quotas read last stay in force"))?;
        let n = quotas.len();
        *self.quotas.write().unwrap_or_else(|e| e.into_inner()) = quotas;
        self.release_removed().await;
        self.evaluate(Timestamp::now()).await;
        Ok(n)
    }

    /// Replaces the quotas (checked, saved to `quotas.toml` first), then evaluates them.
    pub(crate) async fn set(&self, quotas: Vec<Quota>) -> Result<(), String> {
        let file = QuotasFile { quota: quotas };
        file.check().map_err(|e| e.to_string())?;
        let path = self.path.clone();
        let saved = file.clone();
        tokio::task::spawn_blocking(move || {
            let store = Store::<QuotasFile>::open(path).map_err(|e| e.to_string())?;
            store
                .save(&saved, Durability::Durable)
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        let names: Vec<String> = file.quota.iter().map(|q| q.name.clone()).collect();
        *self.quotas.write().unwrap_or_else(|e| e.into_inner()) = file.quota;
        tracing::info!(quotas = ?names, "quotas changed");
        self.release_removed().await;
        self.evaluate(Timestamp::now()).await;
        Ok(())
    }

    /// Evaluates every quota at `now`: statuses, thresholds newly crossed (announced),
    /// engine actions taken or undone.
    pub(crate) async fn evaluate(&self, now: Timestamp) {
        let quotas = self.quotas();
        if quotas.is_empty() {
            self.statuses
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
            return;
        }
        let mut saved = self.saved.lock().await;
        let ledger = self.ledger.clone();
        let (qs, known): (Vec<Quota>, HashMap<String, Saved>) = (quotas, saved.clone());
        let evaluated = tokio::task::spawn_blocking(move || {
            let now = now.to_zoned_datetime(ledger.time_zone().clone());
            qs.into_iter()
                .map(|q| {
                    let st = status(&ledger, &q, &now);
                    let prior = known.get(&q.name).cloned().or_else(|| {
                        ledger
                            .quota_state(&q.name)
                            .ok()
                            .flatten()
                            .and_then(|s| serde_json::from_str(&s).ok())
                    });
                    (q, st, prior.unwrap_or_default())
                })
                .collect::<Vec<_>>()
        })
        .await;
        let Ok(evaluated) = evaluated else {
            return;
        };
        let mut statuses = Vec::new();
        let before = self.statuses();
        for (q, st, prior) in evaluated {
            // A ledger that cannot be read changes nothing: no threshold, no action.
            let st = match st {
                Ok(st) => st,
                Err(e) => {
                    tracing::warn!(quota = q.name, error = %e, "could not read the ledger for a quota");
                    statuses.extend(before.iter().find(|s| s.name == q.name).cloned());
                    continue;
                }
            };
            let mut next = prior.clone();
            for percent in crossed(&q, &st, &mut next.thresholds) {
                self.announce(&q, &st, percent);
            }
            self.act(&q, &st, &mut next).await;
            if next != prior {
                let (ledger, name) = (self.ledger.clone(), q.name.clone());
                let json = serde_json::to_string(&next).unwrap_or_default();
                let _ = tokio::task::spawn_blocking(move || {
                    if let Err(e) = ledger.set_quota_state(&name, &json) {
                        tracing::warn!(quota = name, error = %e, "could not save the quota's state");
                    }
                })
                .await;
            }
            saved.insert(q.name.clone(), next);
            statuses.push(st);
        }
        *self.statuses.write().unwrap_or_else(|e| e.into_inner()) = statuses;
    }

    /// A threshold crossed: a log line, the event, the command.
    fn announce(&self, q: &Quota, st: &QuotaStatus, percent: u16) {
        tracing::warn!(
            quota = q.name,
            threshold = percent,
            used = st.used,
            limit = st.limit,
            projected = st.projected,
            period = st.period,
            "quota threshold reached"
        );
        self.events
            .emit(THRESHOLD_EVENT, vec![json!(q.name), json!(percent)]);
        if let Some(command) = q.command.clone() {
            let env = command_env(st, percent);
            let name = q.name.clone();
            tokio::task::spawn_blocking(move || run_command(&name, &command, &env));
        }
    }

    /// Takes the quota's engine action when it is reached, undoes it in a later period.
    async fn act(&self, q: &Quota, st: &QuotaStatus, saved: &mut Saved) {
        if let Some(applied) = saved.action.clone() {
            // Undone in a new period, or when the limit was raised past the use, or the
            // quota's action removed.
            if !st.reached || q.action == QuotaAction::None {
                let checking = self.undo(&q.name, &applied).await;
                // A torrent still being checked (a daemon started after the rollover) can
                // only be resumed once its check ends: left for the next evaluation.
                saved.action = (!checking.is_empty()).then_some(Applied {
                    paused: checking,
                    limits: None,
                    ..applied
                });
            }
            return;
        }
        if !st.reached || q.action == QuotaAction::None {
            return;
        }
        let Some(engine) = self.engine.as_ref() else {
            tracing::warn!(
                quota = q.name,
                "the quota's action needs the embedded engine; this daemon has none"
            );
            return;
        };
        let mut applied = Applied {
            period_start: st.start,
            paused: Vec::new(),
            limits: None,
        };
        match q.action {
            QuotaAction::None => return,
            QuotaAction::Pause => {
                let mut running = Vec::new();
                engine.for_each_state(&mut |id, state, _| {
                    if state != TorrentState::Paused {
                        running.push(id.to_string());
                    }
                });
                for id in running {
                    match engine.pause(&id).await {
                        Ok(()) => applied.paused.push(id),
                        Err(e) => {
                            tracing::warn!(quota = q.name, torrent = id, error = %e, "could not pause")
                        }
                    }
                }
                tracing::warn!(
                    quota = q.name,
                    paused = applied.paused.len(),
                    "quota reached: torrents paused until the period ends"
                );
            }
            QuotaAction::Limit { upload, download } => {
                let before = engine.rate_limits();
                let down = download.or(before.0);
                let up = upload.or(before.1);
                match engine.set_rate_limits(down, up) {
                    Ok(()) => applied.limits = Some(before),
                    Err(e) => {
                        tracing::warn!(quota = q.name, error = %e, "could not set the rate limits");
                        return;
                    }
                }
                tracing::warn!(
                    quota = q.name,
                    ?down,
                    ?up,
                    "quota reached: rate limits set until the period ends"
                );
            }
        }
        saved.action = Some(applied);
    }

    /// Resumes the torrents `applied` paused and restores its rate limits; returns those
    /// still being checked, which cannot be resumed yet.
    async fn undo(&self, quota: &str, applied: &Applied) -> Vec<String> {
        let Some(engine) = self.engine.as_ref() else {
            return Vec::new();
        };
        let mut resumed = 0;
        let mut checking = Vec::new();
        for id in &applied.paused {
            match engine.torrents_with(Some(&[id]), Needs::NONE).pop() {
                Some(t) if t.state == TorrentState::Checking => checking.push(id.clone()),
                Some(t) if t.state == TorrentState::Paused => match engine.resume(id).await {
                    Ok(()) => resumed += 1,
                    Err(e) => {
                        tracing::warn!(quota, torrent = id, error = %e, "could not resume")
                    }
                },
                _ => {}
            }
        }
        if let Some((down, up)) = applied.limits {
            if let Err(e) = engine.set_rate_limits(down, up) {
                tracing::warn!(quota, error = %e, "could not restore the rate limits");
            }
        }
        if resumed > 0 || applied.limits.is_some() || checking.is_empty() {
            tracing::info!(
                quota,
                resumed,
                checking = checking.len(),
                "the quota's action is undone (a new period, a higher limit, or no action)"
            );
        }
        checking
    }
}

/// The quota's figures as its command's environment.
fn command_env(st: &QuotaStatus, percent: u16) -> Vec<(String, String)> {
    let v = serde_json::to_value(st).unwrap_or_default();
    let text = |key: &str| match &v[key] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    let mut env: Vec<(String, String)> = [
        "name",
        "source",
        "direction",
        "measure",
        "period",
        "start",
        "end",
        "used",
        "limit",
        "left",
        "percent",
        "rate",
        "projected",
        "reached_at",
    ]
    .iter()
    .map(|k| (format!("TORRENT_STATS_QUOTA_{}", k.to_uppercase()), text(k)))
    .collect();
    env.push(("TORRENT_STATS_QUOTA_THRESHOLD".into(), percent.to_string()));
    env
}

/// Runs a quota's command with `sh -c`, its figures in the environment; killed after
/// [`COMMAND_TIMEOUT`].
fn run_command(quota: &str, command: &str, env: &[(String, String)]) {
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(quota, error = %e, "could not run the quota's command");
            return;
        }
    };
    let deadline = std::time::Instant::now() + COMMAND_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return,
            Ok(Some(status)) => {
                tracing::warn!(quota, %status, "the quota's command failed");
                return;
            }
            Ok(None) if std::time::Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                tracing::warn!(
                    quota,
                    "the quota's command ran over {COMMAND_TIMEOUT:?}: killed"
                );
                return;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => {
                tracing::warn!(quota, error = %e, "could not wait for the quota's command");
                return;
            }
        }
    }
}

/// Evaluates the quotas every `every` until `stop`.
pub(crate) async fn run(
    watch: Arc<QuotaWatch>,
    every: Duration,
    mut stop: crate::plugin::Shutdown,
    on_change: impl Fn() + Send + 'static,
) {
    watch.release_removed().await;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let before = watch.statuses();
                watch.evaluate(Timestamp::now()).await;
                if watch.statuses() != before {
                    on_change();
                }
            }
            _ = stop.wait() => break,
        }
    }
}

#[cfg(test)]
mod tests;
