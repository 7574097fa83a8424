//! Serving Deluge's RPC protocol from your own application: one builder call.
//!
//! Stock Deluge clients (deluge-client, deluge-console) then read your all-time totals
//! with the `localclient` password from `<config-dir>/auth`. The app's engine is stood in
//! for by the synthetic source. Run it with
//!
//! ```text
//! cargo run --example embed_rpc -- ./rpc-demo 58846
//! python3 -c 'from deluge_client import DelugeRPCClient as C; \
//!   c = C("127.0.0.1", 58846, "localclient", open("rpc-demo/auth").read().split(":")[1]); \
//!   c.connect(); print(c.call("stats.get_totals")); c.call("daemon.shutdown")'
//! ```
//!
//! It serves until Ctrl-C or a client's `daemon.shutdown`, then saves and prints the
//! totals.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use torrent_stats::Daemon;
use torrent_stats::SimSource;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "rpc-demo".into()));
    let port: u16 = args.next().map_or(Ok(58846), |p| p.parse())?;
    // Your engine's SessionSource goes here.
    let engine = Arc::new(SimSource::new(256 << 10, 1 << 20, 4));

    let daemon = Daemon::builder(&dir, engine)
        .rpc(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .build()
        .await?;
    let mut snapshots = daemon.stats().watch();
    if let Some(addr) = daemon.rpc_addr() {
        eprintln!("RPC listening on {addr}");
    }
    eprintln!(
        "password: user localclient in {}",
        dir.join("auth").display()
    );
    daemon
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    let last = snapshots.borrow_and_update();
    println!(
        "stopped; all-time totals: {} bytes up, {} bytes down",
        last.totals.total_upload, last.totals.total_download
    );
    Ok(())
}
