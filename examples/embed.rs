//! Embedding torrent-stats in your own torrent application.
//!
//! The app implements [`SessionSource`] over its engine's counters, opens a [`PluginHost`]
//! on a config directory, enables the `Stats` plugin and a plugin of its own, and reads
//! everything through typed handles. Its engine restarts half-way (a new session whose
//! counters start at 0): calling [`StatsHandle::poll_now`] first means not a byte is lost.
//! Run it with
//!
//! ```text
//! cargo run --example embed                 # a throw-away temp directory
//! cargo run --example embed -- ./embed-demo # keep the files: totals grow run after run
//! ```

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::ensure;
use serde_json::{json, Map};
use torrent_stats::async_trait;
use torrent_stats::units::format_bytes;
use torrent_stats::PluginError;
use torrent_stats::PluginHost;
use torrent_stats::SourceError;
use torrent_stats::{Args, AuthLevel, Caller};
use torrent_stats::{ConfigChange, Stats};
use torrent_stats::{CorePlugin, PluginContext};
use torrent_stats::{SessionId, SessionSource, SessionStatus, StatusKey};

/// The app's engine: byte counters its transfer code bumps, and a session identity that
/// changes when the engine restarts (its counters then begin again at 0).
struct Engine {
    session: Mutex<SessionId>,
    runs: AtomicU64,
    uploaded: AtomicU64,
    downloaded: AtomicU64,
}

impl Engine {
    fn new() -> Self {
        let engine = Engine {
            session: Mutex::new(SessionId::default()),
            runs: AtomicU64::new(0),
            uploaded: AtomicU64::new(0),
            downloaded: AtomicU64::new(0),
        };
        engine.restart();
        engine
    }

    /// A new engine session: new identity, counters from 0.
    fn restart(&self) {
        let run = self.runs.fetch_add(1, SeqCst) + 1;
        *self.session.lock().unwrap() =
            SessionId::new(format!("embed-{}-run-{run}", std::process::id()));
        self.uploaded.store(0, SeqCst);
        self.downloaded.store(0, SeqCst);
    }

    /// A pretend transfer: `steps` × 100 ms at 400 KiB/s down, 100 KiB/s up; returns the
    /// bytes moved as (up, down).
    async fn transfer(&self, steps: u64) -> (u64, u64) {
        for _ in 0..steps {
            tokio::time::sleep(Duration::from_millis(100)).await;
            self.downloaded.fetch_add(40 * 1024, SeqCst);
            self.uploaded.fetch_add(10 * 1024, SeqCst);
        }
        (steps * 10 * 1024, steps * 40 * 1024)
    }
}

#[async_trait]
impl SessionSource for Engine {
    async fn session_status(&self, keys: &[StatusKey]) -> Result<SessionStatus, SourceError> {
        let mut status = SessionStatus::new(self.session.lock().unwrap().clone());
        for &key in keys {
            let value = match key {
                StatusKey::TotalUpload => self.uploaded.load(SeqCst),
                StatusKey::TotalDownload => self.downloaded.load(SeqCst),
                // Keys we do not track are left out; the plugin derives the rates itself.
                _ => continue,
            };
            status.values.insert(key, value);
        }
        Ok(status)
    }

    fn describe(&self) -> String {
        "embed example engine".into()
    }
}

/// The app's own plugin: `quota.remaining(limit_bytes)` answers how much may still be
/// uploaded under a limit, from Stats' totals, for the caller who asked.
struct Quota;

#[async_trait]
impl CorePlugin for Quota {
    fn name(&self) -> &str {
        "Quota"
    }

    async fn enable(&self, ctx: PluginContext) -> Result<(), PluginError> {
        let plugin_ctx = ctx.clone();
        ctx.exports()
            .export("remaining", move |args: Args| {
                let ctx = plugin_ctx.clone();
                async move {
                    args.params(&["limit_bytes"], 1)?;
                    let limit: u64 = args.get(0, "limit_bytes")?; // typed, TypeError if not
                    let totals = ctx.call("stats.get_totals", vec![], Map::new()).await?;
                    let used = totals["total_upload"].as_u64().unwrap_or(0);
                    Ok(json!({
                        "user": args.caller().user,
                        "remaining": limit.saturating_sub(used),
                    }))
                }
            })
            .map_err(|source| PluginError::Export {
                plugin: "Quota".into(),
                source,
            })
    }

    async fn disable(&self) -> Result<(), PluginError> {
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?; // used unless a directory is given
    let dir: PathBuf = std::env::args_os()
        .nth(1)
        .map_or(temp.path().into(), Into::into);
    let engine = Arc::new(Engine::new());

    let host = PluginHost::open(engine.clone(), &dir)?;
    let stats = Arc::new(Stats::new());
    let handle = stats.handle(); // typed access, no JSON
    host.register(stats).await?;
    host.register(Arc::new(Quota)).await?;
    host.enable("Stats").await?;
    host.enable("Quota").await?;
    handle
        .set_config(ConfigChange::new().update_interval(1))
        .await?;
    let before = handle.totals()?;

    // First engine run; then the app restarts its engine. poll_now() first counts the
    // bytes moved since the last poll, which the restart would otherwise lose.
    let (up1, down1) = engine.transfer(15).await;
    handle.poll_now().await?;
    engine.restart();
    let (up2, down2) = engine.transfer(7).await;
    let totals = handle.poll_now().await?;

    let (up, down) = (
        totals.total_upload - before.total_upload,
        totals.total_download - before.total_download,
    );
    println!("config dir: {}", dir.display());
    println!("engine runs: 2 (restarted once)");
    println!(
        "   counted download: {:>10} ({down} bytes)",
        format_bytes(down)
    );
    println!("   counted upload:   {:>10} ({up} bytes)", format_bytes(up));
    ensure!(
        (up, down) == (up1 + up2, down1 + down2),
        "lost bytes: engine moved ({}, {}), counted ({up}, {down})",
        up1 + up2,
        down1 + down2
    );
    println!("counted to the byte across the engine restart");

    // The app's own method, called as a transport would (for user "alice").
    let quota = host
        .exports()
        .dispatch(
            "quota.remaining",
            vec![json!(10u64 << 20)],
            Map::new(),
            Caller::user("alice", AuthLevel::Normal),
        )
        .await?;
    println!("quota.remaining(10 MiB) for alice: {quota}");

    // Disabling saves totals and history (fsync'd) so the next run continues from them.
    for (plugin, error) in host.shutdown().await {
        eprintln!("{plugin} did not shut down cleanly: {error}");
    }
    Ok(())
}
