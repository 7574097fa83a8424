//! The plugin host: failed enables, idempotence, the remembered list, `update()` cadence.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use support::{call, Scripted};
use torrent_stats::error::PluginError;
use torrent_stats::export::AuthLevel;
use torrent_stats::host::PluginHost;
use torrent_stats::plugin::{CorePlugin, PluginContext};
use torrent_stats::stats::Stats;

/// Exports a method, then fails to enable.
struct Broken;

#[async_trait]
impl CorePlugin for Broken {
    fn name(&self) -> &str {
        "Broken"
    }
    async fn enable(&self, ctx: PluginContext) -> Result<(), PluginError> {
        ctx.exports()
            .export("half", |_args| async { Ok(Value::Null) });
        Err(PluginError::Failed {
            plugin: "Broken".into(),
            message: "cannot start".into(),
        })
    }
    async fn disable(&self) -> Result<(), PluginError> {
        Ok(())
    }
}

/// Counts `update()` calls.
#[derive(Default)]
struct Ticker(Arc<AtomicU64>);

#[async_trait]
impl CorePlugin for Ticker {
    fn name(&self) -> &str {
        "Ticker"
    }
    async fn enable(&self, _ctx: PluginContext) -> Result<(), PluginError> {
        Ok(())
    }
    async fn disable(&self) -> Result<(), PluginError> {
        Ok(())
    }
    async fn update(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
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
async fn update_runs_every_second_while_enabled_and_the_list_is_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let count = Arc::new(AtomicU64::new(0));
    let host = PluginHost::open(Arc::new(Scripted::new("s")), dir.path()).unwrap();
    assert!(host.is_first_start());
    host.register(Arc::new(Ticker(count.clone())))
        .await
        .unwrap();
    let (stop, signal) = torrent_stats::plugin::Shutdown::new();
    let updates = host.spawn_updates(signal);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(count.load(Ordering::SeqCst), 0, "not enabled: no updates");
    host.enable("Ticker").await.unwrap();
    let at = count.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(count.load(Ordering::SeqCst) - at, 5);
    host.disable("Ticker").await.unwrap();
    let at = count.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(count.load(Ordering::SeqCst), at);
    stop.trigger();
    updates.await.unwrap();

    host.enable("Ticker").await.unwrap();
    host.shutdown().await;
    assert!(host.enabled().await.is_empty());
    drop(host);
    let again = PluginHost::open(Arc::new(Scripted::new("s")), dir.path()).unwrap();
    assert!(!again.is_first_start());
    again.register(Arc::new(Ticker::default())).await.unwrap();
    assert!(again.start().await.is_empty());
    assert_eq!(again.enabled().await, vec!["Ticker".to_string()]);
}
