//! The TLS RPC server: accepts connections, frames, decodes, answers in order.
//!
//! [`run`] takes its listener and a shutdown future, so tests bind port 0 and the daemon
//! passes its signals. Each connection is its own task with its own limits and timeouts:
//! a broken or hostile client only ever loses its own connection.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::rpc::codec;
use crate::rpc::daemon::{Gateway, Session};
use crate::rpc::frame::{FrameDecoder, FrameEncoder, Item, Limits};
use crate::rpc::message::{self, parse_payload, Malformed, RemoteError};

/// Server limits and timeouts.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Message size and nesting limits.
    pub limits: Limits,
    /// Most simultaneous connections; more are closed at once.
    pub max_connections: usize,
    /// Longest TLS handshake.
    pub handshake_timeout: Duration,
    /// Longest silence from a client with no partial message buffered.
    pub idle_timeout: Duration,
    /// Longest time a message may take to arrive, from its first byte.
    pub partial_timeout: Duration,
    /// Longest time a connection may stay without logging in.
    pub login_timeout: Duration,
}

/// Most calls one message may batch (Deluge's clients send one call per message). A
/// larger batch is ignored whole: an 8 KiB frame inflating to millions of calls must not
/// make the daemon allocate, log or answer for each of them.
pub const MAX_CALLS: usize = 256;

impl Default for Options {
    fn default() -> Self {
        Options {
            // Requests are small; every inflated byte can become a 32-byte decoded value,
            // decoded on a runtime worker: 256 KiB bounds that to ~8 MiB and a few ms.
            limits: Limits {
                max_inflated: 256 << 10,
                ..Limits::default()
            },
            max_connections: 128,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(3600),
            partial_timeout: Duration::from_secs(30),
            login_timeout: Duration::from_secs(60),
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
    let slots = Arc::new(Semaphore::new(options.max_connections));
    let (closing, closed) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, max = options.max_connections, "too many connections; closing");
                    continue;
                };
                let acceptor = acceptor.clone();
                let daemon = daemon.clone();
                let closed = closed.clone();
                connections.spawn(async move {
                    let _permit = permit;
                    if let Err(reason) = serve(tcp, acceptor, daemon, options, closed).await {
                        tracing::debug!(%peer, %reason, "connection closed");
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
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

async fn serve(
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    daemon: Arc<Gateway>,
    options: Options,
    mut closed: watch::Receiver<bool>,
) -> Result<(), String> {
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    quickack(&tcp);
    let mut stream = tokio::time::timeout(options.handshake_timeout, acceptor.accept(tcp))
        .await
        .map_err(|_| "TLS handshake timed out".to_string())?
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let mut session = Session::default();
    let mut decoder = FrameDecoder::new(options.limits);
    let mut encoder = FrameEncoder::default();
    let mut events = daemon.core().events().subscribe();
    let mut buf = vec![0u8; 16 * 1024];
    let connected = Instant::now();
    let mut partial_since = None;
    loop {
        // The nearest of: idle, message started but unfinished, not logged in.
        let now = Instant::now();
        let mut deadline = (now + options.idle_timeout, "no message");
        if decoder.pending() == 0 {
            partial_since = None;
        } else {
            let since = *partial_since.get_or_insert(now);
            deadline = deadline.min((since + options.partial_timeout, "message unfinished"));
        }
        if session.user.is_none() {
            deadline = deadline.min((connected + options.login_timeout, "no login"));
        }
        let n = tokio::select! {
            read = tokio::time::timeout_at(deadline.0, stream.read(&mut buf)) => match read {
                Err(_) => return Err(format!("closing: {} in time", deadline.1)),
                Ok(Err(e)) => return Err(format!("read: {e}")),
                Ok(Ok(0)) => return Ok(()),
                Ok(Ok(n)) => n,
            },
            event = events.recv() => {
                match event {
                    Ok(ev) if session.interests.contains(&ev.name) => {
                        let msg = message::event(&ev.name, ev.args);
                        let mut bytes = Vec::new();
                        encoder.encode_into(&codec::encode(&msg), &mut bytes);
                        stream.write_all(&bytes).await.map_err(|e| format!("write: {e}"))?;
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                }
                continue;
            }
            _ = async { let _ = closed.wait_for(|c| *c).await; } => {
                let _ = stream.shutdown().await;
                return Ok(());
            }
        };
        quickack(stream.get_ref().0);
        decoder.extend(&buf[..n]);
        let mut out = Vec::new();
        loop {
            let item = decoder.next_item().map_err(|e| {
                tracing::info!(error = %e, "closing a connection that sent unframeable bytes");
                e.to_string()
            })?;
            match item {
                None => break,
                Some(Item::Probe) => {}
                Some(Item::Message(body)) => {
                    let mut sink = Sink {
                        encoder: &mut encoder,
                        out: &mut out,
                    };
                    answer(&daemon, &mut session, &body, &options.limits, &mut sink).await
                }
            }
        }
        if !out.is_empty() {
            stream
                .write_all(&out)
                .await
                .map_err(|e| format!("write: {e}"))?;
        }
    }
}

/// Where framed answers go: the connection's encoder and its pending output.
struct Sink<'a> {
    encoder: &'a mut FrameEncoder,
    out: &'a mut Vec<u8>,
}

/// Decodes one message and appends the framed answers of its calls to the sink.
async fn answer(
    daemon: &Gateway,
    session: &mut Session,
    body: &[u8],
    limits: &Limits,
    sink: &mut Sink<'_>,
) {
    let payload = match codec::decode(body, limits.max_depth) {
        Ok(payload) => payload,
        Err(e) => {
            tracing::info!(error = %e, "undecodable message ignored");
            return;
        }
    };
    if let Some(n) = payload.as_array().map(Vec::len).filter(|&n| n > MAX_CALLS) {
        tracing::info!(
            calls = n,
            max = MAX_CALLS,
            "message with too many calls ignored"
        );
        return;
    }
    let calls = match parse_payload(payload) {
        Ok(calls) => calls,
        Err(reason) => {
            tracing::info!(%reason, "malformed message ignored");
            return;
        }
    };
    for call in calls {
        let mut int_keys = false;
        let reply = match call {
            Ok(req) => {
                let id = req.id.clone();
                int_keys = message::int_keyed(&req.method);
                // Method (clipped) and outcome only: arguments may carry passwords. The
                // name is copied only when debug logging is on: this is the hot path.
                let method: Option<String> = tracing::enabled!(tracing::Level::DEBUG)
                    .then(|| req.method.chars().take(80).collect());
                let reply = daemon.call(session, req).await;
                if let Some(method) = method {
                    match &reply {
                        Ok(_) => tracing::debug!(%method, user = ?session.user, "call answered"),
                        Err(e) => {
                            tracing::debug!(%method, user = ?session.user, error = %e.name, "call failed")
                        }
                    }
                }
                match reply {
                    Ok(value) => message::response(&id, value),
                    Err(e) => message::error(&id, &e),
                }
            }
            Err(Malformed {
                id: Some(id),
                reason,
            }) => message::error(&id, &RemoteError::wrapped("TypeError", reason)),
            Err(Malformed { id: None, reason }) => {
                tracing::info!(%reason, "call without a usable id ignored");
                continue;
            }
        };
        let bytes = if int_keys {
            codec::encode_int_keys(&reply)
        } else {
            codec::encode(&reply)
        };
        sink.encoder.encode_into(&bytes, sink.out);
    }
}
