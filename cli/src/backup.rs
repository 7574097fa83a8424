//! `torrent-stats backup DIR`: a consistent copy of the config directory, while the
//! daemon runs or not (the ledger through SQLite's backup API).

use std::path::PathBuf;

use anyhow::Context;
use torrent_stats::ledger::backup;
use torrent_stats::units::format_bytes;

/// Options of `torrent-stats backup`.
#[derive(clap::Args)]
pub struct Args {
    /// The new directory the copy goes to (it must not exist, or be empty).
    dir: PathBuf,
    /// The config directory to copy (default: the daemon's).
    #[arg(long, env = "TORRENT_STATS_CONFIG_DIR")]
    config_dir: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let src = crate::config_dir(args.config_dir)?;
    if !src.is_dir() {
        anyhow::bail!(
            "{} is not a directory: nothing to back up (pass --config-dir)",
            src.display()
        );
    }
    let report = backup::backup(&src, &args.dir)
        .with_context(|| format!("backing up {} to {}", src.display(), args.dir.display()))?;
    println!(
        "Backed up {} to {}: {} files, {} (the ledger by SQLite's backup API).",
        src.display(),
        args.dir.display(),
        report.files,
        format_bytes(report.bytes)
    );
    println!(
        "To restore: stop the daemon, move the config directory aside, copy {} in its place.",
        args.dir.display()
    );
    Ok(())
}
