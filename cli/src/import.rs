//! `torrent-stats import deluge|transmission PATH`: add another client's all-time totals.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::json;
use torrent_stats::import;
use torrent_stats::import::ImportFormat;
use torrent_stats::Counters;

use crate::rpc_args::{self, RpcArgs};

/// `torrent-stats import`.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Add the totals of Deluge's Stats plugin (its `stats.totals`, e.g.
    /// ~/.config/deluge/stats.totals) to the all-time totals (needs an ADMIN account).
    ///
    /// All four counters are imported: total_upload, total_download, total_payload_upload
    /// and total_payload_download. The same file can be imported only once.
    Deluge(FileArgs),
    /// Add Transmission's cumulative totals (its `stats.json`, e.g.
    /// ~/.config/transmission-daemon/stats.json) to the all-time totals (needs an ADMIN
    /// account).
    ///
    /// Transmission counts payload only: its uploaded-bytes and downloaded-bytes are added
    /// to both the total and the payload counters. The same file can be imported only once.
    Transmission(FileArgs),
}

/// Options of `torrent-stats import deluge|transmission`.
#[derive(clap::Args)]
pub struct FileArgs {
    /// The file to import.
    path: PathBuf,
    /// The source the totals go to (its all-time totals grow by them; e.g. the
    /// `transmission` sidecar counting that Transmission from now on) [default: the
    /// daemon's first active source].
    #[arg(long, value_name = "NAME")]
    into: Option<String>,
    #[command(flatten)]
    rpc: RpcArgs,
}

pub fn run(command: Command) -> anyhow::Result<()> {
    let (format, args) = match command {
        Command::Deluge(args) => (ImportFormat::Deluge, args),
        Command::Transmission(args) => (ImportFormat::Transmission, args),
    };
    if let Some(name) = &args.into {
        torrent_stats::SourceName::new(name)?;
    }
    let source = format.as_str();
    let bytes = import::read_file(&args.path)?;
    let totals = format.parse(&bytes).with_context(|| {
        format!(
            "{} is not a usable {} file; nothing was imported",
            args.path.display(),
            format.file_kind()
        )
    })?;
    let fingerprint = format.fingerprint(&bytes);
    rpc_args::block_on(async move {
        let mut conn = args.rpc.connect().await?;
        let after = conn
            .call(
                "stats.import_totals",
                vec![
                    json!(source),
                    json!(fingerprint),
                    serde_json::to_value(totals)?,
                    json!(args.into),
                ],
            )
            .await
            .context("nothing was imported")?;
        let after = rpc_args::counters("stats.import_totals", after)?;
        if args.rpc.json {
            #[derive(serde::Serialize)]
            struct Out<'a> {
                source: &'a str,
                fingerprint: &'a str,
                imported: Counters,
                totals: Counters,
            }
            let out = Out {
                source,
                fingerprint: &fingerprint,
                imported: totals,
                totals: after,
            };
            println!("{}", serde_json::to_string_pretty(&out)?);
            return Ok(());
        }
        println!("Added from {} ({fingerprint}):", args.path.display());
        crate::totals::print_counters(&totals);
        println!("All-time totals now:");
        crate::totals::print_counters(&after);
        Ok(())
    })
}
