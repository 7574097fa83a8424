//! The plugin host: failed enables, idempotence, the remembered list, `update()` cadence,
//! namespaces, no lock across plugin awaits, and dropping a host.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Map, Value};
use torrent_stats::async_trait;
use torrent_stats::AuthLevel;
use torrent_stats::Core;
use torrent_stats::ExportError;
use torrent_stats::PluginError;
use torrent_stats::PluginHost;
use torrent_stats::Stats;
use torrent_stats::{CorePlugin, PluginContext};

use crate::support;
use crate::support::{call, Scripted};

/// Exports a method, then fails to enable.
struct Broken;

#[async_trait]
impl CorePlugin for Broken {
    fn name(&self) -> &str {
        "Broken"
    }
    async fn enable(&self, ctx: PluginContext) -> Result<(), PluginError> {
        ctx.exports()
            .export("half", |_args| async { Ok(Value::Null) })
            .unwrap();
        Err(PluginError::Failed {
            plugin: "Broken".into(),
            message: "cannot start".into(),
        })
    }
    async fn disable(&self) -> Result<(), PluginError> {
        Ok(())
    }
}

/// Counts `update()` calls; "Ticker" wants them, "Quiet" says it does not.
struct Ticker {
    name: &'static str,
    count: Arc<AtomicU64>,
}

impl Ticker {
    fn new(count: &Arc<AtomicU64>) -> Self {
        Ticker {
            name: "Ticker",
            count: count.clone(),
        }
    }

    fn quiet(count: &Arc<AtomicU64>) -> Self {
        Ticker {
            name: "Quiet",
            count: count.clone(),
        }
    }
}

#[async_trait]
impl CorePlugin for Ticker {
    fn name(&self) -> &str {
        self.name
    }
    async fn enable(&self, _ctx: PluginContext) -> Result<(), PluginError> {
        Ok(())
    }
    async fn disable(&self) -> Result<(), PluginError> {
        Ok(())
    }
    async fn update(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
    }
    fn wants_updates(&self) -> bool {
        self.name != "Quiet"
    }
}

/// A plugin that claims Stats' namespace.
struct Squatter;

#[async_trait]
impl CorePlugin for Squatter {
    fn name(&self) -> &str {
        "Squatter"
    }
    fn namespace(&self) -> String {
        "stats".into()
    }
    async fn enable(&self, ctx: PluginContext) -> Result<(), PluginError> {
        ctx.exports()
            .export("get_totals", |_args| async { Ok(json!("fake")) })
            .map_err(|source| PluginError::Export {
                plugin: "Squatter".into(),
                source,
            })
    }
    async fn disable(&self) -> Result<(), PluginError> {
        Ok(())
    }
}

/// Calls the host and other methods from `enable`, and records what it saw.
struct Curious {
    host: PluginHost,
    seen: Arc<Mutex<Vec<Value>>>,
}

#[async_trait]
impl CorePlugin for Curious {
    fn name(&self) -> &str {
        "Curious"
    }
    async fn enable(&self, ctx: PluginContext) -> Result<(), PluginError> {
        let enabled = self.host.enabled().await;
        let via_core = ctx
            .call("core.get_enabled_plugins", vec![], Map::new())
            .await
            .unwrap();
        let totals = ctx
            .call("stats.get_totals", vec![], Map::new())
            .await
            .unwrap();
        let mut seen = self.seen.lock().unwrap();
        seen.push(json!(enabled));
        seen.push(via_core);
        seen.push(totals);
        ctx.exports()
            .export(
                "whoami",
                |args| async move { Ok(json!(args.caller().user)) },
            )
            .unwrap();
        Ok(())
    }
    async fn disable(&self) -> Result<(), PluginError> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_enable_leaves_that_plugin_disabled_and_others_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let host = PluginHost::open(Arc::new(Scripted::new("s")), dir.path()).unwrap();
    host.register(Arc::new(Stats::new())).await.unwrap();
    host.register(Arc::new(Broken)).await.unwrap();
    assert!(matches!(
        host.register(Arc::new(Stats::new())).await,
        Err(PluginError::Duplicate(_))
    ));
    host.enable("Stats").await.unwrap();
    let err = host.enable("Broken").await.unwrap_err();
    assert!(err.to_string().contains("cannot start"));
    assert_eq!(host.enabled().await, vec!["Stats".to_string()]);
    assert!(!host
        .exports()
        .method_list()
        .contains(&"broken.half".to_string()));
    assert_eq!(host.exports().owner_of("broken"), None);
    assert!(call(&host, "stats.get_totals", vec![], AuthLevel::Normal)
        .await
        .is_ok());
    assert!(matches!(
        host.enable("Nope").await,
        Err(PluginError::NotFound(_))
    ));
    assert_eq!(
        host.available().await,
        vec!["Broken".to_string(), "Stats".to_string()]
    );
    let conf = std::fs::read_to_string(dir.path().join("core.conf")).unwrap();
    assert!(conf.contains("Stats") && !conf.contains("Broken"), "{conf}");
    host.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_plugin_that_does_not_want_updates_gets_none() {
    let dir = tempfile::tempdir().unwrap();
    let (quiet, ticks) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let host = PluginHost::open(Arc::new(Scripted::new("s")), dir.path()).unwrap();
    host.register(Arc::new(Ticker::quiet(&quiet)))
        .await
        .unwrap();
    host.register(Arc::new(Ticker::new(&ticks))).await.unwrap();
    host.enable("Quiet").await.unwrap();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(quiet.load(Ordering::SeqCst), 0, "alone: no updates");
    // Another plugin wants them: it gets them, the quiet one still does not.
    host.enable("Ticker").await.unwrap();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(ticks.load(Ordering::SeqCst), 3);
    assert_eq!(
        quiet.load(Ordering::SeqCst),
        0,
        "beside a ticker: no updates"
    );
    host.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_host_drives_update_every_second_and_the_list_is_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let count = Arc::new(AtomicU64::new(0));
    let host = PluginHost::open(Arc::new(Scripted::new("s")), dir.path()).unwrap();
    assert!(host.is_first_start());
    host.register(Arc::new(Ticker::new(&count))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(count.load(Ordering::SeqCst), 0, "not enabled: no updates");
    // Nothing but enable: the host calls update() by itself.
    host.enable("Ticker").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let at = count.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(count.load(Ordering::SeqCst) - at, 5);
    host.disable("Ticker").await.unwrap();
    let at = count.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(count.load(Ordering::SeqCst), at, "disabled: no updates");

    host.enable("Ticker").await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        count.load(Ordering::SeqCst) >= at + 2,
        "enabled again: updates again"
    );
    host.shutdown().await;
    assert!(host.enabled().await.is_empty());
    drop(host);
    let again = PluginHost::open(Arc::new(Scripted::new("s")), dir.path()).unwrap();
    assert!(!again.is_first_start());
    again
        .register(Arc::new(Ticker::new(&Arc::default())))
        .await
        .unwrap();
    assert!(again.start().await.is_empty());
    assert_eq!(again.enabled().await, vec!["Ticker".to_string()]);
}

#[tokio::test]
async fn a_namespace_belongs_to_the_plugin_that_took_it_first() {
    let dir = tempfile::tempdir().unwrap();
    let core = Core::open(Arc::new(Scripted::new("s")), dir.path()).unwrap();
    let host = core.host();
    host.register(Arc::new(Stats::new())).await.unwrap();
    host.register(Arc::new(Squatter)).await.unwrap();
    host.enable("Stats").await.unwrap();
    let err = host.enable("Squatter").await.unwrap_err();
    match &err {
        PluginError::Export {
            source: ExportError::NamespaceTaken {
                namespace, owner, ..
            },
            ..
        } => {
            assert_eq!(namespace, "stats");
            assert_eq!(owner, "Stats");
        }
        other => panic!("not a namespace error: {other}"),
    }
    assert!(err.to_string().contains("belongs to Stats"), "{err}");
    assert_eq!(host.enabled().await, vec!["Stats".to_string()]);
    // Stats' methods are its own and stay after the refused plugin is "disabled".
    host.disable("Squatter").await.unwrap();
    let totals = call(host, "stats.get_totals", vec![], AuthLevel::Normal)
        .await
        .unwrap();
    assert!(totals.is_object(), "{totals}");
    // The core's namespaces are taken too.
    struct CoreSquatter;
    #[async_trait]
    impl CorePlugin for CoreSquatter {
        fn name(&self) -> &str {
            "Core"
        }
        async fn enable(&self, _ctx: PluginContext) -> Result<(), PluginError> {
            Ok(())
        }
        async fn disable(&self) -> Result<(), PluginError> {
            Ok(())
        }
    }
    host.register(Arc::new(CoreSquatter)).await.unwrap();
    assert!(matches!(
        host.enable("Core").await,
        Err(PluginError::Export { .. })
    ));
    host.shutdown().await;
}

#[tokio::test]
async fn enable_may_call_the_host_and_other_methods() {
    let dir = tempfile::tempdir().unwrap();
    let core = Core::open(Arc::new(Scripted::new("s")), dir.path()).unwrap();
    let host = core.host().clone();
    let seen = Arc::new(Mutex::new(Vec::new()));
    host.register(Arc::new(Stats::new())).await.unwrap();
    host.register(Arc::new(Curious {
        host: host.clone(),
        seen: seen.clone(),
    }))
    .await
    .unwrap();
    host.enable("Stats").await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), host.enable("Curious"))
        .await
        .expect("enable deadlocked")
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0], json!(["Stats"]));
    assert_eq!(seen[1], json!(["Stats"]));
    assert!(seen[2]["total_upload"].is_u64(), "{seen:?}");
    // A handler sees its caller.
    let who = core
        .dispatch(
            "curious.whoami",
            vec![],
            Map::new(),
            torrent_stats::Caller::user("alice", AuthLevel::Normal),
        )
        .await
        .unwrap();
    assert_eq!(who, json!("alice"));
    // core.get_enabled_plugins does not wait behind anything.
    let enabled = tokio::time::timeout(
        Duration::from_secs(1),
        core.dispatch(
            "core.get_enabled_plugins",
            vec![],
            Map::new(),
            AuthLevel::ReadOnly,
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(enabled, json!(["Curious", "Stats"]));
    host.shutdown().await;
}

#[tokio::test]
async fn dropping_the_host_releases_every_file_for_an_immediate_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let source = Scripted::new("s");
    source.set("s", 1000, 5000);
    let host = support::host_with_stats(Arc::new(source.clone()), dir.path()).await;
    // The enable polled once; more bytes move, then the host is dropped without shutdown.
    source.set("s", 3000, 9000);
    drop(host);
    let again = tokio::time::timeout(
        Duration::from_secs(10),
        support::host_with_stats(Arc::new(source.clone()), dir.path()),
    )
    .await
    .expect("re-open after a drop hung");
    // The dropped host's final poll counted the last bytes, and the new one resumes.
    assert_eq!(support::totals(&again).await, (3000, 9000));
    again.shutdown().await;
}
