//! `torrent-stats totals`: the all-time totals, from the daemon or (`--offline`) the files.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::bail;
use serde_json::json;
use torrent_stats::units::format_bytes;
use torrent_stats::unstable;
use torrent_stats::unstable::Rejected;
use torrent_stats::{Accumulator, Counters, TOTALS_FILE};

use crate::rpc_args::{self, RpcArgs, Unreachable};

/// Options of `torrent-stats totals`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    rpc: RpcArgs,
    /// Read `<config-dir>/stats.totals` instead of asking the daemon (works while it is
    /// stopped; may lag a running daemon by one poll).
    #[arg(long)]
    offline: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.offline {
        return offline(&args.rpc);
    }
    rpc_args::block_on(online(&args.rpc))
}

/// Prints the Uploaded and Downloaded lines (with payload) of `t`.
pub fn print_counters(t: &Counters) {
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
}

/// Prints the all-time and session counters the way both modes share.
fn print_human(t: &Counters, s: &Counters) {
    print_counters(t);
    println!(
        "Session:    {} up, {} down",
        format_bytes(s.total_upload),
        format_bytes(s.total_download)
    );
}

async fn online(rpc: &RpcArgs) -> anyhow::Result<()> {
    let mut conn = match rpc.connect().await {
        Ok(conn) => conn,
        Err(e) if e.is::<Unreachable>() => bail!(
            "{e}\nTo read the totals without the daemon: torrent-stats totals --offline \
             (reads <config-dir>/{TOTALS_FILE})"
        ),
        Err(e) => return Err(e),
    };
    let mut answers = conn
        .calls(&[
            ("stats.get_totals", vec![]),
            ("stats.get_session_totals", vec![]),
        ])
        .await?
        .into_iter();
    let (all, session) = (answers.next(), answers.next());
    let t = rpc_args::counters("stats.get_totals", all.unwrap_or_default())?;
    let s = rpc_args::counters("stats.get_session_totals", session.unwrap_or_default())?;
    if rpc.json {
        #[derive(serde::Serialize)]
        struct Out {
            #[serde(flatten)]
            totals: Counters,
            session: Counters,
        }
        let out = Out {
            totals: t,
            session: s,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_human(&t, &s);
    }
    Ok(())
}

fn offline(rpc: &RpcArgs) -> anyhow::Result<()> {
    let dir = rpc.dir()?;
    let path = dir.join(TOTALS_FILE);
    let acc = match unstable::read::<Accumulator>(&path) {
        Ok(acc) => acc,
        Err(Rejected::Missing) => bail!("no totals yet: {} does not exist", path.display()),
        Err(reason) => {
            let mut bak = path.clone().into_os_string();
            bak.push(".bak");
            match unstable::read::<Accumulator>(bak.as_ref()) {
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
    if rpc.json {
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
    print_human(&t, &s);
    if acc.updated > 0 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        println!("Updated:    {} s ago", now.saturating_sub(acc.updated));
    }
    Ok(())
}
