//! The TLS RPC server: accepts connections, frames, decodes, answers in order.
//!
//! [`run`] takes its listener and a shutdown future, so tests bind port 0 and the daemon
//! passes its signals. Each connection is its own task with its own limits and timeouts:
//! a broken or hostile client only ever loses its own connection.
//!
//! **Admission.** Connections that have not logged in (an account of level NONE counts as
//! not logged in) have their own budget, [`Options::max_unauthenticated`]; when it is
//! full, a new connection closes the one first in an eviction queue. Every connection
//! goes to the back of that queue when it connects or sends something, further back the
//! further it got: a budget (in admissions) for connecting, five for starting or ending
//! its TLS handshake, ten for a message after it; a connection from which nothing was
//! seen yet is spared once. A client busy with its handshake and login thus outlives
//! many that only connect or sit silent, however fast they are reopened. They must finish
//! the TLS handshake within [`Options::handshake_timeout`] and log in within
//! [`Options::login_timeout`] of connecting. Logged-in connections have their own limit,
//! [`Options::max_connections`], which unauthenticated ones never take: a local process
//! holding and reopening any number of unauthenticated connections cannot lock a
//! logged-in client out. Both are sized from the file-descriptor limit, whose soft value
//! is raised to the hard one first; the accept queue is lengthened to 4096 (capped by
//! `net.core.somaxconn`) so that bursts do not drop SYNs.
//!
//! **Logins** are throttled per connection and per source address
//! (`crate::throttle`); only one `daemon.login` per message is checked.
//!
//! **Logs** an attacker cannot flood: evicted and refused connections, failed logins and
//! ignored messages are counted and logged at most once per `LOG_INTERVAL` with their
//! count.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::event::Event;
use crate::export::AuthLevel;
use crate::rpc::codec;
use crate::rpc::frame::{FrameDecoder, FrameEncoder, Item, Limits};
use crate::rpc::gateway::{Answer, ConnectionState, Gateway};
use crate::rpc::message::{self, parse_payload, Malformed, RemoteError};
use crate::service::TorrentsStatus;
use crate::throttle::{Penalty, Tally};

/// Server limits and timeouts.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Message size and nesting limits.
    pub limits: Limits,
    /// Most simultaneous logged-in connections; a login beyond it closes its connection.
    /// 0 (the default): sized from the file-descriptor limit ([`connection_limit`]).
    pub max_connections: usize,
    /// Most simultaneous connections that have not logged in (level NONE included), on
    /// top of `max_connections`; when full, a new one closes the least recently active
    /// (see the [module docs](self)). 0 (the default): an eighth of the file-descriptor
    /// limit, between 64 and 4096 (`unauthenticated_limit`).
    pub max_unauthenticated: usize,
    /// Longest TLS handshake.
    pub handshake_timeout: Duration,
    /// Longest silence from a client with no partial message buffered.
    pub idle_timeout: Duration,
    /// Longest time a message may take to arrive, from its first byte.
    pub partial_timeout: Duration,
    /// Longest time a connection may stay without logging in, from its connection (an
    /// account of level NONE does not count as logged in).
    pub login_timeout: Duration,
}

/// Most calls one message may batch (Deluge's clients send one call per message). A
/// larger batch is ignored whole: an 8 KiB frame inflating to millions of calls must not
/// make the daemon allocate, log or answer for each of them.
pub(crate) const MAX_CALLS: usize = 256;

/// Events an attacker can repeat (evictions, refusals, failed logins, ignored messages)
/// are logged at most once per interval, with their count.
pub(crate) const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The default budget of unauthenticated connections for `fd_limit` open files: an
/// eighth of it, between 64 and 4096.
pub(crate) fn unauthenticated_limit(fd_limit: u64) -> usize {
    (fd_limit / 8).clamp(64, 4096) as usize
}

/// The accept queue asked for (the kernel caps it at `net.core.somaxconn`).
const LISTEN_BACKLOG: i32 = 4096;

/// A connection's read buffer starts at the smallest size (requests are small: a call is
/// some 50 to 200 bytes framed), doubles while reads fill it (a client pipelining many
/// calls, a large message) up to the largest, and halves when a read uses less than an
/// eighth of it. A thousand idle clients then hold 2 MiB of read buffers, not 16 MiB.
const READ_MIN: usize = 2 << 10;
const READ_MAX: usize = 64 << 10;

/// Resizes the read buffer `buf` after a read of `last` bytes (see [`READ_MIN`]).
fn resize_read_buf(buf: &mut Vec<u8>, last: usize) {
    let len = buf.len();
    let want = if last >= len {
        (len * 2).clamp(READ_MIN, READ_MAX)
    } else if last <= len / 8 {
        (len / 2).max(READ_MIN)
    } else {
        len
    };
    if want != len {
        buf.resize(want, 0);
        buf.shrink_to_fit();
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            // Requests are small; every inflated byte can become a 32-byte decoded value,
            // decoded on a runtime worker: 256 KiB bounds that to ~8 MiB and a few ms.
            limits: Limits {
                max_inflated: 256 << 10,
                ..Limits::default()
            },
            max_connections: 0,
            max_unauthenticated: 0,
            handshake_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(3600),
            partial_timeout: Duration::from_secs(30),
            login_timeout: Duration::from_secs(5),
        }
    }
}

/// Raises the soft limit of open files to the hard one (best effort); returns the soft
/// limit in force.
pub fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    // An unlimited hard limit is not a value Linux takes for open files.
    let target = hard.min(1 << 20);
    if soft < target && setrlimit(Resource::RLIMIT_NOFILE, target, hard).is_ok() {
        tracing::debug!(from = soft, to = target, "raised the open-file limit");
        return target;
    }
    soft
}

/// The logged-in connection limit for `fd_limit` open files: what is left after a
/// quarter and 256 descriptors for everything else (files, the engine's peers, the web
/// server) and the unauthenticated budget; between 16 and 65,536.
pub fn connection_limit(fd_limit: u64, max_unauthenticated: usize) -> usize {
    let usable = fd_limit.saturating_mul(3) / 4;
    let left = usable.saturating_sub(256 + max_unauthenticated as u64);
    left.clamp(16, 65_536) as usize
}

/// Flood-proof log lines of one server.
#[derive(Debug)]
struct Logs {
    evicted: Tally,
    refused: Tally,
    accept_failed: Tally,
    ignored: Tally,
    unframeable: Tally,
}

impl Logs {
    fn new() -> Self {
        Logs {
            evicted: Tally::new(LOG_INTERVAL),
            refused: Tally::new(LOG_INTERVAL),
            accept_failed: Tally::new(LOG_INTERVAL),
            ignored: Tally::new(LOG_INTERVAL),
            unframeable: Tally::new(LOG_INTERVAL),
        }
    }

    fn evicted(&self, n: u64, budget: usize) {
        tracing::warn!(
            count = n,
            budget,
            "closed connections that had not logged in to make room for new ones (counted over up to 10 s)"
        );
    }

    fn refused(&self, n: u64, max: usize) {
        tracing::warn!(
            count = n,
            max,
            "closed logged-in connections over the connection limit (counted over up to 10 s)"
        );
    }

    fn ignored(&self, n: u64, reason: &str) {
        tracing::info!(
            count = n,
            last = reason,
            "ignored messages (undecodable, malformed, too many calls; counted over up to 10 s)"
        );
    }

    fn unframeable(&self, n: u64, error: &str) {
        tracing::info!(
            count = n,
            last = error,
            "closed connections that sent unframeable bytes (counted over up to 10 s)"
        );
    }

    /// Logs the counts not logged yet.
    fn flush(&self, admission: &Admission) {
        if let Some(n) = self.evicted.due() {
            self.evicted(n, admission.max_unauthenticated);
        }
        if let Some(n) = self.refused.due() {
            self.refused(n, admission.max_logged_in);
        }
        if let Some(n) = self.accept_failed.due() {
            tracing::warn!(count = n, "accept failed (counted over up to 10 s)");
        }
        if let Some(n) = self.ignored.due() {
            self.ignored(n, "see earlier lines");
        }
        if let Some(n) = self.unframeable.due() {
            self.unframeable(n, "see earlier lines");
        }
    }
}

/// Who may hold a connection: the unauthenticated budget (least recently active first
/// out) and the logged-in count.
#[derive(Debug)]
struct Admission {
    max_unauthenticated: usize,
    max_logged_in: usize,
    state: Mutex<AdmissionState>,
    logs: Logs,
}

#[derive(Debug, Default)]
struct AdmissionState {
    next_stamp: u64,
    /// Unauthenticated connections by id.
    pending: HashMap<u64, Pending>,
    /// Their eviction queue: (place, id), the smallest place closed first.
    queue: BTreeSet<(u64, u64)>,
    logged_in: usize,
}

#[derive(Debug)]
struct Pending {
    place: u64,
    /// Sending (or dropping) it closes the connection.
    tx: oneshot::Sender<()>,
    /// Nothing seen from it since it connected.
    fresh: bool,
    /// Already spared once while fresh.
    spared: bool,
}

/// What an unauthenticated connection just did: how far back in the eviction queue it
/// goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    /// Just connected: a budget back (time for its first bytes to arrive).
    Connected,
    /// Its TLS handshake began or ended: five budgets back.
    Tls,
    /// Sent something after its handshake: ten budgets back.
    Talking,
}

/// A connection's place in the [`Admission`]; gives it back when dropped.
struct Ticket {
    admission: Arc<Admission>,
    id: u64,
    /// Not logged in yet.
    pending: bool,
    /// Completes when the connection is evicted (while pending).
    evicted: oneshot::Receiver<()>,
}

/// Most queue entries one eviction looks at (sparing fresh ones) before closing one.
const EVICTION_SCAN: usize = 8;

impl Admission {
    fn lock(&self) -> std::sync::MutexGuard<'_, AdmissionState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a new connection as unauthenticated, evicting one if the budget is full.
    /// `started_tls`: the client's first bytes have arrived already.
    fn admit(self: &Arc<Self>, started_tls: bool) -> Ticket {
        let (tx, rx) = oneshot::channel();
        let mut st = self.lock();
        if st.pending.len() >= self.max_unauthenticated {
            self.evict_one(&mut st);
        }
        let progress = if started_tls {
            Progress::Tls
        } else {
            Progress::Connected
        };
        let id = st.next_stamp;
        st.next_stamp += 1;
        let place = id + self.bonus(progress);
        st.queue.insert((place, id));
        st.pending.insert(
            id,
            Pending {
                place,
                tx,
                fresh: !started_tls,
                spared: false,
            },
        );
        Ticket {
            admission: self.clone(),
            id,
            pending: true,
            evicted: rx,
        }
    }

    /// How far back in the eviction queue `progress` moves a connection.
    fn bonus(&self, progress: Progress) -> u64 {
        (match progress {
            Progress::Connected => self.max_unauthenticated,
            Progress::Tls => 5 * self.max_unauthenticated,
            Progress::Talking => 10 * self.max_unauthenticated,
        }) as u64
    }

    /// Moves connection `id` to the back of the queue, `progress` further.
    fn requeue(&self, st: &mut AdmissionState, id: u64, progress: Progress) {
        let now = st.next_stamp;
        st.next_stamp += 1;
        let bonus = self.bonus(progress);
        let Some(p) = st.pending.get_mut(&id) else {
            return;
        };
        let old = p.place;
        p.place = (now + bonus).max(old);
        let place = p.place;
        st.queue.remove(&(old, id));
        st.queue.insert((place, id));
    }

    /// Closes the unauthenticated connection first in the queue, if any; a fresh one
    /// (nothing seen from it yet: its task may not have run) is spared once, sent a
    /// budget back.
    fn evict_one(&self, st: &mut AdmissionState) -> bool {
        let mut victim = None;
        for _ in 0..EVICTION_SCAN {
            let Some(&(_, id)) = st.queue.first() else {
                break;
            };
            let spare = st.pending.get(&id).is_some_and(|p| p.fresh && !p.spared);
            if !spare {
                victim = Some(id);
                break;
            }
            if let Some(p) = st.pending.get_mut(&id) {
                p.spared = true;
            }
            self.requeue(st, id, Progress::Connected);
        }
        let Some(id) = victim.or_else(|| st.queue.first().map(|&(_, id)| id)) else {
            return false;
        };
        if let Some(p) = st.pending.remove(&id) {
            st.queue.remove(&(p.place, id));
            let _ = p.tx.send(());
        }
        if let Some(n) = self.logs.evicted.hit() {
            self.logs.evicted(n, self.max_unauthenticated);
        }
        true
    }
}

impl Ticket {
    fn pending(&self) -> bool {
        self.pending
    }

    /// The connection did something: it moves to the back of the eviction queue,
    /// `progress` further.
    fn touch(&mut self, progress: Progress) {
        if !self.pending {
            return;
        }
        let mut st = self.admission.lock();
        if let Some(p) = st.pending.get_mut(&self.id) {
            p.fresh = false;
        }
        // Gone if evicted meanwhile: the receiver says so.
        self.admission.requeue(&mut st, self.id, progress);
    }

    /// Moves the connection to the logged-in count; `false` if that is full (or the
    /// connection was evicted meanwhile).
    fn promote(&mut self) -> bool {
        if !self.pending {
            return true;
        }
        let mut st = self.admission.lock();
        if st.logged_in >= self.admission.max_logged_in || !st.pending.contains_key(&self.id) {
            drop(st);
            if let Some(n) = self.admission.logs.refused.hit() {
                self.admission.logs.refused(n, self.admission.max_logged_in);
            }
            return false;
        }
        if let Some(p) = st.pending.remove(&self.id) {
            st.queue.remove(&(p.place, self.id));
        }
        st.logged_in += 1;
        self.pending = false;
        true
    }

    /// Completes when the connection is evicted; never once it is logged in.
    async fn evicted(&mut self) {
        if !self.pending {
            return std::future::pending().await;
        }
        let _ = (&mut self.evicted).await;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut st = self.admission.lock();
        if self.pending {
            if let Some(p) = st.pending.remove(&self.id) {
                st.queue.remove(&(p.place, self.id));
            }
        } else {
            st.logged_in -= 1;
        }
    }
}

/// Serves `gateway` on `listener` until `shutdown` completes, then closes every connection.
pub async fn run(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    daemon: Arc<Gateway>,
    options: Options,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    // A long accept queue (tokio listens with 128, the kernel caps it at somaxconn): a
    // burst of connections must not drop a client's SYN (a 1 s retransmit).
    if let Err(e) = socket2::SockRef::from(&listener).listen(LISTEN_BACKLOG) {
        tracing::debug!(error = %e, "could not lengthen the accept queue");
    }
    let fd_limit = raise_fd_limit();
    let max_unauthenticated = match options.max_unauthenticated {
        0 => unauthenticated_limit(fd_limit),
        n => n,
    };
    let max_logged_in = match options.max_connections {
        0 => connection_limit(fd_limit, max_unauthenticated),
        n => n,
    };
    tracing::info!(
        fd_limit,
        max_logged_in,
        max_unauthenticated,
        "RPC connection limits"
    );
    let admission = Arc::new(Admission {
        max_unauthenticated,
        max_logged_in,
        state: Mutex::new(AdmissionState::default()),
        logs: Logs::new(),
    });
    let (closing, closed) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut flush = tokio::time::interval(LOG_INTERVAL);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        if let Some(n) = admission.logs.accept_failed.hit() {
                            tracing::warn!(error = %e, count = n, "accept failed (counted over up to 10 s)");
                        }
                        // Out of descriptors: make room at the expense of a client that
                        // has not logged in.
                        let freed = admission.evict_one(&mut admission.lock());
                        if !freed {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        continue;
                    }
                };
                let ticket = admission.admit(has_data(&tcp));
                let acceptor = acceptor.clone();
                let daemon = daemon.clone();
                let closed = closed.clone();
                let logs = admission.clone();
                connections.spawn(async move {
                    if let Err(reason) = serve(tcp, peer, ticket, acceptor, daemon, options, closed, &logs.logs).await {
                        tracing::debug!(%peer, %reason, "connection closed");
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = flush.tick() => {
                admission.logs.flush(&admission);
                daemon.flush_logs();
            }
        }
    }
    closing.send_replace(true);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(5), drain)
        .await
        .is_err()
    {
        connections.abort_all();
    }
    admission.logs.flush(&admission);
    daemon.flush_logs();
}

/// Whether the client has sent something already (without reading it).
fn has_data(tcp: &TcpStream) -> bool {
    let mut byte = [std::mem::MaybeUninit::<u8>::uninit()];
    matches!(socket2::SockRef::from(tcp).peek(&mut byte), Ok(n) if n > 0)
}

/// Asks the kernel to ACK at once: deluge-client writes header and body separately, and a
/// delayed ACK would hold its second write back ~40 ms. Linux clears it again, so it is
/// re-armed after every read.
fn quickack(tcp: &TcpStream) {
    // Best effort: without it the connection only answers later.
    #[cfg(target_os = "linux")]
    let _ = socket2::SockRef::from(tcp).set_tcp_quickack(true);
    #[cfg(not(target_os = "linux"))]
    let _ = tcp;
}

/// Serves one connection until it ends: the error is why it was closed.
#[allow(clippy::too_many_arguments)]
async fn serve(
    tcp: TcpStream,
    peer: SocketAddr,
    mut ticket: Ticket,
    acceptor: TlsAcceptor,
    daemon: Arc<Gateway>,
    options: Options,
    mut closed: watch::Receiver<bool>,
    logs: &Logs,
) -> Result<(), String> {
    let connected = Instant::now();
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    quickack(&tcp);
    let deadline = connected + options.handshake_timeout;
    let Some(stream) = handshake(tcp, &acceptor, deadline, &mut ticket, &mut closed).await? else {
        return Ok(());
    };
    let events = daemon.core().events().subscribe();
    let connection = Connection {
        stream,
        ticket,
        closed,
        events,
        state: ConnectionState {
            peer: Some(peer.ip()),
            ..ConnectionState::default()
        },
        decoder: FrameDecoder::new(options.limits),
        encoder: FrameEncoder::default(),
        buf: vec![0u8; READ_MIN],
        spent: Vec::new(),
        partial_since: None,
        connected,
        daemon,
        options,
        logs,
    };
    connection.run().await
}

/// Completes when the server closes.
async fn closing(closed: &mut watch::Receiver<bool>) {
    let _ = closed.wait_for(|c| *c).await;
}

/// The TLS handshake, begun and ended by `deadline`; `None` when the server closes
/// meanwhile. A client that sends nothing is the first to make room for others.
async fn handshake(
    tcp: TcpStream,
    acceptor: &TlsAcceptor,
    deadline: Instant,
    ticket: &mut Ticket,
    closed: &mut watch::Receiver<bool>,
) -> Result<Option<TlsStream<TcpStream>>, String> {
    tokio::select! {
        ready = tokio::time::timeout_at(deadline, tcp.readable()) => {
            ready.map_err(|_| "TLS handshake timed out".to_string())?
                .map_err(|e| format!("TLS handshake: {e}"))?;
        }
        _ = ticket.evicted() => return Err("evicted before its handshake began".into()),
        _ = closing(closed) => return Ok(None),
    }
    ticket.touch(Progress::Tls);
    let handshake = tokio::time::timeout_at(deadline, acceptor.accept(tcp));
    let stream = tokio::select! {
        done = handshake => done
            .map_err(|_| "TLS handshake timed out".to_string())?
            .map_err(|e| format!("TLS handshake: {e}"))?,
        _ = ticket.evicted() => return Err("evicted before its handshake ended".into()),
        _ = closing(closed) => return Ok(None),
    };
    ticket.touch(Progress::Tls);
    Ok(Some(stream))
}

/// A connection after its TLS handshake: reads messages, answers them in order, and sends
/// the events it asked for.
struct Connection<'a> {
    stream: TlsStream<TcpStream>,
    ticket: Ticket,
    closed: watch::Receiver<bool>,
    events: broadcast::Receiver<Event>,
    state: ConnectionState,
    decoder: FrameDecoder,
    encoder: FrameEncoder,
    buf: Vec<u8>,
    /// The answers encoded but not yet written, dropped after the write: freeing a large
    /// answer (a thousand torrents' status) is not on the client's wait.
    spent: Vec<Reply>,
    /// Since when the decoder holds part of a message.
    partial_since: Option<Instant>,
    connected: Instant,
    daemon: Arc<Gateway>,
    options: Options,
    logs: &'a Logs,
}

impl Connection<'_> {
    /// Reads, answers and writes until the client or the server closes, or a limit or
    /// timeout closes the connection (the error says which).
    async fn run(mut self) -> Result<(), String> {
        loop {
            let Some(n) = self.receive().await? else {
                return Ok(());
            };
            let (out, penalty) = self.answer_received(n).await?;
            self.check_level()?;
            if let Some(penalty) = penalty {
                if self.wait_penalty(penalty, &out).await?.is_break() {
                    return Ok(());
                }
            }
            self.write_each(&out)
                .await
                .map_err(|e| format!("write: {e}"))?;
            self.spent.clear();
        }
    }

    /// Writes each framed message with a write of its own, so that a TLS record never
    /// holds the end of one message and the start of the next: Flood's Deluge client
    /// reads a record as the start of a message (deluged, writing each message on its
    /// own, never mixes them either).
    async fn write_each(&mut self, out: &[Vec<u8>]) -> std::io::Result<()> {
        for message in out {
            self.stream.write_all(message).await?;
        }
        Ok(())
    }

    /// The nearest of: idle, message started but unfinished, not logged in; with what
    /// it closes the connection for.
    fn deadline(&mut self) -> (Instant, &'static str) {
        let now = Instant::now();
        let mut deadline = (now + self.options.idle_timeout, "no message");
        if self.decoder.pending() == 0 {
            self.partial_since = None;
        } else {
            let since = *self.partial_since.get_or_insert(now);
            deadline = deadline.min((since + self.options.partial_timeout, "message unfinished"));
        }
        if self.ticket.pending() {
            deadline = deadline.min((self.connected + self.options.login_timeout, "no login"));
        }
        deadline
    }

    /// Waits for the client's next bytes (into `buf`), sending the asked-for events
    /// meanwhile: how many arrived, `None` when the client or the server closed.
    async fn receive(&mut self) -> Result<Option<usize>, String> {
        loop {
            let deadline = self.deadline();
            tokio::select! {
                read = tokio::time::timeout_at(deadline.0, self.stream.read(&mut self.buf)) => {
                    return match read {
                        Err(_) => Err(format!("closing: {} in time", deadline.1)),
                        Ok(Err(e)) => Err(format!("read: {e}")),
                        Ok(Ok(0)) => Ok(None),
                        Ok(Ok(n)) => Ok(Some(n)),
                    };
                }
                event = self.events.recv() => match event {
                    Ok(ev) if self.state.interests.contains(&ev.name) => self.send_event(ev).await?,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return Ok(None),
                },
                _ = self.ticket.evicted() => return Err("evicted: not logged in".into()),
                _ = closing(&mut self.closed) => {
                    let _ = self.stream.shutdown().await;
                    return Ok(None);
                }
            }
        }
    }

    /// Sends one event the client asked for.
    async fn send_event(&mut self, ev: Event) -> Result<(), String> {
        let msg = message::event(&ev.name, ev.args);
        let mut bytes = Vec::new();
        self.encoder.encode_into(&codec::encode(&msg), &mut bytes);
        self.stream
            .write_all(&bytes)
            .await
            .map_err(|e| format!("write: {e}"))
    }

    /// Answers the complete messages among the `n` bytes just read (and those before
    /// them): the framed answers, and the penalty of a throttled failed login, after which
    /// nothing more is answered. An unframeable stream closes the connection.
    async fn answer_received(
        &mut self,
        n: usize,
    ) -> Result<(Vec<Vec<u8>>, Option<Penalty>), String> {
        quickack(self.stream.get_ref().0);
        self.ticket.touch(Progress::Talking);
        self.decoder.extend(&self.buf[..n]);
        resize_read_buf(&mut self.buf, n);
        let mut out = Vec::new();
        loop {
            let item = match self.decoder.next_item() {
                Ok(item) => item,
                Err(e) => {
                    if let Some(n) = self.logs.unframeable.hit() {
                        self.logs.unframeable(n, &e.to_string());
                    }
                    return Err(e.to_string());
                }
            };
            match item {
                None => return Ok((out, None)),
                Some(Item::Probe) => {}
                Some(Item::Message(body)) => {
                    let mut sink = Sink {
                        encoder: &mut self.encoder,
                        out: &mut out,
                        spent: &mut self.spent,
                    };
                    self.state.login_attempted = false;
                    let (daemon, limits) = (&self.daemon, &self.options.limits);
                    answer(daemon, &mut self.state, &body, limits, &mut sink, self.logs).await;
                    if let Some(p) = self.state.penalty.take() {
                        return Ok((out, Some(p)));
                    }
                }
            }
        }
    }

    /// After a login: logged in (above NONE), the connection leaves the unauthenticated
    /// budget, or is closed if the logged-in connections are at their limit.
    fn check_level(&mut self) -> Result<(), String> {
        if self.ticket.pending() && self.state.level > AuthLevel::None && !self.ticket.promote() {
            return Err("logged in over the connection limit".into());
        }
        if !self.ticket.pending() && self.state.level == AuthLevel::None {
            return Err("logged in again as an account of level NONE".into());
        }
        Ok(())
    }

    /// Holds the answers of a throttled failed login back for its delay; then closes the
    /// connection, if the penalty says so, after sending them. `Break`: the server
    /// closed meanwhile.
    async fn wait_penalty(
        &mut self,
        Penalty { delay, close }: Penalty,
        out: &[Vec<u8>],
    ) -> Result<ControlFlow<()>, String> {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = self.ticket.evicted() => return Err("evicted while its failed login waited".into()),
            _ = closing(&mut self.closed) => return Ok(ControlFlow::Break(())),
        }
        if close {
            let _ = self.write_each(out).await;
            let _ = self.stream.shutdown().await;
            return Err("closing after repeated failed logins".into());
        }
        Ok(ControlFlow::Continue(()))
    }
}

/// Where framed answers go: the connection's encoder and its pending output, one framed
/// message each.
struct Sink<'a> {
    encoder: &'a mut FrameEncoder,
    out: &'a mut Vec<Vec<u8>>,
    /// The answers once encoded (see [`Connection::spent`]).
    spent: &'a mut Vec<Reply>,
}

/// A call's answer, to encode.
enum Reply {
    /// A response, error or event message.
    Value(Value),
    /// The response to `core.get_torrents_status` (its request id, its answer), written
    /// without a `Value`.
    Torrents(Value, TorrentsStatus),
}

/// Decodes one message and appends the framed answers of its calls to the sink.
async fn answer(
    daemon: &Gateway,
    state: &mut ConnectionState,
    body: &[u8],
    limits: &Limits,
    sink: &mut Sink<'_>,
    logs: &Logs,
) {
    let ignored = |reason: &dyn Fn() -> String| {
        if let Some(n) = logs.ignored.hit() {
            logs.ignored(n, &reason());
        }
    };
    let payload = match codec::decode(body, limits.max_depth) {
        Ok(payload) => payload,
        Err(e) => {
            ignored(&|| format!("undecodable: {e}"));
            return;
        }
    };
    if let Some(n) = payload.as_array().map(Vec::len).filter(|&n| n > MAX_CALLS) {
        ignored(&|| format!("{n} calls, more than {MAX_CALLS}"));
        return;
    }
    let calls = match parse_payload(payload) {
        Ok(calls) => calls,
        Err(reason) => {
            ignored(&|| format!("malformed: {reason}"));
            return;
        }
    };
    for call in calls {
        if state.penalty.is_some() {
            // A throttled failed login: nothing after it is answered.
            break;
        }
        let mut int_keys = false;
        let reply = match call {
            Ok(req) => {
                let id = req.id.clone();
                int_keys = message::int_keyed(&req.method);
                // Method (clipped) and outcome only: arguments may carry passwords. The
                // name is copied only when debug logging is on: this is the hot path.
                let method: Option<String> = tracing::enabled!(tracing::Level::DEBUG)
                    .then(|| req.method.chars().take(80).collect());
                let reply = daemon.call(state, req).await;
                if let Some(method) = method {
                    match &reply {
                        Ok(_) => tracing::debug!(%method, user = ?state.user, "call answered"),
                        Err(e) => {
                            tracing::debug!(%method, user = ?state.user, error = %e.name, "call failed")
                        }
                    }
                }
                match reply {
                    Ok(Answer::Value(value)) => Reply::Value(message::response(&id, value)),
                    Ok(Answer::Torrents(status)) => Reply::Torrents(id, status),
                    Err(e) => Reply::Value(message::error(&id, &e)),
                }
            }
            Err(Malformed {
                id: Some(id),
                reason,
            }) => Reply::Value(message::error(
                &id,
                &RemoteError::wrapped("TypeError", reason),
            )),
            Err(Malformed { id: None, reason }) => {
                ignored(&|| format!("a call without a usable id: {reason}"));
                continue;
            }
        };
        let bytes = match &reply {
            Reply::Value(value) if int_keys => codec::encode_int_keys(value),
            Reply::Value(value) => codec::encode(value),
            Reply::Torrents(id, status) => message::encode_torrents_response(id, status),
        };
        let mut framed = Vec::new();
        sink.encoder.encode_into(&bytes, &mut framed);
        sink.out.push(framed);
        sink.spent.push(reply);
    }
}
