//! Our Rust client against our daemon's RPC server, in process.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map};
use torrent_stats::auth::AuthFile;
use torrent_stats::auth::LOCALCLIENT;
use torrent_stats::remote::RemoteStats;
use torrent_stats::rpc::client::Client;
use torrent_stats::rpc::tls::{self, CertPolicy};
use torrent_stats::AuthLevel;
use torrent_stats::Daemon;
use torrent_stats::Shutdown;

use crate::support::Scripted;

struct Running {
    port: u16,
    password: String,
    dir: tempfile::TempDir,
    stop: torrent_stats::ShutdownTrigger,
    task: tokio::task::JoinHandle<()>,
}

async fn start(src: Scripted) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::builder(dir.path(), Arc::new(src))
        .rpc("127.0.0.1:0".parse().unwrap())
        .build()
        .await
        .unwrap();
    let port = daemon.rpc_addr().unwrap().port();
    let password = AuthFile::open(dir.path())
        .unwrap()
        .password_of(LOCALCLIENT)
        .unwrap();
    let (stop, mut signal) = Shutdown::new();
    let task = tokio::spawn(async move {
        daemon
            .run(async move { signal.wait().await })
            .await
            .unwrap();
    });
    Running {
        port,
        password,
        dir,
        stop,
        task,
    }
}

#[tokio::test]
async fn typed_stats_api_errors_and_events() {
    let src = Scripted::new("s");
    src.set("s", 1000, 2000);
    let run = start(src).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let mut c = Client::connect("127.0.0.1", run.port, CertPolicy::AnyCertificate)
        .await
        .unwrap();
    let err = c.stats().get_totals().await.unwrap_err();
    assert_eq!(err.remote_name(), Some("NotAuthorizedError"), "{err}");
    assert!(err.to_string().contains("Auth level too low"), "{err}");
    let err = c.login(LOCALCLIENT, "wrong").await.unwrap_err();
    assert_eq!(err.remote_name(), Some("BadLoginError"));
    // One message for a wrong password and an unknown user (issue 9).
    assert_eq!(
        err.to_string(),
        format!("BadLoginError: {}", torrent_stats::rpc::gateway::BAD_LOGIN)
    );
    assert_eq!(
        c.login(LOCALCLIENT, &run.password).await.unwrap(),
        AuthLevel::Admin
    );
    let totals = c.stats().get_totals().await.unwrap();
    assert_eq!((totals.total_upload, totals.total_download), (1000, 2000));
    assert_eq!(
        c.stats().get_intervals().await.unwrap(),
        vec![2, 10, 60, 600]
    );
    let mut changes = Map::new();
    changes.insert("length".into(), json!(5));
    let err = c.stats().set_config(changes).await.unwrap_err();
    // A WrappedException is reported as the class it wraps, named once.
    assert_eq!(err.remote_name(), Some("ValueError"), "{err}");
    let text = err.to_string();
    assert!(text.starts_with("ValueError: "), "{text}");
    assert!(text.contains("length"), "{text}");
    assert_eq!(text.matches("ValueError").count(), 1, "{text}");
    assert!(!text.contains("WrappedException"), "{text}");
    assert_eq!(c.stats().get_config().await.unwrap().length, 150);
    let err = c.call("stats.nope", vec![], Map::new()).await.unwrap_err();
    assert_eq!(err.remote_name(), Some("AttributeError"), "{err}");
    assert!(err.to_string().starts_with("AttributeError: "), "{err}");

    // pipelined calls are answered in order
    let calls = (0..50)
        .map(|_| ("stats.get_totals".to_string(), vec![], Map::new()))
        .collect();
    let answers = c.pipeline(calls).await.unwrap();
    assert_eq!(answers.len(), 50);
    assert!(answers.iter().all(|a| a.is_ok()));

    // events reach subscribers only
    let mut listener = Client::connect("127.0.0.1", run.port, CertPolicy::AnyCertificate)
        .await
        .unwrap();
    listener.login(LOCALCLIENT, &run.password).await.unwrap();
    listener
        .subscribe(&["PluginDisabledEvent", "PluginEnabledEvent"])
        .await
        .unwrap();
    assert_eq!(
        c.call("core.disable_plugin", vec![json!("Stats")], Map::new())
            .await
            .unwrap(),
        json!(true)
    );
    let event = listener
        .next_event(Duration::from_secs(2))
        .await
        .unwrap()
        .expect("an event");
    assert_eq!(event.name, "PluginDisabledEvent");
    assert_eq!(event.args, vec![json!("Stats")]);
    c.call("core.enable_plugin", vec![json!("Stats")], Map::new())
        .await
        .unwrap();
    // the non-subscriber's next answer is its own
    let totals = c.stats().get_totals().await.unwrap();
    assert_eq!(totals.total_upload, 1000);
    let event = listener
        .next_event(Duration::from_secs(2))
        .await
        .unwrap()
        .expect("an event");
    assert_eq!(event.name, "PluginEnabledEvent");

    // a pinned certificate: ours passes, another one is refused
    let (cert, _) = tls::key_pair_paths(run.dir.path());
    let pinned = CertPolicy::pin_pem_file(&cert).unwrap();
    let mut p = Client::connect("127.0.0.1", run.port, pinned)
        .await
        .unwrap();
    p.login(LOCALCLIENT, &run.password).await.unwrap();
    let other = tempfile::tempdir().unwrap();
    tls::server_config(other.path()).unwrap();
    let wrong = CertPolicy::pin_pem_file(&tls::key_pair_paths(other.path()).0).unwrap();
    assert!(Client::connect("127.0.0.1", run.port, wrong).await.is_err());

    run.stop.trigger();
    run.task.await.unwrap();
}
