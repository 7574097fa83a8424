//! `GET /metrics`: the Stats snapshot as Prometheus metrics, encoded by the
//! `prometheus-client` crate at scrape time. A scraper that accepts OpenMetrics (Prometheus
//! does) gets OpenMetrics text; any other client gets the Prometheus text format 0.0.4
//! (what `promtool check metrics` and older tools read): the same samples, counter
//! families named by their `_total` samples, no `# UNIT`/`# EOF` lines. Every series has
//! the label `source`: the source's name, stable across changes of its address or paths.
//! There is one series per source and no combined series: `sum()` makes it. A retired
//! source keeps its all-time series (frozen), so a `sum()` never drops; its rates,
//! session and health series end.
//!
//! | metric | type | |
//! |---|---|---|
//! | `torrent_stats_source_info` | gauge | 1 per source; labels `kind`, `description` (never a password), `retired` |
//! | `torrent_stats_upload_bytes_total`, `…_download_bytes_total`, `…_payload_upload_bytes_total`, `…_payload_download_bytes_total` | counter | all-time totals: those the source measures and any that hold bytes (also before the first poll) |
//! | `torrent_stats_session_upload_bytes`, `…_session_download_bytes`, `…_session_payload_upload_bytes`, `…_session_payload_download_bytes` | gauge | the current session's counters, as measured |
//! | `torrent_stats_upload_rate_bytes_per_second`, `…_download_rate…`, `…_payload_upload_rate…`, `…_payload_download_rate…` | gauge | rates of the last poll |
//! | `torrent_stats_peers` | gauge | connected peers |
//! | `torrent_stats_source_up` | gauge | 1 when the last poll was answered |
//! | `torrent_stats_polls_total`, `torrent_stats_poll_errors_total`, `torrent_stats_save_errors_total` | counter | since the daemon started |
//! | `torrent_stats_last_save_timestamp_seconds` | gauge | when totals were last written |
//!
//! With the feature `ledger`, each quota's state too, labelled `quota`
//! (`torrent_stats_quota_used_bytes`, `…_limit_bytes`, `…_projected_bytes`,
//! `…_period_end_seconds`, `torrent_stats_quota_info`): see the module `quota_metrics`.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use super::WebState;
use crate::stats::{Counters, Health, Rates, Snapshot, SourceSnapshot, StatsHandle};

/// The registry with the Stats collector.
pub(super) struct Metrics {
    registry: Registry,
}

impl Metrics {
    /// Metrics read from `stats` at each scrape.
    pub(super) fn new(stats: StatsHandle) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(StatsCollector { stats }));
        Metrics { registry }
    }

    /// The text exposition.
    pub(super) fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// The handler.
pub(super) async fn handle(State(state): State<WebState>, headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    match state.metrics.encode() {
        Ok(text) if openmetrics => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            prometheus_text(&text),
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The Prometheus text format 0.0.4 of OpenMetrics text: a counter family is named by its
/// samples (`x_total`), and the lines 0.0.4 lacks (`# UNIT`, `# EOF`) go.
fn prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|kind| {
            let rest = line.strip_prefix(kind)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{kind}{name}_total {tail}"))
        });
        match renamed {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

struct StatsCollector {
    stats: StatsHandle,
}

impl std::fmt::Debug for StatsCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsCollector").finish_non_exhaustive()
    }
}

/// Writes one metric family: one series per `(source name, metric)`, labelled
/// `source`; nothing when there is no series.
fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    series: Vec<(&str, M)>,
) -> Result<(), std::fmt::Error> {
    let Some((_, first)) = series.first() else {
        return Ok(());
    };
    let mut m = encoder.encode_descriptor(name, help, unit, first.metric_type())?;
    for (source, metric) in &series {
        metric.encode(m.encode_family(&[("source", *source)])?)?;
    }
    Ok(())
}

/// The four counters, each with whether the source measures it.
fn counters(c: &Counters, s: &SourceSnapshot) -> [(&'static str, u64, bool); 4] {
    let measured = |key: &str| s.health.measured.iter().any(|m| m == key);
    [
        ("upload", c.total_upload, measured("total_upload")),
        ("download", c.total_download, measured("total_download")),
        (
            "payload_upload",
            c.total_payload_upload,
            measured("total_payload_upload"),
        ),
        (
            "payload_download",
            c.total_payload_download,
            measured("total_payload_download"),
        ),
    ]
}

fn gauge(v: u64) -> ConstGauge<i64> {
    ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX))
}

impl Collector for StatsCollector {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = self.stats.watch().borrow().clone();
        encode_info(&mut e, &s)?;
        encode_totals(&mut e, &s)?;
        encode_rates(&mut e, &s)?;
        encode_health(&mut e, &s)?;
        #[cfg(feature = "ledger")]
        super::quota_metrics::encode(&mut e, &self.stats)?;
        Ok(())
    }
}

/// `torrent_stats_source_info`: 1 per source, with what the name stands for.
fn encode_info(e: &mut DescriptorEncoder<'_>, s: &Snapshot) -> Result<(), std::fmt::Error> {
    if s.sources.is_empty() {
        return Ok(());
    }
    let mut m = e.encode_descriptor(
        "torrent_stats_source_info",
        "Each source: its kind, what it is (never a password), whether it is retired",
        None,
        prometheus_client::metrics::MetricType::Gauge,
    )?;
    for src in &s.sources {
        let retired = if src.retired { "true" } else { "false" };
        let labels = [
            ("source", src.name.as_str()),
            ("kind", src.kind.as_str()),
            ("description", src.description.as_str()),
            ("retired", retired),
        ];
        ConstGauge::new(1i64).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

/// The all-time totals (every source, retired ones frozen) and the active sessions'
/// counters.
fn encode_totals(e: &mut DescriptorEncoder<'_>, s: &Snapshot) -> Result<(), std::fmt::Error> {
    for i in 0..4 {
        // An all-time total is shown when the source measures it, or when it holds bytes
        // counted before (loaded from the file): so the totals are there from the start,
        // a source that is down from the beginning and a retired one included.
        let mut name = "";
        let series: Vec<(&str, ConstCounter)> = s
            .sources
            .iter()
            .filter_map(|src| {
                let (n, value, measured) = counters(&src.totals, src)[i];
                name = n;
                (measured || value > 0).then(|| (src.name.as_str(), ConstCounter::new(value)))
            })
            .collect();
        let help = format!(
            "All-time {} bytes (kept across restarts)",
            name.replace('_', " ")
        );
        family(
            e,
            &format!("torrent_stats_{name}"),
            &help,
            Some(&Unit::Bytes),
            series,
        )?;
    }
    for i in 0..4 {
        let mut name = "";
        let series: Vec<(&str, ConstGauge<i64>)> = active(s)
            .filter_map(|src| {
                let (n, value, measured) = counters(&src.session_totals, src)[i];
                name = n;
                measured.then(|| (src.name.as_str(), gauge(value)))
            })
            .collect();
        let help = format!("The current session's {} bytes", name.replace('_', " "));
        family(
            e,
            &format!("torrent_stats_session_{name}"),
            &help,
            Some(&Unit::Bytes),
            series,
        )?;
    }
    Ok(())
}

/// Reads one figure of a source's part of the snapshot.
type Read<T> = fn(&T) -> u64;

/// The active sources.
fn active(s: &Snapshot) -> impl Iterator<Item = &SourceSnapshot> {
    s.sources.iter().filter(|src| !src.retired)
}

/// The rates and the peers of the last poll of each active source.
fn encode_rates(e: &mut DescriptorEncoder<'_>, s: &Snapshot) -> Result<(), std::fmt::Error> {
    let unit = Unit::Other("bytes_per_second".into());
    let rates: [(&str, Read<Rates>); 4] = [
        ("upload", |r| r.upload_rate),
        ("download", |r| r.download_rate),
        ("payload_upload", |r| r.payload_upload_rate),
        ("payload_download", |r| r.payload_download_rate),
    ];
    for (name, rate) in rates {
        let help = format!("{} rate at the last poll", name.replace('_', " "));
        let series = active(s)
            .map(|src| (src.name.as_str(), gauge(rate(&src.rates))))
            .collect();
        family(
            e,
            &format!("torrent_stats_{name}_rate"),
            &help,
            Some(&unit),
            series,
        )?;
    }
    let peers = active(s)
        .map(|src| (src.name.as_str(), gauge(src.rates.num_peers)))
        .collect();
    family(
        e,
        "torrent_stats_peers",
        "Connected peers at the last poll",
        None,
        peers,
    )
}

/// Whether each active source answers, the poll and save counts, the last save.
fn encode_health(e: &mut DescriptorEncoder<'_>, s: &Snapshot) -> Result<(), std::fmt::Error> {
    let up = active(s)
        .map(|src| {
            let up = s.running && src.health.source_up;
            (src.name.as_str(), ConstGauge::new(i64::from(up)))
        })
        .collect();
    family(
        e,
        "torrent_stats_source_up",
        "1 when the last poll of the source was answered",
        None,
        up,
    )?;
    let counts: [(&str, &str, Read<Health>); 3] = [
        ("polls", "Answered polls since the daemon started", |h| {
            h.polls
        }),
        (
            "poll_errors",
            "Failed polls since the daemon started",
            |h| h.poll_errors,
        ),
        (
            "save_errors",
            "Failed saves since the daemon started",
            |h| h.save_errors,
        ),
    ];
    for (name, help, count) in counts {
        let series = active(s)
            .map(|src| (src.name.as_str(), ConstCounter::new(count(&src.health))))
            .collect();
        family(e, &format!("torrent_stats_{name}"), help, None, series)?;
    }
    let saves = active(s)
        .filter_map(|src| Some((src.name.as_str(), ConstGauge::new(src.health.last_save?))))
        .collect();
    family(
        e,
        "torrent_stats_last_save_timestamp",
        "When totals were last written (Unix time)",
        Some(&Unit::Seconds),
        saves,
    )
}

#[cfg(test)]
mod tests {
    use super::prometheus_text;

    #[test]
    fn openmetrics_to_prometheus_text() {
        let om = "# HELP a_bytes All.\n# TYPE a_bytes counter\n# UNIT a_bytes bytes\n\
                  a_bytes_total{source=\"s\"} 5\n# HELP g Peers.\n# TYPE g gauge\ng{source=\"s\"} 3\n# EOF\n";
        assert_eq!(
            prometheus_text(om),
            "# HELP a_bytes_total All.\n# TYPE a_bytes_total counter\n\
             a_bytes_total{source=\"s\"} 5\n# HELP g Peers.\n# TYPE g gauge\ng{source=\"s\"} 3\n"
        );
    }
}
