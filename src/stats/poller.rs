//! The poll task: the single owner of the Stats plugin's state and files.
//!
//! It polls the source every `update_interval` seconds, feeds the accumulator and the
//! history, writes `stats.totals` cheaply after every poll that changed it, checkpoints
//! totals and history with fsync every `save_interval` seconds while anything changed,
//! and saves everything when it stops. Exports read its state through a shared lock and
//! send it commands for changes, so every file has exactly one writer.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::core::{SessionSource, SessionStatus, StatusKey};
use crate::error::{DispatchError, SourceError};
use crate::export::Args;
use crate::plugin::Shutdown;
use crate::stats::config::StatsConfig;
use crate::stats::history::History;
use crate::stats::totals::{Accumulator, Counters};
use crate::store::{Durability, Store};

/// The state exports read.
#[derive(Debug, Clone)]
pub struct View {
    /// Totals, last counters and session.
    pub acc: Accumulator,
    /// Rate and peer history.
    pub history: History,
    /// Current preferences.
    pub config: StatsConfig,
}

/// The view shared between the poll task (writer) and the exports (readers).
#[derive(Debug, Clone)]
pub struct SharedView(Arc<RwLock<View>>);

impl SharedView {
    pub(crate) fn new(view: View) -> Self {
        SharedView(Arc::new(RwLock::new(view)))
    }

    /// Read access for exports.
    pub fn read(&self) -> RwLockReadGuard<'_, View> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, View> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// A request from an export to the poll task.
pub(crate) enum Command {
    /// Apply these preference changes (validated against the current preferences).
    SetConfig(
        Map<String, Value>,
        Args,
        oneshot::Sender<Result<(), DispatchError>>,
    ),
    /// Zero the all-time totals; answers with the totals before the reset.
    Reset(Args, oneshot::Sender<Result<Counters, DispatchError>>),
    /// Add another program's totals once: (source, fingerprint, totals); answers with the
    /// new totals.
    Import(
        Args,
        String,
        String,
        Counters,
        oneshot::Sender<Result<Counters, DispatchError>>,
    ),
}

/// How long a disable waits for the final poll.
pub const FINAL_POLL_TIMEOUT: Duration = Duration::from_secs(1);

/// The keys polled from the source.
const POLL_KEYS: [StatusKey; 13] = StatusKey::ALL;

type PollFuture = Pin<Box<dyn Future<Output = Result<SessionStatus, SourceError>> + Send>>;

/// The files the poll task owns.
pub(crate) struct Files {
    pub conf: Store<StatsConfig>,
    pub totals: Store<Accumulator>,
    pub history: Store<History>,
}

pub(crate) struct Poller {
    source: Arc<dyn SessionSource>,
    view: SharedView,
    files: Files,
    /// `stats.totals` lags the memory state (a cheap write is due).
    fast_dirty: bool,
    /// Something changed since the last fsync'd checkpoint.
    durable_dirty: bool,
    save_failing: bool,
    poll_failing: bool,
    previous: Option<(Instant, Counters)>,
}

fn every(period: Duration, first: Instant) -> Interval {
    let mut i = tokio::time::interval_at(first, period);
    i.set_missed_tick_behavior(MissedTickBehavior::Skip);
    i
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Poller {
    pub(crate) fn new(source: Arc<dyn SessionSource>, view: SharedView, files: Files) -> Self {
        Poller {
            source,
            view,
            files,
            fast_dirty: false,
            durable_dirty: false,
            save_failing: false,
            poll_failing: false,
            previous: None,
        }
    }

    /// Runs until either shutdown signal fires, then saves everything.
    pub(crate) async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut host_shutdown: Shutdown,
        mut stop: Shutdown,
    ) {
        let config = self.view.read().config.clone();
        let mut poll = every(secs(config.update_interval), Instant::now());
        let save_period = secs(config.save_interval);
        let mut checkpoint = every(save_period, Instant::now() + save_period);
        let mut pending: Option<PollFuture> = None;
        loop {
            tokio::select! {
                _ = poll.tick(), if pending.is_none() => {
                    pending = Some(self.start_poll());
                }
                result = async { pending.as_mut().expect("guarded by is_some").await },
                    if pending.is_some() => {
                    pending = None;
                    self.on_poll(result);
                }
                _ = checkpoint.tick() => self.checkpoint(),
                command = commands.recv() => match command {
                    Some(Command::SetConfig(changes, args, reply)) => {
                        let result = self.set_config(&changes, &args);
                        if let Ok(Some(new)) = &result {
                            poll = every(secs(new.update_interval), Instant::now() + secs(new.update_interval));
                            let period = secs(new.save_interval);
                            checkpoint = every(period, Instant::now() + period);
                        }
                        let _ = reply.send(result.map(|_| ()));
                    }
                    Some(Command::Reset(args, reply)) => {
                        let _ = reply.send(self.reset(&args));
                    }
                    Some(Command::Import(args, source, fingerprint, added, reply)) => {
                        let _ = reply.send(self.import(&args, &source, &fingerprint, added));
                    }
                    None => break,
                },
                _ = host_shutdown.wait() => break,
                _ = stop.wait() => break,
            }
        }
        // Count what moved since the last tick: the session may end with us.
        let last = pending.take().unwrap_or_else(|| self.start_poll());
        match tokio::time::timeout(FINAL_POLL_TIMEOUT, last).await {
            Ok(result) => self.on_poll(result),
            Err(_) => tracing::warn!("final poll timed out; saving the last counted totals"),
        }
        self.save_all("disable");
    }

    fn start_poll(&self) -> PollFuture {
        let source = self.source.clone();
        let limit = secs(self.view.read().config.update_interval);
        Box::pin(async move {
            match tokio::time::timeout(limit, source.session_status(&POLL_KEYS)).await {
                Ok(result) => result,
                Err(_) => Err(SourceError::Timeout(limit)),
            }
        })
    }

    fn on_poll(&mut self, result: Result<SessionStatus, SourceError>) {
        let status = match result {
            Ok(status) => status,
            Err(e) => return self.poll_failed(e.to_string()),
        };
        let counters = match Counters::from_status(&status) {
            Ok(c) => c,
            Err(key) => return self.poll_failed(format!("source did not report {key}")),
        };
        if self.poll_failing {
            self.poll_failing = false;
            tracing::info!("session source answers again");
        }
        let now = unix_now();
        let changed = {
            let shared = self.view.clone();
            let mut view = shared.write();
            let (mut next, step) = view.acc.apply(&status.session, counters);
            if step.new_session {
                tracing::info!(session = %status.session, "counting a new session");
                self.previous = None;
            }
            if step.changed() {
                next.updated = now as u64;
            }
            view.acc = next;
            let mut values = status.values;
            self.derive_rates(&mut values, counters);
            view.history.push(&values, now);
            step.changed()
        };
        if changed {
            self.fast_dirty = true;
            self.durable_dirty = true;
        }
        if self.fast_dirty {
            self.save_totals(Durability::Fast);
        }
    }

    /// Fills in rates a source did not report from the counter deltas.
    fn derive_rates(
        &mut self,
        values: &mut std::collections::BTreeMap<StatusKey, u64>,
        c: Counters,
    ) {
        let now = Instant::now();
        if let Some((then, before)) = self.previous {
            let dt = now.duration_since(then).as_secs_f64();
            if dt > 0.0 {
                let d = c.saturating_sub(before);
                let rate = |bytes: u64| (bytes as f64 / dt) as u64;
                for (key, bytes) in [
                    (StatusKey::UploadRate, d.total_upload),
                    (StatusKey::DownloadRate, d.total_download),
                    (StatusKey::PayloadUploadRate, d.total_payload_upload),
                    (StatusKey::PayloadDownloadRate, d.total_payload_download),
                ] {
                    values.entry(key).or_insert_with(|| rate(bytes));
                }
            }
        }
        self.previous = Some((now, c));
    }

    fn poll_failed(&mut self, reason: String) {
        if self.poll_failing {
            tracing::debug!(%reason, "poll failed again");
        } else {
            tracing::warn!(%reason, "poll failed; retrying every tick");
            self.poll_failing = true;
        }
    }

    fn save_totals(&mut self, durability: Durability) -> bool {
        let snapshot = self.view.read().acc.clone();
        match self.files.totals.save(&snapshot, durability) {
            Ok(()) => {
                self.fast_dirty = false;
                if self.save_failing {
                    self.save_failing = false;
                    tracing::info!(file = %self.files.totals.path().display(), "saving works again");
                }
                tracing::trace!(?durability, "totals saved");
                true
            }
            Err(e) => {
                if !self.save_failing {
                    tracing::warn!(error = %e, "could not save totals; still counting in memory and retrying");
                    self.save_failing = true;
                }
                false
            }
        }
    }

    fn save_history(&self) -> bool {
        let snapshot = self.view.read().history.clone();
        match self.files.history.save(&snapshot, Durability::Durable) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "could not save history");
                false
            }
        }
    }

    fn checkpoint(&mut self) {
        if !self.durable_dirty {
            return;
        }
        if self.save_totals(Durability::Durable) && self.save_history() {
            self.durable_dirty = false;
            tracing::debug!("checkpoint saved");
        }
    }

    fn save_all(&mut self, reason: &str) {
        let totals = self.save_totals(Durability::Durable);
        let history = self.save_history();
        let t = self.view.read().acc.totals;
        if totals && history {
            tracing::info!(
                reason,
                upload = t.total_upload,
                download = t.total_download,
                "stats saved"
            );
        } else {
            tracing::error!(
                reason,
                upload = t.total_upload,
                download = t.total_download,
                "stats could not be saved on {reason}"
            );
        }
    }

    /// Validates and applies preference changes; returns the new preferences if anything
    /// that affects the timers changed.
    fn set_config(
        &mut self,
        changes: &Map<String, Value>,
        args: &Args,
    ) -> Result<Option<StatsConfig>, DispatchError> {
        let current = self.view.read().config.clone();
        let next = current.with_changes(changes, args)?;
        if next == current {
            return Ok(None);
        }
        self.files
            .conf
            .save(&next, Durability::Durable)
            .map_err(|e| plugin_error(args, "preferences not changed", e))?;
        let mut view = self.view.write();
        if next.update_interval != current.update_interval {
            tracing::info!(
                from = current.update_interval,
                to = next.update_interval,
                "poll interval changed; history restarts at the new resolution"
            );
            view.history = History::new(next.update_interval, next.length);
        } else if next.length != current.length {
            view.history.set_length(next.length);
        }
        view.config = next.clone();
        tracing::info!(config = ?next, "preferences changed");
        let timers_changed = next.update_interval != current.update_interval
            || next.save_interval != current.save_interval;
        Ok(timers_changed.then_some(next))
    }

    /// Saves `next` durably, then makes it the state; if the save fails nothing changes and
    /// the error starts with `what`.
    fn commit(&mut self, next: Accumulator, args: &Args, what: &str) -> Result<(), DispatchError> {
        self.files
            .totals
            .save(&next, Durability::Durable)
            .map_err(|e| plugin_error(args, what, e))?;
        self.view.write().acc = next;
        Ok(())
    }

    fn import(
        &mut self,
        args: &Args,
        source: &str,
        fingerprint: &str,
        added: Counters,
    ) -> Result<Counters, DispatchError> {
        let next = self
            .view
            .read()
            .acc
            .import(source, fingerprint, added, unix_now() as u64)
            .map_err(|e| args.value_error("fingerprint", e.to_string()))?;
        let totals = next.totals;
        self.commit(next, args, "nothing imported")?;
        tracing::info!(source, fingerprint, ?added, "imported all-time totals");
        Ok(totals)
    }

    fn reset(&mut self, args: &Args) -> Result<Counters, DispatchError> {
        if self.fast_dirty {
            self.save_totals(Durability::Fast);
        }
        let before = self.view.read().acc.clone();
        let mut next = before.clone();
        next.totals = Counters::default();
        next.updated = unix_now() as u64;
        let kept = self
            .files
            .totals
            .keep_copy(&format!("reset-{}", next.updated))
            .map_err(|e| plugin_error(args, "totals not reset: could not keep a copy", e))?;
        self.commit(next, args, "totals not reset")?;
        tracing::warn!(
            upload = before.totals.total_upload,
            download = before.totals.total_download,
            kept_as = ?kept,
            "all-time totals reset; the file before the reset is kept"
        );
        Ok(before.totals)
    }
}

fn plugin_error(args: &Args, what: &str, e: impl std::fmt::Display) -> DispatchError {
    DispatchError::Plugin {
        method: args.method().to_string(),
        message: format!("{what}: {e}"),
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
