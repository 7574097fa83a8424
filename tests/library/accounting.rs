//! Accounting: the accumulator's properties, the poll cadence on paused time, re-enables,
//! restarts, preferences and the exported API's rules.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::{json, Value};
use torrent_stats::unstable::MAX_TOTAL;
use torrent_stats::AuthLevel;
use torrent_stats::PluginHost;
use torrent_stats::SessionId;
use torrent_stats::Stats;
use torrent_stats::{Accumulator, Counters};

use crate::support::{call, host_with_stats, settle, totals, write_conf, Scripted};

fn counters(up: u64, down: u64, pup: u64, pdown: u64) -> Counters {
    Counters {
        total_upload: up,
        total_download: down,
        total_payload_upload: pup,
        total_payload_download: pdown,
    }
}

fn arb_counter() -> impl Strategy<Value = u64> {
    prop_oneof![0..10_000u64, any::<u64>(), (MAX_TOTAL - 1000)..=u64::MAX]
}

fn arb_session() -> impl Strategy<Value = Vec<[u64; 4]>> {
    // A session: monotonic samples, built from increments that may be huge.
    prop::collection::vec(prop::array::uniform4(arb_counter()), 1..8).prop_map(|steps| {
        let mut acc = [0u64; 4];
        steps
            .into_iter()
            .map(|inc| {
                for i in 0..4 {
                    acc[i] = acc[i].saturating_add(inc[i] % (MAX_TOTAL / 4 + 1));
                }
                acc
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn totals_never_decrease_and_sum_each_sessions_last_counters(
        sessions in prop::collection::vec(arb_session(), 1..6)
    ) {
        let mut acc = Accumulator::default();
        let mut expected = [0u128; 4];
        for (n, samples) in sessions.iter().enumerate() {
            let id = SessionId::new(format!("s{n}"));
            for s in samples {
                let before = acc.totals;
                let (next, step) = acc.apply(&id, counters(s[0], s[1], s[2], s[3]));
                prop_assert!(!next.totals.any_below(&before), "totals went down");
                prop_assert_eq!(next.totals, before.saturating_add(step.delta));
                acc = next;
            }
            let last = samples.last().unwrap();
            for i in 0..4 {
                expected[i] += u128::from(last[i].min(MAX_TOTAL));
            }
        }
        let cap = |v: u128| v.min(u128::from(MAX_TOTAL)) as u64;
        prop_assert_eq!(
            acc.totals,
            counters(cap(expected[0]), cap(expected[1]), cap(expected[2]), cap(expected[3]))
        );
    }

    #[test]
    fn a_repeated_sample_adds_nothing(s in prop::array::uniform4(any::<u64>())) {
        let id = SessionId::new("x");
        let c = counters(s[0], s[1], s[2], s[3]);
        let (once, _) = Accumulator::default().apply(&id, c);
        let (twice, step) = once.apply(&id, c);
        prop_assert!(!step.changed());
        prop_assert_eq!(once, twice);
    }

    #[test]
    fn a_counter_going_down_is_a_new_session(a in 1..=MAX_TOTAL, b in 0..=MAX_TOTAL) {
        let id = SessionId::new("x");
        let b = b % a; // b < a
        let (first, _) = Accumulator::default().apply(&id, counters(a, 0, 0, 0));
        let (second, step) = first.apply(&id, counters(b, 0, 0, 0));
        prop_assert!(step.new_session);
        prop_assert_eq!(second.totals.total_upload, a.saturating_add(b).min(MAX_TOTAL));
    }
}

#[tokio::test(start_paused = true)]
async fn polls_on_the_interval_and_a_changed_interval_applies_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let src = Scripted::new("s");
    let host = host_with_stats(Arc::new(src.clone()), dir.path()).await;
    settle().await;
    assert_eq!(src.calls(), 1, "first poll happens at enable");
    tokio::time::sleep(Duration::from_secs(9)).await; // ticks at 2, 4, 6, 8
    assert_eq!(src.calls(), 5);

    let t0 = src.calls();
    call(
        &host,
        "stats.set_config",
        vec![json!({"update_interval": 5})],
        AuthLevel::Normal,
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(19)).await; // +5, +10, +15
    assert_eq!(
        src.calls() - t0,
        3,
        "new interval must apply without re-enable"
    );
    let intervals = call(&host, "stats.get_intervals", vec![], AuthLevel::Normal)
        .await
        .unwrap();
    assert_eq!(intervals, json!([5, 25, 150, 1500]));
    host.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_stalled_or_failing_source_never_kills_the_timer() {
    let dir = tempfile::tempdir().unwrap();
    let src = Scripted::new("s");
    src.set("s", 100, 100);
    let host = host_with_stats(Arc::new(src.clone()), dir.path()).await;
    settle().await;
    assert_eq!(totals(&host).await, (100, 100));

    src.stall_next(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_secs(3)).await; // poll at 2 stalls, times out at 4
    src.set("s", 300, 400);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        totals(&host).await,
        (300, 400),
        "polling resumed after a stall"
    );

    src.fail(true);
    let before = src.calls();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(
        src.calls() >= before + 4,
        "failed polls are retried each tick"
    );
    src.set("s", 500, 500);
    src.fail(false);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(totals(&host).await, (500, 500));

    // A disable while a poll is stalled completes within the final poll's timeout.
    src.stall_next(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = tokio::time::Instant::now();
    host.disable("Stats").await.unwrap();
    assert!(
        started.elapsed()
            <= torrent_stats::unstable::FINAL_POLL_TIMEOUT + Duration::from_millis(10)
    );
}

#[tokio::test(start_paused = true)]
async fn history_rolls_up_through_the_plugin() {
    let dir = tempfile::tempdir().unwrap();
    write_conf(dir.path(), 1);
    let src = Scripted::new("s");
    src.set_upload_rate(0);
    let host = host_with_stats(Arc::new(src.clone()), dir.path()).await;
    settle().await;
    // Change the rate half-way between polls (polls at whole seconds).
    tokio::time::sleep(Duration::from_millis(500)).await;
    for rate in 1..10u64 {
        src.set_upload_rate(rate * 100);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // ten points: 0, 100, ..., 900 (newest first in the result)
    let fine = call(
        &host,
        "stats.get_stats",
        vec![json!(["upload_rate", "no_such_key"]), json!(1)],
        AuthLevel::Normal,
    )
    .await
    .unwrap();
    let series: Vec<u64> = serde_json::from_value(fine["upload_rate"].clone()).unwrap();
    assert_eq!(series, vec![900, 800, 700, 600, 500, 400, 300, 200, 100, 0]);
    assert!(
        fine.get("no_such_key").is_none(),
        "unknown keys are omitted"
    );
    assert_eq!(fine["_length"], json!(150));
    assert_eq!(fine["_update_interval"], json!(1));
    assert!(fine["_last_update"].as_f64().unwrap() > 1e9);

    let coarse = call(
        &host,
        "stats.get_stats",
        vec![json!(["upload_rate"]), json!(5)],
        AuthLevel::Normal,
    )
    .await
    .unwrap();
    assert_eq!(
        coarse["upload_rate"],
        json!([700, 200]),
        "means of 5 points"
    );
    let err = call(
        &host,
        "stats.get_stats",
        vec![json!(["upload_rate"]), json!(7)],
        AuthLevel::Normal,
    )
    .await
    .unwrap_err();
    assert_eq!(err.exception_name(), "ValueError");
    assert!(err.to_string().contains("interval"), "{err}");
    host.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn re_enable_neither_double_counts_nor_loses_bytes_and_restarts_count_from_zero() {
    let dir = tempfile::tempdir().unwrap();
    let src = Scripted::new("A");
    src.set("A", 1000, 5000);
    let host = host_with_stats(Arc::new(src.clone()), dir.path()).await;
    settle().await;
    assert_eq!(totals(&host).await, (1000, 5000));

    host.disable("Stats").await.unwrap();
    src.set("A", 2500, 6000); // moved while disabled, same session
    host.enable("Stats").await.unwrap();
    settle().await;
    assert_eq!(totals(&host).await, (2500, 6000));
    host.enable("Stats").await.unwrap(); // idempotent
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(totals(&host).await, (2500, 6000), "no double counting");
    host.shutdown().await;
    drop(host);

    // Our process restarts while the torrent session goes on: same identity, deltas only.
    src.set("A", 3000, 6000);
    let host = PluginHost::open(Arc::new(src.clone()), dir.path()).unwrap();
    host.register(Arc::new(Stats::new())).await.unwrap();
    assert!(
        host.start().await.is_empty(),
        "remembered list re-enables Stats"
    );
    assert_eq!(host.enabled().await, vec!["Stats".to_string()]);
    settle().await;
    assert_eq!(totals(&host).await, (3000, 6000));

    // The torrent session restarts: its counters count from 0.
    src.set("B", 40, 50);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(totals(&host).await, (3040, 6050));
    let session = call(&host, "stats.get_session_totals", vec![], AuthLevel::Normal)
        .await
        .unwrap();
    assert_eq!(session["total_upload"], json!(40));
    // A counter that goes down under the same identity is a restart too.
    src.set("B", 10, 60);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(totals(&host).await, (3050, 6110));
    host.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn set_config_rejects_bad_input_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with_stats(Arc::new(Scripted::new("s")), dir.path()).await;
    let conf_path = dir.path().join("stats.conf");
    let before = call(&host, "stats.get_config", vec![], AuthLevel::Normal)
        .await
        .unwrap();
    assert_eq!(
        before,
        json!({"update_interval": 2, "length": 150, "save_interval": 30})
    );
    let file_before = std::fs::read(&conf_path).unwrap();

    let cases: Vec<(Vec<Value>, &str, &str)> = vec![
        (
            vec![json!({"update_interval": 0})],
            "ValueError",
            "update_interval",
        ),
        (
            vec![json!({"update_interval": 61})],
            "ValueError",
            "update_interval",
        ),
        (
            vec![json!({"update_interval": -1})],
            "ValueError",
            "update_interval",
        ),
        (
            vec![json!({"update_interval": "5"})],
            "TypeError",
            "update_interval",
        ),
        (
            vec![json!({"update_interval": 2.5})],
            "TypeError",
            "update_interval",
        ),
        (
            vec![json!({"length": 5, "update_interval": 3})],
            "ValueError",
            "length",
        ),
        (
            vec![json!({"update_interval": 3, "bogus": 1})],
            "ValueError",
            "bogus",
        ),
        (
            vec![json!({"save_interval": null})],
            "TypeError",
            "save_interval",
        ),
        (vec![json!([1, 2])], "TypeError", "config"),
        (vec![], "TypeError", "config"),
        (vec![json!({}), json!({})], "TypeError", "positional"),
    ];
    for (args, exception, mentions) in cases {
        let err = call(&host, "stats.set_config", args.clone(), AuthLevel::Normal)
            .await
            .unwrap_err();
        assert_eq!(err.exception_name(), exception, "{args:?}: {err}");
        assert!(err.to_string().contains(mentions), "{args:?}: {err}");
        let now = call(&host, "stats.get_config", vec![], AuthLevel::Normal)
            .await
            .unwrap();
        assert_eq!(now, before, "{args:?} changed the config");
        assert_eq!(std::fs::read(&conf_path).unwrap(), file_before);
    }

    call(
        &host,
        "stats.set_config",
        vec![json!({"update_interval": 3, "length": 20})],
        AuthLevel::Normal,
    )
    .await
    .unwrap();
    let now = call(&host, "stats.get_config", vec![], AuthLevel::Normal)
        .await
        .unwrap();
    assert_eq!(now["update_interval"], json!(3));
    let text = std::fs::read_to_string(&conf_path).unwrap();
    assert!(text.contains("update_interval = 3"), "{text}");
    host.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn reset_totals_needs_admin_and_keeps_a_backup() {
    let dir = tempfile::tempdir().unwrap();
    let src = Scripted::new("s");
    src.set("s", 700, 900);
    let host = host_with_stats(Arc::new(src.clone()), dir.path()).await;
    settle().await;
    for level in [AuthLevel::None, AuthLevel::ReadOnly, AuthLevel::Normal] {
        let err = call(&host, "stats.reset_totals", vec![], level)
            .await
            .unwrap_err();
        assert_eq!(err.exception_name(), "NotAuthorizedError");
    }
    assert_eq!(totals(&host).await, (700, 900));
    let before = call(&host, "stats.reset_totals", vec![], AuthLevel::Admin)
        .await
        .unwrap();
    assert_eq!(before["total_upload"], json!(700));
    assert_eq!(totals(&host).await, (0, 0));
    let bak = torrent_stats::unstable::read::<Accumulator>(&dir.path().join("stats.totals.bak"))
        .expect("backup of the totals before the reset");
    assert_eq!(bak.totals.total_upload, 700);
    // A copy that later checkpoints do not rotate away.
    let kept: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("stats.totals.reset-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(
        torrent_stats::unstable::read::<Accumulator>(&kept[0])
            .unwrap()
            .totals
            .total_upload,
        700
    );
    // Counting goes on from the reset, without re-counting the session.
    src.set("s", 750, 900);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(totals(&host).await, (50, 0));
    host.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn methods_appear_on_enable_and_disappear_on_disable() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with_stats(Arc::new(Scripted::new("s")), dir.path()).await;
    let names = host.exports().method_list();
    for m in [
        "stats.get_totals",
        "stats.get_session_totals",
        "stats.get_config",
        "stats.set_config",
        "stats.get_stats",
        "stats.get_intervals",
        "stats.reset_totals",
    ] {
        assert!(names.contains(&m.to_string()), "{m} missing from {names:?}");
    }
    assert_eq!(
        host.exports().level_of("stats.get_totals"),
        Some(AuthLevel::Normal)
    );
    assert_eq!(
        host.exports().level_of("stats.reset_totals"),
        Some(AuthLevel::Admin)
    );
    let err = call(&host, "stats.get_totals", vec![json!(1)], AuthLevel::Normal)
        .await
        .unwrap_err();
    assert_eq!(err.exception_name(), "TypeError");
    host.disable("Stats").await.unwrap();
    assert!(host.exports().method_list().is_empty());
    let err = call(&host, "stats.get_totals", vec![], AuthLevel::Admin)
        .await
        .unwrap_err();
    assert_eq!(err.exception_name(), "AttributeError");
}

#[tokio::test(start_paused = true)]
async fn import_totals_adds_once_needs_admin_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    let src = Scripted::new("s");
    src.set("s", 10, 20);
    let host = host_with_stats(Arc::new(src.clone()), dir.path()).await;
    settle().await;
    let args = |fp: &str, totals: Value| vec![json!("deluge"), json!(fp), totals];
    let good = json!({"total_upload": 1000, "total_download": 2000,
                      "total_payload_upload": 900, "total_payload_download": 1900});
    let err = call(
        &host,
        "stats.import_totals",
        args("f1", good.clone()),
        AuthLevel::Normal,
    )
    .await
    .unwrap_err();
    assert_eq!(err.exception_name(), "NotAuthorizedError");
    for (bad, mentions) in [
        (
            json!({"total_upload": -1, "total_download": 0}),
            "total_upload",
        ),
        (
            json!({"total_upload": 1, "total_download": "2"}),
            "total_download",
        ),
        (json!({"total_upload": 1}), "total_download"),
        (
            json!({"total_upload": 1, "total_download": 1, "seeds": 1}),
            "seeds",
        ),
    ] {
        let err = call(
            &host,
            "stats.import_totals",
            args("f0", bad),
            AuthLevel::Admin,
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains(mentions), "{err}");
    }
    assert_eq!(totals(&host).await, (10, 20), "bad imports change nothing");
    let after = call(
        &host,
        "stats.import_totals",
        args("f1", good.clone()),
        AuthLevel::Admin,
    )
    .await
    .unwrap();
    assert_eq!(after["total_upload"], json!(1010));
    let err = call(
        &host,
        "stats.import_totals",
        args("f1", good),
        AuthLevel::Admin,
    )
    .await
    .unwrap_err();
    assert_eq!(err.exception_name(), "ValueError");
    assert!(err.to_string().contains("already imported"), "{err}");
    assert_eq!(totals(&host).await, (1010, 2020));
    host.shutdown().await;
    drop(host);
    // Restart: the import is remembered, counting goes on.
    let host = host_with_stats(Arc::new(src.clone()), dir.path()).await;
    settle().await;
    assert_eq!(totals(&host).await, (1010, 2020));
    let err = call(
        &host,
        "stats.import_totals",
        args("f1", json!({"total_upload": 1, "total_download": 1})),
        AuthLevel::Admin,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("already imported"), "{err}");
    host.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn history_is_restored_on_enable() {
    let dir = tempfile::tempdir().unwrap();
    let src = Scripted::new("s");
    src.set_upload_rate(777);
    let host = host_with_stats(Arc::new(src.clone()), dir.path()).await;
    tokio::time::sleep(Duration::from_secs(7)).await; // polls at 0, 2, 4, 6
    host.disable("Stats").await.unwrap(); // + the final poll
    src.set_upload_rate(1);
    host.enable("Stats").await.unwrap();
    settle().await;
    let got = call(
        &host,
        "stats.get_stats",
        vec![json!(["upload_rate"]), json!(2)],
        AuthLevel::Normal,
    )
    .await
    .unwrap();
    assert_eq!(got["upload_rate"], json!([1, 777, 777, 777, 777, 777]));
    host.shutdown().await;
}
