//! In-process helpers: a scripted session source the test drives and a plugin host with
//! Stats on it, and calls into its exported methods. Shared by the library's tests
//! (`tests/library/`) and the daemon's (`cli/tests/daemon/`), each of which includes this
//! file in its `support` module.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};
use torrent_stats::AuthLevel;
use torrent_stats::PluginHost;
use torrent_stats::Stats;
use torrent_stats::{DispatchError, SourceError};
use torrent_stats::{SessionId, SessionSource, SessionStatus, StatusKey};

/// A source whose session and counters the test sets, counting its calls; it can be told
/// to stall (sleep on tokio's clock) or fail.
#[derive(Clone, Default)]
pub struct Scripted {
    inner: Arc<Mutex<Script>>,
    calls: Arc<AtomicU64>,
}

#[derive(Default)]
struct Script {
    session: String,
    up: u64,
    down: u64,
    upload_rate: Option<u64>,
    stall_next: Option<Duration>,
    fail: bool,
    omit_upload: bool,
}

impl Scripted {
    pub fn new(session: &str) -> Self {
        let s = Scripted::default();
        s.inner.lock().unwrap().session = session.to_string();
        s
    }
    pub fn set(&self, session: &str, up: u64, down: u64) {
        let mut i = self.inner.lock().unwrap();
        i.session = session.to_string();
        i.up = up;
        i.down = down;
    }
    pub fn set_upload_rate(&self, rate: u64) {
        self.inner.lock().unwrap().upload_rate = Some(rate);
    }
    pub fn stall_next(&self, d: Duration) {
        self.inner.lock().unwrap().stall_next = Some(d);
    }
    pub fn fail(&self, fail: bool) {
        self.inner.lock().unwrap().fail = fail;
    }
    /// Leaves `total_upload` out of every answer (a required counter).
    pub fn omit_upload(&self, omit: bool) {
        self.inner.lock().unwrap().omit_upload = omit;
    }
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

#[torrent_stats::async_trait]
impl SessionSource for Scripted {
    async fn session_status(&self, keys: &[StatusKey]) -> Result<SessionStatus, SourceError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let (stall, fail) = {
            let mut i = self.inner.lock().unwrap();
            (i.stall_next.take(), i.fail)
        };
        if let Some(d) = stall {
            tokio::time::sleep(d).await;
        }
        if fail {
            return Err(SourceError::Unavailable("scripted failure".into()));
        }
        let i = self.inner.lock().unwrap();
        let mut status = SessionStatus::new(SessionId::new(i.session.clone()));
        for &k in keys {
            let v = match k {
                StatusKey::TotalUpload if i.omit_upload => continue,
                StatusKey::TotalUpload | StatusKey::TotalPayloadUpload => i.up,
                StatusKey::TotalDownload | StatusKey::TotalPayloadDownload => i.down,
                StatusKey::UploadRate => match i.upload_rate {
                    Some(r) => r,
                    None => continue,
                },
                _ => 0,
            };
            status.values.insert(k, v);
        }
        Ok(status)
    }

    fn describe(&self) -> String {
        "scripted".into()
    }
}

/// A host on `dir` with `source`, Stats registered and enabled.
pub async fn host_with_stats(source: Arc<dyn SessionSource>, dir: &Path) -> PluginHost {
    let host = PluginHost::open(source, dir).expect("open host");
    host.register(Arc::new(Stats::new())).await.unwrap();
    host.enable("Stats").await.expect("enable Stats");
    host
}

/// Calls `method` with positional `args` at `level`.
pub async fn call(
    host: &PluginHost,
    method: &str,
    args: Vec<Value>,
    level: AuthLevel,
) -> Result<Value, DispatchError> {
    host.exports()
        .dispatch(method, args, Map::new(), level)
        .await
}

/// `stats.get_totals` as (upload, download).
pub async fn totals(host: &PluginHost) -> (u64, u64) {
    let t = call(host, "stats.get_totals", vec![], AuthLevel::Normal)
        .await
        .unwrap();
    (
        t["total_upload"].as_u64().unwrap(),
        t["total_download"].as_u64().unwrap(),
    )
}

/// Writes a `stats.conf` with the given poll interval.
pub fn write_conf(dir: &Path, update_interval: u64) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("stats.conf"),
        format!("update_interval = {update_interval}\nlength = 150\nsave_interval = 30\n"),
    )
    .unwrap();
}

/// Lets spawned tasks run without advancing the clock.
pub async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}
