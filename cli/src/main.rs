//! `torrent-stats`: the daemon and its command-line tools.

// The exception: two calls into glibc's malloc (`trim.rs`).
#![deny(unsafe_code)]

mod backup;
mod config;
mod import;
mod listen;
mod notify;
mod plugin;
mod report;
mod reset;
mod rpc_args;
mod serve;
mod session;
mod source;
mod totals;
mod trim;
mod watch;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// All-time BitTorrent upload/download statistics, Deluge Stats-plugin compatible.
#[derive(Parser)]
#[command(name = "torrent-stats", version, about)]
struct Cli {
    /// Log format on stderr: text (coloured only on a terminal, and not with NO_COLOR
    /// set) or json (one JSON object per line).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = LogFormat::Text,
        env = "TORRENT_STATS_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line: timestamp, level, fields, target.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: poll the session source and keep crash-safe all-time totals.
    Daemon(serve::Args),
    /// Print the all-time totals (from the daemon; --offline reads the files).
    Totals(totals::Args),
    /// Print the current session's totals, rates and peers.
    Session(session::Args),
    /// Print the traffic per 5 minutes, hour, day (default), month or year, as a table,
    /// JSON or CSV (the daemon's calendar ledger).
    Report(report::Args),
    /// Copy the config directory (totals, history, the calendar ledger, settings) to a new
    /// directory, consistently, while the daemon runs or not.
    Backup(backup::Args),
    /// Show or change the Stats plugin's preferences.
    #[command(subcommand)]
    Config(config::Command),
    /// List, enable or disable the daemon's plugins.
    #[command(subcommand)]
    Plugin(plugin::Command),
    /// Zero the all-time totals (needs --yes and an ADMIN account).
    Reset(reset::Args),
    /// Add another client's all-time totals (Deluge, Transmission) to ours.
    #[command(subcommand)]
    Import(import::Command),
    /// List, add, remove or purge the daemon's sources.
    #[command(subcommand)]
    Source(source::Command),
    /// Show totals, rates, peers and the source's health live (q quits).
    Watch(watch::Args),
}

/// The config directory: the given one, or the platform's (`~/.config/torrent-stats`).
pub fn config_dir(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = given {
        return Ok(dir);
    }
    let file = confy::get_configuration_file_path("torrent-stats", "core")
        .context("no config directory could be found; pass --config-dir")?;
    Ok(file
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".")))
}

/// Logs to stderr at RUST_LOG's levels (default info). ANSI colours only when stderr is a
/// terminal and NO_COLOR is unset or empty.
fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => {
            let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
            logs.with_ansi(std::io::stderr().is_terminal() && !no_color)
                .init()
        }
        LogFormat::Json => logs.json().with_ansi(false).init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.log_format);
    let result = match cli.command {
        Command::Daemon(args) => serve::run(args),
        Command::Totals(args) => totals::run(args),
        Command::Session(args) => session::run(args),
        Command::Report(args) => report::run(args),
        Command::Backup(args) => backup::run(args),
        Command::Config(command) => config::run(command),
        Command::Plugin(command) => plugin::run(command),
        Command::Reset(args) => reset::run(args),
        Command::Import(command) => import::run(command),
        Command::Watch(args) => watch::run(args),
        Command::Source(command) => source::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", report(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, `: `-separated like `{:#}`, leaving out a cause whose text
/// the message already holds (many errors show their cause in their own message).
fn report(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}
