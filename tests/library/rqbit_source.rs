//! The `rqbit://` source against librqbit's own HTTP API, run in process: real transfers
//! over 127.0.0.1 between the API's session and a second librqbit session, the source's
//! figures against librqbit's own `/stats` to the byte, a restart of the server counted
//! once by the real Stats plugin (its counters do not go down: only the uptime tells it),
//! a restart of ours not counted again, and what is not rqbit's API refused.
//!
//! The server runs on its own Tokio runtime, as it would in its own process: stopping it
//! drops the runtime, and with it every task and socket of the session and its API.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context};
use librqbit::api::Api;
use librqbit::http_api::{HttpApi, HttpApiOptions};
use librqbit::spawn_utils::BlockingSpawner;
use librqbit::{
    create_torrent, AddTorrent, AddTorrentOptions, CreateTorrentOptions, ListenerMode,
    ListenerOptions, Session, SessionOptions,
};
use librqbit_dualstack_sockets::{BindOpts, TcpListener};
use tokio::sync::oneshot;
use torrent_stats::{
    Counters, PluginHost, RqbitHttpSource, SessionSource, SourceError, Stats, StatsHandle,
    StatusKey,
};

/// How long any awaited condition may take (a cold 2-core CI machine).
const PATIENCE: Duration = Duration::from_secs(60);

/// The keys Stats asks for, and the ones checked here.
const KEYS: [StatusKey; 6] = [
    StatusKey::TotalUpload,
    StatusKey::TotalDownload,
    StatusKey::TotalPayloadUpload,
    StatusKey::TotalPayloadDownload,
    StatusKey::PayloadUploadRate,
    StatusKey::PayloadDownloadRate,
];

/// `len` deterministic pseudo-random bytes (xorshift64*) from `seed`.
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A session on 127.0.0.1 with nothing that leaves the machine.
async fn loopback_session(dir: &Path) -> anyhow::Result<Arc<Session>> {
    let opts = SessionOptions {
        dht: None,
        disable_trackers: true,
        disable_local_service_discovery: true,
        listen: Some(ListenerOptions {
            mode: ListenerMode::TcpOnly,
            listen_addr: (Ipv4Addr::LOCALHOST, 0).into(),
            ipv4_only: true,
            ..Default::default()
        }),
        ipv4_only: true,
        ..Default::default()
    };
    Session::new_with_opts(dir.to_path_buf(), opts).await
}

/// Writes a file of `len` bytes as `dir/name` and makes its torrent.
async fn make_torrent(dir: &Path, name: &str, len: usize, seed: u64) -> anyhow::Result<Vec<u8>> {
    std::fs::create_dir_all(dir)?;
    let file = dir.join(name);
    std::fs::write(&file, payload(len, seed))?;
    let opts = CreateTorrentOptions {
        name: None,
        trackers: vec![],
        piece_length: Some(256 << 10),
    };
    Ok(create_torrent(&file, opts, &BlockingSpawner::new(2))
        .await?
        .as_bytes()?
        .to_vec())
}

/// Adds `torrent` to `session`: to seed from its files, or to fetch from `peer`.
async fn add(
    session: &Arc<Session>,
    torrent: Vec<u8>,
    peer: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let opts = AddTorrentOptions {
        overwrite: true,
        initial_peers: peer.map(|p| vec![p]),
        ..Default::default()
    };
    let handle = session
        .add_torrent(AddTorrent::from_bytes(torrent), Some(opts))
        .await?
        .into_handle()
        .context("no torrent handle")?;
    tokio::time::timeout(PATIENCE, handle.wait_until_completed())
        .await
        .context("the torrent did not complete in time")??;
    Ok(())
}

/// A librqbit session with its HTTP API, on a runtime of its own.
struct Server {
    session: Arc<Session>,
    runtime: tokio::runtime::Handle,
    stop: oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
    /// The HTTP API's address.
    api: SocketAddr,
}

impl Server {
    /// Starts a session with its files in `dir` and its HTTP API on `port` (0: any),
    /// with basic authentication if `login` is given.
    async fn start(dir: &Path, port: u16, login: Option<(&str, &str)>) -> anyhow::Result<Server> {
        let basic_auth = login.map(|(u, p)| (u.to_string(), p.to_string()));
        let dir = dir.to_path_buf();
        let (ready_tx, ready_rx) = oneshot::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("the server's runtime");
            let started = runtime.block_on(async {
                let session = loopback_session(&dir).await?;
                let listener = TcpListener::bind_tcp(
                    (Ipv4Addr::LOCALHOST, port).into(),
                    BindOpts {
                        request_dualstack: false,
                        ..Default::default()
                    },
                )?;
                let api = listener.bind_addr();
                let http = HttpApi::new(
                    Api::new(session.clone(), None, None),
                    Some(HttpApiOptions {
                        basic_auth,
                        ..Default::default()
                    }),
                );
                tokio::spawn(http.make_http_api_and_run(listener, None));
                anyhow::Ok((session, api))
            });
            let ok = started.is_ok();
            let _ = ready_tx.send(started.map(|(s, a)| (s, a, runtime.handle().clone())));
            if ok {
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            }
            // Dropping the runtime ends every task of the session and its API and closes
            // their sockets, as the end of rqbit's process would.
            runtime.shutdown_timeout(Duration::from_secs(10));
        });
        let (session, api, runtime) = ready_rx.await.context("the server thread died")??;
        Ok(Server {
            session,
            runtime,
            stop,
            thread,
            api,
        })
    }

    /// Runs `f` on the server's runtime (librqbit spawns its tasks on the current one).
    async fn run<F, T>(&self, f: impl FnOnce(Arc<Session>) -> F) -> anyhow::Result<T>
    where
        F: Future<Output = anyhow::Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        self.runtime.spawn(f(self.session.clone())).await?
    }

    /// librqbit's own payload counters, (fetched, uploaded).
    fn counters(&self) -> (u64, u64) {
        let c = self.session.stats_snapshot().counters;
        (c.fetched_bytes, c.uploaded_bytes)
    }

    /// Stops the session and its API and waits for the runtime to end.
    async fn stop(self) {
        let Server {
            session,
            stop,
            thread,
            runtime,
            ..
        } = self;
        let _ = runtime.spawn(async move { session.stop().await }).await;
        let _ = stop.send(());
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .unwrap()
            .expect("the server thread panicked");
    }
}

/// `GET /stats` as JSON, straight from the server.
async fn raw_stats(api: SocketAddr) -> anyhow::Result<serde_json::Value> {
    Ok(reqwest::get(format!("http://{api}/stats"))
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// Waits until `check` holds, polling every 50 ms, at most [`PATIENCE`].
async fn wait_for<F: Future<Output = anyhow::Result<bool>>>(
    what: &str,
    mut check: impl FnMut() -> F,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await? {
        ensure!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// The source's payload counters, checked against the server's own (in process and over
/// `/stats`) to the byte; the wire totals left out.
async fn check_figures(source: &RqbitHttpSource, server: &Server) -> anyhow::Result<(u64, u64)> {
    let status = source.session_status(&KEYS).await?;
    let raw = raw_stats(server.api).await?;
    let (fetched, uploaded) = server.counters();
    let down = status.get(StatusKey::TotalPayloadDownload);
    let up = status.get(StatusKey::TotalPayloadUpload);
    ensure!(
        (down, up) == (Some(fetched), Some(uploaded)),
        "source {down:?}/{up:?}, librqbit {fetched}/{uploaded}"
    );
    ensure!(
        raw["counters"]["fetched_bytes"] == fetched
            && raw["counters"]["uploaded_bytes"] == uploaded,
        "/stats: {raw}"
    );
    ensure!(
        status.get(StatusKey::TotalDownload).is_none()
            && status.get(StatusKey::TotalUpload).is_none(),
        "wire totals invented: {status:?}"
    );
    ensure!(
        status.get(StatusKey::PayloadDownloadRate).is_some(),
        "no rate: {status:?}"
    );
    let uptime = raw["uptime_seconds"].as_u64().context("uptime_seconds")?;
    let reported = status.uptime.context("no uptime")?;
    ensure!(
        reported <= uptime && uptime <= reported + 2,
        "uptime {reported}, then {uptime}"
    );
    Ok((fetched, uploaded))
}

/// A plugin host counting `source` with Stats, files in `dir`.
async fn counted(source: RqbitHttpSource, dir: &Path) -> anyhow::Result<(PluginHost, StatsHandle)> {
    let host = PluginHost::open(Arc::new(source), dir)?;
    let stats = Arc::new(Stats::new());
    let handle = stats.handle();
    host.register(stats).await?;
    host.enable("Stats").await?;
    Ok((host, handle))
}

fn payload_totals(c: &Counters) -> (u64, u64) {
    (c.total_payload_download, c.total_payload_upload)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_rqbit_to_the_byte_across_a_restart_of_the_server_and_of_ours() -> anyhow::Result<()>
{
    let work = tempfile::tempdir()?;
    let w = work.path();
    let peer_session = loopback_session(&w.join("peer")).await?;
    let peer = peer_session
        .listen_addr()
        .context("the peer does not listen")?;
    let server = Server::start(&w.join("server1"), 0, None).await?;
    let spec = format!("rqbit://127.0.0.1:{}", server.api.port());
    let source = RqbitHttpSource::from_spec(&spec)?;
    let (host, stats) = counted(RqbitHttpSource::from_spec(&spec)?, &w.join("stats")).await?;
    ensure!(payload_totals(&stats.poll_now().await?) == (0, 0));

    // Round 1: the server seeds 3 MiB to the peer and fetches 2 MiB from it.
    let up1 = make_torrent(&w.join("server1"), "up1.bin", (3 << 20) + 1234, 1).await?;
    let down1 = make_torrent(&w.join("peer"), "down1.bin", (2 << 20) + 567, 2).await?;
    add(&peer_session, down1.clone(), None).await?;
    let server_addr = server
        .session
        .listen_addr()
        .context("server does not listen")?;
    let seed = up1.clone();
    server
        .run(|s| async move { add(&s, seed, None).await })
        .await?;
    add(&peer_session, up1, Some(server_addr)).await?;
    server
        .run(move |s| async move { add(&s, down1, Some(peer)).await })
        .await?;
    wait_for("the server's upload counter", || async {
        Ok(server.counters().1 >= (3 << 20) + 1234)
    })
    .await?;
    let session1 = check_figures(&source, &server).await?;
    ensure!(session1.0 >= (2 << 20) + 567 && session1.1 >= (3 << 20) + 1234);
    ensure!(payload_totals(&stats.poll_now().await?) == session1);

    // A restart of ours: a new instance of the source, the same session, nothing more.
    host.shutdown().await;
    drop((host, stats));
    let (host, stats) = counted(RqbitHttpSource::from_spec(&spec)?, &w.join("stats")).await?;
    let totals = payload_totals(&stats.poll_now().await?);
    ensure!(totals == session1, "counted again: {totals:?}");
    let again = RqbitHttpSource::from_spec(&spec)?
        .session_status(&KEYS)
        .await?;
    ensure!(again.session == source.session_status(&KEYS).await?.session);

    // The uptime must be well past Stats' slack for the restart to show by it alone.
    wait_for("an uptime of 12 s", || async {
        Ok(source.session_status(&KEYS).await?.uptime >= Some(12))
    })
    .await?;
    ensure!(payload_totals(&stats.poll_now().await?) == session1);
    let port = server.api.port();
    server.stop().await;
    match source.session_status(&KEYS).await {
        Err(SourceError::Unavailable(m)) => ensure!(m.starts_with(&spec), "{m}"),
        other => anyhow::bail!("a stopped server: {other:?}"),
    }

    // Round 2 on a new server on the same port: more than round 1 both ways, so no counter
    // goes down by the next poll.
    let server = Server::start(&w.join("server2"), port, None).await?;
    let up2 = make_torrent(&w.join("server2"), "up2.bin", (5 << 20) + 89, 3).await?;
    let down2 = make_torrent(&w.join("peer"), "down2.bin", (4 << 20) + 1011, 4).await?;
    add(&peer_session, down2.clone(), None).await?;
    let server_addr = server
        .session
        .listen_addr()
        .context("server does not listen")?;
    let seed = up2.clone();
    server
        .run(|s| async move { add(&s, seed, None).await })
        .await?;
    add(&peer_session, up2, Some(server_addr)).await?;
    server
        .run(move |s| async move { add(&s, down2, Some(peer)).await })
        .await?;
    wait_for("the new server's upload counter", || async {
        Ok(server.counters().1 >= (5 << 20) + 89)
    })
    .await?;
    let session2 = check_figures(&source, &server).await?;
    ensure!(session2.0 > session1.0 && session2.1 > session1.1);
    let totals = payload_totals(&stats.poll_now().await?);
    ensure!(
        totals == (session1.0 + session2.0, session1.1 + session2.1),
        "totals {totals:?}, sessions {session1:?} + {session2:?}"
    );
    ensure!(payload_totals(&stats.session_totals()?) == session2);

    host.shutdown().await;
    server.stop().await;
    peer_session.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_what_is_not_rqbits_api() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let server = Server::start(work.path(), 0, None).await?;
    // rqbit's own API, but not at its root: /torrents/stats is a torrent lookup.
    let wrong_path = format!("rqbit://127.0.0.1:{}/torrents", server.api.port());
    // A web server answering every request with a page.
    let web = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let web_port = web.local_addr()?.port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut conn, _)) = web.accept().await {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf).await;
            let page = "<html><body>a web page</body></html>";
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                page.len()
            );
            let _ = conn.write_all(answer.as_bytes()).await;
        }
    });
    for spec in [wrong_path, format!("rqbit://127.0.0.1:{web_port}")] {
        let source = RqbitHttpSource::from_spec(&spec)?;
        match source.session_status(&KEYS).await {
            Err(SourceError::Failed(m)) => ensure!(
                m.starts_with(&spec) && m.contains("does not look like rqbit's HTTP API"),
                "{m}"
            ),
            other => anyhow::bail!("{spec}: {other:?}"),
        }
    }
    // Its root answers.
    let root = RqbitHttpSource::from_spec(&format!("rqbit://127.0.0.1:{}", server.api.port()))?;
    ensure!(root.session_status(&KEYS).await?.uptime.is_some());
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_in_with_basic_authentication() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let server = Server::start(work.path(), 0, Some(("me", "s3cret"))).await?;
    let port = server.api.port();
    let right = RqbitHttpSource::from_spec(&format!("rqbit://me:s3cret@127.0.0.1:{port}"))?;
    ensure!(right.session_status(&KEYS).await?.uptime.is_some());
    for (spec, want) in [
        (format!("rqbit://127.0.0.1:{port}"), "wants a login"),
        (
            format!("rqbit://me:wr0ng@127.0.0.1:{port}"),
            "refused the login",
        ),
    ] {
        match RqbitHttpSource::from_spec(&spec)?
            .session_status(&KEYS)
            .await
        {
            Err(SourceError::Failed(m)) => {
                ensure!(m.contains(want) && !m.contains("wr0ng"), "{m}")
            }
            other => anyhow::bail!("{spec}: {other:?}"),
        }
    }
    server.stop().await;
    Ok(())
}
