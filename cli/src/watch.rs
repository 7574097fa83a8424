//! `torrent-stats watch`: a live terminal view of the daemon's totals, rates, peers and
//! source health, refreshed every second; today's and this month's bytes and the quotas,
//! refreshed every few seconds ([`ledger`]), and a notice when a quota crosses a threshold.
//!
//! Three parts: a poller task asks the daemon once a second over one connection (made
//! again after any failure, so a daemon that stops answering is shown and waited for) and
//! sends each answer or error to the view (the connection is subscribed to
//! `QuotaThresholdEvent`, and the events received come with the answers); a blocking task reads the terminal's keys; the
//! view redraws when either arrives and quits on `q`, Esc or Ctrl-C. `ratatui::init` puts
//! the terminal in raw mode on the alternate screen and installs a panic hook that
//! restores it; every other exit restores it here.
//!
//! With `--json` there is no view and no terminal is needed: each poll becomes one JSON
//! line on stdout (the totals and session totals in bytes, the newest rates and peers,
//! the source's status; or the error), until Ctrl-C or until the reader goes away.

use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, RenderDirection, Sparkline};
use ratatui::{DefaultTerminal, Frame};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use torrent_stats::clock::unix_now;
use torrent_stats::units::format_bytes;
use torrent_stats::Counters;

use crate::rpc_args::{self, Conn, RpcArgs, Unreachable};

mod ledger;

/// How often the daemon is asked.
const REFRESH: Duration = Duration::from_secs(1);
/// How long connecting and one round of calls may take before the connection is dropped.
const POLL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the key reader waits for a key before checking that the view still runs.
const KEY_WAIT: Duration = Duration::from_millis(100);
/// The history series asked of `stats.get_stats` (the fields of [`History`]).
const SERIES: [&str; 5] = [
    "upload_rate",
    "download_rate",
    "payload_upload_rate",
    "payload_download_rate",
    "num_peers",
];
/// Width of the label and current value left of each sparkline.
const RATE_LABEL: u16 = 30;

/// Options of `torrent-stats watch`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    rpc: RpcArgs,
}

/// `stats.get_status`: how the source and the files are doing (times are Unix seconds;
/// a field an older daemon lacks reads as empty).
#[derive(Deserialize, Serialize, Default)]
#[serde(default)]
struct Status {
    source: String,
    session: Option<String>,
    source_up: bool,
    last_error: Option<String>,
    failing_since: Option<f64>,
    last_poll: Option<f64>,
    last_save: Option<f64>,
    save_failing: bool,
    save_error: Option<String>,
    measured: Vec<String>,
    polls: u64,
    poll_errors: u64,
    save_errors: u64,
}

/// `stats.get_stats`: the recent history of each of [`SERIES`], newest first.
#[derive(Deserialize, Default)]
#[serde(default)]
struct History {
    upload_rate: Vec<u64>,
    download_rate: Vec<u64>,
    payload_upload_rate: Vec<u64>,
    payload_download_rate: Vec<u64>,
    num_peers: Vec<u64>,
}

/// One answered poll.
struct Snapshot {
    totals: Counters,
    session: Counters,
    status: Status,
    /// Seconds between two history points (the finest of `stats.get_intervals`).
    interval: u64,
    history: History,
    /// Each source (`stats.get_sources`), and its JSON for `--json`.
    sources: Vec<crate::source::Row>,
    sources_json: Value,
    /// The calendar and quotas, or why asking failed, when asked this poll.
    ledger: Option<Result<ledger::Ledger, String>>,
    /// The events that arrived since the last poll.
    events: Vec<torrent_stats::Event>,
}

/// A failed poll.
struct Failure {
    /// Whether the daemon was connected to (the calls failed, not the connection).
    reached: bool,
    error: String,
}

/// What the view shows: the last snapshot and how the last poll went.
struct View {
    /// The daemon's `host:port`.
    addr: String,
    last: Option<Snapshot>,
    /// When the last snapshot arrived.
    answered: Option<Instant>,
    /// Why the last poll failed, if it did.
    failure: Option<Failure>,
    /// The last calendar and quotas, or why asking failed.
    ledger: Option<Result<ledger::Ledger, String>>,
    /// The latest quota notices, newest first.
    notices: Vec<ledger::Notice>,
}

/// Runs `torrent-stats watch` until a quit key (with `--json`, until Ctrl-C or a closed
/// stdout).
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.rpc.json {
        rpc_args::block_on(stream_json(args.rpc))
    } else {
        rpc_args::block_on(watch(args.rpc))
    }
}

/// `watch --json`: one JSON line a poll, through the same poller as the view.
async fn stream_json(rpc: RpcArgs) -> anyhow::Result<()> {
    let conn = match rpc.connect().await {
        Ok(conn) => Some(conn),
        Err(e) if e.is::<Unreachable>() => None,
        Err(e) => return Err(e),
    };
    let (poll_tx, mut polls) = mpsc::channel(1);
    tokio::spawn(poll_loop(rpc, conn, poll_tx, false));
    loop {
        tokio::select! {
            answer = polls.recv() => {
                let line = json_line(answer.context("the poller stopped")?, unix_now());
                let mut out = io::stdout().lock();
                if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                    return Ok(()); // the reader is gone (a closed pipe)
                }
            }
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// One poll as a JSON line: `time` (Unix seconds) and either the snapshot or `error`.
fn json_line(poll: Result<Snapshot, Failure>, time: f64) -> Value {
    match poll {
        Ok(s) => {
            let newest = |v: &[u64]| v.first().copied();
            json!({
                "time": time,
                "totals": s.totals,
                "session": s.session,
                "upload_rate": newest(&s.history.upload_rate),
                "download_rate": newest(&s.history.download_rate),
                "payload_upload_rate": newest(&s.history.payload_upload_rate),
                "payload_download_rate": newest(&s.history.payload_download_rate),
                "num_peers": newest(&s.history.num_peers),
                "status": s.status,
                "sources": s.sources_json,
            })
        }
        Err(f) => json!({"time": time, "error": f.error, "reached": f.reached}),
    }
}

/// Connects, then shows the view on the alternate screen and restores the terminal.
async fn watch(rpc: RpcArgs) -> anyhow::Result<()> {
    if !io::stdout().is_terminal() {
        bail!("watch needs a terminal; in scripts use `watch --json` (a JSON line a second), `totals` or `session`");
    }
    // A daemon that is not running yet is waited for; bad credentials are not.
    let conn = match rpc.connect().await {
        Ok(conn) => Some(conn),
        Err(e) if e.is::<Unreachable>() => None,
        Err(e) => return Err(e),
    };
    let mut view = View {
        addr: rpc.addr(),
        last: None,
        answered: None,
        failure: None,
        ledger: None,
        notices: Vec::new(),
    };
    let mut terminal = ratatui::init();
    let (poll_tx, mut polls) = mpsc::channel(1);
    let (key_tx, mut keys) = mpsc::channel(16);
    tokio::spawn(poll_loop(rpc, conn, poll_tx, true));
    tokio::task::spawn_blocking(move || read_keys(key_tx));
    let result = show(&mut terminal, &mut view, &mut polls, &mut keys).await;
    drop(terminal); // shows the cursor again
    ratatui::restore();
    result
}

/// Redraws on every poll and key until a quit key.
async fn show(
    terminal: &mut DefaultTerminal,
    view: &mut View,
    polls: &mut mpsc::Receiver<Result<Snapshot, Failure>>,
    keys: &mut mpsc::Receiver<io::Result<Event>>,
) -> anyhow::Result<()> {
    loop {
        terminal
            .draw(|frame| view.render(frame))
            .context("drawing")?;
        tokio::select! {
            answer = polls.recv() => view.update(answer.context("the poller stopped")?),
            input = keys.recv() => match input.context("the key reader stopped")? {
                Ok(Event::Key(key)) if quits(key) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e).context("reading the terminal"),
            },
            // In raw mode Ctrl-C is a key; this is a SIGINT sent by `kill`.
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// Whether `key` is `q`, Esc or Ctrl-C.
fn quits(key: KeyEvent) -> bool {
    match key.code {
        KeyCode::Char('q' | 'Q') | KeyCode::Esc => true,
        KeyCode::Char('c') => key.modifiers.contains(KeyModifiers::CONTROL),
        _ => false,
    }
}

/// Sends key presses and resizes until the view is gone or reading fails.
fn read_keys(tx: mpsc::Sender<io::Result<Event>>) {
    while !tx.is_closed() {
        let event = match event::poll(KEY_WAIT) {
            Ok(false) => continue,
            Ok(true) => event::read(),
            Err(e) => Err(e),
        };
        match event {
            Ok(Event::Key(key)) if key.kind != KeyEventKind::Press => {}
            Ok(Event::Key(_) | Event::Resize(..)) => {
                if tx.blocking_send(event).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        }
    }
}

/// Asks the daemon every [`REFRESH`], reconnecting after any failure, until the view is
/// gone; `with_ledger`: the calendar and quotas too, every [`ledger::LEDGER_REFRESH`] and
/// after each new connection, and the threshold events.
async fn poll_loop(
    rpc: RpcArgs,
    mut conn: Option<Conn>,
    tx: mpsc::Sender<Result<Snapshot, Failure>>,
    with_ledger: bool,
) {
    let mut tick = tokio::time::interval(REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut subscribed = false;
    let mut ledger_asked: Option<Instant> = None;
    loop {
        tick.tick().await;
        if conn.is_none() {
            subscribed = false;
        }
        let ledger_due = with_ledger
            && (!subscribed || ledger_asked.is_none_or(|t| t.elapsed() >= ledger::LEDGER_REFRESH));
        let polled = async {
            let c = match &mut conn {
                Some(c) => c,
                None => conn.insert(rpc.connect().await?),
            };
            if with_ledger && !subscribed {
                ledger::subscribe(c).await?;
                subscribed = true;
            }
            poll(c, ledger_due).await
        };
        let result = tokio::time::timeout(POLL_TIMEOUT, polled)
            .await
            .unwrap_or_else(|_| Err(anyhow!("no answer within {POLL_TIMEOUT:?}")));
        if result.is_ok() && ledger_due {
            ledger_asked = Some(Instant::now());
        }
        let result = result.map_err(|e| Failure {
            reached: conn.take().is_some(),
            error: format!("{e:#}"),
        });
        if tx.send(result).await.is_err() {
            return;
        }
    }
}

/// One snapshot; with `ledger_due`, the calendar and quotas too.
async fn poll(conn: &mut Conn, ledger_due: bool) -> anyhow::Result<Snapshot> {
    let answers = conn
        .calls(&[
            ("stats.get_intervals", vec![]),
            ("stats.get_totals", vec![]),
            ("stats.get_session_totals", vec![]),
            ("stats.get_status", vec![]),
        ])
        .await?;
    let [intervals, totals, session, status] =
        <[Value; 4]>::try_from(answers).map_err(|a| anyhow!("{} answers to 4 calls", a.len()))?;
    let interval = intervals
        .get(0)
        .and_then(Value::as_u64)
        .context("stats.get_intervals returned no interval")?;
    let history = conn
        .call("stats.get_stats", vec![json!(SERIES), json!(interval)])
        .await?;
    let (sources_json, sources) = crate::source::fetch(conn).await?;
    let ledger = match ledger_due {
        true => Some(
            ledger::fetch(conn, unix_now() as i64)
                .await
                .map_err(|e| format!("{e:#}")),
        ),
        false => None,
    };
    let events = conn.events().await?;
    Ok(Snapshot {
        totals: rpc_args::counters("stats.get_totals", totals)?,
        session: rpc_args::counters("stats.get_session_totals", session)?,
        status: serde_json::from_value(status).context("stats.get_status: unexpected shape")?,
        interval,
        history: serde_json::from_value(history).context("stats.get_stats: unexpected shape")?,
        sources,
        sources_json,
        ledger,
        events,
    })
}

impl View {
    /// Takes in one poll's outcome.
    fn update(&mut self, poll: Result<Snapshot, Failure>) {
        match poll {
            Ok(mut snapshot) => {
                if let Some(ledger) = snapshot.ledger.take() {
                    self.ledger = Some(ledger);
                }
                let events = std::mem::take(&mut snapshot.events);
                ledger::keep(&mut self.notices, ledger::notices(events));
                self.last = Some(snapshot);
                self.answered = Some(Instant::now());
                self.failure = None;
            }
            Err(failure) => self.failure = Some(failure),
        }
    }

    /// Draws the health, totals, calendar, sources and rates blocks and the key help.
    fn render(&self, frame: &mut Frame) {
        let (health, trouble) = self.health();
        let sources = self.sources();
        let calendar = ledger::lines(self.ledger.as_ref(), &self.notices);
        let [top, totals, days, each, rates, help] = Layout::vertical([
            Constraint::Length(health.len() as u16 + 2),
            Constraint::Length(8),
            Constraint::Length(calendar.len() as u16 + 2),
            Constraint::Length(if sources.is_empty() {
                0
            } else {
                sources.len() as u16 + 2
            }),
            Constraint::Min(7),
            Constraint::Length(1),
        ])
        .areas(frame.area());
        let title = format!(" torrent-stats watch: {} ", self.addr);
        let border = if trouble {
            Style::new().red()
        } else {
            Style::new()
        };
        let block = Block::bordered().title(title.bold()).border_style(border);
        frame.render_widget(Paragraph::new(health).block(block), top);
        // Figures from a daemon that no longer answers are shown dimmed.
        let stale = if self.failure.is_some() {
            Style::new().dim()
        } else {
            Style::new()
        };
        frame.render_widget(
            Paragraph::new(self.totals())
                .style(stale)
                .block(Block::bordered().title(" Totals ")),
            totals,
        );
        frame.render_widget(
            Paragraph::new(calendar)
                .style(stale)
                .block(Block::bordered().title(" Calendar (all sources) and quotas ")),
            days,
        );
        if !sources.is_empty() {
            frame.render_widget(
                Paragraph::new(sources)
                    .style(stale)
                    .block(Block::bordered().title(" Sources (totals: wire bytes, or payload where that is all a source measures) ")),
                each,
            );
        }
        self.render_rates(frame, rates, stale);
        frame.render_widget(Line::from(" q, Esc, Ctrl-C: quit").dim(), help);
    }

    /// With more than one source, a header and one line per source: name, state, what it
    /// measures, all-time up and down, current rates.
    fn sources(&self) -> Vec<Line<'static>> {
        let Some(snapshot) = &self.last else {
            return Vec::new();
        };
        if snapshot.sources.len() < 2 {
            return Vec::new();
        }
        let mut out = vec![Line::raw(format!(
            " {:<16} {:<8} {:<8} {:>11} {:>11} {:>11} {:>11}",
            "name", "state", "measures", "uploaded", "downloaded", "up/s", "down/s"
        ))
        .bold()];
        for r in &snapshot.sources {
            let (up, down) = r.up_down();
            let line = format!(
                " {:<16} {:<8} {:<8} {:>11} {:>11} {:>11} {:>11}",
                r.name,
                r.state(),
                r.measures(),
                format_bytes(up),
                format_bytes(down),
                format_bytes(r.rates.upload_rate),
                format_bytes(r.rates.download_rate)
            );
            out.push(match r.state() {
                "down" => Line::raw(line).red(),
                "retired" => Line::raw(line).dim(),
                _ => Line::raw(line),
            });
        }
        out
    }

    /// The daemon, source, poll and save lines, and whether any of them is in trouble.
    fn health(&self) -> (Vec<Line<'static>>, bool) {
        let mut lines = Vec::new();
        match (&self.failure, self.answered) {
            (None, Some(_)) => lines.push(field("Daemon", "connected".green().bold())),
            (None, None) => lines.push(field("Daemon", "connecting…".yellow())),
            (Some(failure), answered) => {
                let what = if failure.reached {
                    "polling the daemon failed"
                } else {
                    "cannot reach the daemon"
                };
                let last = answered.map_or("never answered".into(), |t| {
                    format!("last answer {} ago", span(t.elapsed().as_secs()))
                });
                let down = format!("{what} ({last}); retrying every second");
                lines.push(field("Daemon", down.red().bold()));
                lines.push(field("", failure.error.clone().red()));
            }
        }
        let stale = self.failure.is_some();
        let Some(Snapshot { status: s, .. }) = &self.last else {
            return (lines, stale);
        };
        let mut source = field("Source", Span::raw(format!("{}  ", s.source)));
        if s.source_up {
            source.push_span("up".green().bold());
        } else {
            let since = s
                .failing_since
                .map_or(String::new(), |t| format!(" for {}", age(t)));
            source.push_span(format!("DOWN{since}").red().bold());
        }
        if stale {
            source.push_span(" (last known)".dim());
        }
        lines.push(source);
        if let (false, Some(why)) = (s.source_up, &s.last_error) {
            lines.push(field("", why.clone().red()));
        }
        let session = s.session.as_deref().unwrap_or("none yet");
        lines.push(field("Session", Span::raw(session.to_string())));
        let last_poll = s
            .last_poll
            .map_or("never".into(), |t| format!("{} ago", age(t)));
        let polls = format!("{} ok, {} failed, last {last_poll}", s.polls, s.poll_errors);
        lines.push(field("Polls", Span::raw(polls)));
        let measured = s.measured.iter().map(|m| m.trim_start_matches("total_"));
        let measured = measured.collect::<Vec<_>>().join(", ").replace('_', " ");
        let measured = if measured.is_empty() {
            "-".into()
        } else {
            measured
        };
        lines.push(field("Measures", Span::raw(measured)));
        let saves = if s.save_failing {
            let why = s.save_error.as_deref().unwrap_or("unknown error");
            format!("FAILING ({} failed): {why}", s.save_errors)
                .red()
                .bold()
        } else {
            let last_save = s
                .last_save
                .map_or("never".into(), |t| format!("{} ago", age(t)));
            Span::raw(format!("last {last_save}, {} failed", s.save_errors))
        };
        lines.push(field("Saves", saves));
        let trouble = stale || !s.source_up || s.save_failing;
        (lines, trouble)
    }

    /// The all-time and session counters and ratios, one line each.
    fn totals(&self) -> Vec<Line<'static>> {
        let row = |label: &str, all: String, session: String| {
            Line::raw(format!(" {label:<14}{all:>12}  {session:>12}"))
        };
        let Some(Snapshot {
            totals: t,
            session: s,
            ..
        }) = &self.last
        else {
            return vec![Line::raw(" no answer from the daemon yet")];
        };
        let bytes = |get: fn(&Counters) -> u64| (format_bytes(get(t)), format_bytes(get(s)));
        let lines = [
            ("Uploaded", bytes(|c| c.total_upload)),
            ("Downloaded", bytes(|c| c.total_download)),
            ("Payload up", bytes(|c| c.total_payload_upload)),
            ("Payload down", bytes(|c| c.total_payload_download)),
            ("Ratio", (ratio(t), ratio(s))),
        ];
        let mut out = vec![row("", "All-time".into(), "Session".into()).bold()];
        out.extend(lines.into_iter().map(|(label, (a, s))| row(label, a, s)));
        out
    }

    /// One row per history series: its label, newest value and sparkline.
    fn render_rates(&self, frame: &mut Frame, area: Rect, style: Style) {
        let title = match &self.last {
            Some(s) => format!(
                " Rates: a point every {} s, newest on the right ",
                s.interval
            ),
            None => " Rates ".into(),
        };
        let block = Block::bordered().title(title);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let Some(Snapshot { history: h, .. }) = &self.last else {
            return;
        };
        let rows = [
            ("Upload", &h.upload_rate, Color::Green),
            ("Download", &h.download_rate, Color::Cyan),
            ("Payload up", &h.payload_upload_rate, Color::Green),
            ("Payload down", &h.payload_download_rate, Color::Cyan),
            ("Peers", &h.num_peers, Color::Yellow),
        ];
        let areas = Layout::vertical([Constraint::Fill(1); 5])
            .spacing(1)
            .split(inner);
        for ((label, series, color), area) in rows.into_iter().zip(areas.iter()) {
            let now = match (series.first(), label) {
                (None, _) => "-".to_string(),
                (Some(n), "Peers") => n.to_string(),
                (Some(&n), _) => format!("{}/s", format_bytes(n)),
            };
            let [text, graph] =
                Layout::horizontal([Constraint::Length(RATE_LABEL), Constraint::Fill(1)])
                    .areas(*area);
            let line = Line::raw(format!(" {label:<14}{now:>13}"));
            frame.render_widget(Paragraph::new(line).style(style), text);
            let sparkline = Sparkline::default()
                .data(series)
                .direction(RenderDirection::RightToLeft)
                .style(style.fg(color));
            frame.render_widget(sparkline, graph);
        }
    }
}

/// A health line: a bold label column, then `value`.
fn field(label: &str, value: Span<'static>) -> Line<'static> {
    Line::from(vec![format!(" {label:<9}").bold(), value])
}

/// Upload over download, as Deluge shows it: the wire counters, or the payload ones when
/// the source does not count the wire (both zero).
fn ratio(c: &Counters) -> String {
    let (up, down) = if c.total_upload > 0 || c.total_download > 0 {
        (c.total_upload, c.total_download)
    } else {
        (c.total_payload_upload, c.total_payload_download)
    };
    match (up, down) {
        (0, 0) => "-".into(),
        (_, 0) => "∞".into(),
        _ => format!("{:.3}", up as f64 / down as f64),
    }
}

/// How long ago the Unix time `t` (seconds) was.
fn age(t: f64) -> String {
    span((unix_now() - t).max(0.0) as u64)
}

/// A duration in seconds, minutes or hours.
fn span(secs: u64) -> String {
    match secs {
        0..120 => format!("{secs} s"),
        120..7200 => format!("{} min", secs / 60),
        _ => format!("{} h", secs / 3600),
    }
}
