//! `qbittorrent://` source against a real `qbittorrent-nox` (Debian package, 4.5.2, WebUI
//! API 2.8). Each test starts its own instances in temporary profiles on free loopback
//! ports; a missing `qbittorrent-nox` or `mktorrent` fails the tests.

use std::time::{Duration, Instant};

use torrent_stats::{Accumulator, Counters, QbittorrentSource, SessionSource, SessionStatus};
use torrent_stats::{SourceError, StatusKey};

use crate::support::qbittorrent::{make_torrent, Qbittorrent};

/// One poll, bounded: a dead daemon must give an error, not a hang.
async fn poll(src: &dyn SessionSource) -> Result<SessionStatus, SourceError> {
    tokio::time::timeout(Duration::from_secs(30), src.session_status(&StatusKey::ALL))
        .await
        .expect("a poll must not hang")
}

/// Polls until qBittorrent's own `transfer/info` counters (download, upload) have come
/// to `done` (qBittorrent refreshes them a moment after a transfer ends: a file complete on
/// disk may still show part of its bytes) and are the same before and after our poll;
/// returns our status and qBittorrent's figures.
async fn poll_settled(
    q: &Qbittorrent,
    src: &QbittorrentSource,
    done: impl Fn((u64, u64)) -> bool,
) -> (SessionStatus, (u64, u64)) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let theirs = |v: serde_json::Value| {
            (
                v["dl_info_data"].as_u64().unwrap(),
                v["up_info_data"].as_u64().unwrap(),
            )
        };
        let before = theirs(q.transfer_info().await);
        let ours = poll(src).await.unwrap();
        let after = theirs(q.transfer_info().await);
        if before == after && done(after) {
            return (ours, after);
        }
        assert!(
            Instant::now() < deadline,
            "counters kept moving or never came to the transfer's: {after:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs qbittorrent-nox"]
async fn figures_are_qbittorrents_payload_counters_to_the_byte() {
    const SIZE: usize = 8 << 20;
    let seeder = Qbittorrent::start("seed pass:@%").await;
    let leecher = Qbittorrent::start("leech-pass").await;
    let torrent = make_torrent(&seeder.downloads(), "payload.bin", SIZE, 7);
    let hash = seeder.add_torrent(&torrent, &seeder.downloads()).await;
    seeder.wait_complete(&hash, Duration::from_secs(60)).await;
    let seed_src = QbittorrentSource::from_spec(&seeder.spec()).unwrap();
    let leech_src = QbittorrentSource::from_spec(&leecher.spec()).unwrap();
    let first = poll(&leech_src).await.unwrap();
    assert_eq!(first.get(StatusKey::TotalPayloadDownload), Some(0));

    let leech_hash = leecher.add_torrent(&torrent, &leecher.downloads()).await;
    assert_eq!(leech_hash, hash);
    leecher.add_peer(&hash, seeder.peer_addr()).await;
    leecher.wait_complete(&hash, Duration::from_secs(120)).await;
    assert_eq!(
        std::fs::read(leecher.downloads().join("payload.bin")).unwrap(),
        std::fs::read(seeder.downloads().join("payload.bin")).unwrap()
    );

    let (down, theirs) = poll_settled(&leecher, &leech_src, |t| t.0 >= SIZE as u64).await;
    assert_eq!(down.get(StatusKey::TotalPayloadDownload), Some(theirs.0));
    assert_eq!(down.get(StatusKey::TotalPayloadUpload), Some(theirs.1));
    let (up, theirs) = poll_settled(&seeder, &seed_src, |t| t.1 >= SIZE as u64).await;
    assert_eq!(up.get(StatusKey::TotalPayloadUpload), Some(theirs.1));
    assert_eq!(up.get(StatusKey::TotalPayloadDownload), Some(theirs.0));
    // Payload: exactly the torrent's size, on both sides; the wire totals qBittorrent
    // keeps only in its all-time figures are larger (protocol and IP overhead).
    assert_eq!(down.get(StatusKey::TotalPayloadDownload), Some(SIZE as u64));
    assert_eq!(up.get(StatusKey::TotalPayloadUpload), Some(SIZE as u64));
    let alltime = leecher.server_state().await["alltime_dl"].as_u64().unwrap();
    assert!(alltime > SIZE as u64, "alltime_dl {alltime}");
    // Payload-only: no wire totals.
    for st in [&down, &up] {
        assert_eq!(st.get(StatusKey::TotalDownload), None);
        assert_eq!(st.get(StatusKey::TotalUpload), None);
        assert!(st.uptime.is_some());
    }
    assert_eq!(
        down.session.0,
        format!("qbittorrent://127.0.0.1:{}", leecher.webui_port)
    );
    // The Stats plugin takes them: the payload pair.
    let c = Counters::from_status(&down).unwrap();
    assert_eq!(c.total_payload_download, SIZE as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs qbittorrent-nox"]
async fn a_wrong_password_is_tried_once_and_said_clearly() {
    let q = Qbittorrent::start("right").await;
    let src = QbittorrentSource::from_spec(&q.spec_with("wrong-s3cret")).unwrap();
    for _ in 0..6 {
        let e = poll(&src).await.unwrap_err();
        let SourceError::Failed(m) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(
            m,
            &format!(
                "wrong user or password for qbittorrent://tester@127.0.0.1:{}; fix the \
                 source's spec (stats.add_source or the sources file) — not retried, \
                 qBittorrent bans an address after 5 failures",
                q.webui_port
            )
        );
        assert!(!format!("{e:?}").contains("s3cret"));
    }
    // qBittorrent's own log: one failed login, not banned.
    let failures: Vec<String> = q
        .log_messages()
        .await
        .into_iter()
        .filter(|m| m.starts_with("WebAPI login failure"))
        .collect();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].contains("invalid credentials, attempt count: 1"),
        "{failures:?}"
    );
    let right = QbittorrentSource::from_spec(&q.spec()).unwrap();
    poll(&right).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs qbittorrent-nox"]
async fn a_restart_is_a_new_session() {
    let mut q = Qbittorrent::start("pw").await;
    let src = QbittorrentSource::from_spec(&q.spec()).unwrap();
    // Idle counters (0 before and after): only the uptime can show the restart, once the
    // old run's uptime exceeds the new run's (up to 9 s: the restart, the first poll) by
    // more than Stats' slack (10 s), whole seconds rounded down on both sides.
    let slack = Duration::from_secs(21);
    let deadline = Instant::now() + Duration::from_secs(60);
    let (before, at) = loop {
        let st = poll(&src).await.unwrap();
        if st.uptime.unwrap() >= slack.as_secs() {
            break (st, Instant::now());
        }
        assert!(Instant::now() < deadline, "uptime {:?}", st.uptime);
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // A new instance of the source, same process: same identity, same uptime.
    let fresh = poll(&QbittorrentSource::from_spec(&q.spec()).unwrap())
        .await
        .unwrap();
    assert_eq!(fresh.session, before.session);
    let expected = before.uptime.unwrap() + at.elapsed().as_secs();
    assert!(
        fresh.uptime.unwrap().abs_diff(expected) <= 2,
        "{fresh:?} vs {expected}"
    );

    let acc = Accumulator::default();
    let counters = Counters::from_status(&before).unwrap();
    let (acc, _) = acc.apply_timed(&before.session, counters, before.uptime, None);
    let old_pid = q.pid();
    q.stop().await;
    q.restart().await;
    assert_ne!(q.pid(), old_pid);
    let after = poll(&src).await.unwrap();
    assert_eq!(after.session, before.session);
    let expected = before.uptime.unwrap() + at.elapsed().as_secs();
    assert!(after.uptime.unwrap() < 10, "{after:?}");
    let (_, step) = acc.apply_timed(
        &after.session,
        Counters::from_status(&after).unwrap(),
        after.uptime,
        Some(expected),
    );
    assert!(step.new_session, "{before:?} then {after:?}");
    // Killed, not stopped: the same.
    q.kill();
    q.restart().await;
    let again = poll(&src).await.unwrap();
    assert!(again.uptime.unwrap() < 10, "{again:?}");
}
