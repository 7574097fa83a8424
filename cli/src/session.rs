//! `torrent-stats session`: the current session's totals, rates and peers.

use serde_json::json;
use torrent_stats::units::format_bytes;
use torrent_stats::Counters;

use crate::rpc_args::{self, RpcArgs};

/// The `core.get_session_status` keys shown.
const STATUS_KEYS: [&str; 3] = ["upload_rate", "download_rate", "num_peers"];

/// Options of `torrent-stats session`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    rpc: RpcArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    rpc_args::block_on(session(&args.rpc))
}

fn rate(n: Option<u64>) -> String {
    n.map_or_else(|| "n/a".into(), |n| format!("{}/s", format_bytes(n)))
}

async fn session(rpc: &RpcArgs) -> anyhow::Result<()> {
    let mut conn = rpc.connect().await?;
    let mut answers = conn
        .calls(&[
            ("stats.get_session_totals", vec![]),
            ("core.get_session_status", vec![json!(STATUS_KEYS)]),
        ])
        .await?
        .into_iter();
    let (totals, status) = (answers.next(), answers.next().unwrap_or_default());
    let s = rpc_args::counters("stats.get_session_totals", totals.unwrap_or_default())?;
    // Deluge answers the rates as floats (bytes/s), the counts as integers.
    let number = |key: &str| {
        let v = status.get(key)?;
        v.as_u64()
            .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f.round() as u64))
    };
    if rpc.json {
        #[derive(serde::Serialize)]
        struct Out {
            #[serde(flatten)]
            totals: Counters,
            upload_rate: Option<u64>,
            download_rate: Option<u64>,
            num_peers: Option<u64>,
        }
        let out = Out {
            totals: s,
            upload_rate: number("upload_rate"),
            download_rate: number("download_rate"),
            num_peers: number("num_peers"),
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "Uploaded:      {:>10}  (payload {})",
        format_bytes(s.total_upload),
        format_bytes(s.total_payload_upload)
    );
    println!(
        "Downloaded:    {:>10}  (payload {})",
        format_bytes(s.total_download),
        format_bytes(s.total_payload_download)
    );
    println!("Upload rate:   {:>10}", rate(number("upload_rate")));
    println!("Download rate: {:>10}", rate(number("download_rate")));
    let peers = number("num_peers").map_or_else(|| "n/a".to_string(), |n| n.to_string());
    println!("Peers:         {peers:>10}");
    Ok(())
}
