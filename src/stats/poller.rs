//! The poll task: the single owner of the Stats plugin's state and files.
//!
//! It polls the source every `update_interval` seconds, feeds the accumulator and the
//! history, writes `stats.totals` cheaply after every poll that changed it, checkpoints
//! totals and history with fsync every `save_interval` seconds while anything changed,
//! and saves everything when it stops. Exports read its state through a shared lock and
//! send it commands for changes, so every file has exactly one writer. File writes and
//! fsyncs run on tokio's blocking threads, never on the async workers that serve clients.
//! After every poll (answered or not) and every change it publishes a [`Snapshot`].

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use crate::clock::unix_now;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::plugin::Shutdown;
use crate::session::SourceError;
use crate::session::{SessionId, SessionSource, SessionStatus, StatusKey};
use crate::stats::config::{ConfigError, StatsConfig};
use crate::stats::history::History;
#[cfg(feature = "ledger")]
use crate::stats::ledger::{self, Adjustment, SourceLedger};
use crate::stats::totals::{Accumulator, Counters, ImportRefused};
use crate::store::StoreError;
use crate::store::{Durability, Store};

/// How the source and the files are doing: what `stats.get_status` returns. Times are
/// Unix seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Health {
    /// The source's description (never a password).
    pub source: String,
    /// The session identity of the last answer.
    pub session: Option<String>,
    /// Whether the last poll was answered with every required counter.
    pub source_up: bool,
    /// Why the last failed poll failed (kept until the next successful poll).
    pub last_error: Option<String>,
    /// When the current run of failed polls began.
    pub failing_since: Option<f64>,
    /// When the last successful poll was.
    pub last_poll: Option<f64>,
    /// When totals were last written (fast or durable).
    pub last_save: Option<f64>,
    /// When the last fsync'd checkpoint was.
    pub last_checkpoint: Option<f64>,
    /// Whether saving fails (counting goes on in memory).
    pub save_failing: bool,
    /// Why the last failed save failed (kept until a save works).
    pub save_error: Option<String>,
    /// The counters the source reports, of `total_upload`, `total_download`,
    /// `total_payload_upload`, `total_payload_download` (a payload-only engine lists two).
    pub measured: Vec<String>,
    /// Successful polls since the plugin was enabled.
    pub polls: u64,
    /// Failed polls since the plugin was enabled.
    pub poll_errors: u64,
    /// Failed saves since the plugin was enabled.
    pub save_errors: u64,
}

/// Current rates and peers, from the last answered poll (rates the source does not report
/// are derived from counter deltas).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Rates {
    /// Bytes/s sent, overhead included.
    pub upload_rate: u64,
    /// Bytes/s received, overhead included.
    pub download_rate: u64,
    /// Payload bytes/s sent.
    pub payload_upload_rate: u64,
    /// Payload bytes/s received.
    pub payload_download_rate: u64,
    /// Connected peers.
    pub num_peers: u64,
    /// Open connections.
    pub num_connections: u64,
    /// DHT routing-table nodes.
    pub dht_nodes: u64,
}

/// One source's figures in a [`Snapshot`] (and in `stats.get_sources`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct SourceSnapshot {
    /// Its name: the metrics label and the key in every API.
    pub name: String,
    /// Its kind (`engine`, `sim`, `deluge`, `transmission`, `qbittorrent`, `rqbit`).
    pub kind: String,
    /// What it is (address, port, paths; never a password). Shown, never a key.
    pub description: String,
    /// Removed: no longer polled, its totals still in the combined figures.
    pub retired: bool,
    /// Its all-time totals.
    pub totals: Counters,
    /// Its current session's counters (zero when retired).
    pub session_totals: Counters,
    /// Its current session's identity.
    pub session: Option<SessionId>,
    /// Its rates and peers (zero when retired).
    pub rates: Rates,
    /// Its health.
    pub health: Health,
}

/// Everything an in-process reader may want after a poll: published on the Stats
/// handle's [`watch`](crate::stats::StatsHandle::watch) channel. The top-level figures
/// are the combined ones (every source's all-time totals, retired ones included; the sum
/// of the active sources' sessions and rates); `sources` has each source's.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Snapshot {
    /// Whether the plugin is enabled (false before the first enable and after a disable).
    pub running: bool,
    /// All-time totals.
    pub totals: Counters,
    /// The current session's counters.
    pub session_totals: Counters,
    /// The current session's identity (with one active source; `None` with several).
    pub session: Option<SessionId>,
    /// Rates and peers.
    pub rates: Rates,
    /// Source and file health, combined.
    pub health: Health,
    /// Each source, in the order they were added.
    pub sources: Vec<SourceSnapshot>,
    /// Current preferences.
    pub config: StatsConfig,
    /// Unix seconds when this snapshot was made.
    pub at: f64,
    /// Each quota's state (feature `ledger`).
    #[cfg(feature = "ledger")]
    #[cfg_attr(docsrs, doc(cfg(feature = "ledger")))]
    pub quotas: Vec<crate::stats::ledger::quota::QuotaStatus>,
}

/// The state exports read.
#[derive(Debug, Clone)]
pub(crate) struct View {
    /// Totals, last counters and session.
    pub acc: Accumulator,
    /// Rate and peer history.
    pub history: History,
    /// Current preferences.
    pub config: StatsConfig,
    /// Source and file health.
    pub health: Health,
    /// Last rates and peers.
    pub rates: Rates,
}

impl View {
    /// This source's part of a snapshot.
    pub(crate) fn source_snapshot(&self, name: &str, kind: &str, retired: bool) -> SourceSnapshot {
        SourceSnapshot {
            name: name.to_string(),
            kind: kind.to_string(),
            description: self.health.source.clone(),
            retired,
            totals: self.acc.totals,
            session_totals: if retired {
                Counters::default()
            } else {
                self.acc.last
            },
            session: self.acc.session.clone(),
            rates: if retired {
                Rates::default()
            } else {
                self.rates
            },
            health: self.health.clone(),
        }
    }
}

/// The view shared between the poll task (writer) and the exports (readers).
#[derive(Debug, Clone)]
pub(crate) struct SharedView(Arc<RwLock<View>>);

impl SharedView {
    pub(crate) fn new(view: View) -> Self {
        SharedView(Arc::new(RwLock::new(view)))
    }

    /// Read access for exports.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, View> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, View> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the preferences of a view no poll task owns (a retired source's).
    pub(crate) fn write_config(&self, config: StatsConfig) {
        self.write().config = config;
    }
}

/// A change the poll task refused: nothing of it was applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChangeError {
    /// A preference out of its range.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Totals from that program were imported already.
    #[error(transparent)]
    Import(#[from] ImportRefused),
    /// The change could not be saved, so it was not made.
    #[error("{what}: {message}")]
    Save {
        /// What did not happen (`"preferences not changed"`, `"totals not reset"`, ...).
        what: &'static str,
        /// The store's error.
        message: String,
    },
}

/// Another program's all-time totals to add once (`stats.import_totals`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// The program they come from (`deluge`, `transmission`, ...).
    pub source: String,
    /// What identifies the imported file, so the same totals are never added twice.
    pub fingerprint: String,
    /// The totals to add.
    pub totals: Counters,
}

/// A request from the plugin to one source's poll task.
pub(crate) enum Command {
    /// Make these preferences (validated and saved by the plugin) the ones in force.
    Apply(StatsConfig, oneshot::Sender<()>),
    /// Zero the all-time totals; answers with the totals before the reset.
    Reset(oneshot::Sender<Result<Counters, ChangeError>>),
    /// Add another program's totals once; answers with the new totals.
    Import(Import, oneshot::Sender<Result<Counters, ChangeError>>),
    /// Poll now (after any poll in flight), count and save; answers with the totals.
    PollNow(oneshot::Sender<Result<Counters, SourceError>>),
}

/// Called after every change of a source's view: the plugin publishes its snapshot, at
/// once (`true`: a change asked for) or coalesced with other sources' polls (`false`: a
/// scheduled poll).
pub(crate) type Publish = Arc<dyn Fn(bool) + Send + Sync>;

/// How long a disable waits for the final poll.
pub const FINAL_POLL_TIMEOUT: Duration = Duration::from_secs(1);

/// The keys polled from the source.
const POLL_KEYS: [StatusKey; 13] = StatusKey::ALL;

type PollFuture = Pin<Box<dyn Future<Output = Result<SessionStatus, SourceError>> + Send>>;

/// The files the poll task owns.
pub(crate) struct Files {
    pub totals: Store<Accumulator>,
    pub history: Store<History>,
}

/// The kinds of save [`Poller::save_outcome`] tracks: a poll's fast totals write, a
/// durable totals checkpoint, a history save.
const TOTALS: &str = "totals";
/// See [`TOTALS`].
const TOTALS_CHECKPOINT: &str = "totals checkpoint";
/// See [`TOTALS`].
const HISTORY: &str = "history";
/// See [`TOTALS`]: the calendar ledger's save.
#[cfg(feature = "ledger")]
const LEDGER: &str = "ledger";
/// How often a checkpoint also deletes the ledger's 5-minute and hourly buckets past
/// their retention.
#[cfg(feature = "ledger")]
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

pub(crate) struct Poller {
    source: Arc<dyn SessionSource>,
    view: SharedView,
    files: Arc<Files>,
    publish: Publish,
    /// The plugin's poll grid (see [`next_on_grid`]).
    epoch: Instant,
    /// `stats.totals` lags the memory state (a cheap write is due).
    fast_dirty: bool,
    /// Something changed since the last fsync'd checkpoint.
    durable_dirty: bool,
    /// The kinds of save failing now (`totals`, `totals checkpoint`, `history`) with their
    /// error: a failure shows until that kind of save has worked again, so a checkpoint
    /// that keeps failing is not hidden by the cheap totals writes that still work.
    failing: Vec<(&'static str, String)>,
    poll_failing: bool,
    previous: Option<(Instant, Counters)>,
    /// The session and uptime of the last answered sample that reported one, and when it
    /// came (monotonic: a wall clock that jumps cannot fake a restart in one run).
    last_uptime: Option<(Instant, SessionId, u64)>,
    /// This source's calendar ledger, saved with the totals.
    #[cfg(feature = "ledger")]
    ledger: Option<SourceLedger>,
    /// When the ledger was last pruned.
    #[cfg(feature = "ledger")]
    pruned: Option<Instant>,
}

/// The first instant at least half a `period` after `now` on the grid of `period` from
/// `epoch`: every source of a plugin polls on one grid, so their polls share the
/// runtime's wake-ups (and a poll just made is not followed by one a moment later).
fn next_on_grid(epoch: Instant, period: Duration, now: Instant) -> Instant {
    let period_ns = period.as_nanos().max(1);
    let since = (now + period / 2)
        .saturating_duration_since(epoch)
        .as_nanos();
    let steps = since / period_ns + 1;
    epoch + Duration::from_nanos(u64::try_from(steps * period_ns).unwrap_or(u64::MAX))
}

fn every(period: Duration, first: Instant) -> Interval {
    let mut i = tokio::time::interval_at(first, period);
    i.set_missed_tick_behavior(MissedTickBehavior::Skip);
    i
}

/// Each wire counter, its rate and the payload rate under it.
const WIRE_RATES: [(StatusKey, StatusKey, StatusKey); 2] = [
    (
        StatusKey::TotalDownload,
        StatusKey::DownloadRate,
        StatusKey::PayloadDownloadRate,
    ),
    (
        StatusKey::TotalUpload,
        StatusKey::UploadRate,
        StatusKey::PayloadUploadRate,
    ),
];

impl Poller {
    pub(crate) fn new(
        source: Arc<dyn SessionSource>,
        view: SharedView,
        files: Files,
        publish: Publish,
        epoch: Instant,
    ) -> Self {
        Poller {
            source,
            view,
            files: Arc::new(files),
            publish,
            epoch,
            fast_dirty: false,
            durable_dirty: false,
            failing: Vec::new(),
            poll_failing: false,
            previous: None,
            last_uptime: None,
            #[cfg(feature = "ledger")]
            ledger: None,
            #[cfg(feature = "ledger")]
            pruned: None,
        }
    }

    /// Counts into `ledger` too, saved with every totals save.
    #[cfg(feature = "ledger")]
    pub(crate) fn with_ledger(mut self, ledger: SourceLedger) -> Self {
        self.ledger = Some(ledger);
        self
    }

    /// Runs until either shutdown signal fires, then saves everything; ends with the
    /// final save's error, if it failed.
    pub(crate) async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut host_shutdown: Shutdown,
        mut stop: Shutdown,
    ) -> Result<(), String> {
        let config = self.view.read().config.clone();
        // The first poll at once, then on the plugin's grid.
        let period = secs(config.update_interval);
        let mut poll = every(period, next_on_grid(self.epoch, period, Instant::now()));
        let save_period = secs(config.save_interval);
        let mut checkpoint = every(save_period, Instant::now() + save_period);
        let mut pending: Option<PollFuture> = Some(self.start_poll());
        self.publish();
        loop {
            tokio::select! {
                _ = poll.tick(), if pending.is_none() => {
                    pending = Some(self.start_poll());
                }
                result = async { pending.as_mut().expect("guarded by is_some").await },
                    if pending.is_some() => {
                    pending = None;
                    self.on_poll(result).await;
                }
                _ = checkpoint.tick() => self.checkpoint().await,
                command = commands.recv() => match command {
                    Some(Command::PollNow(reply)) => {
                        // A poll in flight is counted first: counters must arrive in order.
                        if let Some(earlier) = pending.take() {
                            let result = earlier.await;
                            self.on_poll(result).await;
                        }
                        let result = self.start_poll().await;
                        let answer = match &result {
                            Ok(status) => Counters::from_status(status)
                                .map(|_| ())
                                .map_err(SourceError::Missing),
                            Err(e) => Err(e.clone()),
                        };
                        self.on_poll_with(result, false).await;
                        let answer = answer.map(|()| self.view.read().acc.totals);
                        let _ = reply.send(answer);
                    }
                    Some(Command::Apply(next, reply)) => {
                        if let Some(new) = self.apply_config(next) {
                            let period = secs(new.update_interval);
                            poll = every(period, next_on_grid(self.epoch, period, Instant::now()));
                            let period = secs(new.save_interval);
                            checkpoint = every(period, Instant::now() + period);
                        }
                        let _ = reply.send(());
                    }
                    Some(Command::Reset(reply)) => {
                        let _ = reply.send(self.reset().await);
                        self.publish();
                    }
                    Some(Command::Import(import, reply)) => {
                        let _ = reply.send(self.import(import).await);
                        self.publish();
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
            Ok(result) => self.on_poll(result).await,
            Err(_) => tracing::warn!("final poll timed out; saving the last counted totals"),
        }
        let saved = self.save_all("disable").await;
        self.publish();
        saved
    }

    /// Tells the plugin the view changed (it publishes at once).
    fn publish(&self) {
        (self.publish)(true);
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

    async fn on_poll(&mut self, result: Result<SessionStatus, SourceError>) {
        self.on_poll_with(result, true).await
    }

    /// Counts a poll's answer and saves; `scheduled` polls (one per `update_interval`)
    /// also add a history point, on-demand ones (`poll_now`) do not, so the history keeps
    /// its spacing.
    async fn on_poll_with(&mut self, result: Result<SessionStatus, SourceError>, scheduled: bool) {
        let before = self.notable();
        self.apply_poll(result, scheduled);
        if self.fast_dirty {
            self.save_totals(Durability::Fast).await;
        }
        // At once when something a reader shows changed (the first answer, totals, rates,
        // up or down, the error); a poll that changed only the poll count and time may
        // share a snapshot with other sources' polls.
        let first = {
            let h = &self.view.read().health;
            h.polls + h.poll_errors == 1
        };
        (self.publish)(!scheduled || first || self.notable() != before);
    }

    /// What a poll changes that readers show.
    fn notable(&self) -> (bool, Option<String>, Counters, Rates) {
        let v = self.view.read();
        (
            v.health.source_up,
            v.health.last_error.clone(),
            v.acc.totals,
            v.rates,
        )
    }

    fn apply_poll(&mut self, result: Result<SessionStatus, SourceError>, scheduled: bool) {
        let status = match result {
            Ok(status) => status,
            Err(e) => return self.poll_failed(e),
        };
        let counters = match Counters::from_status(&status) {
            Ok(c) => c,
            Err(key) => return self.poll_failed(SourceError::Missing(key)),
        };
        if self.poll_failing {
            self.poll_failing = false;
            tracing::info!("session source answers again");
        }
        let now = unix_now();
        let changed = {
            let shared = self.view.clone();
            let mut view = shared.write();
            let health = &mut view.health;
            health.source_up = true;
            health.last_error = None;
            health.failing_since = None;
            health.last_poll = Some(now);
            health.polls += 1;
            // Rebuilt only when they change: the poll tick does not allocate for them.
            if health.session.as_deref() != Some(status.session.0.as_str()) {
                health.session = Some(status.session.0.clone());
            }
            let measured = StatusKey::COUNTERS
                .iter()
                .filter(|k| status.values.contains_key(k))
                .map(|k| k.as_str());
            if !measured
                .clone()
                .eq(health.measured.iter().map(String::as_str))
            {
                health.measured = measured.map(String::from).collect();
            }
            let expected = self.expected_uptime(&view.acc, &status.session);
            let (mut next, step) =
                view.acc
                    .apply_timed(&status.session, counters, status.uptime, expected);
            self.last_uptime = status
                .uptime
                .map(|u| (Instant::now(), status.session.clone(), u));
            if step.new_session {
                tracing::info!(session = %status.session, "counting a new session");
                self.previous = None;
            }
            if step.changed() {
                next.updated = now as u64;
            }
            #[cfg(feature = "ledger")]
            if let Some(ledger) = self.ledger.as_mut() {
                ledger.count(next.totals.saturating_sub(view.acc.totals), now as i64);
            }
            view.acc = next;
            let mut values = status.values;
            // Wire rates a payload-only source (the embedded engine) cannot give.
            let unmeasured = WIRE_RATES.map(|(total, rate, _)| {
                !values.contains_key(&total) && !values.contains_key(&rate)
            });
            self.derive_rates(&mut values, counters);
            for ((_, rate, payload), unmeasured) in WIRE_RATES.into_iter().zip(unmeasured) {
                // Their lower bound, the payload rate, as with `core.get_session_status`:
                // Deluge's graphs draw the wire rates, and would stay flat at 0.
                if let Some(p) = values.get(&payload).copied().filter(|_| unmeasured) {
                    values.insert(rate, p);
                }
            }
            let v = |k| values.get(&k).copied().unwrap_or(0);
            view.rates = Rates {
                upload_rate: v(StatusKey::UploadRate),
                download_rate: v(StatusKey::DownloadRate),
                payload_upload_rate: v(StatusKey::PayloadUploadRate),
                payload_download_rate: v(StatusKey::PayloadDownloadRate),
                num_peers: v(StatusKey::NumPeers),
                num_connections: v(StatusKey::NumConnections),
                dht_nodes: v(StatusKey::DhtNodes),
            };
            if scheduled {
                view.history.push(&values, now);
            }
            step.changed()
        };
        if changed {
            self.fast_dirty = true;
            self.durable_dirty = true;
        }
    }

    /// The uptime the session of this sample would have now had it not restarted: from
    /// the last sample of this run (monotonic clock), else from the totals file (the
    /// uptime when they last changed plus the wall-clock time since).
    fn expected_uptime(&self, acc: &Accumulator, session: &SessionId) -> Option<u64> {
        match &self.last_uptime {
            Some((at, s, uptime)) if s == session => {
                Some(uptime.saturating_add(at.elapsed().as_secs()))
            }
            Some(_) => None,
            None if acc.session.as_ref() == Some(session) => acc
                .uptime
                .map(|u| u.saturating_add((unix_now() as u64).saturating_sub(acc.updated))),
            None => None,
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

    fn poll_failed(&mut self, error: SourceError) {
        let reason = error.to_string();
        {
            let mut view = self.view.write();
            let health = &mut view.health;
            if health.source_up || health.failing_since.is_none() {
                health.failing_since = Some(unix_now());
            }
            health.source_up = false;
            health.last_error = Some(reason.clone());
            health.poll_errors += 1;
        }
        if self.poll_failing {
            tracing::debug!(%reason, "poll failed again");
        } else {
            tracing::warn!(%reason, "poll failed; retrying every tick");
            self.poll_failing = true;
        }
    }

    /// Records a save's outcome in the health view: `save_failing` holds while any kind of
    /// save ([`TOTALS`], [`TOTALS_CHECKPOINT`], [`HISTORY`]) fails, `save_error` is the
    /// latest failure's error, `save_errors` counts every failure.
    fn save_outcome<E: std::fmt::Display>(&mut self, result: &Result<(), E>, kind: &'static str) {
        let was_failing = !self.failing.is_empty();
        let kind_was_failing = self.failing.iter().any(|(k, _)| *k == kind);
        // A checkpoint writes the totals file too: it also ends a failing fast save.
        self.failing.retain(|(k, _)| {
            *k != kind && !(result.is_ok() && kind == TOTALS_CHECKPOINT && *k == TOTALS)
        });
        if let Err(e) = result {
            self.failing.push((kind, e.to_string()));
        }
        let mut view = self.view.write();
        let health = &mut view.health;
        match result {
            Ok(()) if was_failing && self.failing.is_empty() => {
                tracing::info!(file = kind, "saving works again");
            }
            Ok(()) => {}
            Err(e) => {
                if !kind_was_failing {
                    tracing::warn!(error = %e, "could not save {kind}; still counting in memory and retrying");
                }
                health.save_errors += 1;
            }
        }
        health.save_failing = !self.failing.is_empty();
        health.save_error = self.failing.last().map(|(_, e)| e.clone());
    }

    async fn save_totals(&mut self, durability: Durability) -> bool {
        let snapshot = self.view.read().acc.clone();
        let files = self.files.clone();
        let saved = snapshot.clone();
        let result = blocking(move || files.totals.save(&saved, durability)).await;
        let kind = match durability {
            Durability::Durable => TOTALS_CHECKPOINT,
            Durability::Fast => TOTALS,
        };
        self.save_outcome(&result, kind);
        if result.is_ok() {
            #[cfg(feature = "ledger")]
            if !self
                .save_ledger(&snapshot, durability == Durability::Durable, None)
                .await
            {
                return false;
            }
            self.fast_dirty = false;
            let now = Some(unix_now());
            let mut view = self.view.write();
            view.health.last_save = now;
            if durability == Durability::Durable {
                view.health.last_checkpoint = now;
            }
            tracing::trace!(?durability, "totals saved");
        }
        result.is_ok()
    }

    async fn save_history(&mut self) -> bool {
        let snapshot = self.view.read().history.clone();
        let files = self.files.clone();
        let result = blocking(move || files.history.save(&snapshot, Durability::Durable)).await;
        self.save_outcome(&result, HISTORY);
        result.is_ok()
    }

    /// Saves what the ledger counted since its last save, with the totals `acc` (just
    /// saved) and an adjustment; a failure keeps it in memory for the next save.
    #[cfg(feature = "ledger")]
    async fn save_ledger(
        &mut self,
        acc: &Accumulator,
        durable: bool,
        adjustment: Option<Adjustment>,
    ) -> bool {
        let Some(book) = self.ledger.as_mut() else {
            return true;
        };
        if adjustment.is_none() && !book.dirty(acc, durable) {
            return true;
        }
        let batch = book.take(acc, adjustment);
        let ledger = book.ledger().clone();
        let prune = durable && self.pruned.is_none_or(|p| p.elapsed() >= PRUNE_EVERY);
        let (batch, result) = tokio::task::spawn_blocking(move || {
            let result = ledger.write(&batch, durable).map_err(|e| e.to_string());
            if prune && result.is_ok() {
                if let Err(e) = ledger.prune(unix_now() as i64) {
                    tracing::warn!(error = %e, "could not delete old 5-minute and hourly buckets");
                }
            }
            (batch, result)
        })
        .await
        .unwrap_or_else(|e| (Default::default(), Err(e.to_string())));
        if prune && result.is_ok() {
            self.pruned = Some(Instant::now());
        }
        if let Some(book) = self.ledger.as_mut() {
            book.finish(batch, result.is_ok(), durable);
        }
        self.save_outcome(&result, LEDGER);
        result.is_ok()
    }

    async fn checkpoint(&mut self) {
        if !self.durable_dirty {
            return;
        }
        if self.save_totals(Durability::Durable).await && self.save_history().await {
            self.durable_dirty = false;
            tracing::debug!("checkpoint saved");
        }
        self.publish();
    }

    async fn save_all(&mut self, reason: &str) -> Result<(), String> {
        let error = |this: &Self, what: &str| {
            let why = this.view.read().health.save_error.clone();
            format!(
                "{what} not saved: {}",
                why.as_deref().unwrap_or("unknown error")
            )
        };
        let mut failed = Vec::new();
        if !self.save_totals(Durability::Durable).await {
            failed.push(error(self, "totals"));
        }
        if !self.save_history().await {
            failed.push(error(self, "history"));
        }
        let t = self.view.read().acc.totals;
        if failed.is_empty() {
            tracing::info!(
                reason,
                upload = t.total_upload,
                download = t.total_download,
                payload_upload = t.total_payload_upload,
                payload_download = t.total_payload_download,
                "stats saved"
            );
            Ok(())
        } else {
            let failed = failed.join("; ");
            tracing::error!(
                reason,
                upload = t.total_upload,
                download = t.total_download,
                error = %failed,
                "stats could not be saved on {reason}"
            );
            Err(failed)
        }
    }

    /// Makes `next` the preferences in force; returns it if the timers changed.
    fn apply_config(&mut self, next: StatsConfig) -> Option<StatsConfig> {
        let current = self.view.read().config.clone();
        if next == current {
            return None;
        }
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
        drop(view);
        self.publish();
        let timers_changed = next.update_interval != current.update_interval
            || next.save_interval != current.save_interval;
        timers_changed.then_some(next)
    }

    /// Saves `next` durably, then makes it the state; if the save fails nothing changes and
    /// the error starts with `what`.
    async fn commit(&mut self, next: Accumulator, what: &'static str) -> Result<(), ChangeError> {
        let files = self.files.clone();
        let saved = next.clone();
        blocking(move || files.totals.save(&saved, Durability::Durable))
            .await
            .map_err(|e| save_error(what, e))?;
        self.view.write().acc = next;
        Ok(())
    }

    async fn import(&mut self, import: Import) -> Result<Counters, ChangeError> {
        let Import {
            source,
            fingerprint,
            totals: added,
        } = import;
        let next = self
            .view
            .read()
            .acc
            .import(&source, &fingerprint, added, unix_now() as u64)?;
        let totals = next.totals;
        self.commit(next.clone(), "nothing imported").await?;
        #[cfg(feature = "ledger")]
        self.save_ledger(
            &next,
            true,
            Some(ledger::import_adjustment(
                &source,
                &fingerprint,
                &added,
                next.updated as i64,
            )),
        )
        .await;
        tracing::info!(source, fingerprint, ?added, "imported all-time totals");
        Ok(totals)
    }

    async fn reset(&mut self) -> Result<Counters, ChangeError> {
        if self.fast_dirty {
            self.save_totals(Durability::Fast).await;
        }
        let before = self.view.read().acc.clone();
        let mut next = before.clone();
        next.totals = Counters::default();
        next.updated = unix_now() as u64;
        next.resets = next.resets.saturating_add(1);
        let files = self.files.clone();
        let suffix = format!("reset-{}", next.updated);
        let kept = blocking(move || files.totals.keep_copy(&suffix))
            .await
            .map_err(|e| save_error("totals not reset: could not keep a copy", e))?;
        self.commit(next.clone(), "totals not reset").await?;
        #[cfg(feature = "ledger")]
        self.save_ledger(
            &next,
            true,
            Some(ledger::reset_adjustment(
                &before.totals,
                next.updated as i64,
            )),
        )
        .await;
        tracing::warn!(
            upload = before.totals.total_upload,
            download = before.totals.total_download,
            kept_as = ?kept,
            "all-time totals reset; the file before the reset is kept"
        );
        Ok(before.totals)
    }
}

fn save_error(what: &'static str, e: StoreError) -> ChangeError {
    ChangeError::Save {
        what,
        message: e.to_string(),
    }
}

/// Runs a store operation on a blocking thread.
pub(crate) async fn blocking<R: Send + 'static>(
    op: impl FnOnce() -> Result<R, StoreError> + Send + 'static,
) -> Result<R, StoreError> {
    tokio::task::spawn_blocking(op)
        .await
        .unwrap_or_else(|e| Err(StoreError::Task(e.to_string())))
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_fall_on_one_grid_at_least_half_a_period_ahead() {
        let epoch = Instant::now();
        let p = Duration::from_secs(2);
        let ms = Duration::from_millis;
        // Sources started at different moments poll at the same instants.
        for (now, next) in [
            (0, 2000),
            (300, 2000),
            (999, 2000),
            (1001, 4000),
            (1999, 4000),
            (4100, 6000),
        ] {
            assert_eq!(
                next_on_grid(epoch, p, epoch + ms(now)),
                epoch + ms(next),
                "{now}"
            );
        }
    }
}
