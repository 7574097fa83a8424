//! A quota's thresholds: each fires once per period, the first time its percentage of the
//! limit is reached.

use serde::{Deserialize, Serialize};

use super::{Quota, QuotaStatus};

/// The thresholds already fired in a quota's current period (kept by the caller).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThresholdState {
    /// The start of the period `fired` belongs to, Unix seconds.
    pub period_start: i64,
    /// The thresholds fired in it, percent.
    pub fired: Vec<u16>,
}

/// The thresholds of `q` newly reached (used ≥ threshold % of the limit, compared exactly)
/// in `status`'s period, lowest first, recorded in `state`. A new period (`status.start`
/// differs from `state.period_start`) first clears what had fired.
pub fn crossed(q: &Quota, status: &QuotaStatus, state: &mut ThresholdState) -> Vec<u16> {
    if state.period_start != status.start {
        state.period_start = status.start;
        state.fired.clear();
    }
    let used = u128::from(status.used) * 100;
    let mut new = Vec::new();
    for &t in &q.thresholds {
        if used >= u128::from(t) * u128::from(status.limit) && !state.fired.contains(&t) {
            state.fired.push(t);
            new.push(t);
        }
    }
    new
}
