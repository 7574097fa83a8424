//! The accumulator: session counters in, all-time totals out. Pure; no I/O, no clock.

use serde::{Deserialize, Serialize};

use crate::session::{SessionId, SessionStatus, StatusKey};
use crate::store::Persist;

/// The largest total kept: the largest integer Deluge's wire format and TOML can carry
/// (8 EiB). Totals saturate here instead of overflowing.
pub const MAX_TOTAL: u64 = i64::MAX as u64;

/// The four cumulative byte counters, named as Deluge names them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// All bytes sent.
    pub total_upload: u64,
    /// All bytes received.
    pub total_download: u64,
    /// Payload bytes sent.
    pub total_payload_upload: u64,
    /// Payload bytes received.
    pub total_payload_download: u64,
}

impl Counters {
    /// The counters in a status sample, or the first required key that is missing.
    ///
    /// A source reports the wire totals (`total_upload` and `total_download`, both), or,
    /// if it measures payload only, no wire total and both payload totals
    /// (`total_payload_upload`, `total_payload_download`). Counters it does not report
    /// count as 0: they are never derived from the others.
    pub fn from_status(status: &SessionStatus) -> Result<Counters, StatusKey> {
        let get = |k| status.get(k);
        let wire = (get(StatusKey::TotalUpload), get(StatusKey::TotalDownload));
        let payload = (
            get(StatusKey::TotalPayloadUpload),
            get(StatusKey::TotalPayloadDownload),
        );
        match (wire, payload) {
            ((Some(_), Some(_)), _) | ((None, None), (Some(_), Some(_))) => {}
            ((None, Some(_)), _) | ((None, None), (None, None)) => {
                return Err(StatusKey::TotalUpload)
            }
            ((Some(_), None), _) => return Err(StatusKey::TotalDownload),
            ((None, None), (None, Some(_))) => return Err(StatusKey::TotalPayloadUpload),
            ((None, None), (Some(_), None)) => return Err(StatusKey::TotalPayloadDownload),
        }
        Ok(Counters {
            total_upload: wire.0.unwrap_or(0),
            total_download: wire.1.unwrap_or(0),
            total_payload_upload: payload.0.unwrap_or(0),
            total_payload_download: payload.1.unwrap_or(0),
        }
        .clamped())
    }

    fn fields(&self) -> [u64; 4] {
        [
            self.total_upload,
            self.total_download,
            self.total_payload_upload,
            self.total_payload_download,
        ]
    }

    fn from_fields(f: [u64; 4]) -> Counters {
        Counters {
            total_upload: f[0],
            total_download: f[1],
            total_payload_upload: f[2],
            total_payload_download: f[3],
        }
    }

    fn zip(self, other: Counters, op: impl Fn(u64, u64) -> u64) -> Counters {
        let (a, b) = (self.fields(), other.fields());
        Counters::from_fields(std::array::from_fn(|i| op(a[i], b[i])))
    }

    /// Each counter capped at [`MAX_TOTAL`].
    pub fn clamped(self) -> Counters {
        self.zip(self, |a, _| a.min(MAX_TOTAL))
    }

    /// Whether any counter of `self` is below the same counter of `earlier`.
    pub fn any_below(&self, earlier: &Counters) -> bool {
        self.fields()
            .iter()
            .zip(earlier.fields())
            .any(|(now, before)| *now < before)
    }

    /// Whether every counter is zero.
    pub fn is_zero(&self) -> bool {
        self.fields() == [0; 4]
    }

    /// Counter-wise `self + other`, saturating at [`MAX_TOTAL`].
    pub fn saturating_add(self, other: Counters) -> Counters {
        self.zip(other, |a, b| a.saturating_add(b).min(MAX_TOTAL))
    }

    /// Counter-wise `self - other`, saturating at 0.
    pub fn saturating_sub(self, other: Counters) -> Counters {
        self.zip(other, u64::saturating_sub)
    }
}

/// What one sample did to the totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Bytes added to the totals.
    pub delta: Counters,
    /// Whether the sample began a new session (new identity or a counter went down).
    pub new_session: bool,
}

impl Step {
    /// Whether the accumulator's persisted state changed.
    pub fn changed(&self) -> bool {
        self.new_session || !self.delta.is_zero()
    }
}

/// The persisted accumulator: all-time totals plus the last counters seen and the session
/// they came from, so a re-enable in the same session neither double counts nor loses the
/// bytes moved while disabled. This is the content of `stats.totals`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accumulator {
    /// File format version.
    pub format: u32,
    /// Session of the last sample, if any was seen.
    pub session: Option<SessionId>,
    /// Unix time of the last change, seconds.
    pub updated: u64,
    /// All-time totals.
    pub totals: Counters,
    /// Counters of the last sample (the current session's totals).
    pub last: Counters,
    /// Totals imported from other programs, once each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub imports: Vec<Import>,
    /// The session's uptime (seconds) when the totals last changed (at `updated`), for a
    /// source that reports it: across a restart of ours, a remote session whose uptime is
    /// shorter than this plus the time since is a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime: Option<u64>,
    /// How many times the totals were reset (`stats.reset_totals`): the calendar ledger
    /// tells a reset from lost bytes by it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resets: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// How much shorter than expected a session's uptime may be before it counts as a new
/// session: the sampling jitter of a remote daemon's whole-second uptime and the poll's
/// latency stay well below it.
pub const UPTIME_SLACK: u64 = 10;

/// One import of another program's all-time totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Import {
    /// Where they came from (`"deluge"`, `"transmission"`).
    pub source: String,
    /// Identifies the imported file, so it is never added twice.
    pub fingerprint: String,
    /// Unix time of the import.
    pub at: u64,
    /// What was added.
    pub added: Counters,
}

/// Why [`Accumulator::import`] refused to add totals.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportRefused {
    /// The same fingerprint was imported before: the same file is never added twice.
    #[error(
        "{} was already imported (from {} at unix time {}); not adding it twice",
        .earlier.fingerprint, .earlier.source, .earlier.at
    )]
    AlreadyImported {
        /// The earlier import.
        earlier: Import,
    },
}

/// Current `stats.totals` format.
pub const FORMAT: u32 = 1;

impl Default for Accumulator {
    fn default() -> Self {
        Accumulator {
            format: FORMAT,
            session: None,
            updated: 0,
            totals: Counters::default(),
            last: Counters::default(),
            imports: Vec::new(),
            uptime: None,
            resets: 0,
        }
    }
}

impl Accumulator {
    /// Applies one sample: a delta in the same session, or the whole counters when the
    /// session is new (new identity, first sample ever, or any counter that went down).
    pub fn apply(&self, session: &SessionId, counters: Counters) -> (Accumulator, Step) {
        self.apply_timed(session, counters, None, None)
    }

    /// [`apply`](Accumulator::apply) for a source that reports its session's `uptime`:
    /// also a new session when the uptime is more than `UPTIME_SLACK` (10) seconds shorter
    /// than `expected`, the uptime the session would have now had it not restarted (the
    /// caller knows the time since the last sample). The uptime is kept with the totals
    /// when they change, so that it always belongs to `updated`.
    pub fn apply_timed(
        &self,
        session: &SessionId,
        counters: Counters,
        uptime: Option<u64>,
        expected: Option<u64>,
    ) -> (Accumulator, Step) {
        let counters = counters.clamped();
        let restarted = match (uptime, expected) {
            (Some(now), Some(expected)) => now < expected.saturating_sub(UPTIME_SLACK),
            _ => false,
        };
        let new_session =
            self.session.as_ref() != Some(session) || counters.any_below(&self.last) || restarted;
        let delta = if new_session {
            counters
        } else {
            counters.saturating_sub(self.last)
        };
        let next = Accumulator {
            format: FORMAT,
            session: Some(session.clone()),
            updated: self.updated,
            totals: self.totals.saturating_add(delta),
            last: counters,
            imports: self.imports.clone(),
            uptime: self.uptime,
            resets: self.resets,
        };
        let step = Step { delta, new_session };
        let next = Accumulator {
            uptime: if step.changed() { uptime } else { self.uptime },
            ..next
        };
        (next, step)
    }

    /// Adds another program's totals once per fingerprint; an error names the earlier
    /// import of the same fingerprint.
    pub fn import(
        &self,
        source: &str,
        fingerprint: &str,
        added: Counters,
        now: u64,
    ) -> Result<Accumulator, ImportRefused> {
        if let Some(done) = self.imports.iter().find(|i| i.fingerprint == fingerprint) {
            return Err(ImportRefused::AlreadyImported {
                earlier: done.clone(),
            });
        }
        let mut next = self.clone();
        next.totals = next.totals.saturating_add(added.clamped());
        next.updated = now;
        next.imports.push(Import {
            source: source.to_string(),
            fingerprint: fingerprint.to_string(),
            at: now,
            added: added.clamped(),
        });
        Ok(next)
    }
}

impl Persist for Accumulator {
    const SEALED: bool = true;

    fn validate(&self) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!(
                "format {} is not the supported {FORMAT}",
                self.format
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(up: u64, down: u64) -> Counters {
        Counters {
            total_upload: up,
            total_download: down,
            total_payload_upload: up,
            total_payload_download: down,
        }
    }

    #[test]
    fn a_source_reports_the_wire_pair_or_only_the_payload_pair() {
        use StatusKey::*;
        let status = |pairs: &[(StatusKey, u64)]| {
            let mut s = SessionStatus::new(SessionId::new("s"));
            for &(k, v) in pairs {
                s.values.insert(k, v);
            }
            s
        };
        let wire_only = status(&[(TotalUpload, 1), (TotalDownload, 2)]);
        assert_eq!(
            Counters::from_status(&wire_only),
            Ok(Counters {
                total_upload: 1,
                total_download: 2,
                ..Counters::default()
            })
        );
        let payload_only = status(&[(TotalPayloadUpload, 3), (TotalPayloadDownload, 4)]);
        assert_eq!(
            Counters::from_status(&payload_only),
            Ok(Counters {
                total_payload_upload: 3,
                total_payload_download: 4,
                ..Counters::default()
            })
        );
        let half_wire = status(&[
            (TotalDownload, 2),
            (TotalPayloadUpload, 3),
            (TotalPayloadDownload, 4),
        ]);
        assert_eq!(Counters::from_status(&half_wire), Err(TotalUpload));
        assert_eq!(
            Counters::from_status(&status(&[(TotalUpload, 1)])),
            Err(TotalDownload)
        );
        assert_eq!(
            Counters::from_status(&status(&[(TotalPayloadUpload, 1)])),
            Err(TotalPayloadDownload)
        );
        assert_eq!(
            Counters::from_status(&status(&[(TotalPayloadDownload, 1)])),
            Err(TotalPayloadUpload)
        );
        assert_eq!(
            Counters::from_status(&status(&[(NumPeers, 1)])),
            Err(TotalUpload)
        );
    }

    #[test]
    fn same_session_counts_deltas_and_new_session_counts_from_zero() {
        let a = Accumulator::default();
        let s1 = SessionId::new("one");
        let (a, step) = a.apply(&s1, c(100, 200));
        assert!(step.new_session);
        assert_eq!(a.totals, c(100, 200));
        let (a, step) = a.apply(&s1, c(150, 200));
        assert!(!step.new_session);
        assert_eq!(step.delta, c(50, 0));
        let (a, step) = a.apply(&s1, c(150, 200));
        assert!(!step.changed());
        // a counter that went down: a restart under the same identity
        let (a, step) = a.apply(&s1, c(10, 500));
        assert!(step.new_session);
        assert_eq!(a.totals, c(160, 700));
        let (a, _) = a.apply(&SessionId::new("two"), c(5, 5));
        assert_eq!(a.totals, c(165, 705));
        assert_eq!(a.last, c(5, 5));
    }

    #[test]
    fn an_uptime_shorter_than_expected_is_a_new_session() {
        let s = SessionId::new("remote");
        let (a, _) = Accumulator::default().apply_timed(&s, c(100, 200), Some(50), None);
        assert_eq!(a.uptime, Some(50));
        // Within the slack: the same session (uptime sampled late or early).
        let (b, step) = a.apply_timed(&s, c(150, 200), Some(55), Some(60));
        assert!(!step.new_session && step.delta == c(50, 0), "{step:?}");
        // The daemon restarted and moved more than before by the next sample: the counters
        // did not go down, the uptime gives it away.
        let (d, step) = b.apply_timed(&s, c(400, 900), Some(30), Some(3600));
        assert!(step.new_session);
        assert_eq!(d.totals, c(150 + 400, 200 + 900));
        // An unchanged sample keeps the uptime that belongs to `updated`.
        let (e, step) = d.apply_timed(&s, c(400, 900), Some(90), Some(90));
        assert!(!step.changed());
        assert_eq!(e.uptime, Some(30));
        // No expectation (first sample of a run with no file): never a restart.
        let (_, step) = e.apply_timed(&s, c(400, 900), Some(1), None);
        assert!(!step.new_session);
    }

    #[test]
    fn imports_each_fingerprint_once() {
        let a = Accumulator::default();
        let a = a.import("deluge", "deluge:00ff", c(10, 20), 5).unwrap();
        assert_eq!(a.totals, c(10, 20));
        assert_eq!((a.updated, a.imports.len()), (5, 1));
        let e = a.import("deluge", "deluge:00ff", c(1, 1), 6).unwrap_err();
        let ImportRefused::AlreadyImported { earlier } = &e;
        assert_eq!((earlier.source.as_str(), earlier.at), ("deluge", 5));
        assert_eq!(
            e.to_string(),
            "deluge:00ff was already imported (from deluge at unix time 5); not adding it twice"
        );
    }
}
