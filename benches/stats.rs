//! Benchmarks of the Stats plugin's hot paths.
//!
//! - `poll_tick`: the in-memory work of one poll (accumulate + history push) on a full history.
//! - `dispatch_get_totals`, `dispatch_get_stats`: exported calls through a live `PluginHost`.
//! - `save_totals_durable`, `save_totals_fast`, `save_history_durable`: checkpoint writes.
//!
//! - `torrents_status_*`: `core.get_torrents_status` over 10 to 10 000 torrents (see
//!   `stats/torrents.rs`).
//! - with feature `ledger`, the calendar ledger's (see `stats/ledger.rs`).
//!
//! `cargo bench --bench stats` measures; `cargo test --all-targets` runs each once.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Map, Value};
use tokio::runtime::Runtime;
use torrent_stats::unstable::history::History;
use torrent_stats::AuthLevel;
use torrent_stats::PluginHost;
use torrent_stats::SimSource;
use torrent_stats::{Accumulator, Counters};
use torrent_stats::{Durability, Store};
use torrent_stats::{SessionId, SessionStatus, StatusKey};
use torrent_stats::{Stats, HISTORY_FILE};

#[cfg(feature = "ledger")]
#[path = "stats/ledger.rs"]
mod ledger;
#[path = "stats/torrents.rs"]
mod torrents;

/// Pushes that fill every level of a 2 s / 150-point history (level 3 needs 300 per point).
const FILL_PUSHES: u64 = 3000;

/// A sample with all 13 keys, as a busy session would report it.
fn sample(i: u64) -> SessionStatus {
    let session = SessionStatus::new(SessionId::new("bench-session"));
    let up = 2_500_000 * i;
    let down = 9_000_000 * i;
    let values = [
        (StatusKey::TotalUpload, up),
        (StatusKey::TotalDownload, down),
        (StatusKey::TotalPayloadUpload, up / 20 * 19),
        (StatusKey::TotalPayloadDownload, down / 20 * 19),
        (StatusKey::UploadRate, 1_250_000 + i % 97),
        (StatusKey::DownloadRate, 4_500_000 + i % 89),
        (StatusKey::PayloadUploadRate, 1_187_500),
        (StatusKey::PayloadDownloadRate, 4_275_000),
        (StatusKey::NumPeers, 42),
        (StatusKey::NumConnections, 57),
        (StatusKey::DhtNodes, 312),
        (StatusKey::DhtCacheNodes, 118),
        (StatusKey::DhtTorrents, 6),
    ];
    values.into_iter().fold(session, |s, (k, v)| s.with(k, v))
}

/// A full history (150 points at the two finest levels) and the accumulator after it.
fn filled() -> (Accumulator, History) {
    let mut acc = Accumulator::default();
    let mut history = History::new(2, 150);
    for i in 1..=FILL_PUSHES {
        let s = sample(i);
        let counters = Counters::from_status(&s).expect("sample has the counters");
        acc = acc.apply(&s.session, counters).0;
        history.push(&s.values, i as f64 * 2.0);
    }
    assert_eq!(history.series(0, "upload_rate").map(|s| s.len()), Some(150));
    (acc, history)
}

fn poll_tick(c: &mut Criterion) {
    let (mut acc, mut history) = filled();
    let s = sample(FILL_PUSHES);
    let session = s.session.clone();
    let values: BTreeMap<StatusKey, u64> = s.values.clone();
    let mut counters = Counters::from_status(&s).expect("sample has the counters");
    let step = Counters {
        total_upload: 2_500_000,
        total_download: 9_000_000,
        total_payload_upload: 2_375_000,
        total_payload_download: 8_550_000,
    };
    let mut now = FILL_PUSHES as f64 * 2.0;
    c.bench_function("poll_tick", |b| {
        b.iter(|| {
            counters = counters.saturating_add(step);
            now += 2.0;
            let (next, step) = acc.apply(black_box(&session), black_box(counters));
            acc = next;
            history.push(black_box(&values), now);
            black_box(step)
        })
    });
    black_box((&acc, &history));
}

/// A running host with Stats enabled on a sim source, its history pre-filled.
fn live_host(rt: &Runtime, dir: &std::path::Path) -> PluginHost {
    {
        // Pre-fill stats.history as a long-running daemon would have it; the store's lock
        // is released when it drops, before the plugin opens the file.
        let store = Store::<History>::open(dir.join(HISTORY_FILE)).expect("open history");
        store
            .save(&filled().1, Durability::Fast)
            .expect("save history");
    }
    rt.block_on(async {
        let source = Arc::new(SimSource::new(1_250_000, 4_500_000, 42));
        let host = PluginHost::open(source, dir).expect("open host");
        host.register(Arc::new(Stats::new()))
            .await
            .expect("register");
        host.enable("Stats").await.expect("enable Stats");
        host
    })
}

fn dispatch(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let host = live_host(&rt, dir.path());
    let exports = host.exports();

    let call = |name: &'static str, args: Vec<Value>| async move {
        exports
            .dispatch(name, args, Map::new(), AuthLevel::Normal)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    };

    c.bench_function("dispatch_get_totals", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(call("stats.get_totals", vec![]).await) })
    });

    let intervals = rt.block_on(call("stats.get_intervals", vec![]));
    let finest = intervals[0].as_u64().expect("intervals are integers");
    let got = rt.block_on(call(
        "stats.get_stats",
        vec![json!(["upload_rate", "download_rate"]), json!(finest)],
    ));
    assert_eq!(got["upload_rate"].as_array().map(Vec::len), Some(150));

    c.bench_function("dispatch_get_stats", |b| {
        b.to_async(&rt).iter(|| async {
            let keys = json!(["upload_rate", "download_rate"]);
            black_box(call("stats.get_stats", vec![keys, json!(finest)]).await)
        })
    });

    let failures = rt.block_on(host.shutdown());
    assert!(failures.is_empty(), "shutdown: {failures:?}");
}

fn save(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (acc, history) = filled();

    let totals = Store::<Accumulator>::open(dir.path().join("stats.totals")).expect("open");
    c.bench_function("save_totals_durable", |b| {
        b.iter(|| {
            totals
                .save(black_box(&acc), Durability::Durable)
                .expect("save")
        })
    });
    c.bench_function("save_totals_fast", |b| {
        b.iter(|| {
            totals
                .save(black_box(&acc), Durability::Fast)
                .expect("save")
        })
    });

    let store = Store::<History>::open(dir.path().join("stats.history")).expect("open");
    c.bench_function("save_history_durable", |b| {
        b.iter(|| {
            store
                .save(black_box(&history), Durability::Durable)
                .expect("save")
        })
    });
}

#[cfg(feature = "ledger")]
criterion_group!(
    benches,
    poll_tick,
    dispatch,
    save,
    torrents::torrents_status,
    ledger::ledger
);
#[cfg(not(feature = "ledger"))]
criterion_group!(
    benches,
    poll_tick,
    dispatch,
    save,
    torrents::torrents_status
);
criterion_main!(benches);
