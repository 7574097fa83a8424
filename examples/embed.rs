//! Embedding torrent-stats in your own torrent application.
//!
//! The app implements [`SessionSource`] over its own counters, opens a [`PluginHost`] on a
//! config directory, enables the `Stats` plugin and talks to it through the same exported
//! methods an RPC client would use. Run it with
//!
//! ```text
//! cargo run --example embed                 # a throw-away temp directory
//! cargo run --example embed -- ./embed-demo # keep the files: totals grow run after run
//! ```
//!
//! It polls every second for about three seconds, prints the all-time totals and exits.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map};
use torrent_stats::core::{SessionId, SessionSource, SessionStatus, StatusKey};
use torrent_stats::error::SourceError;
use torrent_stats::export::AuthLevel;
use torrent_stats::host::PluginHost;
use torrent_stats::stats::Stats;
use torrent_stats::units::format_bytes;

/// The app's session: byte counters its transfer code bumps, and an identity made at
/// startup so the plugin knows a restarted app's counters begin again at 0.
struct Engine {
    session: SessionId,
    uploaded: AtomicU64,
    downloaded: AtomicU64,
}

#[async_trait::async_trait]
impl SessionSource for Engine {
    async fn session_status(&self, keys: &[StatusKey]) -> Result<SessionStatus, SourceError> {
        let mut status = SessionStatus::new(self.session.clone());
        for &key in keys {
            let value = match key {
                StatusKey::TotalUpload => self.uploaded.load(Relaxed),
                StatusKey::TotalDownload => self.downloaded.load(Relaxed),
                // Keys we do not track are left out; the plugin derives the rates itself.
                _ => continue,
            };
            status.values.insert(key, value);
        }
        Ok(status)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?; // used unless a directory is given
    let dir: PathBuf = std::env::args_os()
        .nth(1)
        .map_or(temp.path().into(), Into::into);
    let started = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
    let engine = Arc::new(Engine {
        session: SessionId::new(format!("embed-{}-{started}", std::process::id())),
        uploaded: AtomicU64::new(0),
        downloaded: AtomicU64::new(0),
    });

    // A pretend download: 400 KiB/s down, 100 KiB/s up.
    let transfers = engine.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            transfers.downloaded.fetch_add(40 * 1024, Relaxed);
            transfers.uploaded.fetch_add(10 * 1024, Relaxed);
        }
    });

    let host = PluginHost::open(engine.clone(), &dir)?;
    host.register(Arc::new(Stats::new())).await?;
    host.enable("Stats").await?;
    let exports = host.exports();
    let config = vec![json!({ "update_interval": 1 })]; // poll every second
    exports
        .dispatch("stats.set_config", config, Map::new(), AuthLevel::Normal)
        .await?;

    tokio::time::sleep(Duration::from_millis(3500)).await; // a few polls
    let totals = exports
        .dispatch("stats.get_totals", vec![], Map::new(), AuthLevel::Normal)
        .await?;
    println!("config dir: {}", dir.display());
    for key in ["total_download", "total_upload"] {
        let bytes = totals[key].as_u64().unwrap_or(0);
        println!("{key:>15}: {:>10} ({bytes} bytes)", format_bytes(bytes));
    }

    // Disabling saves totals and history (fsync'd) so the next run continues from them.
    for (plugin, error) in host.shutdown().await {
        eprintln!("{plugin} did not shut down cleanly: {error}");
    }
    Ok(())
}
