//! `torrent-stats totals`: the all-time totals, from the daemon or (`--offline`) the files.

use anyhow::bail;
use serde_json::json;
use torrent_stats::units::format_bytes;
use torrent_stats::{clock, offline, Counters, TOTALS_FILE};

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
    let read = offline::read_totals(&rpc.dir()?)?;
    if let Some(reason) = &read.from_backup {
        eprintln!(
            "warning: {} is unusable ({reason}); showing its backup",
            rpc.dir()?.join(TOTALS_FILE).display()
        );
    }
    let acc = read.accumulator;
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
        let now = clock::unix_now() as u64;
        println!("Updated:    {} s ago", now.saturating_sub(acc.updated));
    }
    Ok(())
}
