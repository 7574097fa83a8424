//! The typed Stats handle and `stats.get_status`: `poll_now` before an engine restart
//! loses nothing, a failing source and a source without a required counter are shown,
//! the snapshot changes on every poll, typed `set_config` validates.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use torrent_stats::AuthLevel;
use torrent_stats::PluginHost;
use torrent_stats::SourceError;
use torrent_stats::StatusKey;
use torrent_stats::{ConfigChange, Stats, StatsError, StatsHandle};

use crate::support::{call, write_conf, Scripted};

async fn open(source: &Scripted, dir: &std::path::Path) -> (PluginHost, StatsHandle) {
    let host = PluginHost::open(Arc::new(source.clone()), dir).unwrap();
    let stats = Arc::new(Stats::new());
    let handle = stats.handle();
    host.register(stats).await.unwrap();
    host.enable("Stats").await.unwrap();
    (host, handle)
}

async fn status(host: &PluginHost) -> Value {
    call(host, "stats.get_status", vec![], AuthLevel::Normal)
        .await
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn poll_now_before_an_engine_restart_counts_every_byte() {
    let dir = tempfile::tempdir().unwrap();
    write_conf(dir.path(), 60); // polls a minute apart: only poll_now can count in time
    let engine = Scripted::new("run-1");
    let (host, stats) = open(&engine, dir.path()).await;
    assert_eq!(stats.totals().unwrap().total_upload, 0);
    // The engine moves bytes between polls, then the app restarts it.
    engine.set("run-1", 1_234_567, 7_654_321);
    let counted = stats.poll_now().await.unwrap();
    assert_eq!(
        (counted.total_upload, counted.total_download),
        (1_234_567, 7_654_321)
    );
    engine.set("run-2", 0, 0); // a new engine session starts from zero
    engine.set("run-2", 10, 20);
    let counted = stats.poll_now().await.unwrap();
    assert_eq!(
        (counted.total_upload, counted.total_download),
        (1_234_577, 7_654_341)
    );
    assert_eq!(stats.session_totals().unwrap().total_upload, 10);
    // On-demand polls count, but add no history points (the series keep their spacing).
    let history = call(
        &host,
        "stats.get_stats",
        vec![serde_json::json!(["upload_rate"]), serde_json::json!(60)],
        AuthLevel::Normal,
    )
    .await
    .unwrap();
    assert_eq!(
        history["upload_rate"].as_array().unwrap().len(),
        1,
        "{history}"
    );
    // Saved: a kill right now would lose nothing.
    let file = std::fs::read_to_string(dir.path().join("stats.totals")).unwrap();
    assert!(file.contains("1234577"), "{file}");
    host.shutdown().await;
    assert_eq!(stats.totals(), Err(StatsError::NotRunning));
    assert!(matches!(
        stats.poll_now().await,
        Err(StatsError::NotRunning)
    ));
}

#[tokio::test(start_paused = true)]
async fn a_failing_source_is_shown_in_get_status() {
    let dir = tempfile::tempdir().unwrap();
    write_conf(dir.path(), 1);
    let source = Scripted::new("s");
    source.set("s", 100, 200);
    let (host, stats) = open(&source, dir.path()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let s = status(&host).await;
    assert_eq!(s["source_up"], true, "{s}");
    assert_eq!(s["last_error"], Value::Null);
    assert!(s["last_poll"].as_f64().unwrap() > 0.0);
    assert_eq!(
        s["measured"],
        serde_json::json!([
            "total_upload",
            "total_download",
            "total_payload_upload",
            "total_payload_download"
        ])
    );
    assert_eq!(s["source"], "scripted");
    source.fail(true);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s = status(&host).await;
    assert_eq!(s["source_up"], false, "{s}");
    assert!(
        s["last_error"]
            .as_str()
            .unwrap()
            .contains("scripted failure"),
        "{s}"
    );
    let since = s["failing_since"].as_f64().unwrap();
    assert!(s["poll_errors"].as_u64().unwrap() >= 3, "{s}");
    assert!(matches!(
        stats.poll_now().await,
        Err(StatsError::Source(SourceError::Unavailable(_)))
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        status(&host).await["failing_since"].as_f64().unwrap(),
        since
    );
    source.fail(false);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = status(&host).await;
    assert_eq!(s["source_up"], true, "{s}");
    assert_eq!(s["failing_since"], Value::Null);
    assert_eq!(stats.totals().unwrap().total_upload, 100);
    host.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_source_without_total_upload_is_an_error_shown_in_get_status() {
    let dir = tempfile::tempdir().unwrap();
    write_conf(dir.path(), 1);
    let source = Scripted::new("s");
    source.omit_upload(true);
    source.set("s", 100, 200);
    let (host, stats) = open(&source, dir.path()).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let s = status(&host).await;
    assert_eq!(s["source_up"], false, "{s}");
    assert!(
        s["last_error"].as_str().unwrap().contains("total_upload"),
        "{s}"
    );
    assert_eq!(
        stats.poll_now().await,
        Err(StatsError::Source(SourceError::Missing(
            StatusKey::TotalUpload
        )))
    );
    assert_eq!(
        stats.totals().unwrap().total_download,
        0,
        "nothing half-counted"
    );
    host.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_snapshot_changes_on_every_poll() {
    let dir = tempfile::tempdir().unwrap();
    write_conf(dir.path(), 2);
    let source = Scripted::new("s");
    let (host, stats) = open(&source, dir.path()).await;
    let mut rx = stats.watch();
    // The poll at enable may publish before or after we subscribed: wait for it.
    while rx.borrow_and_update().health.polls == 0 {
        rx.changed().await.unwrap();
    }
    for i in 1..=5u64 {
        source.set("s", i * 1000, i * 4000);
        let before = rx.borrow().health.polls;
        // The next poll publishes within one interval (other publishes may come too).
        let snap = tokio::time::timeout(Duration::from_secs(3), async {
            loop {
                rx.changed().await.unwrap();
                let snap = rx.borrow_and_update().clone();
                if snap.health.polls > before {
                    return snap;
                }
            }
        })
        .await
        .expect("no snapshot of a new poll within a poll interval");
        assert_eq!(snap.health.polls, before + 1);
        assert!(snap.running);
        assert_eq!(snap.totals.total_download, i * 4000);
        assert!(snap.health.source_up);
    }
    host.shutdown().await;
    assert!(!rx.borrow().running, "a disable is published too");
}

#[tokio::test(start_paused = true)]
async fn typed_set_config_validates_and_applies() {
    let dir = tempfile::tempdir().unwrap();
    let source = Scripted::new("s");
    let (host, stats) = open(&source, dir.path()).await;
    let c = stats
        .set_config(ConfigChange::new().update_interval(5).length(300))
        .await
        .unwrap();
    assert_eq!((c.update_interval, c.length, c.save_interval), (5, 300, 30));
    let err = stats
        .set_config(ConfigChange::new().save_interval(1).length(500))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("save_interval"), "{err}");
    assert_eq!(stats.config().unwrap().length, 300, "all or nothing");
    let conf = std::fs::read_to_string(dir.path().join("stats.conf")).unwrap();
    assert!(conf.contains("length = 300"), "{conf}");
    host.shutdown().await;
}
