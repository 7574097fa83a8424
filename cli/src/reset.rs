//! `torrent-stats reset --yes`: zero the all-time totals.

use anyhow::bail;
use torrent_stats::TOTALS_FILE;

use crate::rpc_args::{self, RpcArgs};

/// Options of `torrent-stats reset`.
#[derive(clap::Args)]
pub struct Args {
    /// Really reset (nothing is asked interactively; without --yes nothing happens).
    #[arg(long)]
    yes: bool,
    /// Reset only this source's totals [default: every active source's].
    #[arg(long, value_name = "NAME")]
    source: Option<String>,
    #[command(flatten)]
    rpc: RpcArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if !args.yes {
        bail!(
            "reset zeroes the all-time totals of the daemon; nothing was changed. \
             Run `torrent-stats reset --yes` to do it (see them first with `torrent-stats totals`)"
        );
    }
    rpc_args::block_on(async move {
        let mut conn = args.rpc.connect().await?;
        if let Some(name) = &args.source {
            torrent_stats::SourceName::new(name)?;
        }
        let params = match &args.source {
            Some(name) => vec![serde_json::json!(name)],
            None => vec![],
        };
        let before = conn.call("stats.reset_totals", params).await?;
        let before = rpc_args::counters("stats.reset_totals", before)?;
        if args.rpc.json {
            #[derive(serde::Serialize)]
            struct Out {
                before: torrent_stats::Counters,
            }
            let out = Out { before };
            println!("{}", serde_json::to_string_pretty(&out)?);
            return Ok(());
        }
        println!("All-time totals reset. They were:");
        crate::totals::print_counters(&before);
        println!(
            "Each source's file before the reset is kept beside it as \
             {TOTALS_FILE}.reset-<unix time> (in sources/<name>/ of the daemon's config \
             directory)."
        );
        Ok(())
    })
}
