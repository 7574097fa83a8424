//! `torrent-stats report`: the traffic per 5 minutes, hour, day, month or year from the
//! daemon's calendar ledger (`stats.get_calendar`), the way vnStat's `-5`/`-h`/`-d`/`-m`/`-y`
//! show it: a table (downloaded, uploaded, total, ratio, and a total line), JSON or CSV.

use std::fmt::Write as _;

use serde_json::Value;
use torrent_stats::ledger::Period;
use torrent_stats::units::format_bytes;
use torrent_stats::Counters;

use crate::rpc_args::{self, RpcArgs};

/// The RPC method answering the buckets.
const METHOD: &str = "stats.get_calendar";

/// The CSV header, the answer's keys in order.
const CSV_HEADER: &str =
    "period,label,start,end,total_upload,total_download,total_payload_upload,total_payload_download";

/// Options of `torrent-stats report`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    rpc: RpcArgs,
    #[command(flatten)]
    period: PeriodFlags,
    /// One source's buckets [default: all sources together].
    #[arg(long, value_name = "NAME")]
    source: Option<String>,
    /// Where the buckets start: a date (2026-12-01), a date-time (2026-12-01T18:00) or
    /// Unix seconds [default: the oldest].
    #[arg(long, value_name = "WHEN")]
    start: Option<String>,
    /// Where the buckets end, in the same forms as --start [default: now].
    #[arg(long, value_name = "WHEN")]
    end: Option<String>,
    /// Show the payload counters (the torrents' data) instead of the wire's (with the
    /// protocol's overhead).
    #[arg(long)]
    payload: bool,
    /// Print CSV: a header line, then one line per bucket with the raw byte counts.
    #[arg(long, conflicts_with = "json")]
    csv: bool,
}

/// The bucket size flags, at most one of them.
#[derive(clap::Args, Debug, Default)]
#[group(multiple = false)]
struct PeriodFlags {
    /// Per 5 minutes.
    #[arg(long = "5min")]
    five_min: bool,
    /// Per hour.
    #[arg(long)]
    hours: bool,
    /// Per day (the default).
    #[arg(long)]
    days: bool,
    /// Per month.
    #[arg(long)]
    months: bool,
    /// Per year.
    #[arg(long)]
    years: bool,
}

/// The table's title: `daily`, `monthly`, ….
fn title(period: Period) -> &'static str {
    match period {
        Period::FiveMin => "5 minutes",
        Period::Hour => "hourly",
        Period::Day => "daily",
        Period::Month => "monthly",
        Period::Year => "yearly",
    }
}

impl PeriodFlags {
    /// The flag given, else days.
    fn period(&self) -> Period {
        if self.five_min {
            Period::FiveMin
        } else if self.hours {
            Period::Hour
        } else if self.months {
            Period::Month
        } else if self.years {
            Period::Year
        } else {
            Period::Day
        }
    }
}

/// One bucket of the answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Row {
    /// The bucket size's name.
    pub period: String,
    /// The bucket in local time: `2026-12-07`, `2026-10-25T02:00+01:00`, `2026-12`.
    pub label: String,
    /// The bucket's start, Unix seconds.
    pub start: i64,
    /// The bucket's end, Unix seconds.
    pub end: i64,
    /// The bytes counted in the bucket.
    #[serde(flatten)]
    pub counters: Counters,
}

/// An argument of `--start`/`--end` as sent: Unix seconds as a number, anything else as
/// the text (the daemon parses and rejects dates).
fn when(text: &str) -> Value {
    match text.trim().parse::<i64>() {
        Ok(seconds) => Value::from(seconds),
        Err(_) => Value::from(text.trim()),
    }
}

/// The positional arguments of `stats.get_calendar(period, source, start, end)`, without
/// trailing `None`s.
fn call_args(
    period: Period,
    source: Option<&str>,
    start: Option<&str>,
    end: Option<&str>,
) -> Vec<Value> {
    let mut args = vec![
        Value::from(period.as_str()),
        source.map_or(Value::Null, Value::from),
        start.map_or(Value::Null, when),
        end.map_or(Value::Null, when),
    ];
    while args.last() == Some(&Value::Null) {
        args.pop();
    }
    args
}

/// Runs `torrent-stats report`.
pub fn run(args: Args) -> anyhow::Result<()> {
    rpc_args::block_on(report(&args))
}

async fn report(args: &Args) -> anyhow::Result<()> {
    let period = args.period.period();
    let call = call_args(
        period,
        args.source.as_deref(),
        args.start.as_deref(),
        args.end.as_deref(),
    );
    let mut conn = args.rpc.connect().await?;
    let raw = conn.call(METHOD, call).await?;
    let rows: Vec<Row> = serde_json::from_value(raw.clone())
        .map_err(|e| anyhow::anyhow!("{METHOD} returned an unexpected shape: {e}"))?;
    if args.rpc.json {
        println!("{}", serde_json::to_string_pretty(&raw)?);
    } else if args.csv {
        print!("{}", csv(&rows));
    } else {
        let source = args.source.as_deref();
        print!("{}", table(&rows, period, source, args.payload));
    }
    Ok(())
}

/// Uploaded over downloaded with 2 decimals; `-` when nothing was downloaded.
fn ratio(uploaded: u64, downloaded: u64) -> String {
    if downloaded == 0 {
        "-".to_string()
    } else {
        format!("{:.2}", uploaded as f64 / downloaded as f64)
    }
}

/// The (downloaded, uploaded) shown: payload or wire.
fn shown(c: &Counters, payload: bool) -> (u64, u64) {
    if payload {
        (c.total_payload_download, c.total_payload_upload)
    } else {
        (c.total_download, c.total_upload)
    }
}

/// The table: a title, a header, one line per bucket, a total line.
pub fn table(rows: &[Row], period: Period, source: Option<&str>, payload: bool) -> String {
    let mut out = String::new();
    let of = source.map_or_else(|| "all sources".to_string(), |s| format!("source {s}"));
    let measure = if payload { ", payload" } else { "" };
    let _ = writeln!(out, "{of} / {}{measure}", title(period));
    if rows.is_empty() {
        out.push_str("nothing counted in this range\n");
        return out;
    }
    let heading = match period {
        Period::FiveMin => "time",
        other => other.as_str(),
    };
    let width = rows
        .iter()
        .map(|r| r.label.chars().count())
        .chain([heading.len(), "total".len()])
        .max()
        .unwrap_or(0);
    let line = |out: &mut String, label: &str, down: u64, up: u64| {
        let _ = writeln!(
            out,
            "{label:<width$}  {:>10}  {:>10}  {:>10}  {:>6}",
            format_bytes(down),
            format_bytes(up),
            format_bytes(down.saturating_add(up)),
            ratio(up, down)
        );
    };
    let _ = writeln!(
        out,
        "{heading:<width$}  {:>10}  {:>10}  {:>10}  {:>6}",
        "downloaded", "uploaded", "total", "ratio"
    );
    let rule = "-".repeat(width + 2 + 10 + 2 + 10 + 2 + 10 + 2 + 6);
    let _ = writeln!(out, "{rule}");
    let mut sum = Counters::default();
    for r in rows {
        let (down, up) = shown(&r.counters, payload);
        line(&mut out, &r.label, down, up);
        sum = sum.saturating_add(r.counters);
    }
    let _ = writeln!(out, "{rule}");
    let (down, up) = shown(&sum, payload);
    line(&mut out, "total", down, up);
    out
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// The CSV: [`CSV_HEADER`], then one line per bucket with the raw numbers.
pub fn csv(rows: &[Row]) -> String {
    let mut out = format!("{CSV_HEADER}\n");
    for r in rows {
        let c = &r.counters;
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{}",
            field(&r.period),
            field(&r.label),
            r.start,
            r.end,
            c.total_upload,
            c.total_download,
            c.total_payload_upload,
            c.total_payload_download
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::json;

    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;

    /// Canned answer rows: two days across the end of summer time in Europe/Berlin.
    fn rows() -> Vec<Row> {
        serde_json::from_value(json!([
            {"period": "day", "label": "2026-10-24", "start": 1792792800, "end": 1792879200,
             "total_upload": 3 * GIB, "total_download": 2 * GIB,
             "total_payload_upload": 2 * GIB + 512 * MIB, "total_payload_download": GIB},
            {"period": "day", "label": "2026-10-25", "start": 1792879200, "end": 1792969200,
             "total_upload": 100, "total_download": 0,
             "total_payload_upload": 0, "total_payload_download": 0},
        ]))
        .unwrap()
    }

    #[test]
    fn table_of_wire_counters() {
        let expected = "\
all sources / daily
day         downloaded    uploaded       total   ratio
------------------------------------------------------
2026-10-24     2.0 GiB     3.0 GiB     5.0 GiB    1.50
2026-10-25         0 B       100 B       100 B       -
------------------------------------------------------
total          2.0 GiB     3.0 GiB     5.0 GiB    1.50
";
        assert_eq!(table(&rows(), Period::Day, None, false), expected);
    }

    #[test]
    fn table_of_payload_counters_for_one_source() {
        let expected = "\
source seedbox / daily, payload
day         downloaded    uploaded       total   ratio
------------------------------------------------------
2026-10-24     1.0 GiB     2.5 GiB     3.5 GiB    2.50
2026-10-25         0 B         0 B         0 B       -
------------------------------------------------------
total          1.0 GiB     2.5 GiB     3.5 GiB    2.50
";
        assert_eq!(table(&rows(), Period::Day, Some("seedbox"), true), expected);
    }

    #[test]
    fn table_widens_for_hour_labels_and_says_when_empty() {
        let hour: Vec<Row> = serde_json::from_value(json!([
            {"period": "hour", "label": "2026-10-25T02:00+01:00", "start": 1792890000,
             "end": 1792893600, "total_upload": 1024, "total_download": 3072,
             "total_payload_upload": 0, "total_payload_download": 0},
        ]))
        .unwrap();
        let t = table(&hour, Period::Hour, None, false);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "all sources / hourly");
        assert_eq!(
            lines[3],
            "2026-10-25T02:00+01:00     3.0 KiB     1.0 KiB     4.0 KiB    0.33"
        );
        assert!(lines[1].starts_with("hour                    downloaded"));
        assert_eq!(lines[2].len(), lines[3].len());
        assert_eq!(
            table(&[], Period::Month, None, false),
            "all sources / monthly\nnothing counted in this range\n"
        );
    }

    #[test]
    fn csv_has_the_header_and_raw_numbers() {
        let mut rows = rows();
        rows[1].label = "odd, \"label\"".to_string();
        assert_eq!(
            csv(&rows),
            format!(
                "{CSV_HEADER}\n\
                 day,2026-10-24,1792792800,1792879200,{},{},{},{}\n\
                 day,\"odd, \"\"label\"\"\",1792879200,1792969200,100,0,0,0\n",
                3 * GIB,
                2 * GIB,
                2 * GIB + 512 * MIB,
                GIB
            )
        );
        assert_eq!(csv(&[]), format!("{CSV_HEADER}\n"));
    }

    #[test]
    fn ratio_has_two_decimals_and_a_dash_for_nothing_downloaded() {
        assert_eq!(ratio(1, 3), "0.33");
        assert_eq!(ratio(5, 0), "-");
        assert_eq!(ratio(0, 7), "0.00");
    }

    #[test]
    fn arguments_sent() {
        assert_eq!(call_args(Period::Day, None, None, None), vec![json!("day")]);
        assert_eq!(
            call_args(Period::FiveMin, None, Some("2026-12-01"), None),
            vec![json!("5min"), Value::Null, json!("2026-12-01")]
        );
        assert_eq!(
            call_args(Period::Year, Some("lan"), None, Some(" 1796598000 ")),
            vec![json!("year"), json!("lan"), Value::Null, json!(1796598000)]
        );
    }

    /// The subcommand parsed alone, as `torrent-stats report ARGS` would be.
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn flags_choose_one_period_days_by_default() {
        let parse = |argv: &[&str]| Cli::try_parse_from([&["report"], argv].concat());
        let period = |argv: &[&str]| parse(argv).unwrap().args.period.period();
        assert_eq!(period(&[]), Period::Day);
        assert_eq!(period(&["--5min"]), Period::FiveMin);
        assert_eq!(period(&["--hours"]), Period::Hour);
        assert_eq!(period(&["--months"]), Period::Month);
        assert_eq!(period(&["--years"]), Period::Year);
        assert!(parse(&["--days", "--months"]).is_err());
        assert!(parse(&["--json", "--csv"]).is_err());
        let a = parse(&["--source", "lan", "--start", "2026-12-01", "--payload"])
            .unwrap()
            .args;
        assert_eq!(a.source.as_deref(), Some("lan"));
        assert_eq!(a.start.as_deref(), Some("2026-12-01"));
        assert!(a.payload && a.end.is_none());
    }
}
