//! The quotas' part of `GET /metrics` (feature `ledger`): each quota's state at its last
//! evaluation, the figures `stats.get_quotas` shows as its `status`, one series per quota
//! labelled `quota` (its name), and an info series with what it counts. These are the
//! names `contrib/prometheus/torrent-stats-quotas.rules.yml` alerts on.
//!
//! | metric | type | |
//! |---|---|---|
//! | `torrent_stats_quota_info` | gauge | 1 per quota; labels `source` (empty when it counts every source), `direction` (download, upload, both), `measure` (wire, payload), `period` (day, week, month, rolling) |
//! | `torrent_stats_quota_used_bytes` | gauge | bytes counted so far in the current period |
//! | `torrent_stats_quota_limit_bytes` | gauge | the limit per period |
//! | `torrent_stats_quota_projected_bytes` | gauge | used plus the rate of the last 24 hours over the rest of the period |
//! | `torrent_stats_quota_period_end_seconds` | gauge | when the current period ends (Unix time) |

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use crate::stats::ledger::quota::{Direction, Measure, Quota, QuotaPeriod, QuotaStatus};
use crate::stats::StatsHandle;

/// A per-quota family: its name, help, unit and value.
type Figure = (&'static str, &'static str, Unit, fn(&QuotaStatus) -> i64);

/// Writes the quota families from the quotas of `stats`; nothing while it has none or is
/// not running.
pub(super) fn encode(e: &mut DescriptorEncoder<'_>, stats: &StatsHandle) -> std::fmt::Result {
    let statuses = stats.quota_statuses().unwrap_or_default();
    if statuses.is_empty() {
        return Ok(());
    }
    let quotas = stats.quotas().unwrap_or_default();
    encode_info(e, &statuses, &quotas)?;
    let figures: [Figure; 4] = [
        (
            "torrent_stats_quota_used",
            "Bytes the quota has counted in its current period",
            Unit::Bytes,
            |s| saturate(s.used),
        ),
        (
            "torrent_stats_quota_limit",
            "The quota's limit per period, bytes",
            Unit::Bytes,
            |s| saturate(s.limit),
        ),
        (
            "torrent_stats_quota_projected",
            "Bytes the quota will have counted at its period's end at the rate of the last 24 hours",
            Unit::Bytes,
            |s| saturate(s.projected),
        ),
        (
            "torrent_stats_quota_period_end",
            "When the quota's current period ends (Unix time)",
            Unit::Seconds,
            |s| s.end,
        ),
    ];
    for (name, help, unit, value) in figures {
        let mut m = e.encode_descriptor(name, help, Some(&unit), MetricType::Gauge)?;
        for s in &statuses {
            ConstGauge::new(value(s)).encode(m.encode_family(&[("quota", s.name.as_str())])?)?;
        }
    }
    Ok(())
}

/// `torrent_stats_quota_info`: 1 per evaluated quota whose settings are known (a quota
/// replaced between the two reads has none this scrape).
fn encode_info(
    e: &mut DescriptorEncoder<'_>,
    statuses: &[QuotaStatus],
    quotas: &[Quota],
) -> std::fmt::Result {
    let known: Vec<&Quota> = statuses
        .iter()
        .filter_map(|s| quotas.iter().find(|q| q.name == s.name))
        .collect();
    if known.is_empty() {
        return Ok(());
    }
    let mut m = e.encode_descriptor(
        "torrent_stats_quota_info",
        "Each quota: the source it counts (empty: all together), direction, measure, period",
        None,
        MetricType::Gauge,
    )?;
    for q in known {
        let labels = info_labels(q);
        ConstGauge::new(1i64).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

/// The info series' labels of `q`: they change only when its settings do.
fn info_labels(q: &Quota) -> [(&'static str, &str); 5] {
    let direction = match q.direction {
        Direction::Download => "download",
        Direction::Upload => "upload",
        Direction::Both => "both",
    };
    let measure = match q.measure {
        Measure::Wire => "wire",
        Measure::Payload => "payload",
    };
    let period = match q.period {
        QuotaPeriod::Day => "day",
        QuotaPeriod::Week => "week",
        QuotaPeriod::Month { .. } => "month",
        QuotaPeriod::Rolling { .. } => "rolling",
    };
    [
        ("quota", q.name.as_str()),
        ("source", q.source.as_ref().map_or("", |s| s.as_str())),
        ("direction", direction),
        ("measure", measure),
        ("period", period),
    ]
}

/// `v` as a gauge's value, held at `i64::MAX`.
fn saturate(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::info_labels;
    use crate::stats::ledger::quota::Quota;

    fn quota(toml: &str) -> Quota {
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn info_labels_name_the_settings_and_the_period_kind() {
        let q = quota("name = \"m\"\nperiod = \"month\"\nreset_day = 15\nlimit = \"1 TiB\"\n");
        assert_eq!(
            info_labels(&q),
            [
                ("quota", "m"),
                ("source", ""),
                ("direction", "both"),
                ("measure", "wire"),
                ("period", "month"),
            ]
        );
        let q = quota(
            "name = \"r\"\nsource = \"box\"\ndirection = \"upload\"\nmeasure = \"payload\"\n\
             period = \"rolling\"\ndays = 7\nlimit = 5\n",
        );
        assert_eq!(
            info_labels(&q),
            [
                ("quota", "r"),
                ("source", "box"),
                ("direction", "upload"),
                ("measure", "payload"),
                ("period", "rolling"),
            ]
        );
    }
}
