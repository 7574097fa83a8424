//! Hostile input through a real socket. Stock Deluge 2.0.3 segfaults on a 127-byte frame of
//! nested lists and inflates a zlib bomb in full; our daemon must refuse each of these
//! cases, lose only the offending connection, and keep answering everyone else.
//!
//! - Against the daemon binary (`torrent-stats daemon --port 0`): truncated frames, frames
//!   declaring 4 GiB or a negative pre-release length, zlib bombs (64 MiB of zeros in
//!   ~64 KiB, as a v1 frame and as a bare-zlib 1.x probe, one at a time and four at
//!   once), bombs that inflate within the limit to a huge list or batch of calls (peak
//!   resident memory must grow by less than 64 MiB), a 1.x probe dripped a byte at a
//!   time, deeply nested rencode (the 127-byte frame of 100,000 nested lists, long-form
//!   lists, dicts, deep call args), a wrong version byte, bad zlib, malformed calls,
//!   plain bytes before TLS, stalled partial frames. While each hostile client
//!   misbehaves a logged-in observer keeps calling `stats.get_totals`, each answer
//!   within 200 ms.
//! - In process (`server::run` with small [`server::Options`]): the partial-frame, idle
//!   and handshake timeouts, the logged-in connection limit (a login over it closes its
//!   connection; connecting is never refused, unauthenticated connections have their own
//!   budget, see rpc_admission.rs), and shutdown closing connections.
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use torrent_stats::auth::AuthFile;
use torrent_stats::auth::LOCALCLIENT;
use torrent_stats::rpc::gateway::Gateway;
use torrent_stats::rpc::server;
use torrent_stats::rpc::tls;
use torrent_stats::unstable::codec;
use torrent_stats::unstable::frame::{self, Limits};
use torrent_stats::Core;

use crate::support::daemon::DaemonProc;
use crate::support::rpc::{tcp_closed_within, Raw};
use crate::support::{host_with_stats, Scripted};

/// Longest an observer's `stats.get_totals` may take while a hostile client misbehaves.
const PROMPT: Duration = Duration::from_millis(200);

/// A v1 frame around raw (already rencoded) payload bytes.
fn v1(payload: &[u8]) -> Vec<u8> {
    frame::encode(payload)
}

/// zlib at the best level, as Python's `zlib.compress(data, 9)`.
fn deflate_best(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(data).expect("deflate");
    z.finish().expect("deflate")
}

/// A v1 frame around `payload` compressed at the best level.
fn v1_best(payload: &[u8]) -> Vec<u8> {
    frame_with(1, &deflate_best(payload))
}

/// A frame with the given version byte around `body` as it is.
fn frame_with(version: u8, body: &[u8]) -> Vec<u8> {
    let mut f = vec![version];
    f.extend_from_slice(&(body.len() as u32).to_be_bytes());
    f.extend_from_slice(body);
    f
}

/// Runs `hostile` as its own task while `observer` calls `stats.get_totals` every 10 ms
/// (at least 5 times); fails if any answer takes longer than [`PROMPT`].
async fn while_observed<F>(observer: &mut Raw, what: &str, hostile: F) -> Result<()>
where
    F: Future<Output = Result<()>> + Send + 'static,
{
    let task = tokio::spawn(hostile);
    let (mut calls, mut worst) = (0u32, Duration::ZERO);
    while calls < 5 || !task.is_finished() {
        let started = Instant::now();
        observer
            .totals()
            .await
            .with_context(|| format!("observer during {what}"))?;
        worst = worst.max(started.elapsed());
        calls += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    task.await?.with_context(|| what.to_string())?;
    println!("{what}: observer made {calls} calls, slowest {worst:?}");
    ensure!(
        worst < PROMPT,
        "{what}: the observer waited {worst:?} for stats.get_totals"
    );
    Ok(())
}

/// The daemon must close a connection that sent `bytes`.
async fn closes_after(
    addr: std::net::SocketAddr,
    what: &'static str,
    bytes: Vec<u8>,
) -> Result<()> {
    let mut raw = Raw::connect(addr).await?;
    raw.send_bytes(&bytes).await?;
    ensure!(
        raw.closed_within(Duration::from_secs(3)).await,
        "{what}: the connection was not closed"
    );
    Ok(())
}

/// 100,000 nested one-element lists around a 0: the 127-byte frame that crashes Deluge.
fn nested_lists() -> Vec<u8> {
    let mut p = vec![0xC1u8; 100_000];
    p.push(0x00);
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_lose_only_their_own_connection() -> Result<()> {
    let mut daemon = DaemonProc::start()?;
    let addr = daemon.addr;
    let password = daemon.password.clone();
    let mut observer = Raw::login(addr, LOCALCLIENT, &password).await?;
    observer.totals().await?;

    // A frame cut short, then a clean close (close_notify) or a dropped socket.
    while_observed(&mut observer, "truncated frame then close", async move {
        let full = v1(&codec::encode(&json!([[1, "daemon.info", [], {}]])));
        let mut raw = Raw::connect(addr).await?;
        raw.send_bytes(&full[..full.len() / 2]).await?;
        raw.shutdown().await?;
        ensure!(
            raw.closed_within(Duration::from_secs(3)).await,
            "not closed"
        );
        let mut raw = Raw::connect(addr).await?;
        raw.send_bytes(&full[..3]).await?;
        drop(raw);
        Ok(())
    })
    .await?;

    while_observed(
        &mut observer,
        "frame declaring 4 GiB",
        closes_after(addr, "4 GiB", vec![1, 0xff, 0xff, 0xff, 0xff]),
    )
    .await?;
    while_observed(
        &mut observer,
        "pre-release frame with a negative length",
        closes_after(addr, "negative", vec![b'D', 0xff, 0xff, 0xff, 0xf0]),
    )
    .await?;
    while_observed(
        &mut observer,
        "wrong version byte",
        closes_after(addr, "version 2", {
            let good = v1(&codec::encode(&json!([[1, "daemon.info", [], {}]])));
            frame_with(2, &good[5..])
        }),
    )
    .await?;
    while_observed(
        &mut observer,
        "HTTP inside TLS",
        closes_after(addr, "HTTP", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
    )
    .await?;
    while_observed(
        &mut observer,
        "body that is not zlib",
        closes_after(
            addr,
            "not zlib",
            frame_with(1, b"this is not a zlib stream"),
        ),
    )
    .await?;

    // Plain bytes to the TLS port: the handshake fails, the connection is closed.
    while_observed(&mut observer, "garbage before TLS", async move {
        for garbage in [
            b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
            v1(&codec::encode(&json!([[1, "daemon.info", [], {}]]))),
            (0..16_384u32).map(|i| (i * 7919 % 251) as u8).collect(),
        ] {
            let mut tcp = TcpStream::connect(addr).await?;
            // The daemon may reset the connection before it has read everything.
            let _ = tcp.write_all(&garbage).await;
            ensure!(
                tcp_closed_within(&mut tcp, Duration::from_secs(3)).await,
                "plain bytes to the TLS port: not closed"
            );
        }
        Ok(())
    })
    .await?;

    // Deep nesting before login: the message is refused, the connection carries on.
    let deep = nested_lists();
    let deep_frame = v1_best(&deep);
    println!(
        "100,000 nested lists: {} payload bytes in a {}-byte frame",
        deep.len(),
        deep_frame.len()
    );
    ensure!(deep_frame.len() <= 160, "{} bytes", deep_frame.len());
    let nestings: Vec<(&'static str, Vec<u8>)> = vec![
        ("100,000 nested one-element lists", deep),
        ("100,000 nested long-form lists", {
            let mut p = vec![0x3Bu8; 100_000];
            p.push(0x00);
            p.extend(std::iter::repeat_n(0x7Fu8, 100_000));
            p
        }),
        ("80,000 nested dicts", {
            let mut p: Vec<u8> = std::iter::repeat_n([0x67u8, 0x81, b'a'], 80_000)
                .flatten()
                .collect();
            p.push(0x00);
            p
        }),
        ("a call whose args nest 100,000 deep", {
            let mut p = vec![0xC1, 0xC4, 0x01, 0x8B];
            p.extend_from_slice(b"daemon.info");
            p.extend(std::iter::repeat_n(0xC1u8, 100_000));
            p.extend_from_slice(&[0x00, 0x66]);
            p
        }),
    ];
    for (what, payload) in nestings {
        while_observed(&mut observer, what, async move {
            let mut raw = Raw::connect(addr).await?;
            raw.send_bytes(&v1_best(&payload)).await?;
            let reply = raw.recv(Duration::from_millis(300)).await?;
            ensure!(
                reply.is_none(),
                "an undecodable message was answered: {reply:?}"
            );
            let version = raw.call_ok("daemon.info", json!([]), json!({})).await?;
            ensure!(
                version.as_str().is_some_and(|v| v.starts_with("2.")),
                "{version}"
            );
            Ok(())
        })
        .await?;
    }

    // Malformed calls: answered in order when they carry an id, skipped otherwise.
    while_observed(&mut observer, "malformed calls in a batch", async move {
        let mut raw = Raw::connect(addr).await?;
        let batch = json!([
            [1, "daemon.info", [], {}],
            "junk",
            [2, 5, [], {}],
            [3, "daemon.info", {}, {}],
            [[4], "daemon.info", [], {}],
            [5, "daemon.info", [], {}],
        ]);
        raw.send_bytes(&v1(&codec::encode(&batch))).await?;
        let mut got = Vec::new();
        while let Some(m) = raw.recv(Duration::from_millis(500)).await? {
            got.push((m[0].clone(), m[1].clone()));
        }
        let want: Vec<(Value, Value)> = [(1, 1), (2, 2), (2, 3), (1, 5)]
            .iter()
            .map(|&(kind, id)| (json!(kind), json!(id)))
            .collect();
        ensure!(got == want, "replies (type, id): {got:?}");
        // Payloads that are not a list of calls, and undecodable rencode: ignored.
        raw.send_bytes(&v1(&codec::encode(&json!({"a": 1}))))
            .await?;
        raw.send_bytes(&v1(&[0x7F, 0x3B])).await?;
        raw.send_bytes(&v1(b"")).await?;
        ensure!(
            raw.recv(Duration::from_millis(300)).await?.is_none(),
            "answered"
        );
        raw.call_ok("daemon.info", json!([]), json!({})).await?;
        Ok(())
    })
    .await?;

    // A 1.x probe (bare zlib) that inflates to 7 MiB, then never ends: dripped a byte
    // at a time, each read must not cost a re-inflation of everything so far.
    let head = zeros_stream_head(7 << 20);
    while_observed(&mut observer, "2 dripping 1.x probes", async move {
        let mut tasks = Vec::new();
        for _ in 0..2 {
            let head = head.clone();
            tasks.push(tokio::spawn(async move {
                let mut raw = Raw::connect(addr).await?;
                raw.send_bytes(&head).await?;
                // A stored block that announces 60,000 bytes, then its bytes one by one.
                raw.send_bytes(&[0x00, 0x60, 0xea, 0x9f, 0x15]).await?;
                let until = Instant::now() + Duration::from_millis(1500);
                while Instant::now() < until {
                    if raw.send_bytes(b"x").await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                anyhow::Ok(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        Ok(())
    })
    .await?;

    // Stalled partial frames (the binary's partial timeout is 30 s): they only hold
    // their own connections.
    while_observed(&mut observer, "20 stalled partial frames", async move {
        let mut stalled = Vec::new();
        for i in 0..20u8 {
            let mut raw = Raw::connect(addr).await?;
            let frame = if i % 2 == 0 {
                vec![1, 0, 0, 0x10, 0x00, 0x78]
            } else {
                vec![0x78, 0x9c, 0x01]
            };
            raw.send_bytes(&frame).await?;
            stalled.push(raw);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut fresh = Raw::login(addr, LOCALCLIENT, &password).await?;
        fresh.totals().await?;
        drop(stalled);
        Ok(())
    })
    .await?;

    ensure!(daemon.running(), "the daemon died; log:\n{}", daemon.log());
    observer.totals().await?;
    let version = observer
        .call_ok("daemon.get_version", json!([]), json!({}))
        .await?;
    ensure!(version.is_string(), "{version}");
    Ok(())
}

/// `n` zero bytes zlib-compressed the fast way (deflating 64 MiB in a debug build is slow):
/// one chunk's stream body repeated, since a sync-flushed block of back-references to
/// zeros is the same wherever it falls, then an empty final block and the Adler-32.
fn zeros_bomb(n: usize) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress};
    const CHUNK: usize = 1 << 20;
    assert!(n.is_multiple_of(CHUNK) && n >= 2 * CHUNK);
    fn chunk(z: &mut Compress, out: &mut Vec<u8>, zeros: &[u8]) -> usize {
        let start = out.len();
        let before = z.total_in();
        while z.total_in() - before < zeros.len() as u64 {
            let used = (z.total_in() - before) as usize;
            out.reserve(1 << 16);
            z.compress_vec(&zeros[used..], out, FlushCompress::Sync)
                .expect("deflate");
        }
        // Drain what the flush still holds.
        loop {
            let len = out.len();
            out.reserve(1 << 16);
            z.compress_vec(&[], out, FlushCompress::Sync)
                .expect("deflate");
            if out.len() == len {
                break;
            }
        }
        start
    }
    let zeros = vec![0u8; CHUNK];
    let mut z = Compress::new(Compression::best(), true);
    let mut out = Vec::with_capacity(1 << 16);
    chunk(&mut z, &mut out, &zeros);
    let second = chunk(&mut z, &mut out, &zeros);
    let repeated = out[second..].to_vec();
    for _ in 2..n / CHUNK {
        out.extend_from_slice(&repeated);
    }
    // Final empty fixed-Huffman block (BFINAL=1, BTYPE=01, end-of-block), byte-aligned.
    out.extend_from_slice(&[0x03, 0x00]);
    // Adler-32 of n zeros: a = 1, b = n mod 65521.
    let adler = ((n % 65521) as u32) << 16 | 1;
    out.extend_from_slice(&adler.to_be_bytes());
    out
}

/// The start of a zlib stream of `n` zeros: header and sync-flushed blocks, no end.
fn zeros_stream_head(n: usize) -> Vec<u8> {
    let full = zeros_bomb(n);
    full[..full.len() - 6].to_vec()
}

#[test]
fn zeros_bomb_is_a_valid_zlib_stream() {
    use std::io::Read;
    let bomb = zeros_bomb(4 << 20);
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(&bomb[..])
        .read_to_end(&mut out)
        .expect("valid zlib");
    assert_eq!(out.len(), 4 << 20);
    assert!(out.iter().all(|&b| b == 0));
}

/// Sends `bytes` on a fresh connection; the daemon must close it.
async fn refused(addr: std::net::SocketAddr, what: String, bytes: Arc<Vec<u8>>) -> Result<()> {
    let mut raw = Raw::connect(addr).await?;
    // Refused as soon as a limit is passed: the rest of the write may meet a reset.
    let _ = raw.send_bytes(&bytes).await;
    ensure!(
        raw.closed_within(Duration::from_secs(10)).await,
        "{what}: the connection was not closed"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zlib_bomb_is_refused_and_memory_stays_bounded() -> Result<()> {
    let mut daemon = DaemonProc::start()?;
    let addr = daemon.addr;
    let mut observer = Raw::login(addr, LOCALCLIENT, &daemon.password).await?;
    for _ in 0..20 {
        observer.totals().await?;
    }
    let built = Instant::now();
    let body = zeros_bomb(64 << 20);
    let bomb = Arc::new(frame_with(1, &body));
    println!(
        "bomb: 64 MiB of zeros in {} bytes (built in {:?})",
        bomb.len(),
        built.elapsed()
    );
    ensure!(
        bomb.len() < Limits::default().max_frame,
        "bomb over the frame limit"
    );
    let bare = Arc::new(body); // the Deluge 1.x probe path inflates too
    let rss_before = daemon.rss_kib()?;
    let peak_before = daemon.peak_rss_kib()?;

    // One bomb at a time, each watched by the observer.
    for i in 0..4 {
        let (what, bytes) = if i % 2 == 0 {
            ("v1 frame bomb", bomb.clone())
        } else {
            ("bare zlib (1.x probe) bomb", bare.clone())
        };
        while_observed(&mut observer, what, refused(addr, what.to_string(), bytes)).await?;
    }
    // Four at once (more than the daemon's two worker threads).
    let mut tasks = Vec::new();
    for i in 0..4 {
        let bytes = if i % 2 == 0 {
            bomb.clone()
        } else {
            bare.clone()
        };
        tasks.push(tokio::spawn(refused(
            addr,
            format!("concurrent bomb {i}"),
            bytes,
        )));
    }
    for t in tasks {
        t.await??;
    }
    let started = Instant::now();
    observer.totals().await?;
    println!(
        "observer after the concurrent bombs: {:?}",
        started.elapsed()
    );

    // Bombs of the decoded kind, at the daemon's inflate limit: a frame of a few hundred
    // bytes inflating to a list of as many values as the limit allows (ignored: more calls
    // than a message may carry), a batch of as many calls (ignored), and a list of 8
    // million values (refused: over the inflate limit).
    let max = server::Options::default().limits.max_inflated;
    let list = |n: usize| {
        let mut p = vec![0x3Bu8];
        p.extend(std::iter::repeat_n(0u8, n));
        p.push(0x7F);
        Arc::new(v1_best(&p))
    };
    let batch = {
        let call = codec::encode(&json!([1, "daemon.info", [], {}]));
        let mut p = vec![0x3Bu8];
        for _ in 0..(max - 2) / call.len() {
            p.extend_from_slice(&call);
        }
        p.push(0x7F);
        Arc::new(v1_best(&p))
    };
    for (what, bytes) in [
        (
            "a list of the most values one message can hold",
            list(max - 2),
        ),
        ("the same again", list(max - 2)),
        ("a batch of the most calls one message can hold", batch),
    ] {
        println!("{what}: a {}-byte frame", bytes.len());
        while_observed(&mut observer, what, async move {
            let mut raw = Raw::connect(addr).await?;
            raw.send_bytes(&bytes).await?;
            let reply = raw.recv(Duration::from_millis(500)).await?;
            ensure!(
                reply.is_none(),
                "answered: {:?}",
                reply.map(|r| r.to_string().len())
            );
            raw.call_ok("daemon.info", json!([]), json!({})).await?;
            Ok(())
        })
        .await?;
    }
    while_observed(
        &mut observer,
        "an 8-million-value list",
        refused(addr, "8M list".into(), list(8 << 20)),
    )
    .await?;

    let (rss_after, peak_after) = (daemon.rss_kib()?, daemon.peak_rss_kib()?);
    println!(
        "daemon RSS: {rss_before} KiB before the bombs, {rss_after} KiB after; \
         peak {peak_before} KiB before, {peak_after} KiB after"
    );
    ensure!(
        rss_after < rss_before + 64 * 1024 && peak_after < rss_before + 64 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB (peak {peak_after} KiB)"
    );
    ensure!(daemon.running(), "the daemon died; log:\n{}", daemon.log());
    Ok(())
}

/// Our server in process with small limits.
struct InProcess {
    addr: std::net::SocketAddr,
    password: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn in_process(options: server::Options) -> Result<InProcess> {
    let dir = tempfile::tempdir()?;
    let host = host_with_stats(Arc::new(Scripted::new("s")), dir.path()).await;
    let auth = AuthFile::open(dir.path())?;
    let password = auth.password_of(LOCALCLIENT).context("localclient")?;
    let tls = tls::server_config(dir.path())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let daemon = Gateway::new(Core::from_host(host.clone())?, auth);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server::run(listener, tls, daemon, options, async move {
            let _ = stopped.await;
        })
        .await;
        host.shutdown().await;
    });
    Ok(InProcess {
        addr,
        password,
        stop: Some(stop),
        task,
        _dir: dir,
    })
}

/// How long until the server closes the connection (at most `limit`).
async fn time_to_close(raw: &mut Raw, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    raw.closed_within(limit).await.then(|| started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_logs_in_is_closed() -> Result<()> {
    let options = server::Options {
        login_timeout: Duration::from_millis(800),
        ..server::Options::default()
    };
    let server = in_process(options).await?;
    let addr = server.addr;
    let mut observer = Raw::login(addr, LOCALCLIENT, &server.password).await?;
    let mut anon = Raw::connect(addr).await?;
    let started = Instant::now();
    let mut id = 1;
    // Busy but never logged in: daemon.info needs no login, yet the slot is not kept.
    let closed = loop {
        let info = v1(&codec::encode(&json!([[id, "daemon.info", [], {}]])));
        id += 1;
        if anon.send_bytes(&info).await.is_err()
            || anon.closed_within(Duration::from_millis(150)).await
        {
            break true;
        }
        if started.elapsed() > Duration::from_secs(3) {
            break false;
        }
    };
    ensure!(closed, "an anonymous connection outlived the login timeout");
    ensure!(
        started.elapsed() >= Duration::from_millis(700),
        "closed after {:?}, before the login timeout",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    observer.totals().await?;
    drop(server.stop);
    server.task.await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_close_stalled_connections() -> Result<()> {
    let options = server::Options {
        handshake_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(1500),
        partial_timeout: Duration::from_millis(300),
        ..server::Options::default()
    };
    let server = in_process(options).await?;
    let addr = server.addr;
    let mut observer = Raw::login(addr, LOCALCLIENT, &server.password).await?;

    // Partial v1 frame and partial bare-zlib probe: closed after the partial timeout.
    for (what, bytes) in [
        ("partial v1 frame", vec![1u8, 0, 0, 0, 40, 0x78, 0x9c]),
        ("partial header", vec![1u8, 0, 0]),
        ("partial 1.x probe", vec![0x78u8, 0x9c, 0x01, 0x02]),
    ] {
        let mut raw = Raw::connect(addr).await?;
        raw.send_bytes(&bytes).await?;
        let closed = time_to_close(&mut raw, Duration::from_secs(3)).await;
        let closed = closed.with_context(|| format!("{what}: not closed within 3 s"))?;
        ensure!(
            closed >= Duration::from_millis(250),
            "{what}: closed after {closed:?}, before the partial timeout"
        );
        observer.totals().await?;
    }

    // A frame dripped a byte at a time: the partial timeout counts from its first byte.
    let mut raw = Raw::connect(addr).await?;
    let started = Instant::now();
    let mut closed = false;
    for b in [
        1u8, 0, 0, 0, 40, 0x78, 0x9c, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
    ] {
        if raw.send_bytes(&[b]).await.is_err()
            || raw.closed_within(Duration::from_millis(100)).await
        {
            closed = true;
            break;
        }
    }
    ensure!(closed, "a dripping frame kept its connection");
    ensure!(
        started.elapsed() < Duration::from_millis(1900),
        "dripping frame closed only after {:?}",
        started.elapsed()
    );

    // A partial frame completed in time is answered.
    let mut raw = Raw::connect(addr).await?;
    let full = v1(&codec::encode(&json!([[7, "daemon.info", [], {}]])));
    raw.send_bytes(&full[..4]).await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    raw.send_bytes(&full[4..]).await?;
    let reply = raw
        .recv(Duration::from_secs(2))
        .await?
        .context("no reply")?;
    ensure!(reply[1] == json!(7), "{reply}");

    // No handshake at all: closed after the handshake timeout.
    let mut tcp = TcpStream::connect(addr).await?;
    let started = Instant::now();
    ensure!(
        tcp_closed_within(&mut tcp, Duration::from_secs(3)).await,
        "a silent TCP connection was not closed"
    );
    let waited = started.elapsed();
    ensure!(
        waited >= Duration::from_millis(250),
        "handshake timeout after {waited:?}"
    );

    // A silent TLS connection: closed after the idle timeout, not the partial one.
    let mut idle = Raw::connect(addr).await?;
    let closed = time_to_close(&mut idle, Duration::from_secs(5))
        .await
        .context("idle connection not closed")?;
    ensure!(
        closed >= Duration::from_millis(1200),
        "idle connection closed after {closed:?}"
    );
    // The observer, which kept calling, is idle now too: renew it before checking.
    let mut observer = Raw::login(addr, LOCALCLIENT, &server.password).await?;
    observer.totals().await?;
    drop(server.stop);
    server.task.await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_and_shutdown() -> Result<()> {
    let options = server::Options {
        max_connections: 3,
        ..server::Options::default()
    };
    let mut server = in_process(options).await?;
    let addr = server.addr;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(Raw::login(addr, LOCALCLIENT, &server.password).await?);
    }
    // A fourth connects (connections that have not logged in have their own budget),
    // but its login is over the limit: the connection is closed unanswered.
    let mut extra = Raw::connect(addr).await?;
    let login = extra
        .call(
            "daemon.login",
            json!([LOCALCLIENT, server.password]),
            json!({"client_version": "raw-rust"}),
        )
        .await;
    ensure!(
        login.is_err(),
        "a login over the limit was answered: {login:?}"
    );
    for raw in &mut held {
        raw.totals().await?;
    }
    // Closing one frees its slot.
    let mut gone = held.pop().context("held")?;
    gone.shutdown().await?;
    ensure!(
        gone.closed_within(Duration::from_secs(2)).await,
        "not closed"
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut again = loop {
        match Raw::login(addr, LOCALCLIENT, &server.password).await {
            Ok(raw) => break raw,
            Err(e) if Instant::now() > deadline => return Err(e.context("slot not freed")),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    again.totals().await?;

    // Shutdown closes every connection and `run` returns.
    server.stop.take().context("stop")?.send(()).ok();
    for raw in held.iter_mut().chain(std::iter::once(&mut again)) {
        ensure!(
            raw.closed_within(Duration::from_secs(6)).await,
            "a connection survived the shutdown"
        );
    }
    tokio::time::timeout(Duration::from_secs(10), &mut server.task)
        .await
        .context("server::run did not return after shutdown")??;
    Ok(())
}
