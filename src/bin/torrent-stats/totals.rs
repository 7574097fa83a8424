//! `torrent-stats totals`: the all-time totals from the files, without a daemon.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::bail;
use serde_json::json;
use torrent_stats::stats::{Accumulator, TOTALS_FILE};
use torrent_stats::store::{self, Rejected};
use torrent_stats::units::format_bytes;

/// Options of `torrent-stats totals`.
#[derive(clap::Args)]
pub struct Args {
    /// The daemon's config directory.
    #[arg(long, env = "TORRENT_STATS_CONFIG_DIR")]
    config_dir: Option<PathBuf>,
    /// Print JSON (bytes) instead of human units.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = crate::config_dir(args.config_dir)?;
    let path = dir.join(TOTALS_FILE);
    let acc = match store::read::<Accumulator>(&path) {
        Ok(acc) => acc,
        Err(Rejected::Missing) => bail!("no totals yet: {} does not exist", path.display()),
        Err(Rejected::Bad(reason)) => {
            let mut bak = path.clone().into_os_string();
            bak.push(".bak");
            match store::read::<Accumulator>(bak.as_ref()) {
                Ok(acc) => {
                    eprintln!(
                        "warning: {} is unusable ({reason}); showing its backup",
                        path.display()
                    );
                    acc
                }
                Err(b) => bail!(
                    "{} is unusable ({reason}) and so is its backup ({b})",
                    path.display()
                ),
            }
        }
    };
    let t = acc.totals;
    let s = acc.last;
    if args.json {
        let out = json!({
            "total_upload": t.total_upload,
            "total_download": t.total_download,
            "total_payload_upload": t.total_payload_upload,
            "total_payload_download": t.total_payload_download,
            "session": s,
            "session_id": acc.session,
            "updated": acc.updated,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "Uploaded:   {:>10}  (payload {})",
        format_bytes(t.total_upload),
        format_bytes(t.total_payload_upload)
    );
    println!(
        "Downloaded: {:>10}  (payload {})",
        format_bytes(t.total_download),
        format_bytes(t.total_payload_download)
    );
    println!(
        "Session:    {} up, {} down",
        format_bytes(s.total_upload),
        format_bytes(s.total_download)
    );
    if acc.updated > 0 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        println!("Updated:    {} s ago", now.saturating_sub(acc.updated));
    }
    Ok(())
}
