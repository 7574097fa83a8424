//! The quota's action undone at the rollover, against an engine whose torrents the test
//! sets: a torrent still being checked is resumed once its check ends.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::{Applied, QuotaWatch, Saved};
use crate::event::EventBus;
use crate::stats::ledger::quota::{QuotaPeriod, ThresholdState, QUOTAS_FILE};
use crate::stats::ledger::{Ledger, Retention};
use crate::torrent::{
    AddOptions, TorrentEngine, TorrentError, TorrentInfo, TorrentSource, TorrentState,
};

/// Torrents whose states the test sets; the resumes asked of it, in order.
#[derive(Default)]
struct Engine {
    states: Mutex<BTreeMap<String, TorrentState>>,
    resumed: Mutex<Vec<String>>,
}

impl Engine {
    fn set(&self, id: &str, state: TorrentState) {
        self.states.lock().unwrap().insert(id.into(), state);
    }

    fn resumed(&self) -> Vec<String> {
        self.resumed.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl TorrentEngine for Engine {
    async fn add(&self, _: TorrentSource, _: AddOptions) -> Result<String, TorrentError> {
        Err(TorrentError::Unsupported("no adds".into()))
    }
    fn torrents(&self) -> Vec<TorrentInfo> {
        let states = self.states.lock().unwrap();
        states
            .iter()
            .map(|(id, state)| TorrentInfo::new(id, id, *state))
            .collect()
    }
    async fn pause(&self, id: &str) -> Result<(), TorrentError> {
        self.set(id, TorrentState::Paused);
        Ok(())
    }
    async fn resume(&self, id: &str) -> Result<(), TorrentError> {
        self.resumed.lock().unwrap().push(id.into());
        self.set(id, TorrentState::Downloading);
        Ok(())
    }
    async fn remove(&self, _: &str, _: bool) -> Result<(), TorrentError> {
        Ok(())
    }
    async fn connect_peer(&self, _: &str, _: SocketAddr) -> Result<(), TorrentError> {
        Ok(())
    }
    fn download_location(&self) -> PathBuf {
        PathBuf::new()
    }
    fn listen_port(&self) -> Option<u16> {
        None
    }
    fn version(&self) -> String {
        "test".into()
    }
}

fn saved(ledger: &Ledger) -> Saved {
    let json = ledger.quota_state("daily").unwrap().expect("a saved state");
    serde_json::from_str(&json).unwrap()
}

/// A daemon started after the rollover evaluates its quotas while the engine still checks
/// the torrents it restored: those are resumed at a later evaluation, once checked.
#[tokio::test]
async fn a_torrent_still_checking_at_the_rollover_is_resumed_once_checked() {
    let dir = tempfile::tempdir().unwrap();
    let quota = "[[quota]]\nname = \"daily\"\nperiod = \"day\"\nlimit = 1000\naction = \"pause\"\n";
    std::fs::write(dir.path().join(QUOTAS_FILE), quota).unwrap();
    let ledger = Arc::new(Ledger::open(dir.path(), TimeZone::UTC, Retention::default()).unwrap());
    let engine = Arc::new(Engine::default());
    engine.set("checking", TorrentState::Checking);
    engine.set("paused", TorrentState::Paused);
    engine.set("users", TorrentState::Paused);
    let now = Timestamp::now();
    let (today, _) = QuotaPeriod::Day.bounds(&now.to_zoned_datetime(TimeZone::UTC));
    let yesterday = Saved {
        thresholds: ThresholdState::default(),
        action: Some(Applied {
            period_start: today.timestamp().as_second() - 86_400,
            paused: vec!["checking".into(), "paused".into()],
            limits: None,
        }),
    };
    ledger
        .set_quota_state("daily", &serde_json::to_string(&yesterday).unwrap())
        .unwrap();
    let watch = QuotaWatch::open(
        dir.path(),
        ledger.clone(),
        EventBus::new(),
        Some(engine.clone() as Arc<dyn TorrentEngine>),
    )
    .unwrap();

    watch.evaluate(now).await;
    assert_eq!(engine.resumed(), ["paused"]);
    let left = saved(&ledger)
        .action
        .expect("the action kept for the checking torrent");
    assert_eq!(left.paused, ["checking"]);

    // Its check over, it is paused as it was before the restart.
    engine.set("checking", TorrentState::Paused);
    watch.evaluate(now).await;
    assert_eq!(engine.resumed(), ["paused", "checking"]);
    assert_eq!(saved(&ledger).action, None);
    watch.evaluate(now).await;
    assert_eq!(
        engine.resumed(),
        ["paused", "checking"],
        "the user's stays paused"
    );
}

/// A wire quota counts a payload-only source's payload (the embedded engine's, which
/// measures no wire bytes) and a wire source's wire bytes; a payload quota payload only.
#[tokio::test]
async fn a_wire_quota_counts_a_payload_only_sources_payload() {
    use crate::stats::ledger::SourceLedger;
    let dir = tempfile::tempdir().unwrap();
    let quotas = "[[quota]]\nname = \"wire\"\nperiod = \"day\"\nlimit = 1000000\n\n\
                  [[quota]]\nname = \"payload\"\nperiod = \"day\"\nlimit = 1000000\nmeasure = \"payload\"\n\n\
                  [[quota]]\nname = \"engine\"\nsource = \"engine\"\nperiod = \"day\"\nlimit = 1000000\n";
    std::fs::write(dir.path().join(QUOTAS_FILE), quotas).unwrap();
    let ledger = Arc::new(Ledger::open(dir.path(), TimeZone::UTC, Retention::default()).unwrap());
    let now = Timestamp::now().as_second();
    let counted = |name: &str, c: crate::stats::totals::Counters| {
        let mut acc = crate::stats::totals::Accumulator::default();
        let mut book = SourceLedger::open(ledger.clone(), name, &acc, now).unwrap();
        book.count(c, now);
        acc.totals = c;
        let batch = book.take(&acc, None);
        ledger.write(&batch, false).unwrap();
    };
    let c = |up, down, pup, pdown| crate::stats::totals::Counters {
        total_upload: up,
        total_download: down,
        total_payload_upload: pup,
        total_payload_download: pdown,
    };
    counted("engine", c(0, 0, 100, 2000));
    counted("seedbox", c(330, 4400, 300, 4000));
    let watch = QuotaWatch::open(dir.path(), ledger.clone(), EventBus::new(), None).unwrap();
    watch.evaluate(Timestamp::now()).await;
    let used: BTreeMap<String, u64> = watch
        .statuses()
        .into_iter()
        .map(|s| (s.name, s.used))
        .collect();
    assert_eq!(used["wire"], 100 + 2000 + 330 + 4400);
    assert_eq!(used["payload"], 100 + 2000 + 300 + 4000);
    assert_eq!(used["engine"], 100 + 2000);
}

/// A pause lifted early: raising the limit above the use resumes what the quota paused,
/// as does removing the quota (its state forgotten); the user's paused torrent stays.
#[tokio::test]
async fn raising_the_limit_or_removing_the_quota_lifts_its_pause() {
    use crate::stats::ledger::quota::Quota;
    use crate::stats::ledger::SourceLedger;
    let dir = tempfile::tempdir().unwrap();
    let quota = |limit: u64| -> Vec<Quota> {
        let text = format!(
            "[[quota]]\nname = \"daily\"\nperiod = \"day\"\nlimit = {limit}\naction = \"pause\"\n"
        );
        toml::from_str::<crate::stats::ledger::quota::QuotasFile>(&text)
            .unwrap()
            .quota
    };
    let ledger = Arc::new(Ledger::open(dir.path(), TimeZone::UTC, Retention::default()).unwrap());
    let now = Timestamp::now();
    let mut acc = crate::stats::totals::Accumulator::default();
    let mut book = SourceLedger::open(ledger.clone(), "engine", &acc, now.as_second()).unwrap();
    let bytes = crate::stats::totals::Counters {
        total_payload_download: 5000,
        ..Default::default()
    };
    book.count(bytes, now.as_second());
    acc.totals = bytes;
    ledger.write(&book.take(&acc, None), false).unwrap();
    let engine = Arc::new(Engine::default());
    engine.set("running", TorrentState::Downloading);
    engine.set("users", TorrentState::Paused);
    let watch = QuotaWatch::open(
        dir.path(),
        ledger.clone(),
        EventBus::new(),
        Some(engine.clone() as Arc<dyn TorrentEngine>),
    )
    .unwrap();
    for lift in ["raise", "remove"] {
        watch.set(quota(1000)).await.unwrap();
        assert_eq!(
            engine
                .torrents()
                .iter()
                .map(|t| t.state)
                .collect::<Vec<_>>(),
            [TorrentState::Paused, TorrentState::Paused],
            "{lift}: paused at 5000 of 1000"
        );
        assert_eq!(saved(&ledger).action.unwrap().paused, ["running"]);
        if lift == "raise" {
            watch.set(quota(1_000_000)).await.unwrap();
            assert_eq!(saved(&ledger).action, None, "{lift}");
        } else {
            watch.set(Vec::new()).await.unwrap();
            assert_eq!(
                ledger.quota_state("daily").unwrap(),
                None,
                "{lift}: forgotten"
            );
        }
        assert_eq!(engine.resumed().last().map(String::as_str), Some("running"));
        assert_eq!(engine.torrent("users").unwrap().state, TorrentState::Paused);
    }
    assert_eq!(engine.resumed(), ["running", "running"]);
}
