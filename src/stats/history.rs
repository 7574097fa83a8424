//! Rate and peer history at four resolutions, like Deluge's Stats plugin.
//!
//! Every poll adds one point to each series of the finest level. Level `i` gets a point
//! each time level `i - 1` has received [`FACTORS`]`[i]` new points: their integer mean.
//! With a 2 s poll the resolutions are 2, 10, 60 and 600 seconds. Series are newest first
//! and hold at most `length` points.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::session::StatusKey;
use crate::store::Persist;

/// The series kept, in Deluge's names.
pub const SERIES: [StatusKey; 9] = [
    StatusKey::UploadRate,
    StatusKey::DownloadRate,
    StatusKey::PayloadUploadRate,
    StatusKey::PayloadDownloadRate,
    StatusKey::NumPeers,
    StatusKey::NumConnections,
    StatusKey::DhtNodes,
    StatusKey::DhtCacheNodes,
    StatusKey::DhtTorrents,
];

/// How many points of the finer level make one point of each level.
pub const FACTORS: [u64; 4] = [1, 5, 6, 10];

/// One resolution: a series per key and the count of finer points not yet rolled up.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Level {
    /// Finer points received since this level's last point.
    pub pending: u64,
    /// Unix time of this level's newest point, seconds (fractional).
    pub last_update: f64,
    /// Series by key name, newest first.
    pub series: BTreeMap<String, VecDeque<u64>>,
}

/// The history of all series at all levels. This is the content of `stats.history`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// Poll interval the finest level was recorded at, seconds.
    pub base_interval: u64,
    /// Maximum points per series.
    pub length: u64,
    /// The four levels, finest first.
    pub levels: Vec<Level>,
}

impl Default for History {
    fn default() -> Self {
        History::new(2, 150)
    }
}

impl History {
    /// An empty history for a poll interval and length.
    pub fn new(base_interval: u64, length: u64) -> Self {
        History {
            base_interval,
            length,
            levels: vec![Level::default(); FACTORS.len()],
        }
    }

    /// The resolutions in seconds, finest first.
    pub fn intervals(&self) -> [u64; 4] {
        let mut acc = self.base_interval;
        std::array::from_fn(|i| {
            acc = acc.saturating_mul(FACTORS[i]);
            acc
        })
    }

    /// The level index for a resolution in seconds.
    pub fn level_for(&self, interval: u64) -> Option<usize> {
        self.intervals().iter().position(|&i| i == interval)
    }

    /// Keeps at most `length` points per series from now on.
    pub fn set_length(&mut self, length: u64) {
        self.length = length;
        for level in &mut self.levels {
            for series in level.series.values_mut() {
                series.truncate(length as usize);
            }
        }
    }

    /// Adds one sample (values by series key; missing keys count 0) at unix time `now`.
    pub fn push(&mut self, values: &BTreeMap<StatusKey, u64>, now: f64) {
        let len = self.length as usize;
        for key in SERIES {
            let v = values.get(&key).copied().unwrap_or(0);
            push_front(&mut self.levels[0], key.as_str(), v, len);
        }
        self.levels[0].last_update = now;
        for i in 1..self.levels.len() {
            let (finer, coarser) = self.levels.split_at_mut(i);
            let (finer, level) = (&finer[i - 1], &mut coarser[0]);
            level.pending += 1;
            if level.pending < FACTORS[i] {
                break;
            }
            level.pending = 0;
            for key in SERIES {
                let name = key.as_str();
                let (sum, n) = finer.series.get(name).map_or((0, 0), |s| {
                    s.iter()
                        .take(FACTORS[i] as usize)
                        .fold((0u128, 0u128), |(sum, n), &v| (sum + u128::from(v), n + 1))
                });
                let mean = sum.checked_div(n).unwrap_or(0) as u64;
                push_front(level, name, mean, len);
            }
            level.last_update = now;
        }
    }

    /// The series of `key` at level `level`, newest first.
    pub fn series(&self, level: usize, key: &str) -> Option<&VecDeque<u64>> {
        self.levels.get(level)?.series.get(key)
    }
}

fn push_front(level: &mut Level, key: &str, value: u64, len: usize) {
    // Look up before inserting: the poll tick should not allocate a key per series.
    let series = match level.series.get_mut(key) {
        Some(series) => series,
        None => level.series.entry(key.to_string()).or_default(),
    };
    series.push_front(value.min(i64::MAX as u64));
    series.truncate(len);
}

impl Persist for History {
    const SEALED: bool = true;

    /// What a save of ours always holds (the file is sealed, so anything else was written
    /// by hand or by a defect): every use of a loaded history is then well defined.
    fn validate(&self) -> Result<(), String> {
        if self.levels.len() != FACTORS.len() {
            return Err(format!("expected {} levels", FACTORS.len()));
        }
        let coarsest = FACTORS.iter().product::<u64>();
        if self.base_interval == 0 || self.base_interval.checked_mul(coarsest).is_none() {
            return Err(format!(
                "base_interval {} is not a poll interval",
                self.base_interval
            ));
        }
        for (i, level) in self.levels.iter().enumerate() {
            if i > 0 && level.pending >= FACTORS[i] {
                return Err(format!(
                    "level {i}: pending {} is not below {}",
                    level.pending, FACTORS[i]
                ));
            }
            if !level.last_update.is_finite() || level.last_update < 0.0 {
                return Err(format!(
                    "level {i}: last_update {} is not a time",
                    level.last_update
                ));
            }
            for (key, series) in &level.series {
                if series.len() as u64 > self.length {
                    return Err(format!(
                        "level {i}: {key} holds {} points, more than length {}",
                        series.len(),
                        self.length
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sealed file that parses but could not have been saved by us is refused, so a
    /// loaded history never overflows its intervals or serves points it should not hold.
    #[test]
    fn a_loaded_history_is_one_a_save_could_have_written() {
        let mut good = History::new(2, 3);
        for i in 0..7u64 {
            good.push(&BTreeMap::from([(StatusKey::NumPeers, i)]), 1e9 + i as f64);
        }
        let load = |h: &History| {
            let text = crate::store::to_text(h).unwrap();
            crate::store::parse::<History>(text.as_bytes())
        };
        assert_eq!(load(&good), Ok(good.clone()));
        type Spoil = fn(&mut History);
        let bad: [(&str, Spoil); 6] = [
            ("base_interval 0", |h| h.base_interval = 0),
            ("is not a poll interval", |h| {
                h.base_interval = u64::MAX / 100
            }),
            ("pending 5 is not below 5", |h| h.levels[1].pending = 5),
            ("last_update NaN", |h| h.levels[2].last_update = f64::NAN),
            ("last_update -1", |h| h.levels[0].last_update = -1.0),
            ("holds 3 points, more than length 2", |h| h.length = 2),
        ];
        for (needle, spoil) in bad {
            let mut h = good.clone();
            spoil(&mut h);
            match load(&h) {
                Err(crate::store::Rejected::Bad(reason)) => {
                    assert!(reason.contains(needle), "{needle:?} not in {reason:?}")
                }
                other => panic!("{needle}: {other:?}"),
            }
        }
        assert_eq!(History::new(u64::MAX, 1).intervals(), [u64::MAX; 4]);
    }

    #[test]
    fn roll_ups_are_means_of_the_finer_level() {
        let mut h = History::new(2, 150);
        assert_eq!(h.intervals(), [2, 10, 60, 600]);
        for i in 0..300u64 {
            let values = BTreeMap::from([(StatusKey::UploadRate, i)]);
            h.push(&values, i as f64);
        }
        let l0 = h.series(0, "upload_rate").unwrap();
        assert_eq!(l0.len(), 150);
        assert_eq!(l0[0], 299);
        let l1 = h.series(1, "upload_rate").unwrap();
        assert_eq!(l1.len(), 60);
        assert_eq!(l1[0], (295 + 296 + 297 + 298 + 299) / 5);
        let l2 = h.series(2, "upload_rate").unwrap();
        assert_eq!(l2.len(), 10);
        let expected: u64 = l1.iter().take(6).sum::<u64>() / 6;
        assert_eq!(l2[0], expected);
        assert_eq!(h.series(3, "upload_rate").unwrap().len(), 1);
        assert_eq!(h.series(0, "num_peers").unwrap()[0], 0);
    }
}
