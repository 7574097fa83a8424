//! An async client for Deluge's daemon RPC protocol: ours or a real `deluged`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), torrent_stats::rpc::client::ClientError> {
//! use torrent_stats::rpc::client::Client;
//! use torrent_stats::rpc::tls::CertPolicy;
//! let mut client = Client::connect("127.0.0.1", 58846, CertPolicy::AnyCertificate).await?;
//! client.login("localclient", "secret").await?;
//! let totals = client.call("stats.get_totals", vec![], Default::default()).await?;
//! println!("all-time totals: {totals}");
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::event::Event;
use crate::export::AuthLevel;
use crate::rpc::codec::{self, CodecError};
use crate::rpc::frame::{FrameDecoder, FrameEncoder, FrameError, Item, Limits};
use crate::rpc::message::{RemoteError, RPC_ERROR, RPC_EVENT, RPC_RESPONSE};
use crate::rpc::tls::{self, CertPolicy};
use crate::rpc::RpcError;

/// What a client call can fail with.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting, reading or writing failed.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// TLS setup failed.
    #[error(transparent)]
    Setup(#[from] RpcError),
    /// The server's bytes could not be framed.
    #[error("framing: {0}")]
    Frame(#[from] FrameError),
    /// The server's bytes were not rencode.
    #[error("decoding: {0}")]
    Codec(#[from] CodecError),
    /// The server closed the connection.
    #[error("the daemon closed the connection")]
    Closed,
    /// The server broke the protocol (unexpected message, bad shape).
    #[error("protocol: {0}")]
    Protocol(String),
    /// The server did not answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The server answered with an error: `Class: message`, a `WrappedException`
    /// unwrapped to the class it wraps. The connection stays usable.
    #[error("{}", remote_text(.class, .message))]
    Remote {
        /// The exception class: `TypeError`, `ValueError`, `AttributeError` (no such
        /// method), `NotAuthorizedError`, `BadLoginError`, `PluginError`, ...
        class: String,
        /// Its message (may be empty).
        message: String,
        /// The error as sent (`WrappedException` and all its arguments, the traceback).
        wire: RemoteError,
    },
}

fn remote_text(class: &str, message: &str) -> String {
    if message.is_empty() {
        class.to_string()
    } else {
        format!("{class}: {message}")
    }
}

impl ClientError {
    /// The remote exception class (see [`ClientError::Remote`]), if the server answered
    /// with an error: `TypeError` for a wrapped `TypeError`.
    pub fn remote_name(&self) -> Option<&str> {
        match self {
            ClientError::Remote { class, .. } => Some(class),
            _ => None,
        }
    }
}

impl From<RemoteError> for ClientError {
    fn from(wire: RemoteError) -> Self {
        ClientError::Remote {
            class: wire.class().to_string(),
            message: wire.message(),
            wire,
        }
    }
}

/// What we tell the daemon our version is at login.
pub(crate) const CLIENT_VERSION: &str = concat!("torrent-stats-", env!("CARGO_PKG_VERSION"));

/// A connection to a daemon. Calls are answered in order; events the session subscribed
/// to are queued for [`Client::next_event`].
pub struct Client {
    stream: TlsStream<TcpStream>,
    decoder: FrameDecoder,
    encoder: FrameEncoder,
    next_id: i64,
    events: VecDeque<Event>,
    timeout: Duration,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("next_id", &self.next_id)
            .finish_non_exhaustive()
    }
}

/// Limits for what a server may send us.
fn response_limits() -> Limits {
    Limits {
        max_frame: 64 << 20,
        max_inflated: 256 << 20,
        max_depth: 256,
    }
}

impl Client {
    /// Connects with TLS to `host:port`.
    pub async fn connect(host: &str, port: u16, policy: CertPolicy) -> Result<Self, ClientError> {
        let config = tls::client_config(policy)?;
        let tcp = TcpStream::connect((host, port)).await?;
        tcp.set_nodelay(true)?;
        let name = rustls::pki_types::ServerName::try_from(host.to_string()).unwrap_or_else(|_| {
            rustls::pki_types::ServerName::try_from("localhost").expect("valid name")
        });
        let stream = TlsConnector::from(Arc::clone(&config))
            .connect(name, tcp)
            .await
            .map_err(|e| ClientError::Setup(RpcError::Tls(e.to_string())))?;
        Ok(Client {
            stream,
            decoder: FrameDecoder::new(response_limits()),
            encoder: FrameEncoder::default(),
            next_id: 1,
            events: VecDeque::new(),
            timeout: Duration::from_secs(30),
            buf: vec![0; 16 * 1024],
        })
    }

    /// Sets how long a call waits for its answer (default 30 s).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Logs in; returns the session's auth level.
    pub async fn login(&mut self, user: &str, password: &str) -> Result<AuthLevel, ClientError> {
        let mut kwargs = Map::new();
        kwargs.insert("client_version".into(), json!(CLIENT_VERSION));
        let level = self
            .call("daemon.login", vec![json!(user), json!(password)], kwargs)
            .await?;
        let n = level
            .as_u64()
            .ok_or_else(|| ClientError::Protocol(format!("login returned {level}")))?;
        Ok(AuthLevel::from_u8(n.min(255) as u8))
    }

    /// Calls `method` and waits for its answer.
    pub async fn call(
        &mut self,
        method: &str,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
    ) -> Result<Value, ClientError> {
        let mut answers = self
            .pipeline(vec![(method.to_string(), args, kwargs)])
            .await?;
        answers.pop().expect("one answer per call")
    }

    /// Sends several calls in one write, then reads their answers (in order).
    pub async fn pipeline(
        &mut self,
        calls: Vec<(String, Vec<Value>, Map<String, Value>)>,
    ) -> Result<Vec<Result<Value, ClientError>>, ClientError> {
        let mut out = Vec::new();
        let mut ids = Vec::with_capacity(calls.len());
        for (method, args, kwargs) in calls {
            let id = self.next_id;
            self.next_id += 1;
            ids.push(id);
            let payload = json!([[id, method, args, kwargs]]);
            self.encoder.encode_into(&codec::encode(&payload), &mut out);
        }
        self.stream.write_all(&out).await?;
        let timeout = self.timeout;
        let mut answers = Vec::with_capacity(ids.len());
        for id in ids {
            let answer = tokio::time::timeout(timeout, self.answer_for(id))
                .await
                .map_err(|_| ClientError::Timeout(timeout))??;
            answers.push(answer);
        }
        Ok(answers)
    }

    /// Reads until the answer to `id`, queueing events on the way.
    async fn answer_for(&mut self, id: i64) -> Result<Result<Value, ClientError>, ClientError> {
        loop {
            let message = self.read_message().await?;
            let Value::Array(parts) = message else {
                return Err(ClientError::Protocol("message is not a list".into()));
            };
            match parts.first().and_then(Value::as_i64) {
                Some(RPC_EVENT) => self.events.push_back(event_from(&parts)),
                Some(kind @ (RPC_RESPONSE | RPC_ERROR)) => {
                    let got = parts.get(1).and_then(Value::as_i64);
                    if got != Some(id) {
                        return Err(ClientError::Protocol(format!(
                            "answer for request {got:?} while waiting for {id}"
                        )));
                    }
                    if kind == RPC_RESPONSE {
                        return Ok(Ok(parts.into_iter().nth(2).unwrap_or(Value::Null)));
                    }
                    return Ok(Err(remote_error(&parts).into()));
                }
                other => {
                    return Err(ClientError::Protocol(format!(
                        "unknown message type {other:?}"
                    )))
                }
            }
        }
    }

    async fn read_message(&mut self) -> Result<Value, ClientError> {
        loop {
            if let Some(Item::Message(body)) = self.decoder.next_item()? {
                return Ok(codec::decode(&body, response_limits().max_depth)?);
            }
            let n = self.stream.read(&mut self.buf).await?;
            if n == 0 {
                return Err(ClientError::Closed);
            }
            self.decoder.extend(&self.buf[..n]);
        }
    }

    /// Asks the daemon for these events (e.g. `PluginEnabledEvent`).
    pub async fn subscribe(&mut self, events: &[&str]) -> Result<(), ClientError> {
        self.call("daemon.set_event_interest", vec![json!(events)], Map::new())
            .await
            .map(|_| ())
    }

    /// The next event: a queued one, or waits up to `wait` for one.
    pub async fn next_event(&mut self, wait: Duration) -> Result<Option<Event>, ClientError> {
        if let Some(e) = self.events.pop_front() {
            return Ok(Some(e));
        }
        let read = async {
            let message = self.read_message().await?;
            match message {
                Value::Array(parts) if parts.first().and_then(Value::as_i64) == Some(RPC_EVENT) => {
                    Ok(event_from(&parts))
                }
                other => Err(ClientError::Protocol(format!(
                    "unexpected message while waiting for an event: {other}"
                ))),
            }
        };
        match tokio::time::timeout(wait, read).await {
            Ok(event) => event.map(Some),
            Err(_) => Ok(None),
        }
    }
}

fn event_from(parts: &[Value]) -> Event {
    Event {
        name: parts
            .get(1)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        args: match parts.get(2) {
            Some(Value::Array(a)) => a.clone(),
            _ => Vec::new(),
        },
    }
}

fn remote_error(parts: &[Value]) -> RemoteError {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    RemoteError {
        name: parts.get(2).map(text).unwrap_or_default(),
        args: match parts.get(3) {
            Some(Value::Array(a)) => a.iter().map(text).collect(),
            _ => Vec::new(),
        },
        traceback: parts.get(5).map(text).unwrap_or_default(),
    }
}
