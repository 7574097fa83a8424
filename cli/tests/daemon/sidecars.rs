//! One daemon counting a real `transmission-daemon`, a real `qbittorrent-nox` and a `sim`
//! source while the two move a torrent to each other over the machine's own address: each
//! sidecar source's all-time totals are the sum of that program's own session counters to
//! the byte, through a `kill -9` of torrent-stats mid-transfer (the restarted daemon
//! continues the same remote sessions), a clean restart of qBittorrent mid-transfer and of
//! both after it, and more traffic afterwards; a `kill -9` of Transmission mid-transfer
//! loses it what it had not saved (printed) and us at most one poll's worth (asserted).
//! The combined `stats.get_totals` is the sum of the three sources throughout.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};

use crate::support::daemon::{command, DaemonProc};
use crate::support::qbittorrent::Qbittorrent;
use crate::support::rpc::Raw;
use crate::support::tracker::{peer_ipv4, Tracker};
use crate::support::transmission::{self, Transmission, PASSWORD as TR_PASSWORD};
use crate::support::{unix_now, XorShift, COUNTERS};

/// The torrent Transmission seeds and qBittorrent downloads.
const SIZE: usize = 48 << 20;
/// The torrent qBittorrent seeds and Transmission downloads after the restarts.
const SECOND_SIZE: usize = 8 << 20;
const PIECE_KIB: u32 = 256;
/// Transmission's upload limit, in its speed units (`units.speed-bytes` of `session-get`:
/// 1000 bytes in 3.00): about 10 s for the first torrent, several polls in each phase.
const UPLOAD_LIMIT: u64 = 4000;
/// Seconds between our polls (`stats.set_config`).
const UPDATE_INTERVAL: u64 = 1;
/// The sim source: it keeps counting, so every comparison of the combined figure with the
/// sources' reads them consistently (see [`Rig::read`]).
const SIM: &str = "sim=sim:up=64KiB/s,down=128KiB/s";
/// How long any one phase may take on a loaded 2-core machine before the test fails.
const PHASE: Duration = Duration::from_secs(120);

/// Payload bytes sent and received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Payload {
    up: u64,
    down: u64,
}

impl std::ops::Add for Payload {
    type Output = Payload;
    fn add(self, o: Payload) -> Payload {
        Payload {
            up: self.up + o.up,
            down: self.down + o.down,
        }
    }
}

impl std::fmt::Display for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "up {} / down {}", self.up, self.down)
    }
}

/// `STATS.uploadedBytes` / `downloadedBytes` of a Transmission `session-stats` answer
/// (`current-stats` or `cumulative-stats`).
fn tr_payload(stats: &Value, which: &str) -> Result<Payload> {
    let get = |k: &str| {
        stats[which][k]
            .as_u64()
            .with_context(|| format!("no {which}.{k} in {stats}"))
    };
    Ok(Payload {
        up: get("uploadedBytes")?,
        down: get("downloadedBytes")?,
    })
}

/// `up_info_data` / `dl_info_data` of qBittorrent's `transfer/info`.
fn qb_payload(info: &Value) -> Result<Payload> {
    let get = |k: &str| {
        info[k]
            .as_u64()
            .with_context(|| format!("no {k} in {info}"))
    };
    Ok(Payload {
        up: get("up_info_data")?,
        down: get("dl_info_data")?,
    })
}

/// One consistent read of the daemon: `stats.get_sources` and `stats.get_totals`.
struct Reading {
    sources: BTreeMap<String, Value>,
    combined: Value,
}

impl Reading {
    fn source(&self, name: &str) -> &Value {
        &self.sources[name]
    }

    /// Source `name`'s all-time payload totals.
    fn payload(&self, name: &str) -> Payload {
        let t = &self.source(name)["totals"];
        Payload {
            up: t["total_payload_upload"].as_u64().unwrap_or(0),
            down: t["total_payload_download"].as_u64().unwrap_or(0),
        }
    }

    fn health(&self, name: &str) -> &Value {
        &self.source(name)["health"]
    }

    /// Source `name`'s successful polls so far.
    fn polls(&self, name: &str) -> u64 {
        self.health(name)["polls"].as_u64().unwrap_or(0)
    }

    fn up(&self, name: &str) -> bool {
        self.health(name)["source_up"] == json!(true)
    }

    fn counter(&self, name: &str, key: &str) -> u64 {
        self.source(name)["totals"][key].as_u64().unwrap_or(0)
    }
}

/// The programs, the tracker between them, and our daemon with its RPC connection.
struct Rig {
    tracker: Tracker,
    tr: Transmission,
    qb: Qbittorrent,
    daemon: Option<DaemonProc>,
    rpc: Option<Raw>,
    /// The `--source` arguments.
    sources: Vec<String>,
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl Rig {
    /// What each program last said, for a failure message.
    fn tails(&self) -> String {
        let ours = self.daemon.as_ref().map(|d| d.log()).unwrap_or_default();
        format!(
            "\n--- transmission-daemon:\n{}\n--- qbittorrent-nox:\n{}\n--- torrent-stats:\n{}\n\
             --- tracker announces: {:?}",
            self.tr.log_tail(),
            self.qb.log_tail(),
            tail(&ours, 40),
            self.tracker.announces.lock().unwrap()
        )
    }

    /// Starts torrent-stats on config directory `dir` with [`Rig::sources`], polling every
    /// [`UPDATE_INTERVAL`] s.
    async fn start_daemon(&mut self, dir: tempfile::TempDir) -> Result<()> {
        let mut cmd = command(dir.path(), &self.sources[0]);
        for s in &self.sources[1..] {
            cmd.args(["--source", s]);
        }
        let d = DaemonProc::launch(cmd, dir)?;
        let mut rpc = Raw::login(d.addr, "localclient", &d.password).await?;
        rpc.call_ok(
            "stats.set_config",
            json!([{ "update_interval": UPDATE_INTERVAL }]),
            json!({}),
        )
        .await?;
        self.daemon = Some(d);
        self.rpc = Some(rpc);
        Ok(())
    }

    /// `kill -9` of torrent-stats; its config directory back.
    fn kill_daemon(&mut self) -> Result<tempfile::TempDir> {
        self.rpc = None;
        self.daemon.take().context("no daemon")?.kill9()
    }

    async fn call(&mut self, method: &str) -> Result<Value> {
        let rpc = self.rpc.as_mut().context("no RPC connection")?;
        rpc.call_ok(method, json!([]), json!({})).await
    }

    /// `stats.get_sources`, then `stats.get_totals`, then `stats.get_sources` again, until
    /// no source's totals moved between the two (sim counts every second; totals only
    /// grow, so equal reads on both sides mean the combined figure is of that same state);
    /// fails unless the combined figure is then the sum of the sources', counter by
    /// counter.
    async fn read(&mut self) -> Result<Reading> {
        let by_name = |v: Value| -> Result<BTreeMap<String, Value>> {
            let rows = v.as_array().with_context(|| format!("get_sources: {v}"))?;
            Ok(rows
                .iter()
                .map(|r| {
                    (
                        r["name"].as_str().unwrap_or_default().to_string(),
                        r.clone(),
                    )
                })
                .collect())
        };
        let totals_of = |m: &BTreeMap<String, Value>| -> Vec<(String, Value)> {
            m.iter()
                .map(|(k, v)| (k.clone(), v["totals"].clone()))
                .collect()
        };
        for _ in 0..100 {
            let first = by_name(self.call("stats.get_sources").await?)?;
            let combined = self.rpc.as_mut().context("no RPC")?.totals().await?;
            let sources = by_name(self.call("stats.get_sources").await?)?;
            if totals_of(&first) != totals_of(&sources) {
                continue;
            }
            ensure!(
                sources.keys().map(String::as_str).eq(["qb", "sim", "tr"]),
                "sources {:?}",
                sources.keys()
            );
            for key in COUNTERS {
                let sum: u64 = sources
                    .values()
                    .map(|s| s["totals"][key].as_u64().unwrap_or(0))
                    .sum();
                ensure!(
                    combined[key].as_u64() == Some(sum),
                    "stats.get_totals {key} = {} but the sources' sum is {sum}: {combined} vs \
                     {:?}{}",
                    combined[key],
                    totals_of(&sources),
                    self.tails()
                );
            }
            return Ok(Reading { sources, combined });
        }
        bail!("no consistent read of get_sources and get_totals in 100 tries")
    }

    /// Waits until source `name` has answered at least `polls` polls.
    async fn wait_polls(&mut self, want: &[(&str, u64)]) -> Result<Reading> {
        let deadline = Instant::now() + PHASE;
        loop {
            let r = self.read().await?;
            if want.iter().all(|&(name, n)| r.polls(name) >= n) {
                return Ok(r);
            }
            if Instant::now() > deadline {
                let health: Vec<_> = want.iter().map(|(n, _)| r.health(n)).collect();
                bail!(
                    "polls {want:?} not reached within {PHASE:?}: {health:?}{}",
                    self.tails()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until source `name` has answered a poll that started after this call.
    async fn fresh_poll(&mut self, name: &str) -> Result<Reading> {
        let n = self.read().await?.polls(name);
        self.wait_polls(&[(name, n + 2)]).await
    }

    /// Both programs' current-session counters.
    async fn theirs(&self) -> Result<(Payload, Payload)> {
        Ok((
            tr_payload(&self.tr.session_stats(), "current-stats")?,
            qb_payload(&self.qb.transfer_info().await)?,
        ))
    }

    /// Waits until both programs' counters stand still (the same over at least 2 s, more
    /// than qBittorrent's 1.5 s statistics period, and over two of our polls of each),
    /// then checks that our totals of `tr` and `qb` are `tr_before` and `qb_before` (what
    /// we counted of their earlier sessions) plus their current sessions, to the byte.
    /// Returns our reading and their current counters.
    async fn settle_and_compare(
        &mut self,
        what: &str,
        tr_before: Payload,
        qb_before: Payload,
    ) -> Result<(Reading, Payload, Payload)> {
        let deadline = Instant::now() + PHASE;
        loop {
            let a = self.theirs().await?;
            let since = Instant::now();
            let r = self.read().await?;
            let (ntr, nqb) = (r.polls("tr"), r.polls("qb"));
            self.wait_polls(&[("tr", ntr + 2), ("qb", nqb + 2)]).await?;
            while since.elapsed() < Duration::from_secs(2) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let b = self.theirs().await?;
            let ours = self.read().await?;
            let c = self.theirs().await?;
            if a == b && b == c {
                let want = (tr_before + b.0, qb_before + b.1);
                let got = (ours.payload("tr"), ours.payload("qb"));
                println!(
                    "{what}: Transmission's current session {}, ours tr {} (earlier sessions \
                     {tr_before}); qBittorrent's {}, ours qb {} (earlier sessions {qb_before}); \
                     sim {}; combined {}",
                    b.0,
                    got.0,
                    b.1,
                    got.1,
                    ours.payload("sim"),
                    ours.combined
                );
                ensure!(
                    got == want,
                    "{what}: ours (tr {}, qb {}) != the programs' own (tr {}, qb {}){}",
                    got.0,
                    got.1,
                    want.0,
                    want.1,
                    self.tails()
                );
                return Ok((ours, b.0, b.1));
            }
            if Instant::now() > deadline {
                bail!(
                    "{what}: the counters never stood still: {a:?} {b:?} {c:?}{}",
                    self.tails()
                );
            }
        }
    }

    /// qBittorrent's `completed` bytes of torrent `hash`.
    async fn qb_completed(&self, hash: &str) -> u64 {
        self.qb.torrent(hash).await["completed"]
            .as_u64()
            .unwrap_or(0)
    }

    /// Waits until qBittorrent has `bytes` of torrent `hash`.
    async fn wait_completed(&self, hash: &str, bytes: u64) -> Result<()> {
        let deadline = Instant::now() + PHASE;
        loop {
            let done = self.qb_completed(hash).await;
            if done >= bytes {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "qBittorrent has {done} of the {bytes} bytes wanted after {PHASE:?}: {}{}",
                    self.qb.torrent(hash).await,
                    self.tails()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// POSTs `hashes=HASH` to qBittorrent's `torrents/ACTION`.
    async fn qb_torrents(&self, action: &str, hash: &str) -> Result<()> {
        let (status, body) = self
            .qb
            .call(
                reqwest::Method::POST,
                &format!("torrents/{action}"),
                Some("application/x-www-form-urlencoded"),
                format!("hashes={hash}").into_bytes(),
            )
            .await;
        ensure!(
            status == 200,
            "torrents/{action}: {status} {}",
            String::from_utf8_lossy(&body)
        );
        Ok(())
    }

    /// Transmission's peer address as the other program reaches it.
    fn tr_peer(&self) -> SocketAddr {
        (peer_ipv4(), self.tr.peer_port).into()
    }
}

/// Sets Transmission's upload limit in its `settings.json` (it keeps the RPC's
/// `session-set` there only when it exits cleanly), for the restart after a `kill -9`.
fn keep_upload_limit(tr: &Transmission, limit: u64) -> Result<()> {
    let path = tr.dir.path().join("config/settings.json");
    let mut settings: Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    settings["speed-limit-up"] = json!(limit);
    settings["speed-limit-up-enabled"] = json!(true);
    std::fs::write(&path, serde_json::to_vec_pretty(&settings)?)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs transmission-daemon and qbittorrent-nox"]
async fn sidecar_totals_are_the_programs_own_counters_across_kills_and_restarts() -> Result<()> {
    let started = Instant::now();
    let phase = |what: &str| println!("[{:5.1} s] {what}", started.elapsed().as_secs_f64());
    let mut random = XorShift::from_env_or_clock("SIDECARS_SEED");
    let tracker = Tracker::start();
    let tr = Transmission::start();
    let qb = Qbittorrent::start("qb pass:@%").await;
    let sources = vec![
        format!("tr={}", tr.spec()),
        format!("qb={}", qb.spec()),
        SIM.to_string(),
    ];
    let mut rig = Rig {
        tracker,
        tr,
        qb,
        daemon: None,
        rpc: None,
        sources,
    };

    // Transmission seeds the first torrent, limited.
    let file = rig.tr.download_dir().join("payload.bin");
    transmission::write_payload(&file, SIZE);
    let torrent = transmission::create_torrent(&file, &rig.tracker.announce_url(), PIECE_KIB);
    let hash = rig.tr.add_torrent(&torrent, &rig.tr.download_dir());
    rig.tr.wait_torrent(
        &hash,
        &["percentDone", "status"],
        PHASE,
        |t| t["percentDone"] == 1 && t["status"] == 6, // verified, seeding
    );
    // Transmission writes a torrent's resume file (what it has) when it exits or every few
    // minutes: a clean restart now, so that the kill -9 below finds it a seed again.
    rig.tr.stop();
    rig.tr.restart();
    rig.tr.limit_upload(UPLOAD_LIMIT);
    let speed_bytes = rig.tr.rpc("session-get", json!({}))["units"]["speed-bytes"]
        .as_u64()
        .context("session-get: no units.speed-bytes")?;
    let limit_bps = UPLOAD_LIMIT * speed_bytes;

    phase("Transmission seeds the torrent; torrent-stats starts");
    rig.start_daemon(tempfile::tempdir()?).await?;
    let r = rig.wait_polls(&[("tr", 1), ("qb", 1), ("sim", 1)]).await?;
    for name in ["tr", "qb"] {
        ensure!(
            r.payload(name) == Payload::default(),
            "{name} before any transfer: {}",
            r.payload(name)
        );
    }
    let kinds: Vec<_> = ["tr", "qb", "sim"]
        .iter()
        .map(|n| r.source(n)["kind"].clone())
        .collect();
    ensure!(
        kinds == [json!("transmission"), json!("qbittorrent"), json!("sim")],
        "{kinds:?}"
    );

    // qBittorrent downloads it (from the tracker and told directly).
    let qb_hash = rig
        .qb
        .add_torrent(&std::fs::read(&torrent)?, &rig.qb.downloads())
        .await;
    ensure!(qb_hash == hash, "{qb_hash} != {hash}");
    rig.qb.add_peer(&hash, rig.tr_peer()).await;
    let fifth = SIZE as u64 / 5;
    rig.wait_completed(&hash, fifth).await?;
    phase("a fifth moved: kill -9 of torrent-stats");

    // 1. kill -9 of torrent-stats mid-transfer, after it counted some of both, and a
    // restart on the same config directory.
    let deadline = Instant::now() + PHASE;
    let r = loop {
        let r = rig.read().await?;
        if r.payload("tr").up > 0 && r.payload("qb").down > 0 {
            break r;
        }
        ensure!(
            Instant::now() < deadline,
            "nothing counted mid-transfer: tr {}, qb {}{}",
            r.payload("tr"),
            r.payload("qb"),
            rig.tails()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let before_kill = r.combined.clone();
    let dir = rig.kill_daemon()?;
    let killed_at = Instant::now();
    rig.start_daemon(dir).await?;
    println!(
        "torrent-stats kill -9 at tr {}, qb {}; back in {:?}",
        r.payload("tr"),
        r.payload("qb"),
        killed_at.elapsed()
    );
    let r = rig.fresh_poll("tr").await?;
    for key in COUNTERS {
        ensure!(
            r.combined[key].as_u64() >= before_kill[key].as_u64(),
            "combined {key} went down across the kill -9: {before_kill} then {}",
            r.combined
        );
    }
    rig.wait_completed(&hash, 2 * fifth).await?;
    let r = rig.read().await?;
    ensure!(
        r.up("tr") && r.up("qb"),
        "a source is down mid-transfer: {:?} {:?}",
        r.health("tr"),
        r.health("qb")
    );

    // 2. Paused mid-transfer: ours equal both programs' own session counters to the byte
    // (the restarted daemon continued the same sessions: nothing counted twice or lost).
    phase("two fifths moved: paused");
    rig.qb_torrents("pause", &hash).await?;
    let (_, tr_now, qb_s1) = rig
        .settle_and_compare(
            "after torrent-stats' kill -9, transfer paused",
            Payload::default(),
            Payload::default(),
        )
        .await?;
    ensure!(
        0 < qb_s1.down && qb_s1.down < SIZE as u64 && tr_now.up >= qb_s1.down,
        "mid-transfer: Transmission {tr_now}, qBittorrent {qb_s1}"
    );

    // 3. A clean restart of qBittorrent mid-transfer: its session counters start from 0;
    // ours go on from what its first session counted.
    phase("clean restart of qBittorrent mid-transfer");
    rig.qb.stop().await;
    rig.qb.restart().await;
    rig.qb_torrents("resume", &hash).await?;
    rig.qb.add_peer(&hash, rig.tr_peer()).await;
    rig.wait_completed(&hash, SIZE as u64 * 13 / 20).await?;

    // 4. kill -9 of Transmission mid-transfer: it loses what it had not saved; we lose at
    // most what moved since our last poll.
    let r = rig.fresh_poll("tr").await?;
    ensure!(r.up("tr"), "tr is down: {:?}", r.health("tr"));
    // The kill lands somewhere in the second half of a poll interval (a poll just ended):
    // a random moment, not a synchronisation (SIDECARS_SEED replays it).
    let interval_ms = UPDATE_INTERVAL * 1000;
    let wait = random.between(interval_ms / 2, interval_ms - 1);
    phase(&format!(
        "13/20 moved: kill -9 of Transmission {wait} ms after our poll"
    ));
    tokio::time::sleep(Duration::from_millis(wait)).await;
    let stats = rig.tr.session_stats();
    let stats_at = unix_now();
    rig.tr.kill();
    let (current, cumulative) = (
        tr_payload(&stats, "current-stats")?,
        tr_payload(&stats, "cumulative-stats")?,
    );
    // Ours of the killed session are final once a poll has failed.
    let deadline = Instant::now() + PHASE;
    let r = loop {
        let r = rig.read().await?;
        if !r.up("tr") {
            break r;
        }
        ensure!(
            Instant::now() < deadline,
            "tr still up after the kill: {:?}",
            r.health("tr")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let tr_s1 = r.payload("tr");
    let last_poll = r.health("tr")["last_poll"].as_f64().unwrap_or(0.0);
    let ours_lost = current.up as i64 - tr_s1.up as i64;
    keep_upload_limit(&rig.tr, UPLOAD_LIMIT)?;
    rig.tr.restart();
    let after = rig.tr.session_stats();
    rig.tr
        .wait_torrent(&hash, &["percentDone", "status"], PHASE, |t| {
            t["percentDone"] == 1 && t["status"] == 6
        });
    let saved =
        tr_payload(&after, "cumulative-stats")?.up - tr_payload(&after, "current-stats")?.up;
    println!(
        "transmission kill -9: its cumulative uploaded {} -> {saved} after the restart, lost {}; \
         its session had uploaded {} when killed, ours counted {}: lost {ours_lost} (our last \
         poll {:.2} s before; downloaded: its {} vs ours {})",
        cumulative.up,
        cumulative.up - saved,
        current.up,
        tr_s1.up,
        stats_at - last_poll,
        current.down,
        tr_s1.down
    );
    // What moves in one poll interval at the upload limit, with one more second for the
    // poll's own round trip and scheduling on a busy machine and Transmission's bandwidth
    // bursts.
    let window = UPDATE_INTERVAL + 1;
    let one_poll = limit_bps * window;
    ensure!(
        ours_lost <= one_poll as i64,
        "we lost {ours_lost} bytes of Transmission's killed session, more than one poll's \
         worth ({one_poll} = {limit_bps} B/s x {window} s){}",
        rig.tails()
    );
    ensure!(
        tr_s1.down == current.down,
        "the seed downloaded: {current} vs ours {tr_s1}"
    );
    rig.qb.add_peer(&hash, rig.tr_peer()).await;
    phase("Transmission back: the rest moves");
    rig.qb.wait_complete(&hash, PHASE).await;
    ensure!(
        std::fs::read(rig.qb.downloads().join("payload.bin"))? == std::fs::read(&file)?,
        "qBittorrent's copy differs"
    );

    // 5. After the transfer: Transmission's second session and qBittorrent's second, on
    // top of what we counted of the first ones.
    let (_, tr_s2, qb_s2) = rig
        .settle_and_compare("transfer done", tr_s1, qb_s1)
        .await?;

    // 6. Clean restarts of both after the transfer, then more traffic the other way:
    // qBittorrent seeds, Transmission downloads.
    phase("clean restarts of both");
    rig.tr.stop();
    rig.tr.restart();
    rig.qb.stop().await;
    rig.qb.restart().await;
    let (tr_done, qb_done) = (tr_s1 + tr_s2, qb_s1 + qb_s2);
    let second = rig.qb.downloads().join("second.bin");
    transmission::write_payload(&second, SECOND_SIZE);
    let torrent2 = transmission::create_torrent(&second, &rig.tracker.announce_url(), PIECE_KIB);
    let announced: Vec<String> = rig
        .tracker
        .announces
        .lock()
        .unwrap()
        .iter()
        .map(|a| a.0.clone())
        .collect();
    let hash2 = rig
        .qb
        .add_torrent(&std::fs::read(&torrent2)?, &rig.qb.downloads())
        .await;
    rig.qb.wait_complete(&hash2, PHASE).await;
    // Transmission joins once qBittorrent is in the tracker's swarm, so that its first
    // announce finds it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = rig
            .tracker
            .announces
            .lock()
            .unwrap()
            .iter()
            .any(|(h, port, _)| *port == rig.qb.peer_port && !announced.contains(h));
        if found {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "qBittorrent did not announce the second torrent{}",
            rig.tails()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tr_hash2 = rig.tr.add_torrent(&torrent2, &rig.tr.download_dir());
    ensure!(tr_hash2 == hash2, "{tr_hash2} != {hash2}");
    rig.qb.add_peer(&hash2, rig.tr_peer()).await;
    phase("qBittorrent seeds a second torrent to Transmission");
    rig.tr
        .wait_torrent(&hash2, &["percentDone"], PHASE, |t| t["percentDone"] == 1);
    let (r, tr_s3, qb_s3) = rig
        .settle_and_compare("after both restarts and more traffic", tr_done, qb_done)
        .await?;
    ensure!(
        tr_s3.down >= SECOND_SIZE as u64 && qb_s3.up >= SECOND_SIZE as u64,
        "the second torrent: Transmission {tr_s3}, qBittorrent {qb_s3}"
    );
    ensure!(
        r.payload("sim").up > 0 && r.counter("sim", "total_upload") > 0,
        "sim did not count: {}",
        r.source("sim")
    );
    println!(
        "final: ours tr {} = {tr_s1} (first session, to its kill -9) + {tr_s2} + {tr_s3}; \
         ours qb {} = {qb_s1} + {qb_s2} + {qb_s3}; sim {}; combined {}",
        r.payload("tr"),
        r.payload("qb"),
        r.payload("sim"),
        r.combined
    );

    // No password in our log.
    let log = rig.daemon.as_ref().context("daemon")?.log();
    for pw in [TR_PASSWORD, rig.qb.password.as_str()] {
        ensure!(!log.contains(pw), "a password in the daemon's log");
    }
    phase("done");
    Ok(())
}
