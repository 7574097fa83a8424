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
    /// Read `<config-dir>/sources/*/stats.totals` (and a `<config-dir>/stats.totals`)
    /// instead of asking the daemon: their sum, and each source when there are several
    /// (works while it is stopped; may lag a running daemon by one poll).
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
             (reads <config-dir>/sources/*/{TOTALS_FILE})"
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
    let (raw, rows) = crate::source::fetch(&mut conn).await?;
    if rpc.json {
        #[derive(serde::Serialize)]
        struct Out {
            #[serde(flatten)]
            totals: Counters,
            session: Counters,
            sources: serde_json::Value,
        }
        let out = Out {
            totals: t,
            session: s,
            sources: raw,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_human(&t, &s);
        if rows.len() > 1 {
            println!();
            crate::source::print_rows(&rows);
        }
    }
    Ok(())
}

fn offline(rpc: &RpcArgs) -> anyhow::Result<()> {
    let dir = rpc.dir()?;
    let read = offline::read_sources(&dir);
    if read.is_empty() {
        bail!(
            "no totals yet in {}: neither {TOTALS_FILE} nor sources/<name>/{TOTALS_FILE}",
            dir.display()
        );
    }
    let mut sum = Counters::default();
    let mut session = Counters::default();
    let mut rows = Vec::new();
    let mut updated = 0;
    for (name, result) in read {
        let label = if name.is_empty() {
            "(config dir)".to_string()
        } else {
            name
        };
        match result {
            Ok(read) => {
                if let Some(reason) = &read.from_backup {
                    eprintln!("warning: source {label}: {TOTALS_FILE} is unusable ({reason}); showing its backup");
                }
                let acc = read.accumulator;
                sum = sum.saturating_add(acc.totals);
                session = session.saturating_add(acc.last);
                updated = updated.max(acc.updated);
                rows.push((label, acc));
            }
            Err(e) => eprintln!("warning: source {label}: {e}"),
        }
    }
    if rpc.json {
        let sources: Vec<_> = rows
            .iter()
            .map(|(name, acc)| {
                json!({
                    "name": name,
                    "totals": acc.totals,
                    "session": acc.last,
                    "session_id": acc.session,
                    "updated": acc.updated,
                })
            })
            .collect();
        let out = json!({
            "total_upload": sum.total_upload,
            "total_download": sum.total_download,
            "total_payload_upload": sum.total_payload_upload,
            "total_payload_download": sum.total_payload_download,
            "session": session,
            "session_id": (rows.len() == 1).then(|| rows[0].1.session.clone()).flatten(),
            "updated": updated,
            "sources": sources,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    print_human(&sum, &session);
    if updated > 0 {
        let now = clock::unix_now() as u64;
        println!("Updated:    {} s ago", now.saturating_sub(updated));
    }
    if rows.len() > 1 {
        for (name, acc) in &rows {
            println!(
                "  {name:<16} {:>10} up {:>10} down (payload {} up, {} down)",
                format_bytes(acc.totals.total_upload),
                format_bytes(acc.totals.total_download),
                format_bytes(acc.totals.total_payload_upload),
                format_bytes(acc.totals.total_payload_download)
            );
        }
    }
    Ok(())
}
