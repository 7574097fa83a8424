//! The calendar and quota block of `torrent-stats watch`: today's and this month's bytes
//! (the combined series of `stats.get_calendar`, days and months in the daemon's ledger
//! time zone) and each quota of `stats.get_quotas` with a bar, asked every
//! [`LEDGER_REFRESH`]; and the notices `QuotaThresholdEvent` brings.

use std::time::{Duration, Instant};

use anyhow::Context;
use ratatui::style::Stylize;
use ratatui::text::Line;
use serde::Deserialize;
use serde_json::{json, Value};
use torrent_stats::units::format_bytes;
use torrent_stats::Event;

use crate::rpc_args::Conn;

/// How often the calendar and the quotas are asked.
pub const LEDGER_REFRESH: Duration = Duration::from_secs(5);
/// The event a quota's threshold raises: `(name, percent)`.
pub const THRESHOLD_EVENT: &str = "QuotaThresholdEvent";
/// How far back the day and month buckets are asked (Unix seconds): enough to hold the
/// current one whatever the ledger's time zone and DST.
const DAY_LOOKBACK: i64 = 3 * 86_400;
const MONTH_LOOKBACK: i64 = 63 * 86_400;
/// The notices kept on screen, newest first.
const NOTICES: usize = 3;
/// The quotas listed; more are counted on one line.
const MAX_QUOTAS: usize = 8;
/// Cells of a quota's bar.
const BAR: usize = 10;

/// One bucket of `stats.get_calendar`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Bucket {
    label: String,
    end: i64,
    total_upload: u64,
    total_download: u64,
}

/// A quota's `status` in `stats.get_quotas`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct QuotaStatus {
    used: u64,
    limit: u64,
    percent: f64,
    projected: u64,
    reached: bool,
}

/// A quota of `stats.get_quotas`: its name and state (`None` before its first
/// evaluation).
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct QuotaRow {
    name: String,
    status: Option<QuotaStatus>,
}

/// What the block shows from the daemon.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ledger {
    /// Today's bucket; `None` when nothing was counted today.
    today: Option<Bucket>,
    /// This month's bucket; `None` when nothing was counted this month.
    month: Option<Bucket>,
    quotas: Vec<QuotaRow>,
}

/// A quota notice: `(name, percent)` of a `QuotaThresholdEvent`, and when it came.
pub struct Notice {
    text: String,
    at: Instant,
}

/// Subscribes `conn` to the threshold events.
pub async fn subscribe(conn: &mut Conn) -> anyhow::Result<()> {
    conn.subscribe(&[THRESHOLD_EVENT]).await
}

/// Today's and this month's buckets and the quotas, at `now` (Unix seconds).
pub async fn fetch(conn: &mut Conn, now: i64) -> anyhow::Result<Ledger> {
    let calendar = |period: &str, back: i64| {
        (
            "stats.get_calendar",
            vec![json!(period), Value::Null, json!(now - back)],
        )
    };
    let answers = conn
        .calls(&[
            calendar("day", DAY_LOOKBACK),
            calendar("month", MONTH_LOOKBACK),
            ("stats.get_quotas", vec![]),
        ])
        .await?;
    let [days, months, quotas] =
        <[Value; 3]>::try_from(answers).map_err(|a| anyhow::anyhow!("{} answers", a.len()))?;
    let buckets = |v: Value| -> anyhow::Result<Vec<Bucket>> {
        serde_json::from_value(v).context("stats.get_calendar: unexpected shape")
    };
    Ok(Ledger {
        today: current(buckets(days)?, now),
        month: current(buckets(months)?, now),
        quotas: serde_json::from_value(quotas).context("stats.get_quotas: unexpected shape")?,
    })
}

/// The newest bucket that has not ended at `now` (buckets come oldest first).
fn current(buckets: Vec<Bucket>, now: i64) -> Option<Bucket> {
    buckets.into_iter().rev().find(|b| b.end > now)
}

/// The notices of `events` (other events are left out).
pub fn notices(events: Vec<Event>) -> impl Iterator<Item = Notice> {
    let now = Instant::now();
    events
        .into_iter()
        .filter(|e| e.name == THRESHOLD_EVENT)
        .map(move |e| {
            let name = e.args.first().and_then(Value::as_str).unwrap_or("?");
            let percent = e.args.get(1).map_or("?".into(), Value::to_string);
            Notice {
                text: format!("quota {name} reached {percent} % of its limit"),
                at: now,
            }
        })
}

/// Keeps `new` notices before the `kept` ones, at most [`NOTICES`].
pub fn keep(kept: &mut Vec<Notice>, new: impl Iterator<Item = Notice>) {
    for n in new {
        kept.insert(0, n);
    }
    kept.truncate(NOTICES);
}

/// The block's lines: today, this month, each quota, the notices. `ledger`: the last
/// answer, or why asking failed; `None` before the first.
pub fn lines(ledger: Option<&Result<Ledger, String>>, notices: &[Notice]) -> Vec<Line<'static>> {
    let mut out = match ledger {
        None => vec![Line::raw(" asking for the calendar…").dim()],
        Some(Err(why)) => vec![Line::raw(format!(" calendar and quotas unavailable: {why}")).dim()],
        Some(Ok(l)) => {
            let mut out = vec![
                bucket_line("Today", l.today.as_ref()),
                bucket_line("This month", l.month.as_ref()),
            ];
            if l.quotas.is_empty() {
                out.push(Line::raw(" no quotas").dim());
            }
            out.extend(l.quotas.iter().take(MAX_QUOTAS).map(quota_line));
            if l.quotas.len() > MAX_QUOTAS {
                let more = l.quotas.len() - MAX_QUOTAS;
                out.push(Line::raw(format!(" … and {more} more quotas")).dim());
            }
            out
        }
    };
    out.extend(notices.iter().map(|n| {
        let ago = super::span(n.at.elapsed().as_secs());
        Line::raw(format!(" ! {} ({ago} ago)", n.text))
            .yellow()
            .bold()
    }));
    out
}

/// ` Today       2026-12-07  down 1.2 GiB  up 300.0 MiB`.
fn bucket_line(title: &str, b: Option<&Bucket>) -> Line<'static> {
    match b {
        Some(b) => Line::raw(format!(
            " {title:<12}{:<10}  down {:>10}  up {:>10}",
            b.label,
            format_bytes(b.total_download),
            format_bytes(b.total_upload)
        )),
        None => Line::raw(format!(" {title:<12}nothing counted")).dim(),
    }
}

/// ` month-cap    [███░░░░░░░]   30.2 %  30.2 GiB / 100.0 GiB  projected 95.0 GiB`,
/// yellow from 80 %, red once reached.
fn quota_line(q: &QuotaRow) -> Line<'static> {
    let Some(s) = &q.status else {
        return Line::raw(format!(" {:<12} not evaluated yet", q.name)).dim();
    };
    let line = Line::raw(format!(
        " {:<12} [{}] {:>6.1} %  {} / {}  projected {}",
        q.name,
        bar(s.percent),
        s.percent,
        format_bytes(s.used),
        format_bytes(s.limit),
        format_bytes(s.projected)
    ));
    if s.reached {
        line.red().bold()
    } else if s.percent >= 80.0 {
        line.yellow()
    } else {
        line
    }
}

/// `percent` (held to 0..=100) as [`BAR`] cells, full ones rounded down.
fn bar(percent: f64) -> String {
    let full = ((percent.clamp(0.0, 100.0) / 100.0) * BAR as f64).floor() as usize;
    format!("{}{}", "█".repeat(full), "░".repeat(BAR - full))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(lines: &[Line]) -> Vec<String> {
        lines.iter().map(ToString::to_string).collect()
    }

    fn bucket(label: &str, end: i64, up: u64, down: u64) -> Bucket {
        Bucket {
            label: label.into(),
            end,
            total_upload: up,
            total_download: down,
        }
    }

    #[test]
    fn the_current_bucket_is_the_newest_not_ended() {
        let rows = vec![bucket("a", 100, 1, 1), bucket("b", 200, 2, 2)];
        assert_eq!(
            current(rows.clone(), 150).map(|b| b.label),
            Some("b".into())
        );
        assert_eq!(current(rows.clone(), 99).map(|b| b.label), Some("b".into()));
        // Nothing counted in the current one: its bucket is absent.
        assert_eq!(current(rows, 200), None);
    }

    #[test]
    fn lines_show_buckets_quotas_and_notices() {
        let quotas: Vec<QuotaRow> = serde_json::from_value(json!([
            {"name": "cap", "period": "day", "limit": 100,
             "status": {"name": "cap", "used": 1536, "limit": 2048, "percent": 75.0,
                        "projected": 4096, "reached": false, "rate": 1.0, "end": 9}},
            {"name": "new", "status": null},
        ]))
        .unwrap();
        let ledger = Ok(Ledger {
            today: Some(bucket("2026-12-07", 10, 1024, 3 << 20)),
            month: None,
            quotas,
        });
        let mut kept = Vec::new();
        let event = |p: u64| Event {
            name: THRESHOLD_EVENT.into(),
            args: vec![json!("cap"), json!(p)],
        };
        let other = Event {
            name: "TorrentAddedEvent".into(),
            args: vec![],
        };
        keep(&mut kept, notices(vec![event(80), other]));
        keep(&mut kept, notices(vec![event(100)]));
        assert_eq!(
            text(&lines(Some(&ledger), &kept)),
            [
                " Today       2026-12-07  down    3.0 MiB  up    1.0 KiB",
                " This month  nothing counted",
                " cap          [███████░░░]   75.0 %  1.5 KiB / 2.0 KiB  projected 4.0 KiB",
                " new          not evaluated yet",
                " ! quota cap reached 100 % of its limit (0 s ago)",
                " ! quota cap reached 80 % of its limit (0 s ago)",
            ]
        );
        let failed = Err("stats.get_calendar failed".to_string());
        assert_eq!(
            text(&lines(Some(&failed), &[])),
            [" calendar and quotas unavailable: stats.get_calendar failed"]
        );
    }

    #[test]
    fn notices_keep_the_newest_three() {
        let mut kept = Vec::new();
        for p in [1, 2, 3, 4] {
            let e = Event {
                name: THRESHOLD_EVENT.into(),
                args: vec![json!("q"), json!(p)],
            };
            keep(&mut kept, notices(vec![e]));
        }
        let texts: Vec<&str> = kept.iter().map(|n| n.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "quota q reached 4 % of its limit",
                "quota q reached 3 % of its limit",
                "quota q reached 2 % of its limit",
            ]
        );
    }

    #[test]
    fn bars_round_down_and_hold_at_full() {
        assert_eq!(bar(0.0), "░░░░░░░░░░");
        assert_eq!(bar(19.9), "█░░░░░░░░░");
        assert_eq!(bar(100.0), "██████████");
        assert_eq!(bar(4000.0), "██████████");
        assert_eq!(bar(f64::NAN), "░░░░░░░░░░");
    }
}
