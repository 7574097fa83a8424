//! `torrent-stats`: the daemon and its command-line tools.

mod daemon;
mod totals;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// All-time BitTorrent upload/download statistics, Deluge Stats-plugin compatible.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: poll the session source and keep crash-safe all-time totals.
    Daemon(daemon::Args),
    /// Print the all-time totals from a config directory (offline).
    Totals(totals::Args),
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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Daemon(args) => daemon::run(args),
        Command::Totals(args) => totals::run(args),
    }
}
