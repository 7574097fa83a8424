//! Several named sources in one Stats plugin: a source that answers in 10 s never delays
//! another's polls; each source counts on its own; the combined totals are their sum.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use torrent_stats::{name_sources, PluginHost, SourceContext, SourceSet, Stats};

/// An HTTP server that answers rqbit's `GET /stats` after `delay`, with fixed counters.
async fn slow_rqbit(delay: Duration) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = conn.read(&mut buf).await;
                tokio::time::sleep(delay).await;
                let body = r#"{"counters":{"fetched_bytes":1000,"uploaded_bytes":2000},"download_speed":{"mbps":0.0},"upload_speed":{"mbps":0.0},"peers":{"live":0},"uptime_seconds":100}"#;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(reply.as_bytes()).await;
            });
        }
    });
    addr
}

/// The gaps between the `fast` source's successive polls over `window`, in seconds.
async fn poll_gaps(stats: &torrent_stats::StatsHandle, window: Duration) -> Vec<f64> {
    let mut snapshots = stats.watch();
    let mut last: Option<f64> = None;
    let mut gaps = Vec::new();
    let end = Instant::now() + window;
    while Instant::now() < end {
        let Ok(Ok(())) = tokio::time::timeout(Duration::from_secs(3), snapshots.changed()).await
        else {
            break;
        };
        let poll = snapshots
            .borrow()
            .sources
            .iter()
            .find(|s| s.name == "fast")
            .and_then(|s| s.health.last_poll);
        if let Some(p) = poll {
            if last.is_some_and(|l| p > l) {
                gaps.push(p - last.unwrap());
            }
            if last.is_none_or(|l| p > l) {
                last = Some(p);
            }
        }
    }
    gaps
}

/// Starts Stats on `specs` in a fresh directory polling every second.
async fn start(
    specs: &[String],
) -> (
    tempfile::TempDir,
    PluginHost,
    torrent_stats::StatsHandle,
    Arc<Mutex<SourceSet>>,
) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("stats.conf"),
        "update_interval = 1\nlength = 150\nsave_interval = 30\n",
    )
    .unwrap();
    let set = SourceSet::open(
        name_sources(specs).unwrap(),
        "sim:up=0,down=0",
        SourceContext::new(dir.path()),
    )
    .await
    .unwrap();
    let primary = set.primary().unwrap();
    let set = Arc::new(Mutex::new(set));
    let host = PluginHost::open(primary, dir.path()).unwrap();
    let stats = Arc::new(Stats::with_sources(set.clone()));
    let handle = stats.handle();
    host.register(stats).await.unwrap();
    host.enable("Stats").await.unwrap();
    (dir, host, handle, set)
}

fn summary(gaps: &[f64]) -> (usize, f64, f64) {
    let n = gaps.len();
    let mean = gaps.iter().sum::<f64>() / n.max(1) as f64;
    let max = gaps.iter().copied().fold(0.0, f64::max);
    (n, mean, max)
}

/// A source that answers in 10 s (each of its polls times out at the 1 s interval) leaves
/// the other's poll times where they are without it. Printed: the fast source's poll
/// gaps with and without the slow one (`--nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_source_never_delays_another() {
    let window = Duration::from_secs(8);
    let alone = {
        let (_dir, host, stats, _) = start(&["fast=sim:up=1KiB/s,down=1KiB/s".into()]).await;
        let gaps = poll_gaps(&stats, window).await;
        host.shutdown().await;
        gaps
    };
    let slow = slow_rqbit(Duration::from_secs(10)).await;
    let (_dir, host, stats, _) = start(&[
        "fast=sim:up=1KiB/s,down=1KiB/s".into(),
        format!("slow=rqbit://{slow}"),
    ])
    .await;
    let beside = poll_gaps(&stats, window).await;
    let slow_health = stats
        .sources()
        .unwrap()
        .into_iter()
        .find(|s| s.name == "slow")
        .unwrap()
        .health;
    host.shutdown().await;
    let (n0, mean0, max0) = summary(&alone);
    let (n1, mean1, max1) = summary(&beside);
    println!(
        "fast source's poll gaps over {window:?}: alone {n0} gaps, mean {mean0:.3} s, max \
         {max0:.3} s; beside a source answering in 10 s {n1} gaps, mean {mean1:.3} s, max {max1:.3} s"
    );
    // The slow source was really slow: its polls timed out.
    assert!(!slow_health.source_up, "{slow_health:?}");
    assert!(
        slow_health
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("timed out")),
        "{slow_health:?}"
    );
    // The fast one kept its 1 s cadence: as many polls as alone (give or take one at the
    // window's edges), none waiting for the slow one's 10 s.
    assert!(
        n1 + 1 >= n0 && n1 >= 5,
        "alone {alone:?}, beside {beside:?}"
    );
    assert!(max1 < 5.0, "a poll waited for the slow source: {beside:?}");
}

/// Each source counts on its own; the combined all-time totals are their sum, and stay
/// so when one is retired.
#[tokio::test]
async fn combined_totals_are_the_sum_of_the_sources() {
    let (_dir, host, stats, _) = start(&[
        "a=sim:up=1MiB/s,down=2MiB/s".into(),
        "b=sim:up=3KiB/s,down=4KiB/s".into(),
    ])
    .await;
    let combined = stats.poll_now().await.unwrap();
    let sources = stats.sources().unwrap();
    let sum = sources
        .iter()
        .fold(torrent_stats::Counters::default(), |t, s| {
            t.saturating_add(s.totals)
        });
    // poll_now answers with the totals right after the polls; nothing moved since.
    assert_eq!(combined, stats.totals().unwrap());
    assert_eq!(combined, sum);
    assert!(sources[0].totals.total_upload > sources[1].totals.total_upload);
    let b = stats.remove_source("b").await.unwrap();
    let after = stats.totals().unwrap();
    assert!(after.total_upload >= combined.total_upload);
    let frozen = stats.sources().unwrap()[1].clone();
    assert!(frozen.retired && frozen.totals == b);
    stats.poll_now().await.unwrap();
    assert_eq!(
        stats.sources().unwrap()[1].totals,
        b,
        "a retired source is not polled"
    );
    host.shutdown().await;
}
