//! `transmission://` source against a real `transmission-daemon` (Debian package, 3.00):
//! its figures equal the daemon's own `session-stats` to the byte while a torrent moves
//! between two daemons over the machine's own address, and a restart of the daemon shows
//! as a new session or a lower uptime. Each test starts its own daemons in temporary
//! directories on free ports; a missing `transmission-daemon` or `transmission-create`
//! fails the tests.

use std::time::{Duration, Instant};

use serde_json::Value;
use torrent_stats::{SessionSource, SessionStatus, SourceError, StatusKey, TransmissionSource};

use crate::support::tracker::Tracker;
use crate::support::transmission::{self, Transmission, PASSWORD};

/// One poll, bounded: a dead daemon must give an error, not a hang.
async fn poll(src: &TransmissionSource) -> Result<SessionStatus, SourceError> {
    tokio::time::timeout(Duration::from_secs(30), src.session_status(&StatusKey::ALL))
        .await
        .expect("a poll must not hang")
}

fn source(t: &Transmission) -> TransmissionSource {
    TransmissionSource::from_spec(&t.spec()).unwrap()
}

/// `current-stats.NAME` of a `session-stats` answer.
fn current(stats: &Value, name: &str) -> u64 {
    stats["current-stats"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no current-stats.{name}: {stats}"))
}

/// Checks that `ours` lies between the daemon's figures just before and just after it.
fn bracketed(what: &str, before: &Value, ours: u64, after: &Value, name: &str) {
    let (lo, hi) = (current(before, name), current(after, name));
    assert!(
        lo <= ours && ours <= hi,
        "{what}: ours {ours} outside the daemon's {lo}..={hi}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs transmission-daemon"]
async fn figures_equal_the_daemons_own_while_a_torrent_moves() {
    const SIZE: usize = 16 << 20;
    const PIECE_KIB: u32 = 256;
    let tracker = Tracker::start();
    let seed = Transmission::start();
    let leech = Transmission::start();
    let file = seed.download_dir().join("payload.bin");
    transmission::write_payload(&file, SIZE);
    let torrent = transmission::create_torrent(&file, &tracker.announce_url(), PIECE_KIB);
    let hash = seed.add_torrent(&torrent, &seed.download_dir());
    seed.wait_torrent(
        &hash,
        &["percentDone", "status"],
        Duration::from_secs(60),
        |t| t["percentDone"] == 1 && t["status"] == 6, // verified, seeding
    );
    // Slow enough for several polls to land mid-transfer.
    seed.limit_upload(3 * 1024);
    let (seed_src, leech_src) = (source(&seed), source(&leech));
    let seed_id = poll(&seed_src).await.unwrap().session;
    let leech_id = poll(&leech_src).await.unwrap().session;
    assert_eq!(
        leech_id.0,
        format!(
            "transmission://127.0.0.1:{}/transmission/rpc#session=1",
            leech.rpc_port
        )
    );

    leech.add_torrent(&torrent, &leech.download_dir());
    let deadline = Instant::now() + Duration::from_secs(240);
    let (mut mid_transfer, mut rate_seen) = (0, false);
    loop {
        let before = (seed.session_stats(), leech.session_stats());
        let ours = (
            poll(&seed_src).await.unwrap(),
            poll(&leech_src).await.unwrap(),
        );
        let after = (seed.session_stats(), leech.session_stats());
        let up = ours.0.get(StatusKey::TotalPayloadUpload).unwrap();
        let down = ours.1.get(StatusKey::TotalPayloadDownload).unwrap();
        bracketed("seed upload", &before.0, up, &after.0, "uploadedBytes");
        bracketed(
            "leech download",
            &before.1,
            down,
            &after.1,
            "downloadedBytes",
        );
        bracketed(
            "seed uptime",
            &before.0,
            ours.0.uptime.unwrap(),
            &after.0,
            "secondsActive",
        );
        assert_eq!((&ours.0.session, &ours.1.session), (&seed_id, &leech_id));
        // Payload only: never a wire total.
        assert_eq!(ours.1.get(StatusKey::TotalDownload), None);
        assert_eq!(ours.0.get(StatusKey::TotalUpload), None);
        if 0 < down && down < SIZE as u64 {
            mid_transfer += 1;
            rate_seen |= ours.1.get(StatusKey::PayloadDownloadRate).unwrap() > 0
                && ours.0.get(StatusKey::PayloadUploadRate).unwrap() > 0;
        }
        if current(&after.1, "downloadedBytes") == SIZE as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the torrent did not move within 240 s (announces {:?}):\n{}\n{}",
            tracker.announces.lock().unwrap(),
            seed.log_tail(),
            leech.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(mid_transfer >= 3, "only {mid_transfer} polls mid-transfer");
    assert!(rate_seen, "no payload rate while the torrent moved");

    // Once nothing moves, ours and the daemon's are the same to the byte, and they are
    // payload: the leech received exactly the torrent's size (its wire traffic, with
    // handshakes, bitfields and message headers, is more).
    let settled = Instant::now() + Duration::from_secs(30);
    let (seed_stats, leech_stats, ours) = loop {
        let s = (seed.session_stats(), leech.session_stats());
        let ours = (
            poll(&seed_src).await.unwrap(),
            poll(&leech_src).await.unwrap(),
        );
        let s2 = (seed.session_stats(), leech.session_stats());
        if s.0["current-stats"] == s2.0["current-stats"]
            && s.1["current-stats"] == s2.1["current-stats"]
        {
            break (s2.0, s2.1, ours);
        }
        assert!(Instant::now() < settled, "the counters never settled");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let up = current(&seed_stats, "uploadedBytes");
    assert_eq!(ours.0.get(StatusKey::TotalPayloadUpload), Some(up));
    assert_eq!(ours.0.get(StatusKey::TotalPayloadDownload), Some(0));
    assert_eq!(
        ours.1.get(StatusKey::TotalPayloadDownload),
        Some(SIZE as u64)
    );
    assert_eq!(current(&leech_stats, "downloadedBytes"), SIZE as u64);
    // Transmission 3.00's upload counter also counts each piece message's 13-byte header
    // (16 KiB blocks): the payload plus 13 bytes a block, well under the wire traffic.
    let blocks = (SIZE as u64).div_ceil(16 * 1024);
    assert!(
        SIZE as u64 <= up && up <= SIZE as u64 + 13 * blocks,
        "seed uploaded {up} for {SIZE} bytes of payload"
    );
    eprintln!(
        "seed uploaded {up} bytes for {SIZE} of payload ({blocks} blocks: +{})",
        up - SIZE as u64
    );

    // A clean restart of the seed after bytes moved: Transmission saved its session
    // count, the identity changes.
    let before = poll(&seed_src).await.unwrap();
    let mut seed = seed;
    seed.stop();
    seed.restart();
    let after = poll(&seed_src).await.unwrap();
    assert!(after.session.0.ends_with("#session=2"), "{}", after.session);
    assert_eq!(after.get(StatusKey::TotalPayloadUpload), Some(0));
    assert!(after.uptime < before.uptime, "{before:?} then {after:?}");

    // kill -9 of the leech: its next run starts from 0 again (lower uptime, lower
    // counters), whatever its saved session count says.
    let before = poll(&leech_src).await.unwrap();
    let mut leech = leech;
    leech.kill();
    let down = poll(&leech_src).await.unwrap_err();
    assert!(matches!(down, SourceError::Unavailable(_)), "{down:?}");
    leech.restart();
    let after = poll(&leech_src).await.unwrap();
    assert_eq!(after.get(StatusKey::TotalPayloadDownload), Some(0));
    assert!(
        after.session != before.session || after.uptime < before.uptime,
        "{before:?} then {after:?}"
    );
    let cumulative = &leech.session_stats()["cumulative-stats"];
    eprintln!(
        "after kill -9 (uptime {:?} s before): identity {} -> {}, Transmission's own \
         cumulative-stats {cumulative}",
        before.uptime, before.session, after.session
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs transmission-daemon"]
async fn a_restart_is_a_new_session_or_a_lower_uptime() {
    let mut daemon = Transmission::start();
    let src = source(&daemon);
    let wait_uptime = |at_least: u64| {
        let deadline = Instant::now() + Duration::from_secs(30);
        let src = &src;
        async move {
            loop {
                let s = poll(src).await.unwrap();
                if s.uptime.unwrap() >= at_least {
                    return s;
                }
                assert!(Instant::now() < deadline, "uptime stuck at {:?}", s.uptime);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let first = wait_uptime(2).await;
    assert!(first.session.0.ends_with("#session=1"), "{}", first.session);
    // A second source (our own restart) sees the same run.
    assert_eq!(poll(&source(&daemon)).await.unwrap().session, first.session);

    // A clean restart of an idle daemon: Transmission 3.00 saves its statistics (the
    // session count with them) only when bytes moved, so the identity may repeat (it
    // changes in the other test, after a transfer); the uptime starts again.
    daemon.stop();
    daemon.restart();
    let clean = poll(&src).await.unwrap();
    assert!(
        clean.session != first.session || clean.uptime < first.uptime,
        "{first:?} then {clean:?}"
    );
    eprintln!(
        "clean restart, idle: identity {} -> {}, uptime {:?} -> {:?}",
        first.session, clean.session, first.uptime, clean.uptime
    );

    // kill -9: the uptime starts again (the session count may repeat: an idle 3.00 daemon
    // saves its statistics only when it exits cleanly).
    let before = wait_uptime(2).await;
    daemon.kill();
    daemon.restart();
    let after = poll(&src).await.unwrap();
    assert!(
        after.session != before.session || after.uptime < before.uptime,
        "{before:?} then {after:?}"
    );
    eprintln!(
        "kill -9: identity {} -> {}, uptime {:?} -> {:?}",
        before.session, after.session, before.uptime, after.uptime
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs transmission-daemon"]
async fn a_wrong_login_or_another_daemon_is_a_clear_error() {
    let daemon = Transmission::start();
    let wrong = daemon.spec().replace(PASSWORD, "not-the-password");
    let src = TransmissionSource::from_spec(&wrong).unwrap();
    let e = poll(&src).await.unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, SourceError::Failed(_)), "{e:?}");
    assert!(text.contains(&src.describe()), "{text}");
    assert!(text.contains("wrong user or password"), "{text}");
    assert!(!text.contains("not-the-password"), "{text}");
    // Backing off: the next poll does not send the refused login again.
    let again = poll(&src).await.unwrap_err().to_string();
    assert!(again.contains("not trying again"), "{again}");
    let log = daemon.try_rpc("session-stats", serde_json::json!({}));
    assert!(log.is_ok(), "the right login still works: {log:?}");

    // No login for a daemon that wants one.
    let bare = format!("transmission://127.0.0.1:{}", daemon.rpc_port);
    let text = poll(&TransmissionSource::from_spec(&bare).unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(text.contains("requires a login"), "{text}");

    // Another HTTP server on the port (here the test tracker): not Transmission.
    let tracker = Tracker::start_for(std::net::Ipv4Addr::LOCALHOST);
    let other = format!("transmission://127.0.0.1:{}", tracker.port);
    let text = poll(&TransmissionSource::from_spec(&other).unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(text.contains("does not look like Transmission"), "{text}");
}
