//! Load generator: N connections of our Rust client, each keeping a pipeline of calls in
//! flight, for a fixed time; prints calls per second. Used by `scripts/bench/rpc.sh`.
//!
//! `cargo run --release --example rpc_load -- HOST PORT USER PASSWORD [CONNS] [DEPTH] [SECS]`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Map;
use torrent_stats::rpc::client::Client;
use torrent_stats::rpc::tls::CertPolicy;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(
        a.len() >= 4,
        "usage: rpc_load HOST PORT USER PASSWORD [CONNS] [DEPTH] [SECS]"
    );
    let (host, port, user, pw) = (
        a[0].clone(),
        a[1].parse::<u16>()?,
        a[2].clone(),
        a[3].clone(),
    );
    let conns: usize = a.get(4).map_or(Ok(16), |s| s.parse())?;
    let depth: usize = a.get(5).map_or(Ok(32), |s| s.parse())?;
    let secs: u64 = a.get(6).map_or(Ok(5), |s| s.parse())?;
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let mut c = Client::connect(&host, port, CertPolicy::AnyCertificate).await?;
        c.login(&user, &pw).await?;
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let calls = (0..depth)
                    .map(|_| ("stats.get_totals".to_string(), vec![], Map::new()))
                    .collect();
                let answers = c.pipeline(calls).await?;
                anyhow::ensure!(answers.iter().all(|r| r.is_ok()), "a call failed");
                done.fetch_add(answers.len() as u64, Ordering::Relaxed);
            }
            Ok(())
        }));
    }
    let started = Instant::now();
    for t in tasks {
        t.await??;
    }
    let n = done.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{n} calls in {elapsed:.2} s over {conns} connections, pipeline depth {depth}: {:.0} calls/s",
        n as f64 / elapsed
    );
    Ok(())
}
