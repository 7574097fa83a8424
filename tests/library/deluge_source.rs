//! `deluge://` source and our RPC client against a real `deluged` (Debian package
//! `deluged`, Deluge 2). Each test starts its own daemon in a temporary config directory on
//! a free loopback port; a missing `deluged` fails the tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use torrent_stats::rpc::client::Client;
use torrent_stats::rpc::tls::CertPolicy;
use torrent_stats::AuthLevel;
use torrent_stats::SourceError;
use torrent_stats::{DelugeSource, SourceContext, SourceSpec};
use torrent_stats::{SessionSource, SessionStatus, StatusKey};

use crate::support;
use crate::support::deluged::Deluged;

/// One poll, bounded: a dead daemon must give an error, not a hang.
async fn poll(src: &dyn SessionSource) -> Result<SessionStatus, SourceError> {
    tokio::time::timeout(Duration::from_secs(15), src.session_status(&StatusKey::ALL))
        .await
        .expect("a poll must not hang")
}

fn source(d: &Deluged) -> Arc<DelugeSource> {
    Arc::new(DelugeSource::from_spec(&d.spec()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs deluged"]
async fn our_client_against_real_deluged() {
    let d = Deluged::start().await;
    let mut c = Client::connect("127.0.0.1", d.port, CertPolicy::AnyCertificate)
        .await
        .unwrap();
    let version = c.call("daemon.info", vec![], Map::new()).await.unwrap();
    let version = version.as_str().expect("version string");
    assert!(version.starts_with("2."), "{version}");

    let err = c.login("localclient", "wrong").await.unwrap_err();
    assert_eq!(err.remote_name(), Some("BadLoginError"), "{err}");
    let err = c.login("nosuchuser", "x").await.unwrap_err();
    assert_eq!(err.remote_name(), Some("BadLoginError"), "{err}");
    assert_eq!(
        c.login("localclient", &d.password()).await.unwrap(),
        AuthLevel::Admin
    );

    let status = c
        .call(
            "core.get_session_status",
            vec![json!([
                "net.sent_bytes",
                "upload_rate",
                "dht.dht_node_cache"
            ])],
            Map::new(),
        )
        .await
        .unwrap();
    assert!(status["net.sent_bytes"].is_u64(), "{status}");
    // Rates are floats once computed (every 2 s), the integer 0 before.
    assert!(status["upload_rate"].is_number(), "{status}");
    assert!(status["dht.dht_node_cache"].is_u64(), "{status}");

    // What the key mapping is built on: Deluge drops names it does not know, and
    // `num_connections` / `dht_cache_nodes` are not session-status keys.
    let status = c
        .call(
            "core.get_session_status",
            vec![json!([
                "num_connections",
                "dht_cache_nodes",
                "dht_node_cache"
            ])],
            Map::new(),
        )
        .await
        .unwrap();
    let keys: Vec<&String> = status.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["dht_node_cache"], "{status}");

    // The pid probe the source's identity uses: the process itself is listed first.
    let tasks = c
        .call("core.glob", vec![json!("/proc/self/task/*")], Map::new())
        .await
        .unwrap();
    assert_eq!(tasks[0], json!(format!("/proc/self/task/{}", d.pid())));

    let err = c
        .call("no.such_method", vec![], Map::new())
        .await
        .unwrap_err();
    let torrent_stats::rpc::client::ClientError::Remote {
        class,
        message,
        wire,
    } = &err
    else {
        panic!("{err:?}")
    };
    // Deluge wraps the AttributeError; the client reports the class it wraps.
    assert_eq!(wire.name, "WrappedException");
    assert_eq!(class, "AttributeError");
    assert!(message.contains("invalid function"), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("AttributeError: {message}"),
        "{err:?}"
    );
    // The connection survives the error.
    assert!(c.call("daemon.info", vec![], Map::new()).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs deluged"]
async fn all_keys_and_an_identity_stable_across_our_restarts() {
    let d = Deluged::start().await;
    let spec = d.spec();
    let context = SourceContext::new(&std::env::temp_dir());
    let first = build(&spec, &context).await;
    assert_eq!(
        first.describe(),
        format!("deluge://localclient@127.0.0.1:{}", d.port)
    );
    assert!(!first.describe().contains(&d.password()));

    let s = poll(first.as_ref()).await.unwrap();
    assert_eq!(s.session, d.expected_session());
    let missing: Vec<_> = StatusKey::ALL
        .iter()
        .filter(|k| s.get(**k).is_none())
        .collect();
    assert!(missing.is_empty(), "missing {missing:?} in {s:?}");
    let v = |k| s.get(k).unwrap();
    // An idle daemon with DHT off: no peers, no DHT, (almost) no traffic.
    assert!(v(StatusKey::TotalPayloadUpload) <= v(StatusKey::TotalUpload));
    assert!(v(StatusKey::TotalPayloadDownload) <= v(StatusKey::TotalDownload));
    assert!(v(StatusKey::TotalUpload) < 1 << 20, "{s:?}");
    assert!(v(StatusKey::UploadRate) < 1 << 20, "{s:?}");
    assert!(v(StatusKey::NumConnections) >= v(StatusKey::NumPeers));
    assert_eq!(v(StatusKey::NumPeers), 0);
    assert_eq!(v(StatusKey::DhtNodes), 0);

    // Same instance, same identity; a subset of keys gives just those keys.
    let again = first
        .session_status(&[StatusKey::TotalUpload, StatusKey::NumConnections])
        .await
        .unwrap();
    assert_eq!(again.session, s.session);
    assert_eq!(again.values.len(), 2);

    // Our restart: a fresh source on the same daemon computes the same identity.
    drop(first);
    let second = build(&spec, &context).await;
    assert_eq!(poll(second.as_ref()).await.unwrap().session, s.session);
    // Percent-escapes in the user do not change the identity either.
    let third = DelugeSource::from_spec(&spec.replace("localclient", "local%63lient")).unwrap();
    assert_eq!(poll(&third).await.unwrap().session, s.session);

    // A wrong password is a clear failure that does not repeat the password.
    let bad = DelugeSource::from_spec(&format!(
        "deluge://localclient:n0tThePassword@127.0.0.1:{}",
        d.port
    ))
    .unwrap();
    match poll(&bad).await {
        Err(SourceError::Failed(m)) => {
            assert!(m.contains("BadLoginError"), "{m}");
            assert!(!m.contains("n0tThePassword"), "{m}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs deluged"]
async fn a_deluged_restart_is_a_new_identity_and_a_dead_daemon_an_error() {
    let mut d = Deluged::start().await;
    let src = source(&d);
    let before = poll(src.as_ref()).await.unwrap().session;
    assert_eq!(before, d.expected_session());

    d.kill();
    // The broken connection, then the refused reconnects: errors, promptly.
    for _ in 0..3 {
        let started = Instant::now();
        match poll(src.as_ref()).await {
            Err(SourceError::Unavailable(m)) => {
                assert!(!m.contains(&d.password()), "{m}")
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    d.restart().await;
    let after = poll(src.as_ref())
        .await
        .expect("recovers after the restart");
    assert_ne!(
        after.session, before,
        "a restarted deluged is a new session"
    );
    assert_eq!(after.session, d.expected_session());
    assert_eq!(after.values.len(), StatusKey::ALL.len());
    // And a fresh source (our restart) agrees on the new identity.
    assert_eq!(
        poll(source(&d).as_ref()).await.unwrap().session,
        after.session
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs deluged"]
async fn an_abandoned_poll_does_not_desynchronise_the_connection() {
    let d = Deluged::start().await;
    let src = source(&d);
    let session = poll(src.as_ref()).await.unwrap().session;
    // A frozen daemon: the poll is abandoned half-way, as the poller's timeout does.
    d.signal("STOP");
    let abandoned = tokio::time::timeout(
        Duration::from_millis(300),
        src.session_status(&StatusKey::ALL),
    )
    .await;
    d.signal("CONT");
    assert!(
        abandoned.is_err(),
        "a frozen deluged answered: {abandoned:?}"
    );
    // The half-used connection was dropped: the next polls start afresh and succeed.
    for _ in 0..3 {
        let s = poll(src.as_ref())
            .await
            .expect("poll after an abandoned one");
        assert_eq!(s.session, session);
        assert_eq!(s.values.len(), StatusKey::ALL.len());
    }
}

/// Counts a source's successful and failed polls.
struct Counting {
    inner: Arc<DelugeSource>,
    ok: AtomicU64,
    failed: AtomicU64,
}

#[async_trait::async_trait]
impl SessionSource for Counting {
    async fn session_status(&self, keys: &[StatusKey]) -> Result<SessionStatus, SourceError> {
        let result = self.inner.session_status(keys).await;
        match &result {
            Ok(_) => self.ok.fetch_add(1, Ordering::SeqCst),
            Err(e) => {
                eprintln!("poll failed: {e}");
                self.failed.fetch_add(1, Ordering::SeqCst)
            }
        };
        result
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs deluged"]
async fn stats_plugin_counts_from_deluged() {
    let d = Deluged::start().await;
    let counting = Arc::new(Counting {
        inner: source(&d),
        ok: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    });
    let dir = tempfile::tempdir().unwrap();
    support::write_conf(dir.path(), 1);
    let host = support::host_with_stats(counting.clone(), dir.path()).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while counting.ok.load(Ordering::SeqCst) < 3 {
        assert!(Instant::now() < deadline, "fewer than 3 polls in 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let totals = support::call(&host, "stats.get_totals", vec![], AuthLevel::Normal)
        .await
        .unwrap();
    for key in [
        "total_upload",
        "total_download",
        "total_payload_upload",
        "total_payload_download",
    ] {
        assert!(totals[key].is_u64(), "{key} in {totals}");
    }
    let series = support::call(
        &host,
        "stats.get_stats",
        vec![json!(["num_connections", "dht_cache_nodes"]), json!(1)],
        AuthLevel::Normal,
    )
    .await
    .unwrap();
    assert!(
        matches!(&series["num_connections"], Value::Array(a) if !a.is_empty()),
        "{series}"
    );
    host.shutdown().await;
    assert_eq!(counting.failed.load(Ordering::SeqCst), 0, "polls failed");
    // The saved accumulator names the deluged process.
    let saved = std::fs::read_to_string(dir.path().join("stats.totals")).unwrap();
    assert!(
        saved.contains(&d.expected_session().0),
        "{saved} lacks {}",
        d.expected_session()
    );
}

/// A source built on the one path every kind takes (specification, then context).
async fn build(spec: &str, context: &SourceContext) -> Arc<dyn SessionSource> {
    let spec = SourceSpec::parse(spec).unwrap();
    assert_eq!(spec.kind(), "deluge");
    spec.build(context).await.unwrap().source
}
