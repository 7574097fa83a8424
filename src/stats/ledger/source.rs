//! One source's side of the ledger: the bytes counted since the last save, held in memory
//! per bucket, and the reconciliation with the totals file when the source opens.

use std::sync::Arc;

use super::calendar::{self, Bucket};
use super::db::{self, Adjustment, Amount, Batch, Ledger, LedgerError, SourceState};
use crate::stats::totals::{Accumulator, Counters};

/// One source's ledger: counts in memory, saved as a [`Batch`] with each totals save.
#[derive(Debug)]
pub struct SourceLedger {
    ledger: Arc<Ledger>,
    name: String,
    /// What the file holds for this source.
    saved: SourceState,
    /// The latest instant bytes went in, saved or not.
    latest: i64,
    /// Bytes counted since the last save, per bucket.
    pending: Vec<(Bucket, Counters)>,
    /// Adjustments not saved yet (a save that failed).
    adjustments: Vec<Adjustment>,
    /// The buckets of the last instant counted (valid while it is in the first, 5 min).
    current: Option<[Bucket; 5]>,
    /// A save since the last synced one was not synced (a checkpoint syncs it).
    unsynced: bool,
}

impl SourceLedger {
    /// Opens `name`'s ledger, first reconciling it with the totals file's `acc` at `now`:
    /// a new source begins with its totals as "before the ledger"; resets and imports the
    /// ledger missed become adjustments; other differences go into the bucket of the
    /// totals' last update (or, if the totals file holds less, come out of the latest
    /// buckets), logged.
    pub fn open(
        ledger: Arc<Ledger>,
        name: &str,
        acc: &Accumulator,
        now: i64,
    ) -> Result<SourceLedger, LedgerError> {
        let saved = reconcile(&ledger, name, acc, now)?;
        Ok(SourceLedger {
            ledger,
            name: name.to_string(),
            saved,
            latest: saved.latest,
            pending: Vec::new(),
            adjustments: Vec::new(),
            current: None,
            unsynced: false,
        })
    }

    /// The shared ledger.
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// Counts `delta` at the wall-clock instant `now` (Unix seconds): into the buckets of
    /// `now`, or of the latest instant already used if the clock went back.
    pub fn count(&mut self, delta: Counters, now: i64) {
        if delta.is_zero() {
            return;
        }
        let t = now.max(self.latest);
        self.latest = t;
        if !self.current.as_ref().is_some_and(|b| b[0].contains(t)) {
            self.current = Some(calendar::buckets(self.ledger.time_zone(), t));
        }
        let buckets = self.current.as_ref().expect("set above");
        for bucket in buckets {
            match self
                .pending
                .iter_mut()
                .find(|(b, _)| b.period == bucket.period && b.start == bucket.start)
            {
                Some((_, bytes)) => *bytes = bytes.saturating_add(delta),
                None => self.pending.push((bucket.clone(), delta)),
            }
        }
    }

    /// Whether a save has anything to write; a `durable` one also when an earlier save
    /// was not synced (the checkpoint's transaction syncs the log with it).
    pub fn dirty(&self, acc: &Accumulator, durable: bool) -> bool {
        !self.pending.is_empty()
            || !self.adjustments.is_empty()
            || self.state_of(acc) != self.saved
            || (durable && self.unsynced)
    }

    fn state_of(&self, acc: &Accumulator) -> SourceState {
        SourceState {
            accounted: acc.totals,
            latest: self.latest,
            imports: acc.imports.len() as u64,
            resets: acc.resets,
        }
    }

    /// The batch that brings the file to `acc` (whose totals the pending bytes account
    /// for), with an adjustment if it is a reset or import; [`finish`](Self::finish) it.
    pub fn take(&mut self, acc: &Accumulator, adjustment: Option<Adjustment>) -> Batch {
        let mut adjustments = std::mem::take(&mut self.adjustments);
        adjustments.extend(adjustment);
        Batch {
            source: self.name.clone(),
            rows: std::mem::take(&mut self.pending),
            state: self.state_of(acc),
            adjustments,
        }
    }

    /// Records a batch's outcome (`durable`: written synced): saved, or its bytes back
    /// in memory for the next save.
    pub fn finish(&mut self, batch: Batch, saved: bool, durable: bool) {
        if saved {
            self.saved = batch.state;
            self.unsynced = !durable;
            return;
        }
        self.adjustments = batch.adjustments;
        for (bucket, bytes) in batch.rows {
            match self
                .pending
                .iter_mut()
                .find(|(b, _)| b.period == bucket.period && b.start == bucket.start)
            {
                Some((_, b)) => *b = b.saturating_add(bytes),
                None => self.pending.push((bucket, bytes)),
            }
        }
    }
}

/// The adjustment of a reset from `before` (the totals it zeroed).
pub fn reset_adjustment(before: &Counters, at: i64) -> Adjustment {
    Adjustment {
        kind: "reset",
        at,
        amount: db::fields(before).map(|v| -v),
        note: "stats.reset_totals".into(),
    }
}

/// The adjustment of an import.
pub fn import_adjustment(
    program: &str,
    fingerprint: &str,
    added: &Counters,
    at: i64,
) -> Adjustment {
    Adjustment {
        kind: "import",
        at,
        amount: db::fields(added),
        note: format!("imported from {program} ({fingerprint})"),
    }
}

fn add(a: Counters, amount: Amount) -> Counters {
    let f = db::fields(&a);
    db::counters(std::array::from_fn(|i| {
        f[i].saturating_add(amount[i]).max(0)
    }))
}

/// The batches that bring the ledger's record of a source to its totals file.
struct Plan<'a> {
    name: &'a str,
    state: SourceState,
    batches: Vec<Batch>,
}

impl Plan<'_> {
    /// Records `adjustment` with the state as it is now.
    fn push(&mut self, rows: Vec<(Bucket, Counters)>, adjustment: Option<Adjustment>) {
        self.batches.push(Batch {
            source: self.name.into(),
            rows,
            state: self.state,
            adjustments: adjustment.into_iter().collect(),
        });
    }
}

/// The adjustments the ledger missed: its start, resets and imports after its last save.
fn missed<'a>(name: &'a str, known: Option<SourceState>, acc: &Accumulator, now: i64) -> Plan<'a> {
    let updated = i64::try_from(acc.updated).unwrap_or(now).min(now);
    let start = SourceState {
        accounted: acc.totals,
        latest: 0,
        imports: acc.imports.len() as u64,
        resets: acc.resets,
    };
    let mut plan = Plan {
        name,
        state: known.unwrap_or(start),
        batches: Vec::new(),
    };
    if known.is_none() {
        tracing::info!(source = name, ?acc.totals, "the ledger begins: these totals are before it");
        plan.push(
            Vec::new(),
            Some(Adjustment {
                kind: "start",
                at: now,
                amount: db::fields(&acc.totals),
                note: "the all-time totals when the ledger began".into(),
            }),
        );
    }
    if acc.resets > plan.state.resets {
        tracing::warn!(source = name, accounted = ?plan.state.accounted, "the totals were reset after the ledger's last save: recording the reset");
        let adjustment = reset_adjustment(&plan.state.accounted, updated);
        plan.state.accounted = Counters::default();
        plan.state.resets = acc.resets;
        plan.push(Vec::new(), Some(adjustment));
    }
    for import in acc.imports.iter().skip(plan.state.imports as usize) {
        tracing::warn!(
            source = name,
            fingerprint = import.fingerprint,
            "an import the ledger missed: recording it"
        );
        let at = i64::try_from(import.at).unwrap_or(now);
        let adjustment = import_adjustment(&import.source, &import.fingerprint, &import.added, at);
        plan.state.accounted = add(plan.state.accounted, adjustment.amount);
        plan.state.imports += 1;
        plan.push(Vec::new(), Some(adjustment));
    }
    plan
}

/// Brings the ledger's record of `name` to the totals file's `acc`, in one transaction.
fn reconcile(
    ledger: &Ledger,
    name: &str,
    acc: &Accumulator,
    now: i64,
) -> Result<SourceState, LedgerError> {
    let known = ledger.state(name)?;
    let mut plan = missed(name, known, acc, now);
    let more = acc.totals.saturating_sub(plan.state.accounted);
    let less = plan.state.accounted.saturating_sub(acc.totals);
    let mut rows = Vec::new();
    if !more.is_zero() {
        let t = i64::try_from(acc.updated).unwrap_or(now).clamp(0, now);
        tracing::warn!(source = name, bytes = ?more, at = t, "the totals file holds bytes the ledger had not saved: they go into the buckets of the totals' last update");
        rows = calendar::buckets(ledger.time_zone(), t)
            .into_iter()
            .map(|b| (b, more))
            .collect();
        plan.state.latest = plan.state.latest.max(t);
    }
    plan.state.accounted = acc.totals;
    plan.state.imports = plan.state.imports.max(acc.imports.len() as u64);
    if !rows.is_empty() || known != Some(plan.state) || !plan.batches.is_empty() {
        plan.push(rows, None);
    }
    let state = plan.state;
    let mut db = db::lock(&ledger.writer);
    let run = |db: &mut rusqlite::Connection| -> rusqlite::Result<()> {
        let tx = db.transaction()?;
        if !less.is_zero() {
            tracing::warn!(source = name, bytes = ?less, "the totals file holds fewer bytes than the ledger (a power loss?): taking them out of the latest buckets");
            let unmet = db::take_back(&tx, name, less)?;
            if !unmet.is_zero() {
                let lost = Batch {
                    source: name.into(),
                    rows: Vec::new(),
                    state,
                    adjustments: vec![Adjustment {
                        kind: "lost",
                        at: now,
                        amount: db::fields(&unmet).map(|v| -v),
                        note: "bytes the totals file lost that the buckets did not hold".into(),
                    }],
                };
                db::write_batch(&tx, &lost)?;
            }
        }
        for batch in &plan.batches {
            db::write_batch(&tx, batch)?;
        }
        tx.commit()
    };
    run(&mut db).map_err(|e| ledger.err(e))?;
    Ok(state)
}
